//! EPaxos replicas that lose their whole disk and rejoin through the rejoin rule
//! (docs/design.md#epaxos-rejoin-rule), under storage faults around them, and the negative
//! control: without the rule the checkers catch a lost disk.

use meridian_engine::epaxos::EpaxosConfig;
use meridian_engine::sim::FaultProfile;
use meridian_tests::{
    epaxos_factory, epaxos_same_order, first_unsafe_seed, lost_and_rejoined, run_fault_seed, seeds,
    FaultRun,
};

/// Compact every 10 executed instances (peers collect and compact while a replica is
/// away, so it needs their state), answers in 256-byte chunks, and a window of 32 own
/// instances: the margin a rejoined replica skips (its peers recover the skipped slots
/// as no-ops; with the default 10,000 the run would mostly simulate those).
fn config() -> EpaxosConfig {
    EpaxosConfig::default()
        .with_snapshot_interval(10)
        .with_snapshot_chunk_bytes(256)
        .with_batching(1, 32)
}

fn run() -> FaultRun {
    FaultRun {
        profile: FaultProfile::Amnesia,
        ..FaultRun::default()
    }
}

/// One replica of five loses its whole disk and rejoins (crashes, crashes in a
/// compaction and long outages around it), 200 seeds: every history is linearizable,
/// interfering commands run in one order everywhere, every client finishes, and every
/// rejoin completes.
#[test]
fn replicas_that_lose_their_disk_rejoin_safely() {
    let run = run();
    let (mut lost, mut rejoined, mut withheld, mut bytes) = (0, 0, 0, 0);
    for seed in seeds(200) {
        let outcome = run_fault_seed(
            "t14_epaxos_amnesia::replicas_that_lose_their_disk_rejoin_safely",
            seed,
            &run,
            epaxos_factory(run.topology.membership(), config()),
        );
        if let Err(divergence) = epaxos_same_order(&outcome.sim) {
            panic!("seed {seed}: {divergence}");
        }
        let metrics = outcome.sim.metrics();
        let (seed_lost, seed_rejoined) = lost_and_rejoined(seed, &outcome.sim);
        lost += seed_lost;
        rejoined += seed_rejoined;
        withheld += metrics.get("votes_withheld");
        bytes += metrics.get("state_transfer_bytes_received");
    }
    println!(
        "{lost} disks lost, {rejoined} rejoins completed, {withheld} votes withheld, \
         {bytes} bytes of state transferred"
    );
    assert!(lost > 0 && withheld > 0 && bytes > 0);
}

/// A seed that once broke recovery (docs/design.md#epaxos, rule 2): a replica that had
/// added dependencies to the leader's attributes passed for a fast-path witness, and the
/// TryPreAccept conflict check walked through the recovered instance's own attributes.
#[test]
fn a_seed_that_once_broke_recovery_stays_safe() {
    let run = run();
    let outcome = run_fault_seed(
        "t14_epaxos_amnesia::a_seed_that_once_broke_recovery_stays_safe",
        1176,
        &run,
        epaxos_factory(run.topology.membership(), config()),
    );
    if let Err(divergence) = epaxos_same_order(&outcome.sim) {
        panic!("seed 1176: {divergence}");
    }
    assert!(outcome.sim.metrics().get("recovered") > 0);
}

/// Negative control: a replica that lost its disk and votes and proposes at once (the
/// rule switched off) lets some seed's history fail the checker or the replicas
/// execute interfering commands in different orders.
#[test]
fn voting_right_after_losing_the_disk_is_caught() {
    let run = run();
    let config = EpaxosConfig {
        unsafe_rejoin_without_fence: true,
        ..config()
    };
    let cluster = run.topology.membership();
    let caught = first_unsafe_seed(0..300, |seed| {
        let outcome = run_fault_seed(
            "voting_right_after_losing_the_disk_is_caught",
            seed,
            &run,
            epaxos_factory(cluster.clone(), config.clone()),
        );
        epaxos_same_order(&outcome.sim)
    });
    let caught = caught.expect("no seed exposed a replica voting with a lost disk");
    println!("broken variant caught: {caught}");
}
