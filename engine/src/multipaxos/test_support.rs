//! Test helpers: message builders and a tiny deterministic cluster pump.
//!
//! The pump keeps a bag of in-flight messages and delivers them in an order drawn from a
//! seed (optionally losing and duplicating peer messages); `Persist` records are durable
//! at once and their effects released in order, so self-sends arrive like any message.
//! A crash drops the node and the messages to it; a restart rebuilds it from its records.

use super::*;
use crate::command::Command;
use crate::id::ClientId;
use crate::protocol::Effect;
use crate::request::ClientReply;
use std::collections::{BTreeMap, BTreeSet};

pub(super) fn cluster(n: u16) -> Membership {
    Membership::local(n)
}

pub(super) fn node(id: u16, n: u16, config: MultiPaxosConfig) -> MultiPaxos {
    MultiPaxos::new(NodeId(id), &cluster(n), config, 7, Vec::new())
}

pub(super) fn drain(core: &mut MultiPaxos) -> Vec<Output<Message, Record>> {
    std::iter::from_fn(|| core.poll_output()).collect()
}

pub(super) fn ballot(round: u64, node: u16) -> Ballot {
    Ballot {
        round,
        node: NodeId(node),
    }
}

pub(super) fn request_id(seq: u64) -> RequestId {
    RequestId {
        client: ClientId(9),
        seq,
    }
}

pub(super) fn put(seq: u64) -> Command {
    Command::Put {
        key: b"k".to_vec(),
        value: seq.to_le_bytes().to_vec(),
    }
}

pub(super) fn proposal(seq: u64, origin: u16) -> Proposal {
    Proposal {
        request: request_id(seq),
        origin: NodeId(origin),
        command: put(seq),
    }
}

pub(super) fn send(to: u16, message: Message) -> Effect<Message> {
    Effect::Send {
        to: NodeId(to),
        message,
    }
}

pub(super) fn now_send(to: u16, message: Message) -> Output<Message, Record> {
    Output::Now(send(to, message))
}

/// Every message a drained output list sends now (not after a sync), in order.
pub(super) fn sent_now(outputs: &[Output<Message, Record>]) -> Vec<(NodeId, Message)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Now(Effect::Send { to, message }) => Some((*to, message.clone())),
            _ => None,
        })
        .collect()
}

/// Deliver every self-send released by the `Persist` outputs (the sync completed).
pub(super) fn sync_self(core: &mut MultiPaxos, now: Time, outputs: &[Output<Message, Record>]) {
    let own = core.id();
    for output in outputs {
        if let Output::Persist { then, .. } = output {
            for effect in then {
                if let Effect::Send { to, message } = effect {
                    if *to == own {
                        core.handle_message(now, own, message.clone());
                    }
                }
            }
        }
    }
}

/// Node 0 of an `n`-cluster, leading ballot (1, 0) after promises from nodes 1..q1.
pub(super) fn elected_leader(n: u16, config: MultiPaxosConfig) -> MultiPaxos {
    let mut leader = node(0, n, config);
    leader.handle_timeout(Time::ZERO);
    let outputs = drain(&mut leader);
    sync_self(&mut leader, Time::ZERO, &outputs);
    let mut peer = 1;
    while !leader.is_leader() {
        leader.handle_message(
            Time::ZERO,
            NodeId(peer),
            Message::Promise {
                ballot: ballot(1, 0),
                accepted: Vec::new(),
            },
        );
        peer += 1;
    }
    drain(&mut leader);
    leader
}

/// A deterministic in-memory cluster.
pub(super) struct Pump {
    pub(super) cluster: Membership,
    pub(super) config: MultiPaxosConfig,
    pub(super) seed: u64,
    pub(super) nodes: Vec<Option<MultiPaxos>>,
    pub(super) disks: Vec<Vec<Record>>,
    net: Vec<(NodeId, NodeId, Message)>,
    pub(super) replies: BTreeMap<RequestId, ClientReply>,
    pub(super) committed: BTreeSet<RequestId>,
    rng: ChaCha8Rng,
    pub(super) now: Time,
    /// Probability a peer message is lost.
    pub(super) loss: f64,
    /// Probability a delivered peer message is delivered again later.
    pub(super) duplicate: f64,
    incarnations: Vec<u64>,
    /// Links `(from, to)` that lose every peer message.
    pub(super) cut: BTreeSet<(NodeId, NodeId)>,
}

impl Pump {
    pub(super) fn new(n: u16, config: MultiPaxosConfig, seed: u64) -> Self {
        let cluster = cluster(n);
        let nodes = (0..n)
            .map(|i| {
                Some(MultiPaxos::new(
                    NodeId(i),
                    &cluster,
                    config.clone(),
                    seed.wrapping_mul(31).wrapping_add(u64::from(i)),
                    Vec::new(),
                ))
            })
            .collect();
        let mut pump = Self {
            cluster,
            config,
            seed,
            nodes,
            disks: vec![Vec::new(); usize::from(n)],
            net: Vec::new(),
            replies: BTreeMap::new(),
            committed: BTreeSet::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            now: Time::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            incarnations: vec![0; usize::from(n)],
            cut: BTreeSet::new(),
        };
        for i in 0..n {
            pump.fire(NodeId(i));
        }
        pump
    }

    pub(super) fn node(&self, id: NodeId) -> Option<&MultiPaxos> {
        self.nodes[id.index()].as_ref()
    }

    fn drain(&mut self, id: NodeId) {
        loop {
            let Some(core) = self.nodes[id.index()].as_mut() else {
                return;
            };
            let Some(output) = core.poll_output() else {
                return;
            };
            match output {
                Output::Now(effect) => self.perform(id, effect),
                Output::Persist { records, then } => {
                    self.disks[id.index()].extend(records);
                    for effect in then {
                        self.perform(id, effect);
                    }
                }
                Output::Compact { snapshot } => self.disks[id.index()] = snapshot,
            }
        }
    }

    fn perform(&mut self, from: NodeId, effect: Effect<Message>) {
        match effect {
            Effect::Send { to, message } => self.net.push((from, to, message)),
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

    pub(super) fn request(&mut self, at: NodeId, request: ClientRequest) {
        let now = self.now;
        if let Some(core) = self.nodes[at.index()].as_mut() {
            core.handle_request(now, request);
        }
        self.drain(at);
    }

    /// Deliver one message or let time pass.
    pub(super) fn step(&mut self) {
        if !self.net.is_empty() && self.rng.gen_bool(0.95) {
            let index = self.rng.gen_range(0..self.net.len());
            let (from, to, message) = self.net.swap_remove(index);
            self.now = self.now + Duration::from_micros(self.rng.gen_range(0..200));
            let peer = from != to;
            if peer && (self.cut.contains(&(from, to)) || self.rng.gen_bool(self.loss)) {
                return;
            }
            if peer && self.rng.gen_bool(self.duplicate) {
                self.net.push((from, to, message.clone()));
            }
            let now = self.now;
            if let Some(core) = self.nodes[to.index()].as_mut() {
                core.handle_message(now, from, message);
            }
            self.drain(to);
        } else {
            let next = self
                .nodes
                .iter()
                .flatten()
                .filter_map(|n| n.poll_timeout())
                .min()
                .unwrap_or(self.now);
            let cap = self.now + Duration::from_millis(5);
            self.now = if self.net.is_empty() {
                next.max(self.now)
            } else {
                next.clamp(self.now, cap)
            };
            for i in 0..self.nodes.len() {
                self.fire(NodeId(i as u16));
            }
        }
    }

    /// Step until `done` holds; false if `max_steps` ran out first.
    pub(super) fn run_until(&mut self, max_steps: usize, done: impl Fn(&Self) -> bool) -> bool {
        for _ in 0..max_steps {
            if done(self) {
                return true;
            }
            self.step();
        }
        done(self)
    }

    pub(super) fn crash(&mut self, id: NodeId) {
        self.nodes[id.index()] = None;
        self.net.retain(|(_, to, _)| *to != id);
    }

    pub(super) fn restart(&mut self, id: NodeId) {
        self.incarnations[id.index()] += 1;
        let seed = self
            .seed
            .wrapping_mul(31)
            .wrapping_add(u64::from(id.0))
            .wrapping_add(self.incarnations[id.index()] << 32);
        self.nodes[id.index()] = Some(MultiPaxos::new(
            id,
            &self.cluster,
            self.config.clone(),
            seed,
            self.disks[id.index()].clone(),
        ));
        self.fire(id);
    }

    pub(super) fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .flatten()
            .filter(|n| n.is_leader())
            .max_by_key(|n| n.ballot())
            .map(|n| n.id())
    }

    /// Safety: every live replica's applied sequence is a prefix of the longest one, and
    /// no request is applied twice at one replica.
    pub(super) fn check_agreement(&self) -> Result<(), String> {
        let views: Vec<Vec<(Slot, RequestId)>> = self
            .nodes
            .iter()
            .flatten()
            .map(|n| n.applied().iter().map(|e| (e.slot, e.request)).collect())
            .collect();
        let longest = views
            .iter()
            .max_by_key(|v| v.len())
            .cloned()
            .unwrap_or_default();
        for (i, view) in views.iter().enumerate() {
            if view.as_slice() != &longest[..view.len()] {
                return Err(format!(
                    "seed {}: replica {i} applied a different sequence",
                    self.seed
                ));
            }
            let distinct: BTreeSet<_> = view.iter().map(|(_, r)| r).collect();
            if distinct.len() != view.len() {
                return Err(format!(
                    "seed {}: replica {i} applied a request twice",
                    self.seed
                ));
            }
        }
        Ok(())
    }

    pub(super) fn assert_agreement(&self) {
        if let Err(divergence) = self.check_agreement() {
            panic!("{divergence}");
        }
    }
}
