//! Behaviour every [`Storage`] must have (openraft `Suite` style). Each implementation's
//! tests call [`run_all`] with a factory for fresh, empty logs.

use super::Storage;

/// Run every check against fresh logs from `make`. Panics with the failed property.
pub fn run_all<S: Storage>(mut make: impl FnMut() -> S) {
    replays_synced_records_in_order(make());
    empty_log_replays_nothing(make());
    sync_reports_durable_count(make());
    compaction_replaces_the_log(make());
    appends_after_compaction_follow_it(make());
}

fn records(range: std::ops::Range<u32>) -> Vec<Vec<u8>> {
    range.map(|i| format!("record-{i}").into_bytes()).collect()
}

fn replays_synced_records_in_order<S: Storage>(mut log: S) {
    log.append(&records(0..3)).expect("append");
    log.append(&records(3..5)).expect("append");
    log.sync().expect("sync");
    assert_eq!(log.replay().expect("replay"), records(0..5), "replay order");
}

fn empty_log_replays_nothing<S: Storage>(mut log: S) {
    assert!(
        log.replay().expect("replay").is_empty(),
        "fresh log is empty"
    );
}

fn sync_reports_durable_count<S: Storage>(mut log: S) {
    log.append(&records(0..2)).expect("append");
    assert_eq!(log.sync().expect("sync"), 2, "count after first sync");
    log.append(&records(2..3)).expect("append");
    assert_eq!(log.sync().expect("sync"), 3, "count after second sync");
}

fn compaction_replaces_the_log<S: Storage>(mut log: S) {
    log.append(&records(0..10)).expect("append");
    log.sync().expect("sync");
    log.compact(&records(8..10)).expect("compact");
    assert_eq!(
        log.replay().expect("replay"),
        records(8..10),
        "after compaction"
    );
}

fn appends_after_compaction_follow_it<S: Storage>(mut log: S) {
    log.append(&records(0..4)).expect("append");
    log.sync().expect("sync");
    log.compact(&records(3..4)).expect("compact");
    log.append(&records(4..6)).expect("append");
    log.sync().expect("sync");
    assert_eq!(
        log.replay().expect("replay"),
        records(3..6),
        "compaction then append"
    );
}
