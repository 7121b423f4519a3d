//! Ring membership changes in the Dynamo chaos suite (issue 14,
//! docs/design.md#dynamo-membership): three of the five `epaxos-5` replicas start as the
//! ring, the other two are spares; an operator drawn from the seed adds spares, removes
//! members and replaces one by a spare, during drops, duplicates, partitions, crashes
//! and slow nodes, while clients write. After the heal every change completes, every
//! member agrees on the ring, every owner of every key holds every acknowledged write
//! (blind writes: each survives as a sibling) and the owners of a key hold the same
//! values.

use super::{chaos_sim, key, BlindWrites};
use meridian_engine::configuration::Change;
use meridian_engine::dynamo::{Dynamo, DynamoConfig, RingState};
use meridian_engine::sim::Sim;
use meridian_engine::topology::Topology;
use meridian_engine::{ClientId, Command, NodeId, Protocol, RequestId, Response, Time};
use meridian_tests::membership_plan::Plan;
use meridian_tests::seeds;
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const KEYS: u32 = 24;
const TICK: Duration = Duration::from_millis(100);
/// The operator asks again if the ring did not move this long after it asked (the
/// replica it asked may have crashed before telling anyone).
const PATIENCE: Duration = Duration::from_secs(3);
const HEAL: Time = Time::from_millis(4_000);
/// After the heal, every change must be done and the owners converged by then.
const SETTLE: Duration = Duration::from_secs(40);

fn config() -> DynamoConfig {
    DynamoConfig {
        sibling_soft_limit: 1_000,
        sibling_hard_limit: 10_000,
        anti_entropy_interval: Duration::from_millis(300),
        initial_members: vec![NodeId(0), NodeId(1), NodeId(2)],
        ..DynamoConfig::default()
    }
}

/// The plan drawn from the seed, carried out one change at a time against the newest
/// ring.
struct Operator {
    plan: Plan,
    /// When it last asked, and the ring epoch it asked at.
    asked: Option<(Time, u64)>,
    next_seq: u64,
    proposals: usize,
}

/// The newest ring state among the live nodes.
fn newest(sim: &Sim<Dynamo>) -> Option<RingState> {
    let mut best: Option<RingState> = None;
    for (_, node) in sim.live_nodes() {
        let state = node.ring_state();
        if best.as_ref().is_none_or(|b| state.is_newer_than(b)) {
            best = Some(state.clone());
        }
    }
    best
}

impl Operator {
    fn new(seed: u64) -> Self {
        Self {
            plan: Plan::draw(seed, 0x7269_6e67, 1..=3, HEAL),
            asked: None,
            next_seq: 0,
            proposals: 0,
        }
    }

    fn tick(&mut self, sim: &mut Sim<Dynamo>) {
        let Some(state) = newest(sim) else {
            return;
        };
        if state.in_transition() {
            return;
        }
        let members: Vec<NodeId> = state.members().iter().map(|m| m.id).collect();
        let spares: Vec<NodeId> = sim
            .cluster()
            .ids()
            .filter(|id| !state.contains(*id))
            .collect();
        let Some(active) = self.plan.current(sim.now(), &members, &spares) else {
            return;
        };
        let change = match (active.add, active.remove) {
            (Some(x), _) if state.contains(x) => {
                active.add = None;
                return;
            }
            (Some(x), _) => Change::AddLearner(sim.cluster().members[x.index()].clone()),
            (None, Some(y)) if !state.contains(y) => {
                active.remove = None;
                return;
            }
            (None, Some(y)) => Change::Remove(y),
            (None, None) => {
                self.plan.finish();
                self.asked = None;
                return;
            }
        };
        if let Some((at, epoch)) = self.asked {
            if epoch == state.epoch() && sim.now() < at + PATIENCE {
                return;
            }
        }
        // Ask a live member that has the newest ring.
        let live: Vec<NodeId> = sim
            .live_nodes()
            .filter(|(id, node)| state.contains(*id) && node.ring_state() == &state)
            .map(|(id, _)| id)
            .collect();
        if live.is_empty() {
            return;
        }
        let target = live[self.plan.rng.gen_range(0..live.len())];
        self.next_seq += 1;
        let request = RequestId {
            client: ClientId(1_000_000),
            seq: self.next_seq,
        };
        self.proposals += 1;
        self.asked = Some((sim.now(), state.epoch()));
        sim.with_node(target, |core, now| {
            core.propose_change(now, request, change);
            while core.poll_change_outcome().is_some() {}
        });
    }
}

/// The values `node` stores for `key`.
fn values(sim: &Sim<Dynamo>, node: NodeId, key: &[u8]) -> BTreeSet<Vec<u8>> {
    sim.node(node)
        .and_then(|n| n.stored(key))
        .map(|o| o.values().into_iter().flatten().collect())
        .unwrap_or_default()
}

/// Whether every member has the newest ring, no range moves, and the owners of every key
/// are up and hold the same values.
fn settled(sim: &Sim<Dynamo>, state: &RingState) -> bool {
    let agreed = state.members().iter().all(|m| {
        sim.node(m.id)
            .is_some_and(|n| n.ring_state() == state && n.foreign_keys() == 0)
    });
    agreed
        && !state.in_transition()
        && (0..KEYS).map(key).all(|k| {
            let owners = sim
                .node(state.members()[0].id)
                .map(|n| n.preference_list(&k))
                .unwrap_or_default();
            owners
                .windows(2)
                .all(|w| values(sim, w[0], &k) == values(sim, w[1], &k))
        })
}

/// Issue 14: joins, leaves and replaces drawn from the seed under chaos; no acknowledged
/// write is lost, every change completes and the owners converge after the heal.
#[test]
fn ring_changes_under_chaos_lose_no_acknowledged_write_over_300_seeds() {
    let topology = Topology::builtin("epaxos-5").expect("builtin");
    let (mut acked, mut planned, mut proposals, mut moved) = (0u64, 0, 0, 0u64);
    let mut settle_times = Vec::new();
    for seed in seeds(300) {
        let replay = format!(
            "MERIDIAN_SEED={seed} cargo test -p meridian-tests --test sim -- t30_dynamo::membership"
        );
        let mut sim = chaos_sim(seed, &topology, config(), HEAL, true);
        sim.add_topology_clients(
            |_, _| {
                Box::new(BlindWrites {
                    left: 25,
                    keys: KEYS,
                })
            },
            Time::ZERO,
        );
        let mut operator = Operator::new(seed);
        let end = HEAL + SETTLE;
        let mut next_tick = Time::ZERO;
        let mut settled_at = None;
        while sim.now() < end {
            if sim.now() >= next_tick {
                operator.tick(&mut sim);
                next_tick = sim.now() + TICK;
                if sim.now() >= HEAL && operator.plan.finished() && sim.clients_idle() {
                    let state = newest(&sim).expect("a live node");
                    if settled(&sim, &state) {
                        settled_at = Some(sim.now());
                        break;
                    }
                }
            }
            if !sim.step() {
                break;
            }
        }
        let state = newest(&sim).expect("a live node");
        assert!(
            operator.plan.finished(),
            "seed {seed}: changes left {SETTLE:?} after the heal: {:?} (active {:?}, done {:?}, ring {state:?})\n  replay: {replay}",
            operator.plan.goals,
            operator.plan.active,
            operator.plan.done
        );
        let settled_at = settled_at.unwrap_or_else(|| {
            panic!("seed {seed}: ring or owners not settled {SETTLE:?} after the heal (ring {state:?})\n  replay: {replay}")
        });
        settle_times.push(settled_at.saturating_since(HEAL));
        planned += operator.plan.planned;
        proposals += operator.proposals;

        let mut expected: BTreeMap<Vec<u8>, BTreeSet<Vec<u8>>> = BTreeMap::new();
        for op in sim.ops() {
            let Some(Ok(Response::Versioned(_))) = op.reply.as_ref().map(|r| &r.outcome) else {
                continue;
            };
            if let Command::Put { key, value } = &op.request.command {
                expected
                    .entry(key.clone())
                    .or_default()
                    .insert(value.clone());
                acked += 1;
            }
        }
        let any = state.members()[0].id;
        let ring_nodes = sim.node(any).expect("a member is up");
        for (key, wanted) in &expected {
            for owner in ring_nodes.preference_list(key) {
                let lost: Vec<_> = wanted
                    .difference(&values(&sim, owner, key))
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .collect();
                assert!(
                    lost.is_empty(),
                    "seed {seed}: key {:?} owner {owner} lost acknowledged writes {lost:?} (ring {state:?})\n  replay: {replay}",
                    String::from_utf8_lossy(key)
                );
            }
        }
        let metrics = sim.metrics();
        moved += metrics.get("stream_keys_sent") + metrics.get("handoffs_received");
    }
    settle_times.sort();
    let quantile = |q: f64| settle_times[((settle_times.len() - 1) as f64 * q) as usize];
    println!(
        "{planned} membership goals, {proposals} changes proposed; {acked} acknowledged writes; \
         {moved} keys streamed or handed off; heal -> settled over {} seeds: median {:?}, \
         max {:?}",
        settle_times.len(),
        quantile(0.5),
        quantile(1.0)
    );
    assert!(acked > 0 && planned > 0);
}
