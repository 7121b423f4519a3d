//! EPaxos with bounded state in the simulator: compaction every few instances under
//! storage faults (crashes between a snapshot's write and the log swap, long outages).

use meridian_engine::check::check_execution_order;
use meridian_engine::epaxos::{Epaxos, EpaxosConfig, Record};
use meridian_engine::sim::FaultProfile;
use meridian_engine::{Command, Membership, NodeId};
use meridian_tests::{run_fault_seed, seeds, FaultOutcome, FaultRun};

fn factory(
    cluster: Membership,
    config: EpaxosConfig,
) -> impl FnMut(NodeId, u64, Vec<Record>) -> Epaxos {
    move |id, seed, records| Epaxos::new(id, &cluster, config.clone(), seed, records)
}

/// Compact every 10 executed instances: a short run compacts many times.
fn compacting() -> EpaxosConfig {
    EpaxosConfig::default().with_snapshot_interval(10)
}

fn run(profile: FaultProfile) -> FaultRun {
    FaultRun {
        profile,
        ..FaultRun::default()
    }
}

/// Interfering commands ran in the same order on every replica that ran both.
fn check_order(outcome: &FaultOutcome<Epaxos>) -> Result<(), String> {
    let sequences: Vec<Vec<_>> = outcome
        .sim
        .live_nodes()
        .map(|(_, node)| {
            node.executed()
                .iter()
                .map(|e| (e.instance, e.payload.command.clone()))
                .collect::<Vec<(_, Command)>>()
        })
        .collect();
    check_execution_order(&sequences)
}

/// Chaos plus crashes in the middle of a compaction and long outages, 150 seeds: every
/// history is linearizable, interfering commands run in one order, every client
/// finishes; compactions and crashes in them really happened.
#[test]
fn survives_storage_faults_with_frequent_compaction() {
    let run = run(FaultProfile::Storage);
    let (mut compactions, mut compaction_crashes, mut pruned) = (0, 0, 0);
    for seed in seeds(150) {
        let outcome = run_fault_seed(
            "t13_epaxos_bounded::survives_storage_faults_with_frequent_compaction",
            seed,
            &run,
            factory(run.topology.membership(), compacting()),
        );
        if let Err(divergence) = check_order(&outcome) {
            panic!("seed {seed}: {divergence}");
        }
        let metrics = outcome.sim.metrics();
        compactions += metrics.get("compactions");
        pruned += metrics.get("index_keys_pruned");
        compaction_crashes += outcome.sim.stats().compaction_crashes;
    }
    println!("{compactions} compactions, {compaction_crashes} crashes in a compaction, {pruned} index keys pruned");
    assert!(compactions > 0 && compaction_crashes > 0 && pruned > 0);
}
