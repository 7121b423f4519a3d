//! Tempo replicas that lose their whole disk and rejoin through the rejoin rule
//! (docs/design.md#tempo-rejoin-rule), with state transfer in chunks, under chaos and
//! storage faults around them; and the negative control: without the rule the checkers
//! catch a lost disk.

use meridian_engine::sim::FaultProfile;
use meridian_engine::tempo::TempoConfig;
use meridian_engine::topology::Topology;
use meridian_tests::{
    first_unsafe_seed, lost_and_rejoined, run_fault_seed, seeds, tempo_factory, tempo_same_order,
    uniform_topology, FaultRun,
};

/// Compact every 10 executed commands, answers in 256-byte chunks.
fn config() -> TempoConfig {
    TempoConfig::default()
        .with_snapshot_interval(10)
        .with_snapshot_chunk_bytes(256)
}

fn run() -> FaultRun {
    FaultRun {
        profile: FaultProfile::Amnesia,
        ..FaultRun::default()
    }
}

/// One replica of five loses its whole disk and rejoins (crashes, crashes in a
/// compaction and long outages around it), 200 seeds: every history is linearizable,
/// commands on a key run in one order everywhere, every client finishes, and every
/// rejoin completes.
#[test]
fn replicas_that_lose_their_disk_rejoin_safely() {
    let run = run();
    let (mut lost, mut rejoined, mut withheld, mut bytes, mut sent) = (0, 0, 0, 0, 0);
    for seed in seeds(200) {
        let outcome = run_fault_seed(
            "t17_tempo_amnesia::replicas_that_lose_their_disk_rejoin_safely",
            seed,
            &run,
            tempo_factory(run.topology.membership(), config()),
        );
        if let Err(divergence) = tempo_same_order(&outcome.sim) {
            panic!("seed {seed}: {divergence}");
        }
        let metrics = outcome.sim.metrics();
        let (seed_lost, seed_rejoined) = lost_and_rejoined(seed, &outcome.sim);
        lost += seed_lost;
        rejoined += seed_rejoined;
        withheld += metrics.get("votes_withheld");
        bytes += metrics.get("state_transfer_bytes_received");
        sent += metrics.get("state_transfer_bytes_sent");
    }
    println!(
        "{lost} disks lost, {rejoined} rejoins completed, {withheld} votes withheld, \
         {bytes} bytes of state received ({sent} sent)"
    );
    assert!(lost > 0 && withheld > 0 && bytes > 0);
}

/// The same with three replicas (f = 1: the lost disk and one more replica down at a
/// time) and with seven (f = 2).
#[test]
fn three_and_seven_replicas_that_lose_their_disk_rejoin_safely() {
    let test = "t17_tempo_amnesia::three_and_seven_replicas_that_lose_their_disk_rejoin_safely";
    let (mut lost, mut rejoined, mut snapshot_bytes) = (0, 0, 0);
    for (topology, f, count) in [
        (Topology::builtin("epaxos-3").expect("builtin"), 1, 60),
        (uniform_topology(7, 20.0), 2, 20),
    ] {
        let run = FaultRun {
            topology: topology.clone(),
            ..run()
        };
        for seed in seeds(count) {
            let config = config().with_f(f);
            let outcome = run_fault_seed(
                test,
                seed,
                &run,
                tempo_factory(topology.membership(), config),
            );
            if let Err(divergence) = tempo_same_order(&outcome.sim) {
                panic!("seed {seed}: {divergence}");
            }
            let metrics = outcome.sim.metrics();
            let (seed_lost, seed_rejoined) = lost_and_rejoined(seed, &outcome.sim);
            lost += seed_lost;
            rejoined += seed_rejoined;
            snapshot_bytes = snapshot_bytes.max(metrics.get("snapshot_bytes"));
        }
    }
    println!("{lost} disks lost, {rejoined} rejoins completed, largest sum of last snapshot bytes over a run's replicas {snapshot_bytes}");
    assert!(lost > 0);
}

/// Negative control: a replica that lost its disk and votes and proposes at once (the
/// rule switched off) lets some seed's history fail the checker or the replicas run
/// commands on a key in different orders.
#[test]
fn voting_right_after_losing_the_disk_is_caught() {
    let run = run();
    let config = TempoConfig {
        unsafe_rejoin_without_fence: true,
        ..config()
    };
    let cluster = run.topology.membership();
    let caught = first_unsafe_seed(0..300, |seed| {
        let outcome = run_fault_seed(
            "voting_right_after_losing_the_disk_is_caught",
            seed,
            &run,
            tempo_factory(cluster.clone(), config.clone()),
        );
        tempo_same_order(&outcome.sim)
    });
    let caught = caught.expect("no seed exposed a replica voting with a lost disk");
    println!("broken variant caught: {caught}");
}
