//! Acceptor handler tests: one input, then the exact drained outputs (openraft style).
//! Reference: Lamport, "Paxos Made Simple" (2001) §2.2 (the acceptor's rules P1a, P2c).

use super::test_support::*;
use super::*;

/// Paxos Made Simple §2.2: an acceptor that promised `n` refuses lower-numbered accepts
/// (and says what to beat), without writing anything.
#[test]
fn acceptor_refuses_an_accept_below_its_promise() {
    let mut acceptor = node(1, 3, MultiPaxosConfig::default());
    acceptor.handle_message(
        Time::ZERO,
        NodeId(2),
        Message::Prepare {
            ballot: ballot(5, 2),
            from_slot: 0,
        },
    );
    drain(&mut acceptor);
    acceptor.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::Accept {
            ballot: ballot(3, 0),
            slot: 0,
            value: [proposal(1, 0)].into(),
        },
    );
    assert_eq!(
        drain(&mut acceptor),
        vec![now_send(
            0,
            Message::Nack {
                promised: ballot(5, 2)
            }
        )]
    );
    assert!(acceptor.log.get(0).is_none(), "refused value was recorded");
}

/// Durability: a higher ballot's promise and the accepted value are persisted before the
/// Accepted vote leaves (the vote rides in `then`).
#[test]
fn acceptor_persists_promise_and_value_before_replying_accepted() {
    let mut acceptor = node(1, 3, MultiPaxosConfig::default());
    let value: Batch = [proposal(1, 0)].into();
    acceptor.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::Accept {
            ballot: ballot(1, 0),
            slot: 0,
            value: value.clone(),
        },
    );
    assert_eq!(
        drain(&mut acceptor),
        vec![Output::Persist {
            records: vec![
                Record::Promised(ballot(1, 0)),
                Record::Accepted {
                    slot: 0,
                    ballot: ballot(1, 0),
                    value
                }
            ],
            then: vec![send(
                0,
                Message::Accepted {
                    ballot: ballot(1, 0),
                    slot: 0
                }
            )],
        }]
    );
    assert_eq!(acceptor.leader(), Some(NodeId(0)));
}

/// An accept at the ballot already promised writes only the value (promise and accepted
/// value are separate records).
#[test]
fn accept_at_the_promised_ballot_writes_only_the_value() {
    let mut acceptor = node(2, 3, MultiPaxosConfig::default());
    acceptor.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::Prepare {
            ballot: ballot(1, 0),
            from_slot: 0,
        },
    );
    drain(&mut acceptor);
    let value: Batch = [proposal(4, 1)].into();
    acceptor.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::Accept {
            ballot: ballot(1, 0),
            slot: 3,
            value: value.clone(),
        },
    );
    assert_eq!(
        drain(&mut acceptor),
        vec![Output::Persist {
            records: vec![Record::Accepted {
                slot: 3,
                ballot: ballot(1, 0),
                value
            }],
            then: vec![send(
                0,
                Message::Accepted {
                    ballot: ballot(1, 0),
                    slot: 3
                }
            )],
        }]
    );
}

/// Phase 1b: the promise is durable before it leaves, and reports every accepted entry at
/// or above the candidate's commit point, with its accepted ballot.
#[test]
fn promise_is_persisted_first_and_reports_entries_above_the_commit_point() {
    let mut acceptor = node(1, 3, MultiPaxosConfig::default());
    for slot in 0..3 {
        acceptor.handle_message(
            Time::ZERO,
            NodeId(0),
            Message::Accept {
                ballot: ballot(1, 0),
                slot,
                value: [proposal(slot, 0)].into(),
            },
        );
    }
    drain(&mut acceptor);
    acceptor.handle_message(
        Time::ZERO,
        NodeId(2),
        Message::Prepare {
            ballot: ballot(2, 2),
            from_slot: 1,
        },
    );
    let entry = |slot| AcceptedEntry {
        slot,
        ballot: ballot(1, 0),
        value: [proposal(slot, 0)].into(),
        committed: false,
    };
    assert_eq!(
        drain(&mut acceptor),
        vec![Output::Persist {
            records: vec![Record::Promised(ballot(2, 2))],
            then: vec![send(
                2,
                Message::Promise {
                    ballot: ballot(2, 2),
                    accepted: vec![entry(1), entry(2)],
                    lease_remaining_us: 0,
                    fence: Ballot::default(),
                    fences: Vec::new(),
                }
            )],
        }]
    );
    assert_eq!(acceptor.promised(), ballot(2, 2));
    assert_eq!(acceptor.leader(), Some(NodeId(2)));
}

/// A duplicated Prepare for the ballot already promised is answered again, through the
/// sync pipeline, with no new record.
#[test]
fn duplicate_prepare_is_answered_again_without_a_new_record() {
    let mut acceptor = node(1, 3, MultiPaxosConfig::default());
    let prepare = Message::Prepare {
        ballot: ballot(2, 2),
        from_slot: 0,
    };
    acceptor.handle_message(Time::ZERO, NodeId(2), prepare.clone());
    drain(&mut acceptor);
    acceptor.handle_message(Time::ZERO, NodeId(2), prepare);
    assert_eq!(
        drain(&mut acceptor),
        vec![Output::Persist {
            records: vec![],
            then: vec![send(
                2,
                Message::Promise {
                    ballot: ballot(2, 2),
                    accepted: vec![],
                    lease_remaining_us: 0,
                    fence: Ballot::default(),
                    fences: Vec::new(),
                }
            )],
        }]
    );
}

/// Paxos Made Simple §2.2 (P1a): a prepare below the promise is refused.
#[test]
fn prepare_below_the_promise_is_refused() {
    let mut acceptor = node(1, 3, MultiPaxosConfig::default());
    acceptor.handle_message(
        Time::ZERO,
        NodeId(2),
        Message::Prepare {
            ballot: ballot(4, 2),
            from_slot: 0,
        },
    );
    drain(&mut acceptor);
    acceptor.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::Prepare {
            ballot: ballot(4, 0),
            from_slot: 0,
        },
    );
    assert_eq!(
        drain(&mut acceptor),
        vec![now_send(
            0,
            Message::Nack {
                promised: ballot(4, 2)
            }
        )]
    );
}

/// Peer input never panics: a message whose ballot belongs to another node than its
/// sender, or from outside the cluster, is dropped and counted.
#[test]
fn malformed_messages_are_dropped_and_counted() {
    let mut acceptor = node(1, 3, MultiPaxosConfig::default());
    acceptor.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::Accept {
            ballot: ballot(9, 2),
            slot: 0,
            value: Batch::default(),
        },
    );
    acceptor.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::Prepare {
            ballot: ballot(9, 2),
            from_slot: 0,
        },
    );
    acceptor.handle_message(
        Time::ZERO,
        NodeId(7),
        Message::Heartbeat {
            ballot: ballot(9, 7),
            commit_point: 0,
            round: 1,
            fresh: None,
        },
    );
    acceptor.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::OwnPromiseDurable {
            ballot: ballot(9, 1),
        },
    );
    assert_eq!(drain(&mut acceptor), vec![]);
    assert_eq!(acceptor.metrics().get("dropped_malformed"), 4);
    assert_eq!(acceptor.promised(), Ballot::default());
}

/// A leader that sees a Prepare with a higher ballot stops leading and promises it.
#[test]
fn leader_steps_down_on_a_higher_prepare() {
    let mut leader = elected_leader(3, MultiPaxosConfig::default());
    leader.handle_message(
        Time::ZERO,
        NodeId(2),
        Message::Prepare {
            ballot: ballot(2, 2),
            from_slot: 0,
        },
    );
    assert!(!leader.is_leader());
    assert_eq!(leader.leader(), Some(NodeId(2)));
    assert_eq!(leader.promised(), ballot(2, 2));
}

/// Recovery: the promise and accepted values come back from the records, kept apart;
/// accepting in a ballot implies having promised it.
#[test]
fn restart_rebuilds_promise_and_accepted_values_from_records() {
    let records = vec![
        Record::Promised(ballot(2, 1)),
        Record::Accepted {
            slot: 0,
            ballot: ballot(2, 1),
            value: [proposal(1, 1)].into(),
        },
        Record::Accepted {
            slot: 1,
            ballot: ballot(3, 2),
            value: [proposal(2, 2)].into(),
        },
    ];
    let acceptor = MultiPaxos::new(
        NodeId(0),
        &cluster(3),
        MultiPaxosConfig::default(),
        1,
        records,
    );
    assert_eq!(acceptor.promised(), ballot(3, 2));
    assert_eq!(
        acceptor.log.accepted_from(0),
        vec![
            AcceptedEntry {
                slot: 0,
                ballot: ballot(2, 1),
                value: [proposal(1, 1)].into(),
                committed: false
            },
            AcceptedEntry {
                slot: 1,
                ballot: ballot(3, 2),
                value: [proposal(2, 2)].into(),
                committed: false
            }
        ]
    );
    assert!(
        acceptor.applied().is_empty(),
        "commits are re-learnt, not replayed"
    );
}
