//! Multi-Paxos with bounded state in the simulator: compaction every few slots under
//! storage faults (crashes between a snapshot's write and the log swap, long outages that
//! force state transfer), replicas that lose their whole disk and rejoin, and the
//! negative control: without the rejoin rule the checker catches a lost disk.

use meridian_engine::multipaxos::{MultiPaxos, MultiPaxosConfig, Record};
use meridian_engine::sim::FaultProfile;
use meridian_engine::{Membership, NodeId};
use meridian_tests::{agree_by_slot, run_fault_seed, seeds, FaultOutcome, FaultRun};

fn factory(
    cluster: Membership,
    config: MultiPaxosConfig,
) -> impl FnMut(NodeId, u64, Vec<Record>) -> MultiPaxos {
    move |id, seed, records| MultiPaxos::new(id, &cluster, config.clone(), seed, records)
}

/// Compact every 10 executed slots, keep 3: a short run compacts many times, and a
/// replica down for a few seconds falls behind its peers' compaction point.
fn compacting() -> MultiPaxosConfig {
    MultiPaxosConfig::default()
        .with_compaction(10, 3)
        .with_snapshot_chunk_bytes(256)
}

fn run(profile: FaultProfile) -> FaultRun {
    FaultRun {
        profile,
        ..FaultRun::default()
    }
}

/// Replicas applied the same command in every slot they both applied.
fn check_agreement(outcome: &FaultOutcome<MultiPaxos>) -> Result<(), String> {
    let applied: Vec<Vec<_>> = outcome
        .sim
        .live_nodes()
        .map(|(_, node)| node.applied().iter().map(|e| (e.slot, e.request)).collect())
        .collect();
    let views: Vec<&[_]> = applied.iter().map(Vec::as_slice).collect();
    agree_by_slot(&views)
}

/// Chaos plus crashes in the middle of a compaction and long outages, 200 seeds: every
/// history is linearizable, replicas agree slot by slot, every client finishes; the
/// faults really happened (compaction crashes, state transfers).
#[test]
fn survives_storage_faults_with_frequent_compaction() {
    let run = run(FaultProfile::Storage);
    let (mut compaction_crashes, mut transfers, mut compactions) = (0, 0, 0);
    for seed in seeds(200) {
        let outcome = run_fault_seed(
            "t22_multipaxos_bounded::survives_storage_faults_with_frequent_compaction",
            seed,
            &run,
            factory(run.topology.membership(), compacting()),
        );
        if let Err(divergence) = check_agreement(&outcome) {
            panic!("seed {seed}: {divergence}");
        }
        let metrics = outcome.sim.metrics();
        compaction_crashes += outcome.sim.stats().compaction_crashes;
        transfers += metrics.get("state_transfers_completed");
        compactions += metrics.get("compactions");
    }
    println!(
        "{compactions} compactions, {compaction_crashes} crashes in a compaction, \
         {transfers} state transfers"
    );
    assert!(compaction_crashes > 0 && transfers > 0 && compactions > 0);
}

/// One replica loses its whole disk and rejoins (storage faults around it), 200 seeds:
/// linearizable, agreement, liveness, and the rejoins complete.
#[test]
fn replicas_that_lose_their_disk_rejoin_safely() {
    let run = run(FaultProfile::Amnesia);
    let (mut lost, mut rejoined) = (0, 0);
    for seed in seeds(200) {
        let outcome = run_fault_seed(
            "t22_multipaxos_bounded::replicas_that_lose_their_disk_rejoin_safely",
            seed,
            &run,
            factory(run.topology.membership(), compacting()),
        );
        if let Err(divergence) = check_agreement(&outcome) {
            panic!("seed {seed}: {divergence}");
        }
        lost += outcome.sim.stats().disks_lost;
        rejoined += outcome.sim.metrics().get("rejoins_completed");
    }
    println!("{lost} disks lost, {rejoined} rejoins completed");
    assert!(lost > 0 && rejoined > 0);
}

/// Regression, seed 141 with batching on (issue 13): the rejoined replica led, and
/// installed a transferred snapshot while its own slot 9 waited for votes; the quorum then
/// completed and it committed slot 9 with the empty value its log gave back once the slot
/// had left it. Replicas that had not learnt slot 9 executed nothing there, one that had
/// executed the chosen request, and two of them later skipped its retry (slot 12) as a
/// duplicate the others ran. Pinned to batching on (256) whatever the default. Seeds are
/// tried in order until one reaches that case (seed 141 did until the link delays changed
/// on 2026-12-06), every one of them checked.
#[test]
fn a_leader_that_installs_a_snapshot_commits_no_slot_it_covers() {
    let run = run(FaultProfile::Amnesia);
    let reached = (0..400).find(|&seed| {
        let outcome = run_fault_seed(
            "t22_multipaxos_bounded::a_leader_that_installs_a_snapshot_commits_no_slot_it_covers",
            seed,
            &run,
            factory(run.topology.membership(), compacting().with_max_batch(256)),
        );
        if let Err(divergence) = check_agreement(&outcome) {
            panic!("seed {seed}: {divergence}");
        }
        let metrics = outcome.sim.metrics();
        metrics.get("slots_covered_by_snapshot") > 0
            && metrics.get("state_transfers_completed") > 0
            && metrics.get("rejoins_completed") > 0
    });
    let seed =
        reached.expect("no seed below 400 has a leader install a snapshot over its own slots");
    println!("seed {seed} has a leader install a snapshot over its own slots");
}

/// Negative control: a replica that lost its disk and votes at once (the rule switched
/// off) lets some seed's history fail the checker or the replicas diverge.
#[test]
fn voting_right_after_losing_the_disk_is_caught() {
    let run = run(FaultProfile::Amnesia);
    let config = MultiPaxosConfig {
        unsafe_rejoin_without_fence: true,
        ..compacting()
    };
    let mut caught = None;
    for seed in 0..300 {
        let cluster = run.topology.membership();
        let config = config.clone();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let outcome = run_fault_seed(
                "voting_right_after_losing_the_disk_is_caught",
                seed,
                &run,
                factory(cluster, config),
            );
            check_agreement(&outcome)
        }));
        match result {
            Err(panic) => {
                let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
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
    let caught = caught.expect("no seed exposed a replica voting with a lost disk");
    println!("broken variant caught: {caught}");
}
