//! Election handler tests: failure detection, phase 1, taking over the log.
//! Reference: Lamport, "Paxos Made Simple" (2001) §2.2 (phase 2a value rule), §3
//! (Multi-Paxos: phase 1 once for all slots, no-ops for gaps).

use super::test_support::*;
use super::*;

fn promise(from: u16, round: u64, accepted: Vec<AcceptedEntry>) -> (NodeId, Message) {
    (
        NodeId(from),
        Message::Promise {
            ballot: ballot(round, 0),
            accepted,
            lease_remaining_us: 0,
            fence: Ballot::default(),
            fences: Vec::new(),
        },
    )
}

fn entry(slot: Slot, round: u64, node: u16, seq: u64, committed: bool) -> AcceptedEntry {
    AcceptedEntry {
        slot,
        ballot: ballot(round, node),
        value: [proposal(seq, node)].into(),
        committed,
    }
}

fn candidate_1_0() -> MultiPaxos {
    let mut candidate = node(0, 3, MultiPaxosConfig::default());
    candidate.handle_timeout(Time::ZERO);
    drain(&mut candidate);
    candidate
}

/// The initial leader stands at its first input; its Prepare leaves only once its ballot
/// is durable, so a crash can never make it reuse that ballot for other proposals.
#[test]
fn candidate_sends_prepare_only_after_its_ballot_is_durable() {
    let mut candidate = node(0, 3, MultiPaxosConfig::default());
    candidate.handle_timeout(Time::ZERO);
    let prepare = Message::Prepare {
        ballot: ballot(1, 0),
        from_slot: 0,
    };
    assert_eq!(
        drain(&mut candidate),
        vec![Output::Persist {
            records: vec![Record::Promised(ballot(1, 0))],
            then: vec![
                send(
                    0,
                    Message::OwnPromiseDurable {
                        ballot: ballot(1, 0)
                    }
                ),
                send(1, prepare.clone()),
                send(2, prepare),
            ],
        }]
    );
    assert_eq!(candidate.metrics().get("elections_started"), 1);
    assert_eq!(candidate.metrics().get("phase1_rounds"), 1);
}

/// Paxos Made Simple §2.2 (phase 2a): the new leader proposes, per slot, the value of the
/// highest-ballot proposal among the promises, then heartbeats.
#[test]
fn new_leader_adopts_the_highest_ballot_value_from_promises() {
    let mut candidate = candidate_1_0();
    for (from, message) in [
        promise(1, 1, vec![entry(0, 0, 1, 1, false)]),
        promise(2, 1, vec![entry(0, 0, 2, 2, false)]),
    ] {
        candidate.handle_message(Time::ZERO, from, message);
    }
    assert!(candidate.is_leader());
    let own = ballot(1, 0);
    let value: Batch = [proposal(2, 2)].into();
    let accept = Message::Accept {
        ballot: own,
        slot: 0,
        value: value.clone(),
    };
    let heartbeat = Message::Heartbeat {
        ballot: own,
        commit_point: 0,
        round: 1,
        fresh: None,
    };
    assert_eq!(
        drain(&mut candidate),
        vec![
            Output::Persist {
                records: vec![Record::Accepted {
                    slot: 0,
                    ballot: own,
                    value
                }],
                then: vec![send(
                    0,
                    Message::Accepted {
                        ballot: own,
                        slot: 0
                    }
                )],
            },
            now_send(1, accept.clone()),
            now_send(2, accept),
            now_send(1, heartbeat.clone()),
            now_send(2, heartbeat),
        ]
    );
    assert_eq!(candidate.metrics().get("elections_won"), 1);
    assert_eq!(candidate.leader(), Some(NodeId(0)));
}

/// Multi-Paxos §3: slots with no accepted value below the highest reported one are
/// filled with no-ops (empty batches), and new requests go after them.
#[test]
fn new_leader_fills_gaps_with_no_ops() {
    let mut candidate = candidate_1_0();
    let (from, message) = promise(
        1,
        1,
        vec![entry(0, 0, 1, 1, false), entry(2, 0, 1, 3, false)],
    );
    candidate.handle_message(Time::ZERO, from, message);
    candidate.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::OwnPromiseDurable {
            ballot: ballot(1, 0),
        },
    );
    assert!(candidate.is_leader());
    let accepts: Vec<(Slot, Batch)> = sent_now(&drain(&mut candidate))
        .into_iter()
        .filter(|(to, _)| *to == NodeId(1))
        .filter_map(|(_, m)| match m {
            Message::Accept { slot, value, .. } => Some((slot, value)),
            _ => None,
        })
        .collect();
    assert_eq!(
        accepts,
        vec![
            (0, [proposal(1, 1)].into()),
            (1, Batch::default()),
            (2, [proposal(3, 1)].into())
        ]
    );
    candidate.handle_request(Time::ZERO, ClientRequest::new(request_id(9), put(9)));
    let next: Vec<Slot> = sent_now(&drain(&mut candidate))
        .into_iter()
        .filter_map(|(_, m)| match m {
            Message::Accept { slot, .. } => Some(slot),
            _ => None,
        })
        .collect();
    assert_eq!(next, vec![3, 3]);
}

/// A value a promiser already knows chosen is committed at once (no phase 2 for it), and
/// wins over a higher-ballot unchosen report.
#[test]
fn a_value_reported_chosen_is_committed_without_phase_2() {
    let mut candidate = candidate_1_0();
    let (from, message) = promise(1, 1, vec![entry(0, 0, 1, 1, true)]);
    candidate.handle_message(Time::ZERO, from, message);
    let (from, message) = promise(2, 1, vec![entry(0, 0, 2, 2, false)]);
    candidate.handle_message(Time::ZERO, from, message);
    assert!(candidate.is_leader());
    let outputs = drain(&mut candidate);
    assert!(
        sent_now(&outputs).contains(&(
            NodeId(2),
            Message::Commit {
                slot: 0,
                value: [proposal(1, 1)].into()
            }
        )),
        "{outputs:?}"
    );
    assert!(
        !outputs.iter().any(|o| matches!(o, Output::Persist { .. })),
        "re-proposed a chosen slot: {outputs:?}"
    );
    assert_eq!(candidate.applied().len(), 1);
    assert_eq!(candidate.applied()[0].request, request_id(1));
}

/// A replica restarted from its records stands with a ballot above the one it promised,
/// never the same one again.
#[test]
fn restarted_replica_stands_above_its_durable_promise() {
    let mut restarted = MultiPaxos::new(
        NodeId(0),
        &cluster(3),
        MultiPaxosConfig::default(),
        3,
        vec![Record::Promised(ballot(3, 0))],
    );
    restarted.handle_timeout(Time::ZERO);
    assert_eq!(
        drain(&mut restarted),
        vec![],
        "not fresh: waits for a leader"
    );
    let deadline = restarted.poll_timeout().expect("election timer armed");
    restarted.handle_timeout(deadline);
    let outputs = drain(&mut restarted);
    assert!(
        matches!(&outputs[..], [Output::Persist { records, .. }]
            if records == &vec![Record::Promised(ballot(4, 0))]),
        "{outputs:?}"
    );
}

/// Avoid futile elections: a Nack reveals a ballot we never promised; the candidate steps
/// down, and its next candidacy starts above that ballot.
#[test]
fn a_nack_steps_the_candidate_down_and_raises_its_next_ballot() {
    let mut candidate = candidate_1_0();
    candidate.handle_message(
        Time::ZERO,
        NodeId(1),
        Message::Nack {
            promised: ballot(7, 2),
        },
    );
    assert!(matches!(candidate.role, Role::Follower));
    assert_eq!(candidate.leader(), Some(NodeId(2)));
    let deadline = candidate.poll_timeout().expect("armed");
    candidate.handle_timeout(deadline);
    let outputs = drain(&mut candidate);
    assert!(
        matches!(&outputs[..], [Output::Persist { records, .. }]
            if records == &vec![Record::Promised(ballot(8, 0))]),
        "{outputs:?}"
    );
}

/// A deposed leader's heartbeat is refused, and the refusal deposes it.
#[test]
fn a_deposed_leader_steps_down_when_its_heartbeat_is_refused() {
    let mut follower = node(1, 3, MultiPaxosConfig::default());
    follower.handle_message(
        Time::ZERO,
        NodeId(2),
        Message::Prepare {
            ballot: ballot(2, 2),
            from_slot: 0,
        },
    );
    drain(&mut follower);
    follower.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::Heartbeat {
            ballot: ballot(1, 0),
            commit_point: 0,
            round: 1,
            fresh: None,
        },
    );
    let outputs = drain(&mut follower);
    assert_eq!(
        outputs,
        vec![now_send(
            0,
            Message::Nack {
                promised: ballot(2, 2)
            }
        )]
    );
    let mut leader = elected_leader(3, MultiPaxosConfig::default());
    leader.handle_message(
        Time::ZERO,
        NodeId(1),
        Message::Nack {
            promised: ballot(2, 2),
        },
    );
    assert!(!leader.is_leader());
    assert_eq!(leader.leader(), Some(NodeId(2)));
}

/// Failure detection: heartbeats keep a follower quiet; after a randomized silence in
/// `[t, 2t]` it stands.
#[test]
fn follower_stands_only_after_the_leader_falls_silent() {
    let config = MultiPaxosConfig::default();
    let timeout = config.election_timeout;
    let mut follower = node(1, 3, config);
    let heartbeat = Message::Heartbeat {
        ballot: ballot(1, 0),
        commit_point: 0,
        round: 1,
        fresh: None,
    };
    let mut now = Time::ZERO;
    for _ in 0..20 {
        follower.handle_message(now, NodeId(0), heartbeat.clone());
        let deadline = follower.poll_timeout().expect("armed");
        assert!(deadline >= now + timeout && deadline <= now + timeout * 2);
        now = now + timeout / 2;
        follower.handle_timeout(now);
    }
    assert_eq!(follower.metrics().get("elections_started"), 0);
    assert_eq!(follower.leader(), Some(NodeId(0)));
    let deadline = follower.poll_timeout().expect("armed");
    follower.handle_timeout(deadline);
    assert_eq!(follower.metrics().get("elections_started"), 1);
    assert_eq!(follower.promised(), ballot(2, 1));
}

/// Duelling candidates are rare because timeouts are drawn from each replica's seed.
#[test]
fn election_timeouts_differ_across_seeds() {
    let deadlines: std::collections::BTreeSet<Time> = (0..8)
        .map(|seed| {
            let mut follower = MultiPaxos::new(
                NodeId(1),
                &cluster(3),
                MultiPaxosConfig::default(),
                seed,
                Vec::new(),
            );
            follower.handle_timeout(Time::ZERO);
            follower.poll_timeout().expect("armed")
        })
        .collect();
    assert!(deadlines.len() >= 7, "{deadlines:?}");
}

/// Late or foreign promises are stale: dropped and counted, no state change.
#[test]
fn promises_for_another_ballot_are_dropped() {
    let mut candidate = candidate_1_0();
    let (from, message) = promise(1, 5, vec![]);
    candidate.handle_message(Time::ZERO, from, message);
    assert_eq!(drain(&mut candidate), vec![]);
    assert!(!candidate.is_leader());
    assert_eq!(candidate.metrics().get("dropped_stale"), 1);
}

/// A retiring leader asks the next replica to stand at once, steps down, and never
/// stands again however long it stays up.
#[test]
fn a_retiring_leader_hands_off_to_the_next_replica_and_never_stands_again() {
    let mut leader = elected_leader(3, MultiPaxosConfig::default());
    leader.hand_off(Time::ZERO);
    assert_eq!(
        sent_now(&drain(&mut leader)),
        vec![(
            NodeId(1),
            Message::TakeOver {
                ballot: ballot(1, 0)
            }
        )]
    );
    assert!(!leader.is_leader());
    assert_eq!(leader.metrics().get("hand_offs"), 1);
    for secs in 1..30 {
        leader.handle_timeout(Time::from_micros(secs * 1_000_000));
    }
    assert!(
        !drain(&mut leader)
            .iter()
            .any(|o| matches!(o, Output::Persist { records, .. } if records.iter().any(|r| matches!(r, Record::Promised(_))))),
        "a retiring replica stood for election"
    );
    assert_eq!(leader.metrics().get("elections_started"), 1);
}

/// The chosen successor stands at once; a take-over not from the ballot's owner, or
/// for a ballot below its promise, is dropped.
#[test]
fn a_follower_stands_on_take_over_from_the_current_leader_only() {
    let mut follower = node(1, 3, MultiPaxosConfig::default());
    follower.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::Heartbeat {
            ballot: ballot(2, 0),
            commit_point: 0,
            round: 1,
            fresh: None,
        },
    );
    drain(&mut follower);
    follower.handle_message(
        Time::ZERO,
        NodeId(2),
        Message::TakeOver {
            ballot: ballot(2, 0),
        },
    );
    follower.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::TakeOver {
            ballot: ballot(1, 0),
        },
    );
    assert_eq!(follower.metrics().get("elections_started"), 0);
    follower.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::TakeOver {
            ballot: ballot(2, 0),
        },
    );
    assert_eq!(follower.metrics().get("elections_started"), 1);
    assert_eq!(follower.metrics().get("take_overs"), 1);
    assert!(matches!(
        drain(&mut follower).as_slice(),
        [Output::Persist { records, .. }] if records == &vec![Record::Promised(ballot(3, 1))]
    ));
}
