//! Learner handler tests: in-order execution, exactly-once, catch-up.

use super::test_support::*;
use super::*;

fn commit(slot: Slot, seqs: &[u64]) -> Message {
    Message::Commit {
        slot,
        value: seqs.iter().map(|&s| proposal(s, 0)).collect(),
    }
}

/// A commit past a hole waits; the hole's commit executes both, in slot order.
#[test]
fn execution_waits_for_holes_and_runs_in_slot_order() {
    let mut follower = node(1, 3, MultiPaxosConfig::default());
    follower.handle_message(Time::ZERO, NodeId(0), commit(1, &[2]));
    assert!(follower.applied().is_empty());
    follower.handle_message(Time::ZERO, NodeId(0), commit(0, &[1]));
    let order: Vec<(Slot, u64)> = follower
        .applied()
        .iter()
        .map(|e| (e.slot, e.request.seq))
        .collect();
    assert_eq!(order, vec![(0, 1), (1, 2)]);
    assert_eq!(follower.executed_up_to(), 2);
}

/// A request ordered in two slots (a retry) executes once.
#[test]
fn a_request_ordered_twice_executes_once() {
    let mut follower = node(1, 3, MultiPaxosConfig::default());
    follower.handle_message(Time::ZERO, NodeId(0), commit(0, &[1]));
    follower.handle_message(Time::ZERO, NodeId(0), commit(1, &[1]));
    assert_eq!(follower.executed_up_to(), 2);
    assert_eq!(follower.applied().len(), 1);
}

/// Peer input never panics: catch-up requests beyond what we know are dropped.
#[test]
fn catch_up_request_beyond_the_commit_point_is_dropped() {
    let mut follower = node(1, 3, MultiPaxosConfig::default());
    follower.handle_message(
        Time::ZERO,
        NodeId(2),
        Message::CatchUpRequest { from_slot: 1_000 },
    );
    assert_eq!(drain(&mut follower), vec![]);
    assert_eq!(follower.metrics().get("dropped_stale"), 1);
}

/// A follower behind the heartbeat's commit point asks for what it misses; the answer is
/// bounded by `catch_up_batch`; each batch that helps triggers the next request at once.
#[test]
fn lagging_follower_catches_up_in_bounded_batches() {
    let config = MultiPaxosConfig::default().with_catch_up_batch(2);
    let mut source = node(0, 3, config.clone());
    for slot in 0..5 {
        source.handle_message(Time::ZERO, NodeId(2), commit(slot, &[slot]));
    }
    drain(&mut source);
    let mut follower = node(1, 3, config);
    follower.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::Heartbeat {
            ballot: ballot(1, 0),
            commit_point: 5,
            round: 1,
            fresh: None,
        },
    );
    let mut rounds = 0;
    let mut outputs = drain(&mut follower);
    while let Some((_, Message::CatchUpRequest { from_slot })) = sent_now(&outputs).pop() {
        rounds += 1;
        assert!(rounds <= 3, "too many rounds");
        source.handle_message(Time::ZERO, NodeId(1), Message::CatchUpRequest { from_slot });
        let answer = sent_now(&drain(&mut source));
        let [(to, message @ Message::CatchUp { entries })] = &answer[..] else {
            panic!("expected one CatchUp: {answer:?}");
        };
        assert_eq!(*to, NodeId(1));
        assert!(entries.len() <= 2);
        follower.handle_message(Time::ZERO, NodeId(0), message.clone());
        outputs = drain(&mut follower);
    }
    assert_eq!(rounds, 3);
    assert_eq!(follower.executed_up_to(), 5);
    assert_eq!(source.metrics().get("catch_up_entries_sent"), 5);
    // Up to date: the next heartbeat asks for nothing.
    follower.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::Heartbeat {
            ballot: ballot(1, 0),
            commit_point: 5,
            round: 1,
            fresh: None,
        },
    );
    let asked = sent_now(&drain(&mut follower));
    assert!(
        asked
            .iter()
            .all(|(_, m)| matches!(m, Message::HeartbeatAck { .. })),
        "{asked:?}"
    );
}
