//! The best latency a topology allows, per protocol and client region (after fantoch's
//! `bote`): what a request would take with zero processing time, zero fsync time and no
//! queueing. Clients talk to the nearest replica (their own region's when it has one).

use meridian_engine::dynamo::{Op, Requirement};
use meridian_engine::quorum::{epaxos_fast_quorum, majority};
use meridian_engine::topology::Topology;
use meridian_engine::{Level, NodeId};
use std::collections::BTreeSet;

/// Nearest replica to a client in `region` (ties by node id).
pub fn nearest_replica(topology: &Topology, region: usize) -> NodeId {
    let replicas = topology.replicas();
    replicas
        .iter()
        .min_by(|a, b| {
            topology
                .rtt_ms(region, a.1)
                .total_cmp(&topology.rtt_ms(region, b.1))
                .then(a.0.cmp(&b.0))
        })
        .map(|r| r.0)
        .unwrap_or(NodeId(0))
}

fn region_of(topology: &Topology, node: NodeId) -> usize {
    topology.region_of_node(node).unwrap_or(0)
}

/// RTT between two replicas (0 to itself: a replica's own vote needs no network).
fn node_rtt(topology: &Topology, a: NodeId, b: NodeId) -> f64 {
    if a == b {
        0.0
    } else {
        topology.rtt_ms(region_of(topology, a), region_of(topology, b))
    }
}

/// Time for `from` to hear from the `quorum` nearest replicas, itself included.
pub fn quorum_rtt_ms(topology: &Topology, from: NodeId, quorum: usize) -> f64 {
    let mut rtts: Vec<f64> = topology
        .replicas()
        .iter()
        .map(|&(node, _)| node_rtt(topology, from, node))
        .collect();
    rtts.sort_by(f64::total_cmp);
    rtts.get(quorum.saturating_sub(1))
        .copied()
        .unwrap_or(f64::INFINITY)
}

/// Client ↔ its nearest replica, both ways.
fn access_ms(topology: &Topology, region: usize) -> (NodeId, f64) {
    let replica = nearest_replica(topology, region);
    (
        replica,
        topology.rtt_ms(region, region_of(topology, replica)),
    )
}

/// Multi-Paxos with `leader`: client → leader (through its nearest replica when that is not
/// the leader) + the leader's phase-2 quorum round trip + back to the client.
pub fn multipaxos_ms(
    topology: &Topology,
    region: usize,
    leader: NodeId,
    phase2_quorum: usize,
) -> f64 {
    let (replica, access) = access_ms(topology, region);
    let forward = node_rtt(topology, replica, leader);
    access + forward + quorum_rtt_ms(topology, leader, phase2_quorum)
}

/// Multi-Paxos with majority quorums.
pub fn multipaxos_majority_ms(topology: &Topology, region: usize, leader: NodeId) -> f64 {
    multipaxos_ms(
        topology,
        region,
        leader,
        majority(topology.replicas().len()),
    )
}

/// The region to lead Multi-Paxos from when none is named: the EPaxos paper's `CA` when the
/// topology has it (its evaluation led from there), else the region with a replica whose
/// leader gives the lowest majority-quorum optimum averaged over the client regions (ties:
/// the first). Its name, as reports print it.
pub fn default_leader_region(topology: &Topology) -> Option<String> {
    const PAPER_LEADER: &str = "CA";
    if topology.region_index(PAPER_LEADER).is_some() {
        return Some(PAPER_LEADER.to_owned());
    }
    let regions = topology.regions();
    let clients: Vec<usize> = (0..regions.len())
        .filter(|&r| regions[r].clients > 0)
        .collect();
    let mean_ms = |leader: NodeId| {
        let total: f64 = clients
            .iter()
            .map(|&r| multipaxos_majority_ms(topology, r, leader))
            .sum();
        total / clients.len().max(1) as f64
    };
    let mut best: Option<(f64, usize)> = None;
    for (node, region) in topology.replicas() {
        let ms = mean_ms(node);
        if best.is_none_or(|(lowest, _)| ms < lowest) {
            best = Some((ms, region));
        }
    }
    best.map(|(_, region)| regions[region].name.clone())
}

/// EPaxos fast path: one round trip from the client's replica to its nearest fast quorum.
pub fn epaxos_fast_ms(topology: &Topology, region: usize) -> f64 {
    let (replica, access) = access_ms(topology, region);
    let n = topology.replicas().len();
    access + quorum_rtt_ms(topology, replica, epaxos_fast_quorum(n))
}

/// EPaxos slow path: the fast-quorum round trip, then an Accept round to a majority.
pub fn epaxos_slow_ms(topology: &Topology, region: usize) -> f64 {
    let (replica, _) = access_ms(topology, region);
    let n = topology.replicas().len();
    epaxos_fast_ms(topology, region) + quorum_rtt_ms(topology, replica, majority(n))
}

/// The EPaxos optimum reported for a conflict rate: the fast path unless every command
/// conflicts, where the slow path is the best any run can do.
pub fn epaxos_ms(topology: &Topology, region: usize, conflict_pct: f64) -> f64 {
    if conflict_pct >= 100.0 {
        epaxos_slow_ms(topology, region)
    } else {
        epaxos_fast_ms(topology, region)
    }
}

/// Tempo: one round trip from the client's replica to its nearest fast quorum of
/// `floor(n/2) + f` (with `f = 1` the fast path is taken whatever the conflicts).
pub fn tempo_ms(topology: &Topology, region: usize, f: usize) -> f64 {
    let (replica, access) = access_ms(topology, region);
    let n = topology.replicas().len();
    access + quorum_rtt_ms(topology, replica, (n / 2 + f).min(n))
}

/// Time for `from` to hear from enough of `owners` to meet `requirement` (its own answer
/// is free), or `None` if even all of them cannot.
fn dynamo_round_ms(
    topology: &Topology,
    from: NodeId,
    owners: &[NodeId],
    requirement: &Requirement,
) -> Option<f64> {
    let mut by_rtt: Vec<(f64, NodeId)> = owners
        .iter()
        .map(|&o| (node_rtt(topology, from, o), o))
        .collect();
    by_rtt.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut heard = BTreeSet::new();
    for (rtt, owner) in by_rtt {
        heard.insert(owner);
        if requirement.is_met(&heard) {
            return Some(rtt);
        }
    }
    None
}

/// The best latency of one Dynamo request on `key` at `level` from a client in `region`,
/// given the key's preference list `owners` (N = `owners.len()`): client ↔ its nearest
/// replica (the coordinator), plus
/// - a read: the coordinator's round trip to the owners it must hear from, i.e. to the
///   k-th nearest owner for a count level, nearest first within each region for the
///   regional levels (its own copy is free when it is an owner);
/// - a write at an owner: the same;
/// - a write at a non-owner: the hop to its nearest owner, which issues the version (only
///   owners do, see the engine's `dynamo::write`) and waits for the level from there.
///
/// `None` when the level cannot be met for this key from this region (e.g. LOCAL_QUORUM
/// in a region holding no owner): such requests fail and have no latency.
pub fn dynamo_request_ms(
    topology: &Topology,
    owners: &[NodeId],
    level: Level,
    op: Op,
    region: usize,
) -> Option<f64> {
    let (coordinator, access) = access_ms(topology, region);
    let region_name = |n: NodeId| topology.regions()[region_of(topology, n)].name.clone();
    let local = region_name(coordinator);
    let requirement = Requirement::new(level, op, owners, region_name, &local).ok()?;
    let (issuer, hop) = if op == Op::Read || owners.contains(&coordinator) {
        (coordinator, 0.0)
    } else {
        let nearest = owners.iter().copied().min_by(|&a, &b| {
            node_rtt(topology, coordinator, a)
                .total_cmp(&node_rtt(topology, coordinator, b))
                .then(a.cmp(&b))
        })?;
        (nearest, node_rtt(topology, coordinator, nearest))
    };
    Some(access + hop + dynamo_round_ms(topology, issuer, owners, &requirement)?)
}

#[cfg(test)]
#[path = "optimum_test.rs"]
mod tests;
