//! Tempo in the simulator (issue 15): latency against the topology's optimum whatever
//! the conflicts (f = 1), and, under seeded faults (drops, duplicates, reordering,
//! partitions, crashes losing unsynced records, permanent failure of up to f replicas),
//! linearizability, one per-key execution order everywhere and every client finishing,
//! for n = 3, 5, 7 and f = 1, 2.

use meridian_bench::backend::sim::{run, SimRun};
use meridian_bench::optimum;
use meridian_bench::workload::WorkloadSpec;
use meridian_engine::sim::{ClientMode, FaultProfile};
use meridian_engine::tempo::TempoConfig;
use meridian_engine::topology::Topology;
use meridian_tests::{
    run_fault_seed, seeds, tempo_factory, tempo_same_order, uniform_topology, FaultRun,
};
use std::time::Duration;

/// With f = 1 every command commits on the fast path, at 0% and at 100% conflicts, and
/// each region's median commit latency is within 5% of the round trip to its nearest
/// fast quorum; the histories are linearizable.
#[test]
fn f1_commits_fast_within_5_percent_of_the_optimum_whatever_the_conflicts() {
    for conflict_pct in [0.0, 100.0] {
        let spec = SimRun {
            topology: Topology::builtin("epaxos-5")
                .expect("builtin")
                .with_clients_per_region(4),
            seed: 7,
            workload: WorkloadSpec::conflicts(conflict_pct),
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(10),
            mode: ClientMode::Closed,
            fsync: Duration::ZERO,
            faults: FaultProfile::None,
            keep_ops: true,
            client_timeout: Duration::from_secs(5),
        };
        let topology = spec.topology.clone();
        let outcome = run(
            &spec,
            tempo_factory(topology.membership(), TempoConfig::default()),
            |_| None,
            true,
            None,
        );
        let verdict = outcome.verdict.clone().unwrap_or_default();
        assert!(
            verdict.starts_with("linearizable"),
            "{conflict_pct}%: {verdict}"
        );
        let (fast, slow) = (
            outcome.metrics.get("fast_path"),
            outcome.metrics.get("slow_path"),
        );
        assert!(
            fast > 0 && slow == 0,
            "{conflict_pct}%: fast {fast}, slow {slow}"
        );
        for (region, stats) in outcome.stats.regions.iter().enumerate() {
            let p50 = stats.commit_ms(0.5);
            let optimal = optimum::tempo_ms(&topology, region, 1);
            println!(
                "{conflict_pct:>3}% {:>4} p50 {p50:7.2} ms p99 {:7.2} ms exec p99 {:7.2} ms optimum {optimal:7.2} ms",
                stats.region,
                stats.commit_ms(0.99),
                stats.execution_ms(0.99)
            );
            let ratio = p50 / optimal;
            assert!(
                (0.95..=1.05).contains(&ratio),
                "{}: p50 {p50:.2} vs {optimal:.2}",
                stats.region
            );
        }
    }
}

/// Run `count` seeds; returns (requests ok, commands committed by recovery, slow paths).
fn suite(test: &str, run: FaultRun, count: u64, config: &TempoConfig) -> (usize, u64, u64) {
    let topology = run.topology.clone();
    let (mut ok, mut recovered, mut slow) = (0, 0, 0);
    for seed in seeds(count) {
        let outcome = run_fault_seed(
            test,
            seed,
            &run,
            tempo_factory(topology.membership(), config.clone()),
        );
        if let Err(disagreement) = tempo_same_order(&outcome.sim) {
            panic!("seed {seed}: {disagreement}\n  replay: MERIDIAN_SEED={seed} cargo test -p meridian-tests --test sim -- {test}");
        }
        ok += outcome.ok;
        recovered += outcome.sim.metrics().get("recovered");
        slow += outcome.sim.metrics().get("slow_path");
    }
    println!("{test}: {count} seeds, {ok} ok, {recovered} recovered, {slow} slow paths");
    (ok, recovered, slow)
}

fn chaos(topology: Topology) -> FaultRun {
    FaultRun {
        topology,
        profile: FaultProfile::Chaos,
        ..FaultRun::default()
    }
}

#[test]
fn five_replicas_f1_survive_chaos_over_150_seeds() {
    let topology = Topology::builtin("epaxos-5").expect("builtin");
    let (ok, _, _) = suite(
        "t15_tempo::five_replicas_f1_survive_chaos_over_150_seeds",
        chaos(topology),
        150,
        &TempoConfig::default(),
    );
    assert!(ok > 0);
}

#[test]
fn five_replicas_f2_survive_chaos_over_100_seeds_and_take_the_slow_path() {
    let topology = Topology::builtin("epaxos-5").expect("builtin");
    let (ok, _, slow) = suite(
        "t15_tempo::five_replicas_f2_survive_chaos_over_100_seeds_and_take_the_slow_path",
        chaos(topology),
        100,
        &TempoConfig::default().with_f(2),
    );
    assert!(ok > 0);
    assert!(
        slow > 0,
        "f = 2 never took the slow path: the suite does not exercise it"
    );
}

#[test]
fn three_and_seven_replicas_survive_chaos() {
    suite(
        "t15_tempo::three_and_seven_replicas_survive_chaos",
        chaos(Topology::builtin("epaxos-3").expect("builtin")),
        100,
        &TempoConfig::default(),
    );
    for f in [1, 3] {
        suite(
            "t15_tempo::three_and_seven_replicas_survive_chaos",
            chaos(uniform_topology(7, 20.0)),
            25,
            &TempoConfig::default().with_f(f),
        );
    }
}

/// Coordinators that crash for good (f of n, at random points, including between
/// proposal and commit) under partitions, loss and reordering: the survivors recover
/// their commands with the recovery rule and every client finishes.
#[test]
fn survivors_recover_commands_of_permanently_crashed_coordinators() {
    let mut recovered = 0;
    for (topology, f, count) in [
        (Topology::builtin("epaxos-5").expect("builtin"), 2, 80),
        (Topology::builtin("epaxos-5").expect("builtin"), 1, 80),
        (Topology::builtin("epaxos-3").expect("builtin"), 1, 80),
    ] {
        let run = FaultRun {
            topology,
            profile: FaultProfile::Partitions,
            permanent_crashes: f,
            recovery: Duration::from_secs(40),
            ..FaultRun::default()
        };
        recovered += suite(
            "t15_tempo::survivors_recover_commands_of_permanently_crashed_coordinators",
            run,
            count,
            &TempoConfig::default().with_f(f),
        )
        .1;
    }
    assert!(
        recovered > 0,
        "no command needed recovery: the test does not exercise it"
    );
}
