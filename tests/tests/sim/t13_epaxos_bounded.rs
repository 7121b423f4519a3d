//! EPaxos with bounded state in the simulator: compaction every few instances under
//! storage faults (crashes between a snapshot's write and the log swap, long outages).

use meridian_engine::epaxos::{Epaxos, EpaxosConfig, Record};
use meridian_engine::sim::FaultProfile;
use meridian_engine::{Membership, NodeId};
use meridian_tests::{epaxos_same_order, run_fault_seed, seeds, FaultRun};

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
        if let Err(divergence) = epaxos_same_order(&outcome.sim) {
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
