//! Compaction on the test host: the durable log stays bounded, a restart from the
//! snapshot plus its tail rebuilds the same state and goes on in the same order, and an
//! idle cluster ends with a log of one snapshot.

use super::test_support::*;
use super::*;
use crate::id::NodeId;
use crate::test_host::Order;

/// Compact every 10 executed commands.
fn compacting() -> TempoConfig {
    config(1).with_snapshot_interval(10)
}

#[test]
fn the_log_stays_bounded_and_a_restart_rebuilds_the_same_state() {
    for seed in 0..4 {
        let mut pump = new_pump(3, seed, Order::Shuffled, compacting());
        let ids = submit(&mut pump, 0, 150, 5);
        assert!(pump.run_until(STEPS, |p| answered(p, &ids)), "seed {seed}");
        settle(&mut pump, seed);
        assert_same_order(&pump);
        // The next GC tick of each replica finds everything collected and compacts.
        let short = |p: &Pump| p.disks.iter().all(|d| d.len() < 40);
        assert!(pump.run_until(STEPS, short), "seed {seed}: logs stay long");
        for (i, disk) in pump.disks.iter().enumerate() {
            let starts = disk
                .iter()
                .take(2)
                .any(|r| matches!(r, Record::Snapshot(_)));
            assert!(
                starts,
                "seed {seed}: n{i}'s log does not start with a snapshot"
            );
            // 150 commands leave several hundred records uncompacted; an idle,
            // collected cluster keeps the snapshot and a few records after it.
            assert!(
                disk.len() < 40,
                "seed {seed}: n{i} holds {} records",
                disk.len()
            );
        }
        let before: Vec<_> = pump.live().map(|n| n.kv().clone()).collect();
        assert!(before.windows(2).all(|w| w[0] == w[1]), "seed {seed}");
        assert!(pump.live().all(|n| n.metrics().get("compactions") > 0));
        for id in pump.ids().collect::<Vec<_>>() {
            pump.crash(id);
            pump.restart(id);
            assert_eq!(
                pump.up(id).kv(),
                &before[id.index()],
                "seed {seed}: {id} rebuilt another state"
            );
        }
        // The rebuilt replicas go on: new commands (own sequence numbers above the
        // collected ones), one order.
        let later = submit(&mut pump, 1_000, 30, 3);
        assert!(
            pump.run_until(STEPS, |p| answered(p, &later)),
            "seed {seed}"
        );
        assert_same_order(&pump);
        settle(&mut pump, seed);
        let after: Vec<_> = pump.live().map(|n| n.kv().clone()).collect();
        assert!(after.windows(2).all(|w| w[0] == w[1]), "seed {seed}");
    }
}

#[test]
fn restarts_between_compactions_under_conflicts_keep_one_order() {
    for seed in 0..6 {
        let mut pump = new_pump(3, seed, Order::Shuffled, compacting());
        let ids = submit(&mut pump, 0, 40, 2);
        assert!(pump.run_until(STEPS, |p| answered(p, &ids)), "seed {seed}");
        // A crash amid a second load (its coordinator's requests may stay unanswered),
        // a restart from the compacted log, a third load.
        submit(&mut pump, 200, 40, 2);
        for _ in 0..(200 + seed * 150) {
            pump.step();
        }
        let victim = NodeId((seed % 3) as u16);
        pump.crash(victim);
        for _ in 0..300 {
            pump.step();
        }
        pump.restart(victim);
        let ids = submit(&mut pump, 500, 40, 2);
        assert!(pump.run_until(STEPS, |p| answered(p, &ids)), "seed {seed}");
        settle(&mut pump, seed);
        assert_same_order(&pump);
        let states: Vec<_> = pump.live().map(|n| n.kv().clone()).collect();
        assert!(states.windows(2).all(|w| w[0] == w[1]), "seed {seed}");
    }
}
