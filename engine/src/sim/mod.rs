//! Deterministic discrete-event simulator driving protocol cores.
//!
//! ```text
//!  clients (Workload) ──request──▶ node core ──Persist──▶ SimDisk ──sync──▶ release effects
//!        ▲                          │  ▲ Now(effect)                         │
//!        └──────── reply ───────────┘  └──── Network (delay, loss, partitions) ◀─ Send
//! ```
//! Everything happens through one event queue ordered by `(time, seq)`; all chance comes
//! from ChaCha RNGs derived from the run's seed, so `(seed, SimConfig, workloads)`
//! reproduces a run exactly ([`Sim::trace_digest`] checks it). The host rules match the
//! server's: effects inside `Persist` wait for a (group-commit) sync; a crash loses the
//! unsynced records and unreleased effects; a restart rebuilds the core from its synced
//! records with the factory.

mod client;
mod clock;
#[cfg(test)]
mod clock_test;
mod config;
mod disk;
mod event;
mod fault;
mod network;
mod node_disk;
mod node_faults;
mod operator;
mod workload;

pub use crate::check::OpRecord;
pub use client::{ClientOp, Workload};
pub use clock::{ClockConfig, NodeClock};
pub use config::{ClientConfig, ClientMode, DiskModel, SimConfig};
pub use fault::{FaultAction, FaultConfig, FaultPlan, FaultProfile, PartitionMode};
pub use workload::RandomKv;

use crate::check::History;
use crate::id::{ClientId, NodeId, RequestId};
use crate::protocol::{Effect, Membership, Metrics, Output, Protocol};
use crate::request::{ClientReply, ClientRequest, Response};
use crate::time::Time;
use client::SimClient;
use disk::{DiskOp, SimDisk};
use event::EventQueue;
use network::{Fate, Network};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::time::Duration;

/// Builds a protocol core for `(node, seed, recovered records)`. Called at start (with no
/// records) and on every restart.
pub type Factory<P> = Box<dyn FnMut(NodeId, u64, Vec<<P as Protocol>::Record>) -> P>;

/// Called for every client request when it completes or times out.
pub type Observer = Box<dyn FnMut(&OpRecord)>;

enum Event<M> {
    Deliver {
        to: NodeId,
        from: NodeId,
        message: M,
    },
    Request {
        node: NodeId,
        request: ClientRequest,
    },
    Reply {
        client: ClientId,
        reply: ClientReply,
    },
    Timer {
        node: NodeId,
        incarnation: u32,
    },
    SyncDone {
        node: NodeId,
        incarnation: u32,
    },
    /// Writes nothing waits for have been queued for `IDLE_SYNC_AFTER`: sync them.
    IdleSync {
        node: NodeId,
        incarnation: u32,
    },
    Issue {
        client: ClientId,
    },
    ClientTimeout {
        client: ClientId,
        seq: u64,
    },
    Fault(FaultAction),
}

struct SimNode<P: Protocol> {
    core: Option<P>,
    incarnation: u32,
    disk: SimDisk<P::Message, P::Record>,
    timer: Option<Time>,
    /// Counters of the incarnations that crashed, so totals survive restarts.
    past_metrics: Metrics,
    /// Crash in the middle of the next compaction (a [`FaultAction::CrashInCompaction`]).
    crash_in_compaction: bool,
    /// The disk was lost: the next restart calls [`Protocol::rejoin`].
    amnesiac: bool,
    /// Stopped for good ([`Sim::retire`]): never restarted.
    retired: bool,
    /// Its clock (survives crashes).
    clock: NodeClock,
}

/// The history of the linearizable requests among `records` (every level that promises
/// linearizability: `linearizable`, `lease`, `read-index`, `follower`), for the linearizability
/// checker: a reply `Ok` completes the op, a definite error fails it, and a timeout or
/// indefinite error leaves its outcome unknown (ending `timeout` after its call); records
/// still pending are unknown too. Shared with the benchmark's cluster backend.
pub fn linearizable_history_of<'a>(
    records: impl IntoIterator<Item = &'a OpRecord>,
    timeout: Duration,
) -> History {
    let mut history = History::new();
    for record in records {
        if !record.request.consistency.is_linearizable_read() {
            continue;
        }
        let op = history.invoke(record.client, record.request.command.clone(), record.call);
        match (&record.reply, record.ret) {
            (Some(reply), Some(ret)) => match &reply.outcome {
                Ok(Response::Kv(result) | Response::Read { result, .. }) => {
                    history.complete(op, ret, result.clone())
                }
                Ok(Response::Versioned(_)) => history.unknown(op, ret),
                Err(error) if error.is_definite() => history.fail(op, ret, error.to_string()),
                Err(_) => history.unknown(op, ret),
            },
            _ if record.timed_out => history.unknown(op, record.call + timeout),
            _ => {} // still pending: the checker treats it as unknown
        }
    }
    history
}

/// Totals the simulator itself keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Events processed.
    pub events: u64,
    /// Peer messages sent.
    pub messages_sent: u64,
    /// Peer messages lost (link faults, partitions, crashed receivers).
    pub messages_lost: u64,
    /// Syncs performed across all nodes.
    pub syncs: u64,
    /// Crashes and restarts performed.
    pub crashes: u64,
    /// Restarts performed.
    pub restarts: u64,
    /// Crashes between a compaction's snapshot write and its log swap.
    pub compaction_crashes: u64,
    /// Disks lost (amnesia faults).
    pub disks_lost: u64,
}

/// A simulated cluster running protocol `P`.
pub struct Sim<P: Protocol> {
    config: SimConfig,
    cluster: Membership,
    now: Time,
    queue: EventQueue<Event<P::Message>>,
    rng: ChaCha8Rng,
    network: Network,
    nodes: Vec<SimNode<P>>,
    factory: Factory<P>,
    clients: Vec<SimClient>,
    /// Finished requests (when `record_ops`).
    ops: Vec<OpRecord>,
    /// Requests still waiting for a reply or a timeout.
    in_flight: BTreeMap<RequestId, OpRecord>,
    observer: Option<Observer>,
    stats: SimStats,
    digest: u64,
    trace: Option<Vec<String>>,
    /// Where a compaction's records are encoded before they are copied to a disk (keeps its
    /// capacity).
    encode_buffer: Vec<u8>,
}

fn mix(a: u64, b: u64) -> u64 {
    // splitmix64 over the pair: independent streams per (seed, purpose, id).
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl<P: Protocol> Sim<P> {
    /// A cluster of the topology's replicas, each built by `factory`, with no clients yet.
    pub fn new(
        config: SimConfig,
        factory: impl FnMut(NodeId, u64, Vec<P::Record>) -> P + 'static,
    ) -> Self {
        let cluster = config.topology.membership();
        let network = Network::new(
            &config.topology,
            config.jitter,
            config.fifo_links,
            config.faults,
        );
        let mut sim = Self {
            rng: ChaCha8Rng::seed_from_u64(mix(config.seed, 1)),
            cluster,
            now: Time::ZERO,
            queue: EventQueue::new(),
            network,
            nodes: Vec::new(),
            factory: Box::new(factory),
            clients: Vec::new(),
            ops: Vec::new(),
            in_flight: BTreeMap::new(),
            observer: None,
            stats: SimStats::default(),
            digest: 0xcbf2_9ce4_8422_2325,
            trace: None,
            encode_buffer: Vec::new(),
            config,
        };
        let ids: Vec<NodeId> = sim.cluster.ids().collect();
        let mut clock_rng = ChaCha8Rng::seed_from_u64(mix(sim.config.seed, 0xC10C));
        for id in ids {
            let clock = NodeClock::draw(&sim.config.clocks, id, &mut clock_rng);
            let seed = sim.node_seed(id, 0);
            let core = (sim.factory)(id, seed, Vec::new());
            sim.nodes.push(SimNode {
                core: Some(core),
                incarnation: 0,
                disk: SimDisk::new(),
                timer: None,
                past_metrics: Metrics::new(),
                crash_in_compaction: false,
                amnesiac: false,
                retired: false,
                clock,
            });
            sim.drain(id);
        }
        sim
    }

    /// `node`'s clock reading now (what its core is told).
    pub fn local_now(&self, node: NodeId) -> Time {
        self.nodes
            .get(node.index())
            .map_or(self.now, |n| n.clock.local(self.now))
    }

    fn node_seed(&self, id: NodeId, incarnation: u32) -> u64 {
        mix(
            mix(self.config.seed, 2 + u64::from(id.0)),
            u64::from(incarnation),
        )
    }

    /// The membership the cores were built with.
    pub fn cluster(&self) -> &Membership {
        &self.cluster
    }

    /// The configuration of this run.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Current simulated time.
    pub fn now(&self) -> Time {
        self.now
    }

    /// Record a compact one-line-per-event trace (see [`Sim::trace`]).
    pub fn enable_trace(&mut self) {
        self.trace = Some(Vec::new());
    }

    /// The trace lines recorded so far (empty unless enabled).
    pub fn trace(&self) -> &[String] {
        self.trace.as_deref().unwrap_or(&[])
    }

    /// Call `observer` for every request when it completes or times out.
    pub fn set_observer(&mut self, observer: impl FnMut(&OpRecord) + 'static) {
        self.observer = Some(Box::new(observer));
    }

    /// Add a client in region `region` (topology region index) running `workload`,
    /// starting at `start`. It talks to the nearest replica and fails over to the next
    /// nearest after a timeout.
    pub fn add_client(
        &mut self,
        region: usize,
        workload: Box<dyn Workload>,
        start: Time,
    ) -> ClientId {
        let id = ClientId(self.clients.len() as u64);
        let mut replicas: Vec<NodeId> = self.cluster.ids().collect();
        replicas.sort_by_key(|&n| {
            (
                self.network
                    .region_delay_us(region, self.network.region_of(n)),
                n,
            )
        });
        let rng = ChaCha8Rng::seed_from_u64(mix(mix(self.config.seed, 0xC11E), id.0));
        self.clients.push(SimClient {
            region,
            replicas,
            target: 0,
            next_seq: 0,
            rng,
            workload,
            outstanding: Default::default(),
            done: false,
        });
        self.queue.push(start, Event::Issue { client: id });
        id
    }

    /// Add the topology's clients (`clients` per region), each with a workload from `make`.
    pub fn add_topology_clients(
        &mut self,
        mut make: impl FnMut(ClientId, usize) -> Box<dyn Workload>,
        start: Time,
    ) {
        let per_region: Vec<u32> = self
            .config
            .topology
            .regions()
            .iter()
            .map(|r| r.clients)
            .collect();
        for (region, count) in per_region.into_iter().enumerate() {
            for _ in 0..count {
                let id = ClientId(self.clients.len() as u64);
                let workload = make(id, region);
                self.add_client(region, workload, start);
            }
        }
    }

    /// Send `client`'s next requests to `node`, as a load balancer moving the client to
    /// another coordinator would (after a timeout it fails over from there as usual).
    pub fn redirect_client(&mut self, client: ClientId, node: NodeId) {
        if let Some(client) = self.clients.get_mut(client.0 as usize) {
            client.redirect(node);
        }
    }

    /// Schedule a fault action.
    pub fn schedule(&mut self, at: Time, action: FaultAction) {
        self.queue.push(at, Event::Fault(action));
    }

    /// Apply a fault plan: its link faults now, its actions at their times.
    pub fn apply_plan(&mut self, plan: &FaultPlan) {
        self.network.set_faults(plan.link_faults);
        for (at, action) in &plan.actions {
            self.schedule(*at, action.clone());
        }
    }

    /// Process events until none is left before `deadline`; the clock ends at `deadline`.
    pub fn run_until(&mut self, deadline: Time) {
        while self.queue.peek_time().is_some_and(|t| t <= deadline) {
            self.step();
        }
        self.now = self.now.max(deadline);
    }

    /// Run for `duration` more.
    pub fn run_for(&mut self, duration: Duration) {
        let deadline = self.now + duration;
        self.run_until(deadline);
    }

    /// Process one event; false when nothing is scheduled.
    pub fn step(&mut self) -> bool {
        let Some((at, event)) = self.queue.pop() else {
            return false;
        };
        debug_assert!(at >= self.now, "event queue went back in time");
        self.now = at;
        self.stats.events += 1;
        self.handle(event);
        true
    }

    fn note(&mut self, tag: u64, a: u64, b: u64) {
        for word in [self.now.as_micros(), tag, a, b] {
            self.digest = (self.digest ^ word).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn trace_line(&mut self, line: impl FnOnce() -> String) {
        if let Some(trace) = &mut self.trace {
            if trace.len() < 1_000_000 {
                trace.push(format!("{:>12} {}", self.now.to_string(), line()));
            }
        }
    }

    fn handle(&mut self, event: Event<P::Message>) {
        match event {
            Event::Deliver { to, from, message } => {
                self.note(1, u64::from(to.0), u64::from(from.0));
                if self.network.is_blocked(from, to) {
                    // A partition that started while the message was in flight.
                    self.stats.messages_lost += 1;
                    return;
                }
                let now = self.local_now(to);
                if self.nodes[to.index()].core.is_none() {
                    self.stats.messages_lost += 1;
                    return;
                }
                self.trace_line(|| format!("{to} <- {from} {message:?}"));
                let core = self.nodes[to.index()].core.as_mut().expect("checked above");
                core.handle_message(now, from, message);
                self.drain(to);
            }
            Event::Request { node, request } => {
                self.note(2, u64::from(node.0), request.id.seq);
                let now = self.local_now(node);
                match self.nodes[node.index()].core.as_mut() {
                    Some(core) => {
                        core.handle_request(now, request);
                        self.drain(node);
                    }
                    None => self.trace_line(|| format!("{node} down: request {} lost", request.id)),
                }
            }
            Event::Reply { client, reply } => {
                self.note(3, client.0, reply.id.seq);
                self.client_reply(client, reply);
            }
            Event::Timer { node, incarnation } => {
                let state = &mut self.nodes[node.index()];
                if state.incarnation != incarnation || state.timer != Some(self.now) {
                    return;
                }
                state.timer = None;
                self.note(4, u64::from(node.0), 0);
                let now = self.local_now(node);
                if let Some(core) = self.nodes[node.index()].core.as_mut() {
                    core.handle_timeout(now);
                    self.drain(node);
                }
            }
            Event::IdleSync { node, incarnation } => self.idle_sync(node, incarnation),
            Event::SyncDone { node, incarnation } => self.sync_done(node, incarnation),
            Event::Issue { client } => {
                self.note(6, client.0, 0);
                self.client_issue(client);
            }
            Event::ClientTimeout { client, seq } => {
                self.note(7, client.0, seq);
                self.client_timeout(client, seq);
            }
            Event::Fault(action) => {
                self.note(8, 0, 0);
                self.trace_line(|| format!("fault {action:?}"));
                self.fault(action);
            }
        }
    }

    /// Drain every output of `node` after an input, then re-arm its timer.
    fn drain(&mut self, node: NodeId) {
        loop {
            let Some(core) = self.nodes[node.index()].core.as_mut() else {
                return;
            };
            let Some(output) = core.poll_output() else {
                break;
            };
            match output {
                Output::Now(effect) => self.perform(node, effect),
                Output::Persist { records, then } => {
                    self.persist(node, DiskOp::Append(records), then)
                }
                Output::Compact { snapshot } => {
                    let encoded = disk::encode(&snapshot, &mut self.encode_buffer);
                    let bytes = encoded.iter().map(|record| record.len() as u64).sum();
                    core.compacted(bytes);
                    self.persist(node, DiskOp::Replace(encoded), Vec::new())
                }
            }
        }
        let state = &mut self.nodes[node.index()];
        let Some(core) = state.core.as_ref() else {
            return;
        };
        let next = core
            .poll_timeout()
            .map(|t| state.clock.real(t).max(self.now));
        if next != state.timer {
            state.timer = next;
            if let Some(at) = next {
                let incarnation = state.incarnation;
                self.queue.push(at, Event::Timer { node, incarnation });
            }
        }
    }

    fn perform(&mut self, node: NodeId, effect: Effect<P::Message>) {
        match effect {
            Effect::Send { to, message } => {
                if !self.cluster.contains(to) {
                    return;
                }
                self.stats.messages_sent += 1;
                match self.network.route(&mut self.rng, self.now, node, to) {
                    Fate::Lost => self.stats.messages_lost += 1,
                    Fate::Deliver { at, duplicate } => {
                        let deliver = |message| Event::Deliver {
                            to,
                            from: node,
                            message,
                        };
                        match duplicate {
                            None => self.queue.push(at, deliver(message)),
                            Some(again) => {
                                self.queue.push(at, deliver(message.clone()));
                                self.queue.push(again, deliver(message));
                            }
                        }
                    }
                }
            }
            Effect::Reply(reply) => {
                let client = reply.id.client;
                let Some(region) = self.clients.get(client.0 as usize).map(|c| c.region) else {
                    return;
                };
                let delay = self.network.client_delay(&mut self.rng, region, node);
                self.queue
                    .push(self.now + delay, Event::Reply { client, reply });
            }
            Effect::Committed { request, path } => {
                let Some(record) = self.in_flight.get_mut(&request) else {
                    return;
                };
                let back = self
                    .network
                    .region_delay_us(self.network.region_of(node), record.region);
                if record.commit.is_none() {
                    record.commit = Some((self.now + Duration::from_micros(back), path));
                }
            }
        }
    }

    fn client_issue(&mut self, id: ClientId) {
        let now = self.now;
        let stop = self.config.clients.stop_at.is_some_and(|stop| now >= stop);
        let client = &mut self.clients[id.0 as usize];
        if client.done || stop {
            client.done = true;
            return;
        }
        if let Some(at) = client.workload.not_before(now).filter(|&at| at > now) {
            self.queue.push(at, Event::Issue { client: id });
            return;
        }
        let Some(op) = client.workload.next_op(id, &mut client.rng, now) else {
            client.done = true;
            return;
        };
        let seq = client.next_seq;
        client.next_seq += 1;
        let node = client.current_replica();
        let request = ClientRequest {
            id: RequestId { client: id, seq },
            command: op.command,
            consistency: op.consistency,
            context: op.context,
            sloppy: op.sloppy,
            resend: false,
        };
        let region = client.region;
        client.outstanding.insert(seq);
        self.in_flight.insert(
            request.id,
            OpRecord {
                client: id,
                region,
                node,
                request: request.clone(),
                call: now,
                commit: None,
                ret: None,
                reply: None,
                timed_out: false,
            },
        );
        let delay = self.network.client_delay(&mut self.rng, region, node);
        self.queue
            .push(now + delay, Event::Request { node, request });
        self.queue.push(
            now + self.config.clients.timeout,
            Event::ClientTimeout { client: id, seq },
        );
        if let ClientMode::Open { rate_per_sec } = self.config.clients.mode {
            let client = &mut self.clients[id.0 as usize];
            let uniform: f64 = client.rng.gen_range(f64::EPSILON..1.0);
            let gap_us = (-uniform.ln() / rate_per_sec.max(1e-9) * 1e6) as u64;
            self.queue.push(
                now + Duration::from_micros(gap_us.max(1)),
                Event::Issue { client: id },
            );
        }
    }

    fn finish_op(&mut self, record: OpRecord) {
        let id = record.client;
        let client = &mut self.clients[id.0 as usize];
        client.outstanding.remove(&record.request.id.seq);
        client.workload.observe(&record);
        if let Some(observer) = self.observer.as_mut() {
            observer(&record);
        }
        if self.config.record_ops {
            self.ops.push(record);
        }
        if self.config.clients.mode == ClientMode::Closed {
            self.queue.push(self.now, Event::Issue { client: id });
        }
    }

    fn client_reply(&mut self, id: ClientId, reply: ClientReply) {
        if reply.id.client != id {
            return;
        }
        let Some(mut record) = self.in_flight.remove(&reply.id) else {
            return; // late or duplicate reply
        };
        record.ret = Some(self.now);
        record.reply = Some(reply);
        self.finish_op(record);
    }

    fn client_timeout(&mut self, id: ClientId, seq: u64) {
        let Some(mut record) = self.in_flight.remove(&RequestId { client: id, seq }) else {
            return;
        };
        self.clients[id.0 as usize].fail_over();
        record.timed_out = true;
        self.finish_op(record);
    }

    /// The core of `node`, if it is up.
    pub fn node(&self, node: NodeId) -> Option<&P> {
        self.nodes.get(node.index())?.core.as_ref()
    }

    /// Every node that is up.
    pub fn live_nodes(&self) -> impl Iterator<Item = (NodeId, &P)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.core.as_ref().map(|c| (NodeId(i as u16), c)))
    }

    /// Durable records of `node` (what a restart would replay), decoded.
    pub fn durable_records(&self, node: NodeId) -> Vec<P::Record> {
        self.nodes
            .get(node.index())
            .map_or_else(Vec::new, |n| disk::read_back(&n.disk.synced))
    }

    /// Every finished request (if `record_ops`), in completion order.
    pub fn ops(&self) -> &[OpRecord] {
        &self.ops
    }

    /// Requests still waiting for a reply or timeout.
    pub fn in_flight(&self) -> impl Iterator<Item = &OpRecord> {
        self.in_flight.values()
    }

    /// Whether every client finished and nothing is outstanding.
    pub fn clients_idle(&self) -> bool {
        self.clients
            .iter()
            .all(|c| c.done && c.outstanding.is_empty())
    }

    /// Number of clients.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Region index of a client.
    pub fn client_region(&self, client: ClientId) -> Option<usize> {
        self.clients.get(client.0 as usize).map(|c| c.region)
    }

    /// The history of linearizable requests, for the linearizability checker: a reply
    /// `Ok` completes the op, a definite error fails it, and a timeout or indefinite error
    /// leaves its outcome unknown.
    pub fn linearizable_history(&self) -> History {
        linearizable_history_of(
            self.ops.iter().chain(self.in_flight.values()),
            self.config.clients.timeout,
        )
    }

    /// Protocol counters summed over every node and incarnation.
    pub fn metrics(&self) -> Metrics {
        let mut total = Metrics::new();
        for node in &self.nodes {
            total.merge(&node.past_metrics);
            if let Some(core) = &node.core {
                total.merge(&core.metrics());
            }
        }
        total
    }

    /// The simulator's own counters.
    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    /// A digest of every event processed (time, kind, ids): two runs with the same seed
    /// and config must produce the same digest.
    pub fn trace_digest(&self) -> u64 {
        self.digest
    }

    /// Events still scheduled.
    pub fn pending_events(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
#[path = "sim_test.rs"]
mod tests;
