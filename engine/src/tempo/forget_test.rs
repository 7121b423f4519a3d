//! Idle keys are forgotten (docs/design.md#tempo, rule 6): once every command on a key
//! ran everywhere, both tables drop it, and a later proposal on it, before or after a
//! restart from the records or from a snapshot, is still above every promise the
//! replica made on it.

use super::test_support::*;
use super::*;
use crate::command::Key;
use crate::id::NodeId;
use crate::test_host::Order;
use std::collections::BTreeMap;

/// Per key, the highest clock the records of `disk` promise (every clock this replica
/// announced or answered with is backed by one of them).
fn promised(disk: &[Record]) -> BTreeMap<Key, u64> {
    let mut clocks: BTreeMap<Key, u64> = BTreeMap::new();
    let mut raise = |key: &Key, ts: u64| {
        let clock = clocks.entry(key.clone()).or_default();
        *clock = (*clock).max(ts);
    };
    for record in disk {
        match record {
            Record::Proposed { payload, ts, .. }
            | Record::Accepted { payload, ts, .. }
            | Record::Committed { payload, ts, .. } => raise(payload.key(), *ts),
            Record::Clocks { keys } => keys.iter().for_each(|(k, c)| raise(k, *c)),
            Record::Snapshot(s) => s.clocks.iter().for_each(|(k, c)| raise(k, *c)),
            _ => {}
        }
    }
    clocks
}

fn table_keys(core: &Tempo) -> (usize, usize) {
    let r = &core.replica;
    (r.clocks.key_count(), r.promises.key_count())
}

/// 40 writes over 3 replicas, every 4th on a hot key, until every table is empty.
fn idle_cluster(config: TempoConfig) -> (Pump, Vec<BTreeMap<Key, u64>>) {
    let mut pump = new_pump(3, 7, Order::Shuffled, config);
    let ids = submit(&mut pump, 0, 40, 4);
    assert!(pump.run_until(STEPS, |p| answered(p, &ids)));
    let busy = pump.live().map(table_keys).max().expect("replicas");
    assert!(busy.0 > 20 && busy.1 > 20, "tables while busy: {busy:?}");
    let promises: Vec<_> = pump.disks.iter().map(|d| promised(d)).collect();
    settle(&mut pump, 7);
    let empty = |p: &Pump| p.live().all(|c| table_keys(c) == (0, 0));
    assert!(pump.run_until(STEPS, empty), "the tables keep idle keys");
    for core in pump.live() {
        let metrics = core.metrics();
        assert_eq!(
            (metrics.get("clock_keys"), metrics.get("promise_keys")),
            (0, 0)
        );
        assert!(metrics.get("promise_keys_forgotten") > 40);
    }
    (pump, promises)
}

/// Every clock of replica `id` is at least what its records promised, and a write on
/// each forgotten key there is proposed above it and runs after the earlier writes.
fn check_promises_kept(pump: &mut Pump, id: NodeId, promises: &BTreeMap<Key, u64>, seq: u64) {
    let clocks = &pump.up(id).replica.clocks;
    for (key, &clock) in promises {
        assert!(clocks.get(key) >= clock, "{id}: clock on {key:?} went back");
    }
    let floor = clocks.floor();
    assert!(floor >= promises.values().copied().max().unwrap_or(0));
    let mut ids = Vec::new();
    for (i, key) in ["hot", "k1", "k2"].into_iter().enumerate() {
        let request = request(seq + i as u64, key);
        ids.push(request.id);
        pump.request(id, request);
        let proposal = pump.up(id).replica.cmds.values().rev().find_map(|c| {
            let own = c.payload.as_ref()?.request == *ids.last()?;
            own.then_some(c.proposal?)
        });
        let proposal = proposal.expect("proposed");
        assert!(
            proposal > promises[key.as_bytes()],
            "{id}: proposal {proposal} on {key} is not above its promise"
        );
    }
    assert!(pump.run_until(STEPS, |p| answered(p, &ids)));
    settle(pump, 7);
    assert_same_order(pump);
    let value = |core: &Tempo, key: &str| core.kv().read(key.as_bytes()).cloned();
    for core in pump.live() {
        for (i, key) in ["hot", "k1", "k2"].into_iter().enumerate() {
            let last = (seq + i as u64).to_le_bytes().to_vec();
            assert_eq!(
                value(core, key),
                Some(last),
                "{key}: the new write ran first"
            );
        }
    }
}

#[test]
fn idle_keys_are_forgotten_and_proposals_stay_above_every_promise() {
    let (mut pump, promises) = idle_cluster(config(1));
    for id in pump.ids().collect::<Vec<_>>() {
        check_promises_kept(&mut pump, id, &promises[id.index()], 100 + 10 * id.0 as u64);
    }
}

#[test]
fn a_restart_from_a_snapshot_keeps_the_floor() {
    let (mut pump, promises) = idle_cluster(config(1).with_snapshot_interval(10));
    let id = NodeId(1);
    let snapshot = pump.disks[id.index()].iter().find_map(|r| match r {
        Record::Snapshot(s) => Some(s.clone()),
        _ => None,
    });
    let snapshot = snapshot.expect("an idle replica compacts");
    assert!(snapshot.clocks.is_empty(), "the snapshot holds idle clocks");
    pump.crash(id);
    pump.restart(id);
    check_promises_kept(&mut pump, id, &promises[id.index()], 200);
}

#[test]
fn a_restart_from_the_records_keeps_the_floor() {
    let (mut pump, promises) = idle_cluster(config(1).with_snapshot_interval(0));
    let id = NodeId(2);
    let floor = pump.up(id).replica.clocks.floor();
    let floors = pump.disks[id.index()].iter().filter_map(|r| match r {
        Record::Floor { clock } => Some(*clock),
        _ => None,
    });
    assert_eq!(floors.max(), Some(floor), "the floor is not persisted");
    pump.crash(id);
    pump.restart(id);
    // A key never seen is promised up to the floor, before and after.
    assert_eq!(pump.up(id).replica.clocks.get(b"never"), floor);
    check_promises_kept(&mut pump, id, &promises[id.index()], 300);
}
