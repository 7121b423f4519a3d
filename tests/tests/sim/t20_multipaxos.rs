//! Multi-Paxos in the simulator: latency against the topology's optimum, safety and
//! liveness under seeded faults, and a deliberately broken variant the checker catches.

use meridian_bench::optimum;
use meridian_engine::check::{
    bounded_staleness_history_of, check_kv, CheckConfig, OpRecord, Verdict,
};
use meridian_engine::multipaxos::{MultiPaxos, MultiPaxosConfig};
use meridian_engine::sim::{FaultProfile, RandomKv, Sim, SimConfig};
use meridian_engine::topology::Topology;
use meridian_engine::{CommandResult, Consistency, Membership, NodeId, Time};
use meridian_tests::{agree_by_slot, run_fault_seed, seeds, FaultRun};
use std::time::Duration;

fn factory(
    cluster: Membership,
    config: MultiPaxosConfig,
) -> impl FnMut(NodeId, u64, Vec<meridian_engine::multipaxos::Record>) -> MultiPaxos {
    move |id, seed, records| MultiPaxos::new(id, &cluster, config.clone(), seed, records)
}

/// Issue 2: on `epaxos-5` with the leader in CA and no faults, every region's median
/// commit latency is within 5% of client→leader + leader's majority round trip +
/// leader→client.
#[test]
fn median_latency_per_region_is_within_5_percent_of_the_optimum() {
    let topology = Topology::builtin("epaxos-5").expect("builtin");
    let ca = topology.region_index("CA").expect("CA");
    let leader = optimum::nearest_replica(&topology, ca);
    let cluster = topology.membership();
    let config = SimConfig::new(42, topology.clone());
    let mut sim = Sim::new(
        config,
        factory(
            cluster,
            MultiPaxosConfig::default().with_initial_leader(leader),
        ),
    );
    // Start clients after the first election has settled.
    sim.add_topology_clients(
        |_, _| Box::new(RandomKv::new(1_000).with_max_ops(200)),
        Time::from_millis(1_000),
    );
    sim.run_until(Time::from_millis(120_000));
    assert!(sim.clients_idle(), "clients did not finish");
    let mut failures = Vec::new();
    for (region, info) in topology.regions().iter().enumerate() {
        let mut latencies: Vec<Duration> = sim
            .ops()
            .iter()
            .filter(|op| op.region == region)
            .filter_map(|op| op.commit_latency().or(op.latency()))
            .collect();
        assert!(
            latencies.len() >= 100,
            "{}: only {} ops",
            info.name,
            latencies.len()
        );
        latencies.sort();
        let p50_ms = latencies[latencies.len() / 2].as_secs_f64() * 1e3;
        let optimum_ms = optimum::multipaxos_majority_ms(&topology, region, leader);
        let ratio = p50_ms / optimum_ms;
        println!(
            "{:>4} p50 {p50_ms:8.2} ms  optimum {optimum_ms:8.2} ms  ratio {ratio:.3}",
            info.label()
        );
        if !(0.95..=1.05).contains(&ratio) {
            failures.push(format!(
                "{}: p50 {p50_ms:.2} ms vs optimum {optimum_ms:.2} ms",
                info.name
            ));
        }
    }
    assert!(failures.is_empty(), "regions off the optimum: {failures:?}");
}

fn fault_run() -> FaultRun {
    FaultRun {
        profile: FaultProfile::Chaos,
        ..FaultRun::default()
    }
}

/// Issue 2: 200 seeds of random faults (partitions, drops, duplicates, reordering, leader
/// and follower crashes with loss of unsynced records, slow nodes): every history is
/// linearizable, replicas applied the same command in every slot, and clients
/// all finish once faults heal (liveness).
#[test]
fn survives_random_faults_over_200_seeds() {
    let run = fault_run();
    let (mut ok, mut unknown) = (0, 0);
    for seed in seeds(200) {
        let cluster = run.topology.membership();
        let outcome = run_fault_seed(
            "t20_multipaxos::survives_random_faults_over_200_seeds",
            seed,
            &run,
            factory(cluster, MultiPaxosConfig::default()),
        );
        let applied: Vec<Vec<_>> = outcome
            .sim
            .live_nodes()
            .map(|(_, node)| node.applied().iter().map(|e| (e.slot, e.request)).collect())
            .collect();
        let views: Vec<&[_]> = applied.iter().map(Vec::as_slice).collect();
        if let Err(divergence) = agree_by_slot(&views) {
            panic!("seed {seed}: replicas applied different sequences: {divergence}");
        }
        ok += outcome.ok;
        unknown += outcome.unknown;
    }
    println!("completed {ok} requests, {unknown} with unknown outcome");
    assert!(ok > 0);
}

/// Negative control: a leader that skips phase 1 overwrites chosen slots; some seed's
/// history must then fail the linearizability check or the replicas diverge.
#[test]
fn skipping_phase_1_is_caught() {
    let run = fault_run();
    let mut caught = None;
    for seed in 0..200 {
        let cluster = run.topology.membership();
        let config = MultiPaxosConfig {
            unsafe_skip_phase1: true,
            ..MultiPaxosConfig::default()
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let outcome = run_fault_seed(
                "skipping_phase_1_is_caught",
                seed,
                &run,
                factory(cluster, config),
            );
            let applied: Vec<Vec<_>> = outcome
                .sim
                .live_nodes()
                .map(|(_, node)| node.applied().iter().map(|e| (e.slot, e.request)).collect())
                .collect();
            let views: Vec<&[_]> = applied.iter().map(Vec::as_slice).collect();
            agree_by_slot(&views).map_err(|e| format!("diverged: {e}"))
        }));
        match result {
            Err(panic) => {
                let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
                // Only a safety failure counts: a stalled run is not evidence.
                if message.contains("not linearizable") {
                    caught = Some(format!(
                        "seed {seed}: {}",
                        message.lines().next().unwrap_or("")
                    ));
                    break;
                }
            }
            Ok(Err(divergence)) => {
                caught = Some(format!("seed {seed}: {divergence}"));
                break;
            }
            Ok(Ok(())) => {}
        }
    }
    let caught = caught.expect("no seed exposed the phase-1-skipping leader");
    println!("broken variant caught: {caught}");
}

/// Flexible quorums (Q1 = 4, Q2 = 2 of 5) keep histories linearizable under crashes.
#[test]
fn flexible_quorums_stay_linearizable_under_crashes() {
    let run = FaultRun {
        profile: FaultProfile::Crashes,
        ..fault_run()
    };
    for seed in seeds(20) {
        let cluster = run.topology.membership();
        let quorums = meridian_engine::quorum::PaxosQuorums::flexible(5, 4, 2).expect("valid");
        run_fault_seed(
            "t20_multipaxos::flexible_quorums_stay_linearizable_under_crashes",
            seed,
            &run,
            factory(cluster, MultiPaxosConfig::default().with_quorums(quorums)),
        );
    }
}

/// Batching (up to 8 commands per slot, at most 2 slots in flight) stays linearizable and
/// live under faults, and really packs commands.
#[test]
fn batching_stays_linearizable_and_packs_commands() {
    let run = fault_run();
    let mut batched_slots = 0;
    for seed in seeds(30) {
        let cluster = run.topology.membership();
        let outcome = run_fault_seed(
            "t20_multipaxos::batching_stays_linearizable_and_packs_commands",
            seed,
            &run,
            factory(cluster, MultiPaxosConfig::default().with_batching(8, 2)),
        );
        let longest = outcome
            .sim
            .live_nodes()
            .map(|(_, node)| node.applied())
            .max_by_key(Vec::len)
            .unwrap_or_default();
        let slots: std::collections::BTreeSet<_> = longest.iter().map(|e| e.slot).collect();
        batched_slots += usize::from(slots.len() < longest.len());
    }
    assert!(
        batched_slots > 0,
        "no run ever put two commands in one slot"
    );
}

/// Range reads: 200 seeds of random faults, a third of the reads scanning every key (some
/// cut short by their limit) or counting them: every history, each scan read as what it
/// says about every key it covers, is linearizable, and scans did find entries.
#[test]
fn scans_are_linearizable_under_random_faults() {
    let run = FaultRun {
        scans: Some((Consistency::Linearizable, 0.35)),
        ..fault_run()
    };
    let (mut scans, mut found) = (0, 0);
    for seed in seeds(200) {
        let cluster = run.topology.membership();
        let outcome = run_fault_seed(
            "t20_multipaxos::scans_are_linearizable_under_random_faults",
            seed,
            &run,
            factory(cluster, MultiPaxosConfig::default()),
        );
        for op in outcome.sim.ops() {
            let reply = op.reply.as_ref().and_then(|r| r.outcome.as_ref().ok());
            if let Some(CommandResult::Entries { entries, .. }) = reply.and_then(|r| r.kv()) {
                scans += 1;
                found += usize::from(!entries.is_empty());
            }
        }
    }
    println!("{scans} scans answered, {found} with entries");
    assert!(found > 100, "{scans} scans answered, {found} with entries");
}

/// Negative control: scans served from the contacted replica's state (`local`) miss
/// writes that replica has not applied yet; judged as linearizable, some seed's history
/// must fail the check (so the projection of scans has teeth).
#[test]
fn stale_scans_fail_the_check() {
    let run = FaultRun {
        scans: Some((Consistency::LocalRead, 0.5)),
        ..fault_run()
    };
    let mut caught = None;
    for seed in 0..100 {
        let cluster = run.topology.membership();
        let outcome = run_fault_seed(
            "t20_multipaxos::stale_scans_fail_the_check",
            seed,
            &run,
            factory(cluster, MultiPaxosConfig::default()),
        );
        let as_linearizable: Vec<OpRecord> = outcome
            .sim
            .ops()
            .iter()
            .cloned()
            .map(|mut op| {
                op.request.consistency = Consistency::Linearizable;
                op
            })
            .collect();
        let history = bounded_staleness_history_of(&as_linearizable, run.client_timeout);
        if let Verdict::Violation { key, .. } = check_kv(&history, &CheckConfig::default()).verdict
        {
            caught = Some(format!(
                "seed {seed}, key {}",
                String::from_utf8_lossy(&key)
            ));
            break;
        }
    }
    let caught = caught.expect("no seed exposed a stale scan");
    println!("stale scan caught: {caught}");
}
