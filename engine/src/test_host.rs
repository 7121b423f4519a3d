//! A small deterministic host for any [`Protocol`] core, for the cores' unit tests.
//!
//! It applies the host rule of `docs/design.md#the-contract` like the simulator and the
//! server do (drain every output after every input; release a `Persist`'s effects only
//! once its records are durable; a crash loses unsynced records and unreleased effects;
//! a restart rebuilds the core from its durable records), with far less machinery: no
//! topology, no clients, no history. Two delivery orders:
//!
//! - [`Order::Shuffled`]: in-flight messages are a bag; each step delivers one drawn from
//!   a seeded RNG (optionally losing or duplicating peer messages), or lets time pass to
//!   the next timer. Records are durable as soon as they are produced. Good for
//!   exploring interleavings.
//! - [`Order::Timed`]: every message takes a fixed latency, every `Persist` a fixed sync
//!   delay; events run in time order. Good for scenarios that reason about time.

use crate::command::{Command, CommandResult};
use crate::id::{ClientId, NodeId, RequestId};
use crate::protocol::{Effect, Output, Protocol};
use crate::request::{ClientReply, ClientRequest, RequestError, Response};
use crate::state_machine::KvStore;
use crate::time::Time;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A put of `key` by one of seven clients (by `seq`), its value `seq`'s bytes.
pub(crate) fn put_request(seq: u64, key: &str) -> ClientRequest {
    let id = RequestId {
        client: ClientId(1 + seq % 7),
        seq,
    };
    ClientRequest::new(
        id,
        Command::Put {
            key: key.as_bytes().to_vec(),
            value: seq.to_le_bytes().to_vec(),
        },
    )
}

/// Exactly-once over resends with a key window of `window` writes
/// (docs/design.md#per-key-sessions-epaxos-tempo; EPaxos and Tempo): a resend while its
/// write is among the key's last `window` gets the first result; a resend older than
/// that, and one never sent before, are answered `SessionExpired` and run nowhere. `kv`
/// reads a core's key-value map.
pub(crate) fn check_key_resends<P: Protocol>(
    pump: &mut Pump<P>,
    window: u64,
    kv: impl Fn(&P) -> &KvStore,
) {
    const STEPS: usize = 400_000;
    let nodes: Vec<NodeId> = pump.ids().collect();
    let ask = |pump: &mut Pump<P>, at: usize, request: ClientRequest| {
        let id = request.id;
        pump.replies.remove(&id);
        pump.request(nodes[at % nodes.len()], request);
        assert!(
            pump.run_until(STEPS, |p| p.answered(&[id])),
            "{id} unanswered"
        );
        pump.replies[&id].outcome.clone()
    };
    let written = Ok(Response::Kv(CommandResult::Written));
    let first = put_request(1, "k");
    assert_eq!(ask(pump, 0, first.clone()), written);
    assert_eq!(
        ask(pump, 1, first.clone().resent()),
        written,
        "in the window"
    );
    for seq in 2..=window + 1 {
        assert_eq!(ask(pump, seq as usize, put_request(seq, "k")), written);
    }
    let expired = Err(RequestError::SessionExpired { request: first.id });
    assert_eq!(ask(pump, 2, first.resent()), expired, "out of the window");
    let never = put_request(1_000, "never").resent();
    let never_expired = Err(RequestError::SessionExpired { request: never.id });
    assert_eq!(ask(pump, 0, never), never_expired, "never sent before");
    let last = (window + 1).to_le_bytes().to_vec();
    // A write may be answered before it runs (Tempo answers a put once its timestamp is
    // promised): let the shuffled messages run everything, then time pass.
    pump.run_until(STEPS, |p| p.live().all(|c| kv(c).read(b"k") == Some(&last)));
    pump.run_for(Duration::from_secs(2));
    for core in pump.live() {
        assert_eq!(kv(core).read(b"k"), Some(&last), "a resend ran");
        assert_eq!(kv(core).read(b"never"), None, "a resend ran");
    }
}

/// Builds a core: `(id, incarnation, durable records)`. Incarnation 0 is the first boot
/// and each restart adds one, so a core can draw a fresh seed per boot.
pub(crate) type Build<P> = Box<dyn Fn(NodeId, u64, Vec<<P as Protocol>::Record>) -> P>;

/// How the pump orders deliveries (see the module doc).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Order {
    /// A seeded bag of messages; records durable at once.
    Shuffled,
    /// Fixed link latency and sync delay, in time order.
    Timed {
        /// One-way delay of every peer message.
        latency: Duration,
        /// Delay between a `Persist` and its records being durable.
        fsync: Duration,
    },
}

enum Event<M, R> {
    Deliver {
        to: NodeId,
        from: NodeId,
        message: M,
    },
    Synced {
        node: NodeId,
        boot: u64,
        records: Vec<R>,
        replace: bool,
        then: Vec<Effect<M>>,
    },
}

/// A deterministic in-memory cluster of cores `P`.
pub(crate) struct Pump<P: Protocol> {
    /// Current time.
    pub(crate) now: Time,
    /// The seed everything random here derives from (printed by failing tests).
    pub(crate) seed: u64,
    /// The cores; `None` while crashed.
    pub(crate) nodes: Vec<Option<P>>,
    /// Durable records per node.
    pub(crate) disks: Vec<Vec<P::Record>>,
    /// Every client reply, by request (a second, different reply panics).
    pub(crate) replies: BTreeMap<RequestId, ClientReply>,
    /// Requests whose commit the cores announced.
    pub(crate) committed: BTreeSet<RequestId>,
    /// Shuffled order: probability a peer message is lost.
    pub(crate) loss: f64,
    /// Shuffled order: probability a delivered peer message is delivered again later.
    pub(crate) duplicate: f64,
    /// Links `(from, to)` that lose every peer message.
    pub(crate) cut: BTreeSet<(NodeId, NodeId)>,
    build: Build<P>,
    order: Order,
    /// Boots per node (incarnations); also tells stale sync events from current ones.
    boots: Vec<u64>,
    /// Shuffled order: messages in flight.
    bag: Vec<(NodeId, NodeId, P::Message)>,
    /// Timed order: pending events by (time, sequence).
    queue: BTreeMap<(Time, u64), Event<P::Message, P::Record>>,
    next_event: u64,
    next_request: u64,
    rng: ChaCha8Rng,
}

impl<P: Protocol> Pump<P> {
    /// `n` cores `0..n`, each built by `build` with no records; every due timer fires.
    pub(crate) fn new(n: u16, seed: u64, order: Order, build: Build<P>) -> Self {
        let nodes = (0..n)
            .map(|i| Some(build(NodeId(i), 0, Vec::new())))
            .collect();
        let mut pump = Self {
            now: Time::ZERO,
            seed,
            nodes,
            disks: (0..n).map(|_| Vec::new()).collect(),
            replies: BTreeMap::new(),
            committed: BTreeSet::new(),
            loss: 0.0,
            duplicate: 0.0,
            cut: BTreeSet::new(),
            build,
            order,
            boots: vec![0; usize::from(n)],
            bag: Vec::new(),
            queue: BTreeMap::new(),
            next_event: 0,
            next_request: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        };
        if matches!(order, Order::Shuffled) {
            for i in 0..n {
                pump.fire(NodeId(i));
            }
        }
        pump
    }

    /// Every node id.
    pub(crate) fn ids(&self) -> impl Iterator<Item = NodeId> {
        (0..self.nodes.len() as u16).map(NodeId)
    }

    /// The core of `id`, if it is up.
    pub(crate) fn node(&self, id: NodeId) -> Option<&P> {
        self.nodes.get(id.index()).and_then(Option::as_ref)
    }

    /// The core of `id`; panics if it is down (for tests that know it is up).
    pub(crate) fn up(&self, id: NodeId) -> &P {
        self.node(id)
            .unwrap_or_else(|| panic!("seed {}: node {id} is down", self.seed))
    }

    /// Whether `id` is up.
    pub(crate) fn is_up(&self, id: NodeId) -> bool {
        self.node(id).is_some()
    }

    /// Every live core.
    pub(crate) fn live(&self) -> impl Iterator<Item = &P> {
        self.nodes.iter().flatten()
    }

    /// A request id not used before in this pump (client 1, sequence 1, 2, ...).
    pub(crate) fn next_request_id(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId {
            client: ClientId(1),
            seq: self.next_request,
        }
    }

    /// Hand `request` to `at` now (dropped if `at` is down).
    pub(crate) fn request(&mut self, at: NodeId, request: ClientRequest) {
        let now = self.now;
        if let Some(core) = self.nodes[at.index()].as_mut() {
            core.handle_request(now, request);
        }
        self.drain(at);
    }

    /// Call `f` on the core of `at` now (a protocol-specific input, e.g. an operator's
    /// request), then drain it; `None` if `at` is down.
    pub(crate) fn with_core<R>(
        &mut self,
        at: NodeId,
        f: impl FnOnce(&mut P, Time) -> R,
    ) -> Option<R> {
        let now = self.now;
        let result = self.nodes[at.index()].as_mut().map(|core| f(core, now));
        self.drain(at);
        result
    }

    /// `count` puts ([`put_request`]) from sequence `first`, round-robin over the live
    /// replicas; every `hot_every`-th on one hot key, the rest on keys of their own.
    pub(crate) fn submit_puts(&mut self, first: u64, count: u64, hot_every: u64) -> Vec<RequestId> {
        let live: Vec<NodeId> = self.ids().filter(|&id| self.is_up(id)).collect();
        let puts = self.puts_through(&live, first, count, hot_every);
        puts.into_iter().map(|(id, _)| id).collect()
    }

    /// `count` puts ([`put_request`]) from sequence `first`, sequence `s` to
    /// `nodes[s % nodes.len()]`; every `hot_every`-th on one hot key, the rest on keys of
    /// their own. Returns each request with its key.
    pub(crate) fn puts_through(
        &mut self,
        nodes: &[NodeId],
        first: u64,
        count: u64,
        hot_every: u64,
    ) -> Vec<(RequestId, String)> {
        (first..first + count)
            .map(|seq| {
                let key = if seq % hot_every == 0 {
                    "hot".to_owned()
                } else {
                    format!("k{seq}")
                };
                let request = put_request(seq, &key);
                let id = request.id;
                self.request(nodes[seq as usize % nodes.len()], request);
                (id, key)
            })
            .collect()
    }

    /// Whether every request of `ids` has its reply.
    pub(crate) fn answered(&self, ids: &[RequestId]) -> bool {
        ids.iter().all(|id| self.replies.contains_key(id))
    }

    /// Tell `id` it is about to stop on purpose ([`Protocol::hand_off`]).
    pub(crate) fn hand_off(&mut self, id: NodeId) {
        let now = self.now;
        if let Some(core) = self.nodes[id.index()].as_mut() {
            core.hand_off(now);
        }
        self.drain(id);
    }

    /// Stop `id`: its unsynced records, unreleased effects and in-flight messages to it
    /// are lost.
    pub(crate) fn crash(&mut self, id: NodeId) {
        self.nodes[id.index()] = None;
        self.boots[id.index()] += 1;
        self.bag.retain(|(_, to, _)| *to != id);
    }

    /// Rebuild `id` from its durable records.
    pub(crate) fn restart(&mut self, id: NodeId) {
        self.boot(id, false);
    }

    /// Rebuild `id` from its durable records and tell it that it lost its disk
    /// ([`Protocol::rejoin`]).
    pub(crate) fn restart_rejoining(&mut self, id: NodeId) {
        self.boot(id, true);
    }

    fn boot(&mut self, id: NodeId, rejoin: bool) {
        self.boots[id.index()] += 1;
        let incarnation = self.incarnation(id);
        let records = self.disks[id.index()].clone();
        let mut core = (self.build)(id, incarnation, records);
        if rejoin {
            core.rejoin(self.now);
        }
        self.nodes[id.index()] = Some(core);
        match self.order {
            Order::Shuffled => self.fire(id),
            Order::Timed { .. } => self.drain(id),
        }
    }

    /// How many times `id` was restarted.
    pub(crate) fn incarnation(&self, id: NodeId) -> u64 {
        // A crash and a restart each count one boot event.
        self.boots[id.index()].div_ceil(2)
    }

    /// Lose a crashed node's disk.
    pub(crate) fn wipe(&mut self, id: NodeId) {
        assert!(!self.is_up(id), "wipe a crashed node");
        self.disks[id.index()].clear();
    }

    /// Drop every message from `a` to `b`.
    pub(crate) fn block(&mut self, a: NodeId, b: NodeId) {
        self.cut.insert((a, b));
    }

    /// Cut `node` off from everyone, both ways.
    pub(crate) fn isolate(&mut self, node: NodeId) {
        for other in self.ids().collect::<Vec<_>>() {
            if other != node {
                self.cut.insert((node, other));
                self.cut.insert((other, node));
            }
        }
    }

    /// Restore every link.
    pub(crate) fn heal(&mut self) {
        self.cut.clear();
    }

    /// Shuffled order: step until `done` holds; false if `max_steps` ran out first.
    pub(crate) fn run_until(&mut self, max_steps: usize, done: impl Fn(&Self) -> bool) -> bool {
        for _ in 0..max_steps {
            if done(self) {
                return true;
            }
            self.step();
        }
        done(self)
    }

    /// Timed order: run every event and timer due within `duration`.
    pub(crate) fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        while self.step_until(end) {}
        self.now = end;
    }

    /// Timed order: run until `id` is answered; panics after `limit`.
    pub(crate) fn run_until_reply(&mut self, id: RequestId, limit: Duration) -> ClientReply {
        let end = self.now + limit;
        while !self.replies.contains_key(&id) && self.now < end {
            if !self.step_until(end) {
                break;
            }
        }
        self.replies
            .get(&id)
            .cloned()
            .unwrap_or_else(|| panic!("seed {}: no reply to {id} within {limit:?}", self.seed))
    }

    /// Shuffled order: deliver one message, or let time pass to the next timer.
    pub(crate) fn step(&mut self) {
        if !self.bag.is_empty() && self.rng.gen_bool(0.95) {
            let index = self.rng.gen_range(0..self.bag.len());
            let (from, to, message) = self.bag.swap_remove(index);
            self.now = self.now + Duration::from_micros(self.rng.gen_range(0..200));
            let peer = from != to;
            if peer && (self.cut.contains(&(from, to)) || self.rng.gen_bool(self.loss)) {
                return;
            }
            if peer && self.rng.gen_bool(self.duplicate) {
                self.bag.push((from, to, message.clone()));
            }
            self.deliver(to, from, message);
        } else {
            let next = self
                .live()
                .filter_map(Protocol::poll_timeout)
                .min()
                .unwrap_or(self.now);
            let cap = self.now + Duration::from_millis(5);
            self.now = if self.bag.is_empty() {
                next.max(self.now)
            } else {
                next.clamp(self.now, cap)
            };
            for id in self.ids().collect::<Vec<_>>() {
                self.fire(id);
            }
        }
    }

    /// Timed order: process the next event or timer due before `end`; false when none is.
    fn step_until(&mut self, end: Time) -> bool {
        let next_event = self.queue.keys().next().map(|(t, _)| *t);
        let next_timer = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().and_then(Protocol::poll_timeout).map(|t| (t, i)))
            .min();
        if let Some((at, index)) = next_timer.filter(|(t, _)| next_event.is_none_or(|e| *t <= e)) {
            if at > end {
                return false;
            }
            self.now = self.now.max(at);
            let now = self.now;
            if let Some(core) = self.nodes[index].as_mut() {
                core.handle_timeout(now);
            }
            self.drain(NodeId(index as u16));
            return true;
        }
        let Some((&(at, seq), _)) = self.queue.iter().next() else {
            return false;
        };
        if at > end {
            return false;
        }
        let Some(event) = self.queue.remove(&(at, seq)) else {
            return false;
        };
        self.now = self.now.max(at);
        match event {
            Event::Deliver { to, from, message } => self.deliver(to, from, message),
            Event::Synced {
                node,
                boot,
                records,
                replace,
                then,
            } => {
                if self.boots[node.index()] != boot {
                    return true;
                }
                if replace {
                    self.disks[node.index()] = records;
                } else {
                    self.disks[node.index()].extend(records);
                }
                for effect in then {
                    self.perform(node, effect);
                }
            }
        }
        true
    }

    fn deliver(&mut self, to: NodeId, from: NodeId, message: P::Message) {
        let now = self.now;
        if let Some(core) = self.nodes[to.index()].as_mut() {
            core.handle_message(now, from, message);
        }
        self.drain(to);
    }

    /// Fire `id`'s timers if due.
    fn fire(&mut self, id: NodeId) {
        let now = self.now;
        let Some(core) = self.nodes[id.index()].as_mut() else {
            return;
        };
        if core.poll_timeout().is_some_and(|t| t <= now) {
            core.handle_timeout(now);
        }
        self.drain(id);
    }

    fn push(&mut self, at: Time, event: Event<P::Message, P::Record>) {
        self.next_event += 1;
        self.queue.insert((at, self.next_event), event);
    }

    /// The host rule: every output, in order; effects of a `Persist` only once durable.
    fn drain(&mut self, node: NodeId) {
        loop {
            let Some(core) = self.nodes[node.index()].as_mut() else {
                return;
            };
            let Some(output) = core.poll_output() else {
                return;
            };
            let boot = self.boots[node.index()];
            match (output, self.order) {
                (Output::Now(effect), _) => self.perform(node, effect),
                (Output::Persist { records, then }, Order::Shuffled) => {
                    self.disks[node.index()].extend(records);
                    for effect in then {
                        self.perform(node, effect);
                    }
                }
                (Output::Compact { snapshot }, Order::Shuffled) => {
                    core.compacted(encoded_len(&snapshot));
                    self.disks[node.index()] = snapshot;
                }
                (Output::Persist { records, then }, Order::Timed { fsync, .. }) => {
                    let event = Event::Synced {
                        node,
                        boot,
                        records,
                        replace: false,
                        then,
                    };
                    self.push(self.now + fsync, event);
                }
                (Output::Compact { snapshot }, Order::Timed { fsync, .. }) => {
                    core.compacted(encoded_len(&snapshot));
                    let event = Event::Synced {
                        node,
                        boot,
                        records: snapshot,
                        replace: true,
                        then: Vec::new(),
                    };
                    self.push(self.now + fsync, event);
                }
            }
        }
    }

    fn perform(&mut self, from: NodeId, effect: Effect<P::Message>) {
        match effect {
            Effect::Send { to, message } => match self.order {
                Order::Shuffled => self.bag.push((from, to, message)),
                Order::Timed { latency, .. } => {
                    let at = if to == from {
                        self.now
                    } else if self.cut.contains(&(from, to)) {
                        return;
                    } else {
                        self.now + latency
                    };
                    self.push(at, Event::Deliver { to, from, message });
                }
            },
            Effect::Reply(reply) => {
                let previous = self.replies.insert(reply.id, reply.clone());
                assert!(
                    previous.is_none() || previous.as_ref() == Some(&reply),
                    "seed {}: request {} answered twice differently: {previous:?} then {reply:?}",
                    self.seed,
                    reply.id
                );
            }
            Effect::Committed { request, .. } => {
                self.committed.insert(request);
            }
        }
    }
}

/// The encoded size of a compaction's records, as a host reports it
/// ([`Protocol::compacted`]).
fn encoded_len<R: serde::Serialize>(records: &[R]) -> u64 {
    records.iter().map(crate::transfer::encoded_len).sum()
}
