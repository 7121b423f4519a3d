//! Tempo with bounded state in the simulator (issues 12 and 15): compaction every few
//! commands under chaos plus storage faults (crashes between a snapshot's write and the
//! log swap, long outages), n = 3, 5, 7. A replica that keeps its disk is never behind
//! its peers' compaction point (a command is collected only once every replica executed
//! it), so state transfer is exercised by the lost disks of `t17_tempo_amnesia.rs`.

use meridian_engine::sim::FaultProfile;
use meridian_engine::tempo::TempoConfig;
use meridian_engine::topology::Topology;
use meridian_tests::{
    run_fault_seed, seeds, tempo_factory, tempo_same_order, uniform_topology, FaultRun,
};

/// Compact every 10 executed commands: a short run compacts many times.
fn compacting(f: usize) -> TempoConfig {
    TempoConfig::default().with_f(f).with_snapshot_interval(10)
}

/// Chaos plus crashes in the middle of a compaction and long outages: every history is
/// linearizable, commands on a key run in one order everywhere, every client finishes;
/// compactions and crashes in them really happened.
#[test]
fn survives_storage_faults_with_frequent_compaction() {
    let test = "t16_tempo_bounded::survives_storage_faults_with_frequent_compaction";
    let (mut compactions, mut compaction_crashes, mut runs) = (0, 0, 0);
    for (topology, f, count) in [
        (Topology::builtin("epaxos-5").expect("builtin"), 1, 120),
        (Topology::builtin("epaxos-5").expect("builtin"), 2, 40),
        (Topology::builtin("epaxos-3").expect("builtin"), 1, 60),
        (uniform_topology(7, 20.0), 2, 20),
    ] {
        let run = FaultRun {
            topology: topology.clone(),
            profile: FaultProfile::Storage,
            ..FaultRun::default()
        };
        for seed in seeds(count) {
            let outcome = run_fault_seed(
                test,
                seed,
                &run,
                tempo_factory(topology.membership(), compacting(f)),
            );
            if let Err(divergence) = tempo_same_order(&outcome.sim) {
                panic!(
                    "seed {seed} (n = {}, f = {f}): {divergence}",
                    topology.membership().len()
                );
            }
            compactions += outcome.sim.metrics().get("compactions");
            compaction_crashes += outcome.sim.stats().compaction_crashes;
            runs += 1;
        }
    }
    println!(
        "{runs} runs, {compactions} compactions, {compaction_crashes} crashes in a compaction"
    );
    assert!(compactions > 0 && compaction_crashes > 0);
}
