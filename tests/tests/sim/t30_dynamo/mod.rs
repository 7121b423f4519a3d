//! Dynamo mode in the simulator.
//!
//! - `convergence`: chaos seeds of blind writes: no acknowledged write lost, owners
//!   converge within a bound derived from the anti-entropy schedule, the hint store
//!   stays within its limits at every step.
//! - `read_your_writes`: strict quorums give read-your-writes under faults; sloppy ones
//!   trade it away during a partition and get it back after hinted handoff.
//! - `latency`: ONE, QUORUM and LOCAL_QUORUM latency against the per-key optimum.
//! - `membership`: joins, leaves and replaces under chaos: no acknowledged write lost,
//!   every change completes, owners converge.

mod convergence;
mod latency;
mod membership;
mod read_your_writes;

use meridian_engine::dynamo::{Dynamo, DynamoConfig, Record};
use meridian_engine::sim::{
    ClientConfig, ClientOp, DiskModel, FaultPlan, FaultProfile, Sim, SimConfig, Workload,
};
use meridian_engine::topology::Topology;
use meridian_engine::{ClientId, Command, Consistency, Level, Metrics, NodeId, Time};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::time::Duration;

/// Blind writes of unique values over `keys` keys at random levels, sloppy or strict.
struct BlindWrites {
    left: u32,
    keys: u32,
}

impl Workload for BlindWrites {
    fn next_op(&mut self, client: ClientId, rng: &mut ChaCha8Rng, _now: Time) -> Option<ClientOp> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let level = [Level::One, Level::Two, Level::Quorum, Level::All][rng.gen_range(0..4)];
        Some(ClientOp {
            command: Command::Put {
                key: key(rng.gen_range(0..self.keys)),
                value: format!("c{}-{}", client.0, self.left).into_bytes(),
            },
            consistency: Consistency::Dynamo(level),
            context: Vec::new(),
            sloppy: Some(rng.gen_bool(0.5)),
        })
    }
}

fn key(i: u32) -> Vec<u8> {
    format!("k{i}").into_bytes()
}

/// fsync latency in the chaos runs (so crashes can catch records mid-sync).
const CHAOS_FSYNC: Duration = Duration::from_micros(500);

/// Builds the nodes of `topology` with `config`.
fn factory(
    topology: &Topology,
    config: DynamoConfig,
) -> impl FnMut(NodeId, u64, Vec<Record>) -> Dynamo {
    let cluster = topology.membership();
    move |id, seed, records| Dynamo::new(id, &cluster, config.clone(), seed, records)
}

/// A cluster on `topology` under the seed's random chaos plan (every fault kind), healed
/// at `heal_at`. Clients give up after 2 s; with `stop_at_heal` they issue nothing after
/// the heal.
fn chaos_sim(
    seed: u64,
    topology: &Topology,
    config: DynamoConfig,
    heal_at: Time,
    stop_at_heal: bool,
) -> Sim<Dynamo> {
    let sim_config = SimConfig::new(seed, topology.clone())
        .with_disk(DiskModel { fsync: CHAOS_FSYNC })
        .with_clients(ClientConfig {
            timeout: Duration::from_secs(2),
            stop_at: stop_at_heal.then_some(heal_at),
            ..ClientConfig::default()
        });
    let mut sim = Sim::new(sim_config, factory(topology, config));
    let nodes: Vec<NodeId> = sim.cluster().ids().collect();
    sim.apply_plan(&FaultPlan::random(
        seed,
        FaultProfile::Chaos,
        &nodes,
        Time::ZERO,
        heal_at,
    ));
    sim
}

/// The values `node` stores for `key` (empty if it stores nothing or is down).
fn stored_values(sim: &Sim<Dynamo>, node: NodeId, key: &[u8]) -> BTreeSet<Vec<u8>> {
    sim.node(node)
        .and_then(|n| n.stored(key))
        .map(|o| o.values().into_iter().flatten().collect())
        .unwrap_or_default()
}

/// The owners of `key` (every node shares the ring, so any node can tell).
fn owners(sim: &Sim<Dynamo>, key: &[u8]) -> Vec<NodeId> {
    let (_, any) = sim.live_nodes().next().expect("a live node");
    any.preference_list(key)
}

/// Hinted-handoff and repair counters summed over seeds, printed for the closing note.
#[derive(Default)]
struct HandoffTotals {
    hints_written: u64,
    hints_delivered: u64,
    hints_refused: u64,
    hints_expired: u64,
    read_repairs: u64,
    anti_entropy_keys_repaired: u64,
}

impl HandoffTotals {
    fn add(&mut self, metrics: &Metrics) {
        self.hints_written += metrics.get("hints_written");
        self.hints_delivered += metrics.get("hints_delivered");
        self.hints_refused += metrics.get("hints_refused");
        self.hints_expired += metrics.get("hints_expired");
        self.read_repairs += metrics.get("read_repairs");
        self.anti_entropy_keys_repaired += metrics.get("anti_entropy_keys_repaired");
    }

    fn summary(&self) -> String {
        format!(
            "hints written {}, delivered {}, refused at the bound {}, expired {}; read \
             repairs {}, keys repaired by anti-entropy {}",
            self.hints_written,
            self.hints_delivered,
            self.hints_refused,
            self.hints_expired,
            self.read_repairs,
            self.anti_entropy_keys_repaired
        )
    }
}
