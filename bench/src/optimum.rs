//! The best latency a topology allows, per protocol and client region (after fantoch's
//! `bote`): what a request would take with zero processing time, zero fsync time and no
//! queueing. Clients talk to the nearest replica (their own region's when it has one).

use meridian_engine::quorum::{epaxos_fast_quorum, majority};
use meridian_engine::topology::Topology;
use meridian_engine::NodeId;

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

/// A lower bound for a Dynamo request that waits for `acks` replicas: the client's
/// nearest replica hears from the `acks` nearest replicas of the whole cluster (a key's
/// preference list is a subset, so real requests can only be slower).
pub fn dynamo_lower_bound_ms(topology: &Topology, region: usize, acks: usize) -> f64 {
    let (replica, access) = access_ms(topology, region);
    access + quorum_rtt_ms(topology, replica, acks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epaxos5() -> Topology {
        Topology::builtin("epaxos-5").expect("builtin")
    }

    #[test]
    fn own_vote_is_free_and_quorums_grow_with_size() {
        let topology = epaxos5();
        let leader = NodeId(0);
        assert_eq!(quorum_rtt_ms(&topology, leader, 1), 0.0);
        let q2 = quorum_rtt_ms(&topology, leader, 2);
        let q3 = quorum_rtt_ms(&topology, leader, 3);
        assert!(q2 > 0.0 && q3 >= q2);
    }

    #[test]
    fn multipaxos_from_the_leader_region_is_access_plus_majority_round_trip() {
        let topology = epaxos5();
        let ca = topology.region_index("CA").expect("CA region");
        let leader = nearest_replica(&topology, ca);
        let expected = topology.rtt_ms(ca, ca) + quorum_rtt_ms(&topology, leader, 3);
        assert!((multipaxos_majority_ms(&topology, ca, leader) - expected).abs() < 1e-9);
    }

    #[test]
    fn slow_path_costs_more_than_fast_path_everywhere() {
        let topology = epaxos5();
        for region in 0..topology.regions().len() {
            assert!(epaxos_slow_ms(&topology, region) > epaxos_fast_ms(&topology, region));
        }
    }
}
