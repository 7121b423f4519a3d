//! Floor promises: how the table counts them (a switch waiting for them: the idle-key test
//! of `membership_test.rs` and t19's negative control).

use super::*;
use crate::tempo::clocks::FloorTable;
use crate::tempo::messages::Dot;

fn promise(node: u16, floor: u64, attached: Vec<(u64, Dot)>, epoch: u64) -> FloorPromise {
    FloorPromise {
        node: NodeId(node),
        floor,
        attached,
        collected: Vec::new(),
        epoch,
    }
}

fn dot(node: u16, seq: u64) -> Dot {
    Dot {
        node: NodeId(node),
        seq,
    }
}

#[test]
fn a_majority_of_the_voters_floors_count_below_their_first_uncommitted_proposal() {
    let mut table = FloorTable::default();
    let voters = [NodeId(0), NodeId(1), NodeId(2)];
    let pending = dot(2, 7);
    let none = |_: Dot| false;
    assert!(table.update(promise(0, 50, Vec::new(), 0), none));
    assert_eq!(table.stable(&voters, none), 0, "one voter of three");
    assert!(table.update(promise(1, 40, vec![(30, pending)], 0), none));
    assert_eq!(
        table.stable(&voters, none),
        29,
        "held below the uncommitted proposal"
    );
    assert_eq!(table.stable(&voters, |d| d == pending), 40);
    // A promise from a replica that is not a voter of the range counts for nothing.
    let mut other = FloorTable::default();
    other.update(promise(0, 50, Vec::new(), 0), none);
    other.update(promise(3, 50, Vec::new(), 0), none);
    assert_eq!(other.stable(&voters, none), 0);
}

#[test]
fn an_older_floor_or_a_former_self_does_not_replace_a_newer_promise() {
    let mut table = FloorTable::default();
    let none = |_: Dot| false;
    assert!(table.update(promise(0, 50, Vec::new(), 1), none));
    assert!(!table.update(promise(0, 40, Vec::new(), 1), none));
    assert!(
        !table.update(promise(0, 90, Vec::new(), 0), none),
        "a former self"
    );
    assert!(
        table.update(promise(0, 10, Vec::new(), 2), none),
        "a newer self"
    );
    assert_eq!(table.floor_of(NodeId(0)), Some(10));
    table.forget_node(NodeId(0));
    assert_eq!(table.floor_of(NodeId(0)), None);
}
