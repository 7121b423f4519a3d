use super::*;
use crate::check::{check_kv, CheckConfig, Verdict};
use crate::id::ClientId;
use crate::time::Time;

fn ok(h: &mut History, command: Command, call: u64, ret: u64, result: CommandResult) {
    let id = h.invoke(ClientId(1), command, Time::from_millis(call));
    h.complete(id, Time::from_millis(ret), result);
}

fn put(h: &mut History, key: &str, value: &str, call: u64, ret: u64) {
    let command = Command::Put {
        key: key.into(),
        value: value.into(),
    };
    ok(h, command, call, ret, CommandResult::Written);
}

/// A scan of `a/` (after `after`) from `at` to `at + 1` that answered `pairs`.
fn scanned(h: &mut History, after: Option<&str>, at: u64, pairs: &[(&str, &str)], more: bool) {
    let scan = Command::Scan {
        prefix: b"a/".to_vec(),
        after: after.map(Into::into),
        limit: 10,
    };
    let entries = pairs.iter().map(|&(k, v)| (k.into(), v.into())).collect();
    ok(
        h,
        scan,
        at,
        at + 1,
        CommandResult::Entries { entries, more },
    );
}

fn verdict(h: &History) -> Verdict {
    check_kv(h, &CheckConfig::default()).verdict
}

/// a/1 and a/2 written, b/1 outside the prefix.
fn writes() -> History {
    let mut h = History::new();
    put(&mut h, "a/1", "x", 0, 1);
    put(&mut h, "a/2", "y", 2, 3);
    put(&mut h, "b/1", "z", 4, 5);
    h
}

#[test]
fn a_scan_that_saw_every_completed_write_passes() {
    let mut h = writes();
    scanned(&mut h, None, 10, &[("a/1", "x"), ("a/2", "y")], false);
    assert_eq!(verdict(&h), Verdict::Linearizable);
}

#[test]
fn a_scan_that_missed_a_completed_write_is_a_violation() {
    let mut h = writes();
    scanned(&mut h, None, 10, &[("a/1", "x")], false);
    assert!(
        matches!(verdict(&h), Verdict::Violation { ref key, .. } if key == b"a/2"),
        "{:?}",
        verdict(&h)
    );
}

#[test]
fn a_scan_that_saw_a_value_never_written_is_a_violation() {
    let mut h = writes();
    scanned(&mut h, None, 10, &[("a/1", "x"), ("a/2", "w")], false);
    assert!(matches!(verdict(&h), Verdict::Violation { .. }));
}

#[test]
fn a_scan_concurrent_with_a_write_may_miss_it() {
    let mut h = History::new();
    put(&mut h, "a/1", "x", 0, 1);
    put(&mut h, "a/2", "y", 5, 20);
    scanned(&mut h, None, 10, &[("a/1", "x")], false);
    assert_eq!(verdict(&h), Verdict::Linearizable);
}

/// Keys past the last entry of a scan that stopped early, and keys before `after`, are
/// not claimed absent.
#[test]
fn a_truncated_or_continued_scan_says_nothing_about_keys_it_did_not_reach() {
    let mut h = writes();
    scanned(&mut h, None, 10, &[("a/1", "x")], true);
    scanned(&mut h, Some("a/1"), 12, &[("a/2", "y")], false);
    assert_eq!(verdict(&h), Verdict::Linearizable);
    let projected = project_scans(&h).expect("scans");
    // 5 operations, then a/1 from the first scan and a/2 from the second.
    assert_eq!(projected.len(), 7);
}

#[test]
fn histories_without_scans_are_not_copied() {
    assert!(project_scans(&writes()).is_none());
}
