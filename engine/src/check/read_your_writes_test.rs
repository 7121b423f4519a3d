use super::*;
use crate::dynamo::{Actor, Dot};
use crate::id::NodeId;

fn dot(node: u16, counter: u64) -> Dot {
    Dot {
        actor: Actor {
            node: NodeId(node),
            epoch: 1,
        },
        counter,
    }
}

fn context(dots: &[Dot]) -> VersionVector {
    dots.iter().copied().collect()
}

fn write(client: u64, at: (u64, u64), value: &str, dots: &[Dot]) -> VersionedOp {
    VersionedOp {
        client: ClientId(client),
        key: b"k".to_vec(),
        call: Time::from_millis(at.0),
        ret: Time::from_millis(at.1),
        access: Access::Write {
            value: Some(value.as_bytes().to_vec()),
            context: context(dots),
        },
    }
}

fn read(client: u64, at: (u64, u64), values: &[&str], dots: &[Dot]) -> VersionedOp {
    VersionedOp {
        client: ClientId(client),
        key: b"k".to_vec(),
        call: Time::from_millis(at.0),
        ret: Time::from_millis(at.1),
        access: Access::Read {
            siblings: values.iter().map(|v| Some(v.as_bytes().to_vec())).collect(),
            context: context(dots),
        },
    }
}

#[test]
fn a_read_holding_the_write_as_a_sibling_passes() {
    let history = [
        write(0, (0, 10), "a", &[dot(0, 1)]),
        read(0, (20, 30), &["a", "other"], &[dot(0, 1), dot(1, 1)]),
    ];
    let report = check_read_your_writes(&history);
    assert_eq!(report.reads_checked, 1);
    assert_eq!(report.violations, Vec::new());
}

#[test]
fn a_read_whose_context_covers_a_superseded_write_passes() {
    // Another client overwrote "a" with a context covering it.
    let history = [
        write(0, (0, 10), "a", &[dot(0, 1)]),
        write(1, (12, 15), "b", &[dot(0, 1), dot(0, 2)]),
        read(0, (20, 30), &["b"], &[dot(0, 1), dot(0, 2)]),
    ];
    let report = check_read_your_writes(&history);
    assert_eq!(report.reads_checked, 1);
    assert!(report.violations.is_empty(), "{:?}", report.violations);
}

/// Negative control: a read that returns an older state after the client's write was
/// acknowledged is rejected, and names what it missed.
#[test]
fn a_stale_read_after_an_acknowledged_write_is_rejected() {
    let history = [
        write(0, (0, 10), "a", &[dot(0, 1)]),
        write(0, (11, 19), "b", &[dot(0, 1), dot(2, 1)]),
        read(0, (20, 30), &["a"], &[dot(0, 1)]),
    ];
    let report = check_read_your_writes(&history);
    assert_eq!(report.reads_checked, 1);
    assert_eq!(report.violations.len(), 1);
    let violation = &report.violations[0];
    assert_eq!(violation.write_ret, Time::from_millis(19));
    assert!(
        violation.explanation.contains("\"b\""),
        "{}",
        violation.explanation
    );
}

#[test]
fn only_the_clients_own_writes_acknowledged_before_the_read_count() {
    let history = [
        // Another client's write: not this client's to see.
        write(1, (0, 5), "theirs", &[dot(1, 1)]),
        // Acknowledged only after the read started: concurrent, not required.
        write(0, (10, 40), "late", &[dot(0, 1)]),
        read(0, (20, 30), &[], &[]),
    ];
    let report = check_read_your_writes(&history);
    assert_eq!(report.reads_checked, 0);
    assert!(report.violations.is_empty());
}
