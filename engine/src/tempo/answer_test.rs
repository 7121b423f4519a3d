//! When a coordinator answers its client: a put or delete once a majority's clocks cover
//! its committed timestamp (its result does not depend on the commands before it), any
//! other command once it executes; and the coordinator proposes above every clock
//! announced on the key.

use super::test_support::*;
use super::*;
use crate::command::Command;
use crate::id::{ClientId, NodeId, RequestId};
use crate::protocol::Effect;
use std::time::Duration;

/// Every output so far: the messages to send and the client replies.
fn drain(core: &mut Tempo) -> (Vec<(NodeId, Message)>, Vec<ClientReply>) {
    let (mut sent, mut replies) = (Vec::new(), Vec::new());
    while let Some(output) = core.poll_output() {
        let effects = match output {
            Output::Persist { then, .. } => then,
            Output::Now(effect) => vec![effect],
            Output::Compact { .. } => Vec::new(),
        };
        for effect in effects {
            match effect {
                Effect::Send { to, message } => sent.push((to, message)),
                Effect::Reply(reply) => replies.push(reply),
                _ => {}
            }
        }
    }
    (sent, replies)
}

/// Hand `core` the messages it sent itself; returns what it sends and answers next.
fn deliver_own(
    core: &mut Tempo,
    now: Time,
    sent: Vec<(NodeId, Message)>,
) -> (Vec<(NodeId, Message)>, Vec<ClientReply>) {
    for (to, message) in sent {
        if to == core.id() {
            core.handle_message(now, to, message);
        }
    }
    drain(core)
}

/// Replica 0 of 5 (fast quorum 0, 1, 2) coordinates `command` (a `resend` or not) on key
/// `k`; members 1 and
/// 2 propose 5, and member 2 also proposed 3 for replica 4's command `other`, which has
/// not committed. Returns the core, `other` and the replies so far, after the commit is
/// durable and replica 0 announced its clock.
fn blocked_by_a_lower_proposal(
    command: Command,
    resend: bool,
    config: TempoConfig,
) -> (Tempo, Dot, Vec<ClientReply>) {
    let mut core = Tempo::new(NodeId(0), &Membership::local(5), config, 0, Vec::new());
    let id = RequestId {
        client: ClientId(1),
        seq: 1,
    };
    let request = ClientRequest::new(id, command);
    let request = if resend { request.resent() } else { request };
    core.handle_request(Time::ZERO, request);
    let (sent, _) = drain(&mut core);
    let dot = Dot {
        node: NodeId(0),
        seq: 1,
    };
    let other = Dot {
        node: NodeId(4),
        seq: 1,
    };
    let (mut sent, mut replies) = deliver_own(&mut core, Time::ZERO, sent);
    for (from, attached) in [(1, vec![(5, dot)]), (2, vec![(3, other), (5, dot)])] {
        let promise = promise(5, attached);
        let ack = Message::ProposeAck {
            dot,
            ts: 5,
            promise,
            lane: lane(5),
            collected: Vec::new(),
        };
        core.handle_message(Time::ZERO, NodeId(from), ack);
        let (more, answered) = drain(&mut core);
        sent.extend(more);
        replies.extend(answered);
    }
    assert!(sent
        .iter()
        .any(|(_, m)| matches!(m, Message::Commit { ts: 5, .. })));
    // The durable commit, then the announcement of replica 0's clock (5).
    let (_, answered) = deliver_own(&mut core, Time::ZERO, sent);
    replies.extend(answered);
    let later = Time::ZERO + Duration::from_millis(5);
    core.handle_timeout(later);
    let (sent, answered) = drain(&mut core);
    replies.extend(answered);
    let (_, answered) = deliver_own(&mut core, later, sent);
    replies.extend(answered);
    assert!(core.executed().is_empty(), "{:?}", core.executed());
    (core, other, replies)
}

/// `other` commits with 3 here; its durable commit lets both commands run.
fn commit_other(core: &mut Tempo, other: Dot) -> Vec<ClientReply> {
    let payload = Payload {
        request: RequestId {
            client: ClientId(9),
            seq: 1,
        },
        resend: false,
        command: Command::Put {
            key: b"k".to_vec(),
            value: b"other".to_vec(),
        },
        quorum: vec![NodeId(4), NodeId(2), NodeId(3)],
        config_epoch: 0,
        change: None,
    };
    let now = Time::ZERO + Duration::from_millis(6);
    let commit = Message::Commit {
        dot: other,
        payload,
        ts: 3,
    };
    core.handle_message(now, NodeId(4), commit);
    let (sent, _) = drain(core);
    let (_, replies) = deliver_own(core, now, sent);
    let order: Vec<u64> = core.executed().iter().map(|e| e.ts).collect();
    assert_eq!(order, vec![3, 5]);
    replies
}

#[test]
fn a_put_is_answered_once_its_timestamp_is_promised_before_a_lower_proposal_commits() {
    let put = Command::Put {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
    };
    let (mut core, other, replies) = blocked_by_a_lower_proposal(put, false, config(1));
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0].outcome, Ok(Response::Kv(CommandResult::Written)));
    assert_eq!(core.metrics().get("answered_when_promised"), 1);
    // It runs after the lower command commits, and is not answered again.
    assert!(commit_other(&mut core, other).is_empty());
    assert_eq!(
        core.kv().read_only(&Command::Get { key: b"k".to_vec() }),
        Some(CommandResult::Value(Some(b"v".to_vec())))
    );
}

/// A read or a CAS depends on what runs before it; a resend may be refused
/// (`SessionExpired`, docs/design.md#sessions); and the option can be turned off.
#[test]
fn reads_cas_resends_and_writes_with_the_option_off_wait_for_execution() {
    let get = Command::Get { key: b"k".to_vec() };
    let cas = Command::Cas {
        key: b"k".to_vec(),
        expected: None,
        new: b"v".to_vec(),
    };
    let put = Command::Put {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
    };
    let off = TempoConfig {
        answer_promised_writes: false,
        ..config(1)
    };
    let cases = [
        (get, false, config(1)),
        (cas, false, config(1)),
        (put.clone(), true, config(1)),
        (put, false, off),
    ];
    for (command, resend, config) in cases {
        let (mut core, other, replies) =
            blocked_by_a_lower_proposal(command.clone(), resend, config);
        assert!(replies.is_empty(), "{command:?}: {replies:?}");
        let replies = commit_other(&mut core, other);
        assert_eq!(replies.len(), 1, "{command:?}: {replies:?}");
        assert_eq!(core.metrics().get("answered_when_promised"), 0);
    }
}

#[test]
fn a_coordinator_proposes_above_every_clock_announced_on_the_key() {
    let mut core = replica(5, 0, 1);
    let announced = Message::Promises {
        keys: vec![promise(41, Vec::new())].into(),
        collected: Vec::new(),
    };
    core.handle_message(Time::ZERO, NodeId(3), announced);
    core.handle_request(Time::ZERO, request(1, "k"));
    let (sent, _) = drain(&mut core);
    let proposed: Vec<u64> = sent
        .iter()
        .filter_map(|(_, m)| match m {
            Message::Propose { ts, .. } => Some(*ts),
            _ => None,
        })
        .collect();
    assert_eq!(proposed, vec![42; 4]);
}
