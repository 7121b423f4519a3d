//! Multi-Paxos reads without the log (issue 16) in the simulator, with replica clocks
//! skewed by up to 1 s and drifting within the configured bound: every level that
//! promises linearizability passes the checker under random faults; bounded-staleness
//! reads never return a state older than their bound (the staleness checker); and a
//! leader whose clock runs slower than the bound allows serves stale lease reads, which
//! the checker catches (the negative control).

use meridian_engine::check::{bounded_staleness_history_of, check_kv, CheckConfig, Verdict};
use meridian_engine::multipaxos::{MultiPaxos, MultiPaxosConfig};
use meridian_engine::sim::{
    ClockConfig, FaultAction, FaultProfile, PartitionMode, RandomKv, Sim, SimConfig,
};
use meridian_engine::topology::Topology;
use meridian_engine::{Consistency, Membership, NodeId, Time};
use meridian_tests::{run_fault_seed, seeds, FaultRun};
use std::time::Duration;

/// The drift bound the cores assume, in parts per million.
const DRIFT_PPM: u32 = 1_000;

fn factory(
    cluster: Membership,
    config: MultiPaxosConfig,
) -> impl FnMut(NodeId, u64, Vec<meridian_engine::multipaxos::Record>) -> MultiPaxos {
    move |id, seed, records| MultiPaxos::new(id, &cluster, config.clone(), seed, records)
}

fn leased() -> MultiPaxosConfig {
    MultiPaxosConfig::default().with_lease(Duration::from_millis(300), DRIFT_PPM)
}

/// Clocks up to 1 s apart, each drifting within the bound the cores assume.
fn skewed_clocks() -> ClockConfig {
    ClockConfig::bounded(Duration::from_secs(1), DRIFT_PPM)
}

/// Run `count` chaos seeds with reads at `level`; `expect` names the mechanism that must
/// have served some of them. Prints how many reads each mechanism served.
fn run_level(name: &str, level: Consistency, config: MultiPaxosConfig, count: u64, expect: &str) {
    let run = FaultRun {
        profile: FaultProfile::Chaos,
        clocks: skewed_clocks(),
        reads: Some((level, 0.6)),
        ..FaultRun::default()
    };
    let mechanisms = [
        "reads_leader_lease",
        "reads_quorum_lease",
        "reads_read_index",
        "reads_follower",
        "reads_stale",
        "reads_too_stale",
    ];
    let (mut ok, mut unknown) = (0, 0);
    let mut served = [0u64; 6];
    for seed in seeds(count) {
        let cluster = run.topology.membership();
        let outcome = run_fault_seed(name, seed, &run, factory(cluster, config.clone()));
        ok += outcome.ok;
        unknown += outcome.unknown;
        let metrics = outcome.sim.metrics();
        for (total, mechanism) in served.iter_mut().zip(mechanisms) {
            *total += metrics.get(mechanism);
        }
    }
    let breakdown: Vec<String> = mechanisms
        .iter()
        .zip(served)
        .map(|(m, n)| format!("{m} {n}"))
        .collect();
    println!(
        "{name}: {ok} ok, {unknown} unknown; {}",
        breakdown.join(", ")
    );
    let expected = mechanisms
        .iter()
        .zip(served)
        .find(|(m, _)| **m == expect)
        .map_or(0, |(_, n)| n);
    assert!(expected > 0, "no read was served by {expect}");
}

#[test]
fn lease_reads_stay_linearizable_with_skewed_clocks_over_200_seeds() {
    run_level(
        "t23_multipaxos_reads::lease_reads_stay_linearizable_with_skewed_clocks_over_200_seeds",
        Consistency::Lease,
        leased(),
        200,
        "reads_leader_lease",
    );
}

#[test]
fn quorum_lease_reads_stay_linearizable_with_skewed_clocks_over_200_seeds() {
    run_level(
        "t23_multipaxos_reads::quorum_lease_reads_stay_linearizable_with_skewed_clocks_over_200_seeds",
        Consistency::Lease,
        leased().with_quorum_lease_holders(vec![NodeId(1), NodeId(2), NodeId(3)]),
        200,
        "reads_quorum_lease",
    );
}

#[test]
fn read_index_reads_stay_linearizable_with_skewed_clocks_over_200_seeds() {
    run_level(
        "t23_multipaxos_reads::read_index_reads_stay_linearizable_with_skewed_clocks_over_200_seeds",
        Consistency::ReadIndex,
        leased(),
        200,
        "reads_read_index",
    );
}

#[test]
fn follower_reads_stay_linearizable_with_skewed_clocks_over_200_seeds() {
    run_level(
        "t23_multipaxos_reads::follower_reads_stay_linearizable_with_skewed_clocks_over_200_seeds",
        Consistency::Follower,
        MultiPaxosConfig::default(),
        200,
        "reads_follower",
    );
}

#[test]
fn stale_reads_are_never_older_than_their_bound_over_200_seeds() {
    run_level(
        "t23_multipaxos_reads::stale_reads_are_never_older_than_their_bound_over_200_seeds",
        Consistency::Stale { bound_us: 500_000 },
        leased(),
        200,
        "reads_stale",
    );
}

/// The scenario for the lease negative control: on `epaxos-5`, with 2 s leases, one
/// replica's clock drifts by `drift_ppm` from 4 s on; the first such replica that leads
/// at 3 s is cut
/// off from every peer at 6 s (its clients still reach it). A reader in its region keeps
/// reading there with `lease`, writers elsewhere keep writing to the new leader. Returns
/// the checker's verdict on the history.
fn cut_off_leader(drift_ppm: i64) -> Result<(), String> {
    let topology = Topology::builtin("epaxos-5").expect("builtin");
    let cluster = topology.membership();
    let config = MultiPaxosConfig::default()
        .with_timeouts(Duration::from_millis(50), Duration::from_millis(500))
        .with_lease(Duration::from_secs(2), DRIFT_PPM);
    for old in cluster.ids() {
        // The drift starts once the cluster has settled (a replica that slow from boot
        // would not win the first election).
        let clocks = skewed_clocks().with_drift(old, drift_ppm, Time::from_secs(4));
        let sim_config = SimConfig::new(7, topology.clone()).with_clocks(clocks);
        let mut sim = Sim::new(sim_config, factory(cluster.clone(), config.clone()));
        sim.run_until(Time::from_secs(3));
        if !sim.node(old).is_some_and(|n| n.is_leader()) {
            continue;
        }
        let leader_region = topology
            .region_index(cluster.region_of(old).expect("member"))
            .expect("region");
        let start = Time::from_millis(3_500);
        sim.add_client(
            leader_region,
            Box::new(
                RandomKv::new(1)
                    .with_reads(Consistency::Lease, 1.0)
                    .with_max_ops(20_000),
            ),
            start,
        );
        for region in 0..topology.regions().len() {
            if region != leader_region {
                sim.add_client(
                    region,
                    Box::new(
                        RandomKv::new(1)
                            .with_reads(Consistency::Lease, 0.0)
                            .with_max_ops(200),
                    ),
                    start,
                );
            }
        }
        let peers: Vec<NodeId> = cluster.ids().filter(|&n| n != old).collect();
        sim.schedule(
            Time::from_secs(6),
            FaultAction::Partition {
                a: vec![old],
                b: peers,
                mode: PartitionMode::Full,
            },
        );
        sim.run_until(Time::from_secs(20));
        let lease_reads = sim.metrics().get("reads_leader_lease");
        assert!(lease_reads > 100, "only {lease_reads} lease reads");
        let new_leader = sim.live_nodes().any(|(id, n)| id != old && n.is_leader());
        assert!(new_leader, "no new leader after the cut");
        let ops: Vec<_> = sim.ops().iter().chain(sim.in_flight()).collect();
        let history = bounded_staleness_history_of(ops, Duration::from_secs(5));
        return match check_kv(&history, &CheckConfig::default()).verdict {
            Verdict::Linearizable => Ok(()),
            Verdict::Violation { explanation, .. } => Err(explanation),
            Verdict::Inconclusive { keys } => panic!("inconclusive on {} keys", keys.len()),
        };
    }
    panic!("no drifting replica led at 3 s");
}

/// Within the bound (the old leader's clock 0.09% slow, under the assumed 0.1%), the
/// scenario is linearizable: the new leader waits out the old lease.
#[test]
fn a_cut_off_leader_within_the_drift_bound_stops_serving_in_time() {
    cut_off_leader(-900).expect("linearizable within the drift bound");
}

/// Negative control: the old leader's clock runs at half speed (far beyond the bound),
/// so its 2 s lease lasts 4 s of real time and it serves reads the new leader's writes
/// have overtaken. The checker must catch it.
#[test]
fn a_leader_clock_drifting_beyond_the_bound_is_caught() {
    let violation = cut_off_leader(-500_000).expect_err("stale lease reads must be caught");
    println!("caught: {}", violation.lines().next().unwrap_or_default());
}
