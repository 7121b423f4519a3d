//! Client intake tests: forwarding, replies through the contacted replica, local reads,
//! retries across leader changes.

use super::test_support::*;
use super::*;
use crate::command::{Command, CommandResult};
use crate::protocol::Effect;
use crate::request::{ClientReply, Consistency, Level, Response};
use std::time::Duration;

fn follower_of_0() -> MultiPaxos {
    let mut follower = node(1, 3, MultiPaxosConfig::default());
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
    drain(&mut follower);
    follower
}

/// A follower forwards to the leader it believes in, and answers its client when it
/// executes the committed slot (the reply travels back through it).
#[test]
fn follower_forwards_and_replies_when_it_executes() {
    let mut follower = follower_of_0();
    follower.handle_request(Time::ZERO, ClientRequest::new(request_id(1), put(1)));
    assert_eq!(
        drain(&mut follower),
        vec![now_send(
            0,
            Message::Forward {
                proposal: proposal(1, 1),
                hops: 0
            }
        )]
    );
    assert_eq!(follower.metrics().get("forwarded"), 1);
    follower.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::Commit {
            slot: 0,
            value: [proposal(1, 1)].into(),
        },
    );
    assert_eq!(
        drain(&mut follower),
        vec![Output::Now(Effect::Reply(ClientReply {
            id: request_id(1),
            outcome: Ok(Response::Kv(CommandResult::Written)),
        }))]
    );
    assert_eq!(follower.pending_requests(), 0);
}

/// Another replica's client request executes here without a reply from here.
#[test]
fn only_the_contacted_replica_replies() {
    let mut follower = follower_of_0();
    follower.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::Commit {
            slot: 0,
            value: [proposal(1, 2)].into(),
        },
    );
    assert_eq!(drain(&mut follower), vec![]);
    assert_eq!(follower.applied().len(), 1);
}

/// `LocalRead` answers a read from the applied state at once (possibly stale); a write
/// with `LocalRead` still goes through the log.
#[test]
fn local_read_answers_from_applied_state() {
    let mut follower = follower_of_0();
    follower.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::Commit {
            slot: 0,
            value: [proposal(1, 0)].into(),
        },
    );
    let read = ClientRequest::new(request_id(2), Command::Get { key: b"k".to_vec() })
        .with_consistency(Consistency::LocalRead);
    follower.handle_request(Time::ZERO, read);
    assert_eq!(
        drain(&mut follower),
        vec![Output::Now(Effect::Reply(ClientReply {
            id: request_id(2),
            outcome: Ok(Response::Kv(CommandResult::Value(Some(
                1u64.to_le_bytes().to_vec()
            )))),
        }))]
    );
    let write = ClientRequest::new(request_id(3), put(3)).with_consistency(Consistency::LocalRead);
    follower.handle_request(Time::ZERO, write);
    assert!(matches!(
        &sent_now(&drain(&mut follower))[..],
        [(_, Message::Forward { .. })]
    ));
}

/// Linearizable reads take a slot like any write.
#[test]
fn linearizable_reads_go_through_the_log() {
    let mut leader = elected_leader(3, MultiPaxosConfig::default());
    leader.handle_request(
        Time::ZERO,
        ClientRequest::new(request_id(1), Command::Get { key: b"k".to_vec() }),
    );
    let outputs = drain(&mut leader);
    assert!(matches!(&outputs[0], Output::Persist { records, .. }
        if matches!(&records[..], [Record::Accepted { slot: 0, .. }])));
}

/// A Dynamo level is invalid on a Multi-Paxos keyspace.
#[test]
fn dynamo_levels_are_rejected_as_invalid() {
    let mut follower = follower_of_0();
    let request = ClientRequest::new(request_id(1), put(1))
        .with_consistency(Consistency::Dynamo(Level::Quorum));
    follower.handle_request(Time::ZERO, request);
    let outputs = drain(&mut follower);
    assert!(matches!(&outputs[..],
        [Output::Now(Effect::Reply(ClientReply { outcome: Err(e), .. }))] if e.is_definite()));
}

/// Pending requests follow the leader: on a leader change they are forwarded to the new
/// one; with no leader known they wait, then leave when one is known.
#[test]
fn pending_requests_are_forwarded_again_to_a_new_leader() {
    let mut replica = node(1, 3, MultiPaxosConfig::default());
    replica.handle_request(Time::ZERO, ClientRequest::new(request_id(1), put(1)));
    assert_eq!(drain(&mut replica), vec![], "no leader known yet");
    replica.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::Heartbeat {
            ballot: ballot(1, 0),
            commit_point: 0,
            round: 1,
            fresh: None,
        },
    );
    let forward_to = |outputs: Vec<Output<Message, Record>>| -> Vec<NodeId> {
        sent_now(&outputs)
            .into_iter()
            .filter(|(_, m)| matches!(m, Message::Forward { .. }))
            .map(|(to, _)| to)
            .collect()
    };
    assert_eq!(forward_to(drain(&mut replica)), vec![NodeId(0)]);
    replica.handle_message(
        Time::ZERO,
        NodeId(2),
        Message::Heartbeat {
            ballot: ballot(2, 2),
            commit_point: 0,
            round: 1,
            fresh: None,
        },
    );
    assert_eq!(forward_to(drain(&mut replica)), vec![NodeId(2)]);
    assert_eq!(replica.pending_requests(), 1);
}

/// A forward that got lost is retried after `forward_retry`; after
/// `max_forward_attempts` the replica gives up with a timeout (unknown outcome).
#[test]
fn forwards_are_retried_then_abandoned_with_a_timeout() {
    let config = MultiPaxosConfig::default()
        .with_forward_retry(Duration::from_millis(100), 3)
        .with_election_timeout(Duration::from_secs(60));
    let mut replica = node(1, 3, config);
    let heartbeat = Message::Heartbeat {
        ballot: ballot(1, 0),
        commit_point: 0,
        round: 1,
        fresh: None,
    };
    replica.handle_message(Time::ZERO, NodeId(0), heartbeat.clone());
    replica.handle_request(Time::ZERO, ClientRequest::new(request_id(1), put(1)));
    drain(&mut replica);
    let mut forwards = 1;
    let mut reply = None;
    for step in 1..=5 {
        let now = Time::from_millis(100 * step);
        replica.handle_message(now, NodeId(0), heartbeat.clone());
        if replica.poll_timeout().is_some_and(|t| t <= now) {
            replica.handle_timeout(now);
        }
        for output in drain(&mut replica) {
            match output {
                Output::Now(Effect::Send {
                    message: Message::Forward { .. },
                    ..
                }) => forwards += 1,
                Output::Now(Effect::Reply(r)) => reply = Some(r),
                _ => {}
            }
        }
    }
    assert_eq!(forwards, 3);
    assert_eq!(reply, Some(timed_out(request_id(1))));
    assert_eq!(replica.pending_requests(), 0);
    assert_eq!(replica.metrics().get("requests_timed_out"), 1);
}

/// A candidate keeps forwarded requests and proposes them once it wins.
#[test]
fn a_candidate_proposes_forwarded_requests_once_elected() {
    let mut candidate = node(0, 3, MultiPaxosConfig::default());
    candidate.handle_timeout(Time::ZERO);
    drain(&mut candidate);
    candidate.handle_message(
        Time::ZERO,
        NodeId(2),
        Message::Forward {
            proposal: proposal(5, 2),
            hops: 0,
        },
    );
    assert_eq!(drain(&mut candidate), vec![]);
    for from in [1, 2] {
        candidate.handle_message(
            Time::ZERO,
            NodeId(from),
            Message::Promise {
                ballot: ballot(1, 0),
                accepted: vec![],
                lease_remaining_us: 0,
                fence: Ballot::default(),
                fences: Vec::new(),
            },
        );
    }
    assert!(candidate.is_leader());
    let accepts: Vec<Batch> = sent_now(&drain(&mut candidate))
        .into_iter()
        .filter(|(to, _)| *to == NodeId(1))
        .filter_map(|(_, m)| match m {
            Message::Accept { value, .. } => Some(value),
            _ => None,
        })
        .collect();
    assert_eq!(accepts, vec![Batch::from([proposal(5, 2)])]);
}
