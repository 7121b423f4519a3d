//! The simulator's host rules, checked with a tiny test-only protocol: a register that
//! persists a write before acknowledging it (or, for a value starting with `note`, logs
//! it with nothing waiting for it), and a ping fan-out to measure link delays.

use super::disk::Stored;
use super::*;
use crate::command::{Command, CommandResult};
use crate::protocol::Outbox;
use crate::topology::Topology;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Msg {
    Ping(RequestId),
    Pong(RequestId),
    /// Self-addressed after a sync: the write is durable.
    Durable(Vec<u8>),
}

struct Register {
    id: NodeId,
    peers: Vec<NodeId>,
    durable: Option<Vec<u8>>,
    pongs: BTreeMap<RequestId, usize>,
    outbox: Outbox<Msg, Vec<u8>>,
    metrics: Metrics,
    /// The host called `rejoin`.
    rejoined: bool,
}

impl Register {
    fn new(id: NodeId, cluster: &Membership, recovered: Vec<Vec<u8>>) -> Self {
        Self {
            id,
            peers: cluster.ids().filter(|&n| n != id).collect(),
            durable: recovered.last().cloned(),
            pongs: BTreeMap::new(),
            outbox: Outbox::new(),
            metrics: Metrics::new(),
            rejoined: false,
        }
    }
}

impl Protocol for Register {
    type Message = Msg;
    type Record = Vec<u8>;

    fn id(&self) -> NodeId {
        self.id
    }

    fn handle_request(&mut self, _now: Time, request: ClientRequest) {
        let reply = |result| ClientReply {
            id: request.id,
            outcome: Ok(Response::Kv(result)),
        };
        match &request.command {
            Command::Put { value, .. } if value.starts_with(b"note") => {
                // A record no effect waits for (an unawaited write).
                self.outbox.persist(vec![value.clone()], Vec::new());
                self.outbox.reply(reply(CommandResult::Written));
            }
            Command::Put { value, .. } => {
                self.outbox.persist(
                    vec![value.clone()],
                    vec![
                        Effect::Send {
                            to: self.id,
                            message: Msg::Durable(value.clone()),
                        },
                        Effect::Reply(reply(CommandResult::Written)),
                    ],
                );
                if value == b"compact" {
                    self.outbox.compact(vec![b"snapshot".to_vec()]);
                }
            }
            Command::Get { .. } => self
                .outbox
                .reply(reply(CommandResult::Value(self.durable.clone()))),
            _ => {
                self.pongs.insert(request.id, 0);
                for &peer in &self.peers {
                    self.outbox.send(peer, Msg::Ping(request.id));
                }
            }
        }
    }

    fn handle_message(&mut self, _now: Time, from: NodeId, message: Msg) {
        match message {
            Msg::Ping(id) => self.outbox.send(from, Msg::Pong(id)),
            Msg::Pong(id) => {
                let Some(count) = self.pongs.get_mut(&id) else {
                    return;
                };
                *count += 1;
                if *count == self.peers.len() {
                    self.pongs.remove(&id);
                    self.metrics.incr("fanouts");
                    self.outbox.reply(ClientReply {
                        id,
                        outcome: Ok(Response::Kv(CommandResult::Written)),
                    });
                }
            }
            Msg::Durable(value) => self.durable = Some(value),
        }
    }

    fn handle_timeout(&mut self, _now: Time) {}

    fn poll_output(&mut self) -> Option<Output<Msg, Vec<u8>>> {
        self.outbox.pop()
    }

    fn poll_timeout(&self) -> Option<Time> {
        None
    }

    fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }

    fn rejoin(&mut self, _now: Time) {
        self.rejoined = true;
    }
}

/// A fixed list of commands, one client.
struct Script(std::collections::VecDeque<Command>);

impl Workload for Script {
    fn next_op(&mut self, _: ClientId, _: &mut ChaCha8Rng, _: Time) -> Option<ClientOp> {
        self.0.pop_front().map(ClientOp::linearizable)
    }
}

fn script(commands: Vec<Command>) -> Box<dyn Workload> {
    Box::new(Script(commands.into()))
}

fn put(v: &str) -> Command {
    Command::Put {
        key: b"k".to_vec(),
        value: v.as_bytes().to_vec(),
    }
}

fn fanout() -> Command {
    Command::Delete { key: b"k".to_vec() }
}

fn sim(seed: u64, topology: &str, disk: DiskModel) -> Sim<Register> {
    let topology = Topology::builtin(topology).expect("builtin topology");
    let cluster = topology.membership();
    let config = SimConfig::new(seed, topology).with_disk(disk);
    Sim::new(config, move |id, _seed, records| {
        Register::new(id, &cluster, records)
    })
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn replies_inside_persist_wait_for_the_sync() {
    let mut sim = sim(1, "lan-3", DiskModel { fsync: ms(10) });
    sim.add_client(0, script(vec![put("a")]), Time::ZERO);
    sim.run_until(Time::from_millis(100));
    let op = &sim.ops()[0];
    let latency = op.latency().expect("completed");
    assert!(
        latency >= ms(10),
        "reply released before the fsync finished: {latency:?}"
    );
    assert!(
        latency < ms(12),
        "reply held longer than one fsync: {latency:?}"
    );
}

#[test]
fn a_crash_loses_unsynced_records_and_keeps_synced_ones() {
    let mut sim = sim(2, "lan-3", DiskModel { fsync: ms(10) });
    let node = NodeId(0);
    sim.add_client(0, script(vec![put("durable"), put("lost")]), Time::ZERO);
    // The first put syncs by ~10ms; the second is issued right after and still syncing at 15ms.
    sim.run_until(Time::from_millis(15));
    sim.crash(node);
    assert!(sim.node(node).is_none());
    sim.restart(node);
    assert_eq!(sim.durable_records(node), &[b"durable".to_vec()]);
    assert_eq!(
        sim.node(node).expect("restarted").durable.as_deref(),
        Some(&b"durable"[..])
    );
}

#[test]
fn fan_out_latency_is_the_largest_round_trip() {
    let mut sim = sim(3, "epaxos-5", DiskModel::default());
    let topology = sim.config().topology.clone();
    let region = 0;
    sim.add_client(region, script(vec![fanout()]), Time::ZERO);
    sim.run_until(Time::from_millis(2_000));
    let worst_rtt_ms = (0..topology.regions().len())
        .map(|other| topology.rtt_ms(region, other))
        .fold(0.0, f64::max);
    let measured_ms = sim.ops()[0].latency().expect("completed").as_secs_f64() * 1e3;
    let intra_ms = topology.rtt_ms(region, region);
    assert!(
        measured_ms >= worst_rtt_ms + intra_ms * 0.99
            && measured_ms <= (worst_rtt_ms + intra_ms) * 1.03 + 1.0,
        "fan-out took {measured_ms:.2} ms, slowest RTT {worst_rtt_ms:.2} ms"
    );
}

#[test]
fn a_partition_blocks_messages_until_healed() {
    let mut sim = sim(4, "lan-3", DiskModel::default());
    sim.partition(&[NodeId(0)], &[NodeId(1), NodeId(2)], PartitionMode::Full);
    sim.add_client(0, script(vec![fanout()]), Time::ZERO);
    sim.run_until(Time::from_millis(1_000));
    assert_eq!(
        sim.metrics().get("fanouts"),
        0,
        "fan-out crossed a partition"
    );
    assert!(sim.stats().messages_lost >= 2);
    sim.heal();
    sim.add_client(0, script(vec![fanout()]), sim.now());
    sim.run_until(Time::from_millis(2_000));
    assert_eq!(sim.metrics().get("fanouts"), 1);
}

#[test]
fn client_timeouts_record_unknown_outcomes_and_fail_over() {
    let mut sim = sim(5, "lan-3", DiskModel::default());
    sim.crash(NodeId(0));
    sim.add_client(0, script(vec![put("a"), put("b")]), Time::ZERO);
    sim.run_until(Time::from_millis(20_000));
    let ops = sim.ops();
    assert!(ops[0].timed_out && ops[0].reply.is_none());
    assert_ne!(
        ops[1].node,
        NodeId(0),
        "client did not move to another replica"
    );
    assert!(ops[1].reply.is_some());
    let history = sim.linearizable_history();
    assert_eq!(history.len(), 2);
}

#[test]
fn the_same_seed_reproduces_the_run_and_another_seed_does_not() {
    let run = |seed| {
        let mut sim = sim(seed, "epaxos-5", DiskModel { fsync: ms(1) });
        sim.apply_plan(&FaultPlan::random(
            seed,
            FaultProfile::Chaos,
            &sim.cluster().ids().collect::<Vec<_>>(),
            Time::ZERO,
            Time::from_millis(3_000),
        ));
        sim.add_topology_clients(
            |_, _| Box::new(RandomKv::new(4).with_max_ops(50)),
            Time::ZERO,
        );
        sim.run_until(Time::from_millis(10_000));
        (sim.trace_digest(), sim.stats().clone())
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11).0, run(12).0);
}

/// Commands issued no earlier than their scheduled times.
struct Timed(std::collections::VecDeque<(Time, Command)>);

impl Workload for Timed {
    fn next_op(&mut self, _: ClientId, _: &mut ChaCha8Rng, _: Time) -> Option<ClientOp> {
        self.0.pop_front().map(|(_, c)| ClientOp::linearizable(c))
    }

    fn not_before(&mut self, _: Time) -> Option<Time> {
        self.0.front().map(|(at, _)| *at)
    }
}

#[test]
fn a_workload_can_hold_its_next_request_until_a_given_time() {
    let mut sim = sim(6, "lan-3", DiskModel::default());
    let steps = vec![(Time::ZERO, put("a")), (Time::from_millis(500), put("b"))];
    sim.add_client(0, Box::new(Timed(steps.into())), Time::ZERO);
    sim.run_until(Time::from_millis(400));
    assert_eq!(sim.ops().len(), 1, "the second put went out early");
    assert!(!sim.clients_idle(), "a waiting client counts as done");
    sim.run_until(Time::from_millis(1_000));
    assert_eq!(sim.ops().len(), 2);
    assert_eq!(sim.ops()[1].call, Time::from_millis(500));
    assert!(sim.clients_idle());
}

#[test]
fn a_redirected_client_sends_its_next_requests_to_the_named_replica() {
    let mut sim = sim(7, "epaxos-5", DiskModel::default());
    let steps = vec![(Time::ZERO, put("a")), (Time::from_millis(1_000), put("b"))];
    let client = sim.add_client(0, Box::new(Timed(steps.into())), Time::ZERO);
    sim.run_until(Time::from_millis(500));
    let first = sim.ops()[0].node;
    let other = sim
        .cluster()
        .ids()
        .find(|&n| n != first)
        .expect("five replicas");
    sim.redirect_client(client, other);
    sim.run_until(Time::from_millis(3_000));
    assert_eq!(sim.ops()[1].node, other);
}

fn records(values: &[&str]) -> Vec<Vec<u8>> {
    values.iter().map(|v| v.as_bytes().to_vec()).collect()
}

/// A compaction's records are kept as bytes, as a real disk keeps them: a decoded copy of
/// every snapshot per replica doubled a long run's memory. Appended records are kept as
/// written; a restart passes both through their encoding.
#[test]
fn the_disk_keeps_snapshots_encoded_and_a_restart_decodes_every_record() {
    let mut sim = sim(4, "lan-3", DiskModel { fsync: ms(10) });
    let node = NodeId(0);
    sim.add_client(0, script(vec![put("a"), put("bb")]), Time::ZERO);
    sim.run_until(Time::from_millis(100));
    let stored = &sim.nodes[node.index()].disk.synced;
    let expected: Vec<Stored<Vec<u8>>> = ["a", "bb"]
        .iter()
        .map(|v| Stored::Appended(v.as_bytes().to_vec()))
        .collect();
    assert_eq!(stored, &expected);
    sim.add_client(0, script(vec![put("compact")]), Time::from_millis(100));
    sim.run_until(Time::from_millis(200));
    let stored = &sim.nodes[node.index()].disk.synced;
    let snapshot = crate::transfer::encode(&b"snapshot".to_vec()).into_boxed_slice();
    assert_eq!(stored, &vec![Stored::Encoded(snapshot)]);
    sim.crash(node);
    sim.restart(node);
    assert_eq!(
        sim.node(node).expect("restarted").durable.as_deref(),
        Some(&b"snapshot"[..])
    );
}

#[test]
fn a_compaction_replaces_the_log_once_synced() {
    let mut sim = sim(4, "lan-3", DiskModel { fsync: ms(10) });
    sim.add_client(0, script(vec![put("a"), put("compact")]), Time::ZERO);
    sim.run_until(Time::from_millis(100));
    assert_eq!(sim.durable_records(NodeId(0)), records(&["snapshot"]));
    assert_eq!(sim.stats().compaction_crashes, 0);
}

#[test]
fn a_crash_between_snapshot_write_and_log_swap_leaves_the_old_log_whole() {
    let mut sim = sim(4, "lan-3", DiskModel { fsync: ms(10) });
    let node = NodeId(0);
    sim.add_client(0, script(vec![put("a"), put("compact")]), Time::ZERO);
    sim.schedule(Time::from_millis(1), FaultAction::CrashInCompaction(node));
    sim.run_until(Time::from_millis(100));
    assert!(
        sim.node(node).is_none(),
        "the node crashed in its compaction"
    );
    assert_eq!(sim.stats().compaction_crashes, 1);
    // The appends synced before the compaction are durable; the swap is not.
    assert_eq!(sim.durable_records(node), records(&["a", "compact"]));
    // The put's own sync finished before the compaction's: it was answered.
    assert_eq!(sim.ops().len(), 2);
    sim.restart(node);
    assert_eq!(
        sim.node(node).expect("restarted").durable.as_deref(),
        Some(&b"compact"[..])
    );
}

#[test]
fn a_restart_of_a_live_node_disarms_a_crash_in_compaction() {
    let mut sim = sim(4, "lan-3", DiskModel { fsync: ms(10) });
    let node = NodeId(0);
    sim.add_client(
        0,
        script(vec![put("a"), put("compact")]),
        Time::from_millis(50),
    );
    sim.schedule(Time::from_millis(1), FaultAction::CrashInCompaction(node));
    sim.schedule(Time::from_millis(2), FaultAction::Restart(node));
    sim.run_until(Time::from_millis(200));
    assert!(sim.node(node).is_some());
    assert_eq!(sim.durable_records(node), records(&["snapshot"]));
}

#[test]
fn a_lost_disk_restarts_empty_through_rejoin() {
    let mut sim = sim(5, "lan-3", DiskModel { fsync: ms(10) });
    let node = NodeId(0);
    sim.add_client(0, script(vec![put("a")]), Time::ZERO);
    sim.run_until(Time::from_millis(50));
    assert_eq!(sim.durable_records(node), records(&["a"]));
    sim.schedule(Time::from_millis(60), FaultAction::Amnesia(node));
    sim.schedule(Time::from_millis(70), FaultAction::Restart(node));
    sim.run_until(Time::from_millis(65));
    assert!(sim.node(node).is_none());
    assert!(sim.durable_records(node).is_empty());
    sim.run_until(Time::from_millis(80));
    let core = sim.node(node).expect("restarted");
    assert!(core.rejoined && core.durable.is_none());
    assert_eq!(sim.stats().disks_lost, 1);
    // A crash before anything is synced rejoins again (as the server's identity file
    // keeps the rejoin listed while the log is empty) ...
    sim.crash(node);
    sim.restart(node);
    assert!(sim.node(node).expect("restarted").rejoined);
    // ... and once a record is durable, an ordinary crash and restart does not.
    sim.add_client(0, script(vec![put("b")]), Time::from_millis(80));
    sim.run_until(Time::from_millis(150));
    assert_eq!(sim.durable_records(node), records(&["b"]));
    sim.crash(node);
    sim.restart(node);
    assert!(!sim.node(node).expect("restarted").rejoined);
}

/// A record no effect waits for starts no sync: the next awaited write's sync covers it,
/// or a sync of its own after `IDLE_SYNC_AFTER` of quiet; a crash before either loses it.
#[test]
fn unawaited_records_ride_on_the_next_sync_or_wait_out_the_idle_deadline() {
    let idle = crate::storage::IDLE_SYNC_AFTER;
    let mut sim = sim(4, "lan-3", DiskModel { fsync: ms(1) });
    let node = NodeId(0);
    sim.add_client(0, script(vec![put("note-1"), put("a")]), Time::ZERO);
    sim.run_until(Time::from_millis(5));
    assert_eq!(sim.durable_records(node), records(&["note-1", "a"]));
    assert_eq!(sim.stats().syncs, 1, "one sync covered both");

    let start = Time::from_millis(10);
    sim.add_client(0, script(vec![put("note-2")]), start);
    sim.run_until(start + idle - ms(1));
    assert_eq!(sim.durable_records(node), records(&["note-1", "a"]));
    sim.run_until(start + idle + ms(5));
    assert_eq!(
        sim.durable_records(node),
        records(&["note-1", "a", "note-2"])
    );

    let start = Time::from_millis(100);
    sim.add_client(0, script(vec![put("note-3")]), start);
    sim.run_until(start + ms(5));
    sim.crash(node);
    sim.restart(node);
    sim.run_until(start + idle * 3);
    assert_eq!(
        sim.durable_records(node),
        records(&["note-1", "a", "note-2"])
    );
}
