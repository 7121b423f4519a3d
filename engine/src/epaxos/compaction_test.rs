//! Compaction on the test host: the durable log stays bounded, a restart from the
//! snapshot plus its tail rebuilds the same state, and an idle cluster forgets every key
//! every replica executed.

use super::test_support::*;
use super::*;
use std::time::Duration;

/// Compact every 10 executed instances.
fn compacting() -> EpaxosConfig {
    fast().with_snapshot_interval(10)
}

#[test]
fn the_log_stays_bounded_and_a_restart_rebuilds_the_same_state() {
    for seed in 0..4 {
        let mut pump = new_pump(3, seed, compacting());
        run_writes(&mut pump, 0, 150, 15);
        idle(&mut pump, Duration::from_secs(2));
        assert_same_order(&pump);
        for (i, disk) in pump.disks.iter().enumerate() {
            assert!(
                matches!(disk.first(), Some(Record::Snapshot(_))),
                "seed {seed}: n{i}'s log does not start with a snapshot"
            );
            // 150 instances leave 450-odd records uncompacted; an idle, collected
            // cluster keeps the snapshot and at most a few live instances.
            assert!(
                disk.len() < 20,
                "seed {seed}: n{i} holds {} records",
                disk.len()
            );
        }
        let before: Vec<_> = pump.live().map(|n| n.kv().clone()).collect();
        assert!(before.windows(2).all(|w| w[0] == w[1]), "seed {seed}");
        for id in pump.ids().collect::<Vec<_>>() {
            pump.crash(id);
            pump.restart(id);
            assert_eq!(
                pump.up(id).kv(),
                &before[id.index()],
                "seed {seed}: {id} rebuilt another state"
            );
        }
        // The rebuilt replicas go on: new slots, new commands, one order.
        let later = run_writes(&mut pump, 1_000, 30, 15);
        assert!(answered(&pump, &later));
        assert_same_order(&pump);
    }
}

#[test]
fn an_idle_cluster_forgets_the_keys_every_replica_executed() {
    let mut pump = new_pump(3, 7, compacting());
    run_writes(&mut pump, 0, 90, 15);
    idle(&mut pump, Duration::from_secs(2));
    for node in pump.live() {
        assert_eq!(node.live_instances(), 0, "{} holds instances", node.id());
        // 90 writes on 61 keys; the last compaction ran after everything was collected.
        assert_eq!(node.indexed_keys(), 0, "{} indexes keys", node.id());
        assert!(node.metrics().get("index_keys_pruned") >= 61);
    }
    // A later write on a pruned key still orders after the old ones everywhere.
    let later = run_writes(&mut pump, 3_000, 3, 15);
    assert!(answered(&pump, &later));
    idle(&mut pump, Duration::from_secs(1));
    let states: Vec<_> = pump.live().map(|n| n.kv().clone()).collect();
    assert!(states.windows(2).all(|w| w[0] == w[1]));
}
