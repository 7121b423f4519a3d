//! Leader handler tests: phase 2, pipelining, batching, retransmission.
//! Reference: Lamport, "Paxos Made Simple" (2001) §2.2 (a value is chosen once a quorum
//! accepted it), §3 (many instances in flight).

use super::test_support::*;
use super::*;
use crate::command::CommandResult;
use crate::protocol::{CommitPath, Effect};
use crate::request::{ClientReply, Response};

fn accepted(from: u16, slot: Slot) -> (NodeId, Message) {
    (
        NodeId(from),
        Message::Accepted {
            ballot: ballot(1, 0),
            slot,
        },
    )
}

/// The Accept leaves at once, the leader's own vote only after its accept is durable; a
/// peer's vote alone is no majority of 3; with the durable own vote the slot commits, the
/// leader executes, replies, and tells followers.
#[test]
fn leader_commits_at_a_majority_counting_its_own_durable_vote() {
    let mut leader = elected_leader(3, MultiPaxosConfig::default());
    let own = ballot(1, 0);
    leader.handle_request(Time::ZERO, ClientRequest::new(request_id(1), put(1)));
    let value: Batch = [proposal(1, 0)].into();
    let accept = Message::Accept {
        ballot: own,
        slot: 0,
        value: value.clone(),
    };
    assert_eq!(
        drain(&mut leader),
        vec![
            Output::Persist {
                records: vec![Record::Accepted {
                    slot: 0,
                    ballot: own,
                    value: value.clone()
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
        ]
    );
    let (from, message) = accepted(1, 0);
    leader.handle_message(Time::ZERO, from, message);
    assert_eq!(drain(&mut leader), vec![], "committed without a majority");
    let (from, message) = accepted(0, 0);
    leader.handle_message(Time::ZERO, from, message);
    let commit = Message::Commit { slot: 0, value };
    assert_eq!(
        drain(&mut leader),
        vec![
            Output::Now(Effect::Committed {
                request: request_id(1),
                path: CommitPath::Leader
            }),
            now_send(1, commit.clone()),
            now_send(2, commit),
            Output::Now(Effect::Reply(ClientReply {
                id: request_id(1),
                outcome: Ok(Response::Kv(CommandResult::Written)),
            })),
        ]
    );
    assert_eq!(leader.applied().len(), 1);
    assert_eq!(leader.metrics().get("commits"), 1);
    // The third vote comes late: stale, dropped, counted.
    let (from, message) = accepted(2, 0);
    leader.handle_message(Time::ZERO, from, message);
    assert_eq!(drain(&mut leader), vec![]);
    assert_eq!(leader.metrics().get("dropped_stale"), 1);
}

/// Pipelining: many slots are proposed before any commits; they commit out of order and
/// execute in slot order.
#[test]
fn leader_pipelines_slots_and_executes_them_in_order() {
    let mut leader = elected_leader(3, MultiPaxosConfig::default());
    for seq in 0..3 {
        leader.handle_request(Time::ZERO, ClientRequest::new(request_id(seq), put(seq)));
    }
    let slots: Vec<Slot> = sent_now(&drain(&mut leader))
        .into_iter()
        .filter(|(to, _)| *to == NodeId(1))
        .filter_map(|(_, m)| match m {
            Message::Accept { slot, .. } => Some(slot),
            _ => None,
        })
        .collect();
    assert_eq!(slots, vec![0, 1, 2]);
    for slot in [2, 1] {
        for from in [0, 1] {
            let (from, message) = accepted(from, slot);
            leader.handle_message(Time::ZERO, from, message);
        }
    }
    assert!(
        leader.applied().is_empty(),
        "executed past the hole at slot 0"
    );
    for from in [0, 2] {
        let (from, message) = accepted(from, 0);
        leader.handle_message(Time::ZERO, from, message);
    }
    let order: Vec<Slot> = leader.applied().iter().map(|e| e.slot).collect();
    assert_eq!(order, vec![0, 1, 2]);
}

/// The Accepts sent to replica 1, as `(slot, request seqs)`.
fn accepts(outputs: Vec<Output<Message, Record>>) -> Vec<(Slot, Vec<u64>)> {
    sent_now(&outputs)
        .into_iter()
        .filter(|(to, _)| *to == NodeId(1))
        .filter_map(|(_, m)| match m {
            Message::Accept { slot, value, .. } => {
                Some((slot, value.iter().map(|p| p.request.seq).collect()))
            }
            _ => None,
        })
        .collect()
}

/// Batching packs only what is already queued: with a full window (1 slot in flight) the
/// first request goes alone, the next four wait, then fill slots of up to 3 commands.
#[test]
fn batching_packs_only_already_queued_requests() {
    let mut leader = elected_leader(3, MultiPaxosConfig::default().with_batching(3, 1));
    for seq in 0..5 {
        leader.handle_request(Time::ZERO, ClientRequest::new(request_id(seq), put(seq)));
    }
    assert_eq!(accepts(drain(&mut leader)), vec![(0, vec![0])]);
    for from in [0, 1] {
        let (from, message) = accepted(from, 0);
        leader.handle_message(Time::ZERO, from, message);
    }
    assert_eq!(accepts(drain(&mut leader)), vec![(1, vec![1, 2, 3])]);
    for from in [0, 1] {
        let (from, message) = accepted(from, 1);
        leader.handle_message(Time::ZERO, from, message);
    }
    assert_eq!(accepts(drain(&mut leader)), vec![(2, vec![4])]);
    assert_eq!(leader.applied().len(), 4);
}

/// Adaptive batching (`max_batch` above 1): requests handed over in one burst share a slot,
/// up to `max_batch` commands and `max_batch_bytes`; a burst of one is proposed at its
/// end, in the same input, and nothing is proposed before the burst ends.
#[test]
fn a_burst_of_requests_shares_slots_and_a_lone_request_goes_at_once() {
    let mut leader = elected_leader(3, MultiPaxosConfig::default().with_max_batch(256));
    leader.begin_burst();
    for seq in 0..5 {
        leader.handle_request(Time::ZERO, ClientRequest::new(request_id(seq), put(seq)));
    }
    assert!(
        accepts(drain(&mut leader)).is_empty(),
        "held to the burst's end"
    );
    leader.end_burst(Time::ZERO);
    assert_eq!(accepts(drain(&mut leader)), vec![(0, vec![0, 1, 2, 3, 4])]);
    leader.begin_burst();
    leader.handle_request(Time::ZERO, ClientRequest::new(request_id(5), put(5)));
    leader.end_burst(Time::ZERO);
    assert_eq!(accepts(drain(&mut leader)), vec![(1, vec![5])]);
    for slot in [0, 1] {
        for from in [0, 1] {
            let (from, message) = accepted(from, slot);
            leader.handle_message(Time::ZERO, from, message);
        }
    }
    assert_eq!(
        leader.applied().len(),
        6,
        "two slots, six commands, each applied"
    );
    assert_eq!(leader.metrics().get("slots_proposed"), 2);
    assert_eq!(leader.metrics().get("commands_proposed"), 6);

    let mut config = MultiPaxosConfig::default().with_max_batch(2);
    config.max_batch_bytes = 1;
    let mut small = elected_leader(3, config);
    small.begin_burst();
    for seq in 0..3 {
        small.handle_request(Time::ZERO, ClientRequest::new(request_id(seq), put(seq)));
    }
    small.end_burst(Time::ZERO);
    assert_eq!(
        accepts(drain(&mut small)),
        vec![(0, vec![0]), (1, vec![1]), (2, vec![2])],
        "each command alone passes max_batch_bytes"
    );
    let mut pairs = elected_leader(3, MultiPaxosConfig::default().with_max_batch(2));
    pairs.begin_burst();
    for seq in 0..5 {
        pairs.handle_request(Time::ZERO, ClientRequest::new(request_id(seq), put(seq)));
    }
    pairs.end_burst(Time::ZERO);
    assert_eq!(
        accepts(drain(&mut pairs)),
        vec![(0, vec![0, 1]), (1, vec![2, 3]), (2, vec![4])]
    );
}

/// A slot that waits too long for a quorum has its Accept resent to the acceptors that
/// have not voted, on the heartbeat tick.
#[test]
fn unanswered_accepts_are_resent_to_non_voters() {
    let config = MultiPaxosConfig::default();
    let retry = config.election_timeout / 2;
    let mut leader = elected_leader(5, config);
    leader.handle_request(Time::ZERO, ClientRequest::new(request_id(1), put(1)));
    drain(&mut leader);
    let (from, message) = accepted(3, 0);
    leader.handle_message(Time::ZERO, from, message);
    let later = Time::ZERO + retry;
    leader.handle_timeout(later);
    let resent: Vec<NodeId> = sent_now(&drain(&mut leader))
        .into_iter()
        .filter(|(_, m)| matches!(m, Message::Accept { .. }))
        .map(|(to, _)| to)
        .collect();
    assert_eq!(resent, vec![NodeId(1), NodeId(2), NodeId(4)]);
    assert_eq!(leader.metrics().get("accepts_resent"), 1);
}

/// A forwarded retry of a request already in an uncommitted slot is not proposed twice.
#[test]
fn a_forwarded_retry_of_an_in_flight_request_is_not_proposed_again() {
    let mut leader = elected_leader(3, MultiPaxosConfig::default());
    let forward = Message::Forward {
        proposal: proposal(1, 2),
        hops: 0,
    };
    leader.handle_message(Time::ZERO, NodeId(2), forward.clone());
    assert_eq!(sent_now(&drain(&mut leader)).len(), 2);
    leader.handle_message(Time::ZERO, NodeId(2), forward);
    assert_eq!(drain(&mut leader), vec![]);
}

/// Votes for another ballot or from a replica that is not leading are stale.
#[test]
fn votes_for_another_ballot_are_dropped() {
    let mut leader = elected_leader(3, MultiPaxosConfig::default());
    leader.handle_request(Time::ZERO, ClientRequest::new(request_id(1), put(1)));
    drain(&mut leader);
    for from in [1, 2] {
        leader.handle_message(
            Time::ZERO,
            NodeId(from),
            Message::Accepted {
                ballot: ballot(0, 2),
                slot: 0,
            },
        );
    }
    assert_eq!(drain(&mut leader), vec![]);
    assert_eq!(leader.metrics().get("commits"), 0);
    assert_eq!(leader.metrics().get("dropped_stale"), 2);
}

/// Flexible quorums: with Q2 = 2 of 5 the leader commits with one peer's vote plus its
/// own.
#[test]
fn flexible_phase_2_quorum_commits_with_two_votes_of_five() {
    let quorums = PaxosQuorums::flexible(5, 4, 2).expect("valid");
    let mut leader = elected_leader(5, MultiPaxosConfig::default().with_quorums(quorums));
    leader.handle_request(Time::ZERO, ClientRequest::new(request_id(1), put(1)));
    drain(&mut leader);
    for from in [0, 4] {
        let (from, message) = accepted(from, 0);
        leader.handle_message(Time::ZERO, from, message);
    }
    assert_eq!(leader.metrics().get("commits"), 1);
}

/// A non-voter's vote does not count (docs/design.md#membership): with node 3 outside a
/// three-voter configuration, the leader's durable vote and node 3's Accepted are no
/// quorum; a voter's Accepted makes one.
#[test]
fn a_non_voters_accepted_is_not_counted_toward_a_quorum() {
    let config =
        MultiPaxosConfig::default().with_initial_members(vec![NodeId(0), NodeId(1), NodeId(2)]);
    let mut leader = elected_leader(4, config);
    assert_eq!(leader.configuration().voter_count(), 3);
    leader.handle_request(Time::ZERO, ClientRequest::new(request_id(1), put(1)));
    drain(&mut leader);
    for from in [0, 3] {
        let (from, message) = accepted(from, 0);
        leader.handle_message(Time::ZERO, from, message);
    }
    assert_eq!(drain(&mut leader), vec![], "a learner's vote made a quorum");
    let (from, message) = accepted(1, 0);
    leader.handle_message(Time::ZERO, from, message);
    let outputs = drain(&mut leader);
    assert!(
        outputs.iter().any(|o| matches!(
            o,
            Output::Now(Effect::Committed { request, .. }) if *request == request_id(1)
        )),
        "a voter's vote did not commit: {outputs:?}"
    );
}
