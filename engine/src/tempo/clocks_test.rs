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
    assert!(table.update(NodeId(0), &promise(10, attached), is_committed));
    for node in [1, 2] {
        table.update(NodeId(node), &promise(9, Vec::new()), is_committed);
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
    table.update(NodeId(0), &promise(10, attached), committed);
    // Only the promise at 6 holds replica 0 back, even out of order on the wire.
    assert_eq!(table.stable(b"k", &voters(1), |_| false), 5);
}

#[test]
fn an_older_announcement_with_a_lower_clock_is_ignored() {
    let mut table = PromiseTable::default();
    assert!(table.update(NodeId(0), &promise(10, Vec::new()), |_| false));
    assert!(!table.update(NodeId(0), &promise(4, vec![(2, dot(0, 1))]), |_| false));
    assert_eq!(table.stable(b"k", &voters(1), |_| false), 10);
    assert_eq!(table.clock_of(b"k", NodeId(0)), Some(10));
    assert_eq!(table.clock_of(b"k", NodeId(1)), None);
}

#[test]
fn a_later_announcement_of_the_same_lineage_is_checked_only_above_the_clock_held() {
    let looked_up = RefCell::new(Vec::new());
    let committed = |d: Dot| {
        looked_up.borrow_mut().push(d);
        d == dot(0, 1)
    };
    let mut table = PromiseTable::default();
    let first = vec![(3, dot(0, 1)), (6, dot(0, 2))];
    assert!(table.update(NodeId(0), &promise(10, first), committed));
    assert_eq!(looked_up.take(), vec![dot(0, 1), dot(0, 2)]);
    // The same proposals again (not executed everywhere yet), and a new one above 10.
    let second = vec![(3, dot(0, 1)), (6, dot(0, 2)), (15, dot(0, 3))];
    assert!(table.update(NodeId(0), &promise(20, second), committed));
    // The new one, and the first hole held (dropped if committed since); not 1 again.
    assert_eq!(looked_up.take(), vec![dot(0, 3), dot(0, 2)]);
    // Held back below 6 (not committed here), then below 15.
    assert_eq!(table.stable(b"k", &voters(1), |_| false), 5);
    assert_eq!(table.stable(b"k", &voters(1), |d| d == dot(0, 2)), 14);
    // Another lineage (a rejoin attached below the clock, or a new boot): all are looked at.
    let mut third = promise(20, vec![(3, dot(0, 1)), (15, dot(0, 3))]);
    third.lineage = 1;
    assert!(table.update(NodeId(0), &third, committed));
    assert_eq!(looked_up.take(), vec![dot(0, 1), dot(0, 3)]);
}

#[test]
fn an_attachment_at_or_below_the_clock_starts_a_lineage_whose_announcements_are_checked_whole() {
    let mut clocks = Clocks::new(7);
    let key = b"k".to_vec();
    clocks.propose(&key, dot(0, 1), 0);
    let before = clocks.promise(&key);
    let mut table = PromiseTable::default();
    table.update(NodeId(0), &before.clone(), |_| false);
    // A proposal above the clock keeps the lineage.
    clocks.propose(&key, dot(0, 2), 0);
    assert_eq!(clocks.promise(&key).lineage, before.lineage);
    // A rejoin attaches what its former self may have proposed at 0: below the clock
    // announced, so receivers must look at it.
    clocks.attach(&key, dot(1, 9), 0);
    let after = clocks.promise(&key);
    assert_ne!(after.lineage, before.lineage);
    let committed = |d: Dot| d != dot(1, 9);
    assert!(table.update(NodeId(0), &after, committed));
    // Held at 0 by the uncommitted command, though its timestamp is below the clock held.
    assert_eq!(table.stable(b"k", &voters(1), committed), 0);
}

#[test]
fn a_switch_proposal_above_a_keys_clock_is_held_once_when_announced_again() {
    let mut table = PromiseTable::default();
    let switch = (12, dot(2, 1));
    table.update(NodeId(0), &promise(10, vec![switch]), |_| false);
    // Same lineage: a proposal at 11 lands below the switch's, which is not held twice.
    table.update(
        NodeId(0),
        &promise(15, vec![(11, dot(0, 4)), switch]),
        |_| false,
    );
    assert_eq!(table.stable(b"k", &voters(1), |_| false), 10);
    assert_eq!(table.stable(b"k", &voters(1), |d| d == dot(0, 4)), 11);
    assert_eq!(table.stable(b"k", &voters(1), |_| true), 15);
}

#[test]
fn a_list_of_only_what_is_new_is_taken_on_top_of_the_announcement_it_leaves_out_and_refused_otherwise(
) {
    let mut table = PromiseTable::default();
    let partial = |since: u64, clock: u64, attached: Vec<(u64, Dot)>| {
        let mut p = promise(clock, attached);
        p.since = Some(since);
        p
    };
    // Nothing known from replica 0: a partial list cannot be taken.
    assert!(
        !table.update(NodeId(0), &partial(10, 20, vec![(15, dot(0, 3))]), |_| {
            false
        })
    );
    assert_eq!(table.clock_of(b"k", NodeId(0)), None);
    let whole = vec![(3, dot(0, 1)), (6, dot(0, 2))];
    assert!(table.update(NodeId(0), &promise(10, whole), |_| false));
    // Built on the clock held (10): taken, holes added above it.
    assert!(
        table.update(NodeId(0), &partial(10, 20, vec![(15, dot(0, 3))]), |_| {
            false
        })
    );
    assert_eq!(table.clock_of(b"k", NodeId(0)), Some(20));
    assert_eq!(table.stable(b"k", &voters(1), |d| d.seq < 3), 14);
    // Built on a clock not held here (25 > 20): it would miss the holes in (20, 25].
    assert!(
        !table.update(NodeId(0), &partial(25, 30, vec![(28, dot(0, 5))]), |_| {
            false
        })
    );
    assert_eq!(table.clock_of(b"k", NodeId(0)), Some(20));
    // Of another lineage: refused too.
    let mut other = partial(10, 30, Vec::new());
    other.lineage = 1;
    assert!(!table.update(NodeId(0), &other, |_| false));
    assert_eq!(table.stable(b"k", &voters(1), |_| true), 20);
}

#[test]
fn an_ack_lists_only_the_attachments_above_a_long_lists_last_announcement_of_its_lineage() {
    let mut clocks = Clocks::new(3);
    let key = b"k".to_vec();
    for seq in 1..=LIST_WORTH_SHORTENING as u64 {
        clocks.propose(&key, dot(0, seq), 0);
    }
    let announced = clocks.promise(&key);
    clocks.note_announced(&announced);
    clocks.propose(&key, dot(1, 1), 0);
    let ack = clocks.promise_since_announced(&key);
    assert_eq!(ack.since, Some(announced.clock));
    assert_eq!(ack.attached, vec![(announced.clock + 1, dot(1, 1))]);
    // A rejoin's attachment below the clock: a new lineage, listed whole again.
    clocks.attach(&key, dot(2, 1), 0);
    let ack = clocks.promise_since_announced(&key);
    assert_eq!(ack.since, None);
    assert_eq!(ack.attached.len(), LIST_WORTH_SHORTENING + 2);
    // A short list is not noted: acks list it whole.
    let short = b"s".to_vec();
    clocks.propose(&short, dot(0, 20), 0);
    let announced = clocks.promise(&short);
    clocks.note_announced(&announced);
    assert_eq!(clocks.promise_since_announced(&short).since, None);
}
