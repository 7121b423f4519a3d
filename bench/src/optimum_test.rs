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

fn three_owners(topology: &Topology) -> Vec<NodeId> {
    ["VA", "CA", "IE"]
        .iter()
        .map(|r| nearest_replica(topology, topology.region_index(r).expect("region")))
        .collect()
}

#[test]
fn a_dynamo_read_waits_for_the_kth_nearest_owner() {
    let topology = epaxos5();
    let owners = three_owners(&topology);
    let va = topology.region_index("VA").expect("VA");
    let access = topology.rtt_ms(va, va);
    let read = |level| dynamo_request_ms(&topology, &owners, level, Op::Read, va);
    // VA owns the key: ONE is its own copy; QUORUM adds its nearer peer owner (CA).
    assert_eq!(read(Level::One), Some(access));
    let ca = topology.region_index("CA").expect("CA");
    assert_eq!(read(Level::Quorum), Some(access + topology.rtt_ms(va, ca)));
    let ie = topology.region_index("IE").expect("IE");
    assert_eq!(read(Level::All), Some(access + topology.rtt_ms(va, ie)));
}

#[test]
fn a_dynamo_write_at_a_non_owner_goes_through_its_nearest_owner() {
    let topology = epaxos5();
    let owners = three_owners(&topology);
    let or = topology.region_index("OR").expect("OR");
    let ca = topology.region_index("CA").expect("CA");
    let va = topology.region_index("VA").expect("VA");
    let access = topology.rtt_ms(or, or);
    // OR owns nothing: CA (21 ms away) issues the write and waits for VA (60 ms).
    let write = dynamo_request_ms(&topology, &owners, Level::Quorum, Op::Write, or);
    let expected = access + topology.rtt_ms(or, ca) + topology.rtt_ms(ca, va);
    assert!((write.expect("met") - expected).abs() < 1e-9);
    // A read needs no owner to coordinate it: the two nearest owners answer OR.
    let read = dynamo_request_ms(&topology, &owners, Level::Quorum, Op::Read, or);
    assert_eq!(read, Some(access + topology.rtt_ms(or, va)));
}

#[test]
fn local_levels_fail_in_a_region_without_an_owner() {
    let topology = epaxos5();
    let owners = three_owners(&topology);
    let jp = topology.region_index("JP").expect("JP");
    let va = topology.region_index("VA").expect("VA");
    let local =
        |region| dynamo_request_ms(&topology, &owners, Level::LocalQuorum, Op::Write, region);
    assert_eq!(local(jp), None);
    assert_eq!(local(va), Some(topology.rtt_ms(va, va)));
}

/// Without `--leader`, Multi-Paxos leads from the paper's CA where there is one, and
/// elsewhere from the region whose leader the clients reach fastest on average.
#[test]
fn the_default_leader_is_the_papers_or_the_best_placed() {
    assert_eq!(default_leader_region(&epaxos5()).as_deref(), Some("CA"));
    let gcp = Topology::builtin("gcp-13").expect("builtin");
    let chosen = default_leader_region(&gcp).expect("a region");
    let mean = |region: usize| {
        let leader = nearest_replica(&gcp, region);
        let regions = gcp.regions().len();
        (0..regions)
            .map(|r| multipaxos_majority_ms(&gcp, r, leader))
            .sum::<f64>()
            / regions as f64
    };
    let chosen_ms = mean(gcp.region_index(&chosen).expect("its region"));
    for region in 0..gcp.regions().len() {
        assert!(chosen_ms <= mean(region), "{chosen} is not the best placed");
    }
    let lan = Topology::builtin("lan-3").expect("builtin");
    assert_eq!(
        default_leader_region(&lan).as_deref(),
        Some("rack-1"),
        "ties: the first"
    );
}
