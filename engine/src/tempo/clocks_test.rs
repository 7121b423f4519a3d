//! The promise table keeps only the attached promises of commands not known committed
//! here, and stability passes each over once it commits.

use super::*;
use crate::tempo::test_support::promise;
use std::cell::RefCell;

/// Replicas `0..n`.
fn voters(n: u16) -> Vec<NodeId> {
    (0..n).map(NodeId).collect()
}

fn dot(node: u16, seq: u64) -> Dot {
    Dot {
        node: NodeId(node),
        seq,
    }
}

#[test]
fn an_uncommitted_attached_promise_holds_its_announcer_below_it_until_it_commits() {
    let committed: RefCell<BTreeSet<Dot>> = RefCell::default();
    let is_committed = |d: Dot| committed.borrow().contains(&d);
    let mut table = PromiseTable::default();
    // Replica 0 announces clock 10 with proposals at 3 and 6; 1 and 2 announce clock 9.
    let attached = vec![(3, dot(0, 1)), (6, dot(0, 2))];
    assert!(table.update(NodeId(0), promise(10, attached), is_committed));
    for node in [1, 2] {
        table.update(NodeId(node), promise(9, Vec::new()), is_committed);
    }
    // Three voters, majority of 2: replica 0 counts up to 2 only, so the second highest
    // frontier is 9.
    assert_eq!(table.stable(b"k", &voters(3), is_committed), 9);
    // Five voters (3 and 4 silent), majority of 3: the lowest of 2, 9 and 9.
    assert_eq!(table.stable(b"k", &voters(5), is_committed), 2);
    committed.borrow_mut().insert(dot(0, 1));
    assert_eq!(table.stable(b"k", &voters(5), is_committed), 5);
    committed.borrow_mut().insert(dot(0, 2));
    assert_eq!(table.stable(b"k", &voters(5), is_committed), 9);
    // Clocks alone, whatever the attached promises.
    assert_eq!(table.covered(b"k", &voters(5)), 9);
    // Only voters count: without replica 0, replicas 1 and 2 alone.
    assert_eq!(table.covered(b"k", &[NodeId(1), NodeId(2)]), 9);
}

#[test]
fn attached_promises_of_commands_committed_here_are_not_kept() {
    let mut table = PromiseTable::default();
    let committed = |d: Dot| d == dot(0, 1);
    let attached = vec![(6, dot(0, 2)), (3, dot(0, 1))];
    table.update(NodeId(0), promise(10, attached), committed);
    // Only the promise at 6 holds replica 0 back, even out of order on the wire.
    assert_eq!(table.stable(b"k", &voters(1), |_| false), 5);
}

#[test]
fn an_older_announcement_with_a_lower_clock_is_ignored() {
    let mut table = PromiseTable::default();
    assert!(table.update(NodeId(0), promise(10, Vec::new()), |_| false));
    assert!(!table.update(NodeId(0), promise(4, vec![(2, dot(0, 1))]), |_| false));
    assert_eq!(table.stable(b"k", &voters(1), |_| false), 10);
    assert_eq!(table.clock_of(b"k", NodeId(0)), Some(10));
    assert_eq!(table.clock_of(b"k", NodeId(1)), None);
}
