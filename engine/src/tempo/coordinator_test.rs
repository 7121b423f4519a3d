//! The coordinator's paths, handler by handler: with f = 1 the fast path is always
//! taken; with f = 2 it needs the highest proposal from two fast-quorum members, else
//! consensus (the slow path) on that highest proposal.

use super::test_support::*;
use super::*;
use crate::id::NodeId;
use crate::protocol::Effect;

/// Replica 0 of 5 coordinates one put; returns it with its command's dot and proposal.
fn coordinate(f: usize) -> (Tempo, Dot, KeyPromise) {
    let mut core = replica(5, 0, f);
    core.handle_request(Time::ZERO, request(1, "k"));
    let (records, sent) = synced(&mut core);
    assert!(matches!(records[..], [Record::Proposed { ts: 1, .. }]));
    // The Propose goes to everyone, the own proposal to itself behind the record.
    assert_eq!(
        sent.iter()
            .filter(|(_, m)| matches!(m, Message::Propose { ts: 1, .. }))
            .count(),
        4
    );
    let Some((_, Message::ProposeAck { dot, promise, .. })) = sent
        .iter()
        .find(|(to, m)| *to == NodeId(0) && matches!(m, Message::ProposeAck { .. }))
        .cloned()
    else {
        panic!("no own proposal in {sent:?}");
    };
    (core, dot, promise)
}

/// Member `from`'s proposal `ts` for `dot` on `k`, with its promise at `ts`.
pub(super) fn ack(core: &mut Tempo, from: u16, dot: Dot, ts: u64) {
    let promise = KeyPromise {
        key: b"k".to_vec(),
        clock: ts,
        attached: vec![(ts, dot)],
        since: None,
        lineage: 0,
        epoch: 0,
    };
    let message = Message::ProposeAck {
        dot,
        ts,
        promise,
        lane: lane(ts),
        collected: Vec::new(),
    };
    core.handle_message(Time::ZERO, NodeId(from), message);
}

/// The coordinator's own proposal (ts 1, from [`coordinate`]) delivered back to it.
fn own_ack(core: &mut Tempo, dot: Dot, promise: KeyPromise) {
    let own = Message::ProposeAck {
        dot,
        ts: 1,
        promise,
        lane: lane(1),
        collected: Vec::new(),
    };
    core.handle_message(Time::ZERO, NodeId(0), own);
}

fn committed_with(sent: &[(NodeId, Message)]) -> Option<u64> {
    sent.iter().find_map(|(_, m)| match m {
        Message::Commit { ts, .. } => Some(*ts),
        _ => None,
    })
}

#[test]
fn f1_commits_on_the_fast_path_with_the_highest_proposal_even_if_one_member_made_it() {
    let (mut core, dot, promise) = coordinate(1);
    assert_eq!(core.fast_quorum(), &[NodeId(0), NodeId(1), NodeId(2)]);
    own_ack(&mut core, dot, promise);
    ack(&mut core, 1, dot, 1);
    ack(&mut core, 2, dot, 7);
    let (records, sent) = synced(&mut core);
    assert!(matches!(records[..], [Record::Committed { ts: 7, .. }]));
    assert_eq!(committed_with(&sent), Some(7));
    assert_eq!(core.metrics().get("fast_path"), 1);
}

/// The host hears that its client's command committed at the decision, before the
/// commit record is durable (as EPaxos and Multi-Paxos report it); the Commit to peers
/// still waits for the record.
#[test]
fn the_host_hears_of_a_commit_at_the_decision() {
    let (mut core, dot, promise) = coordinate(1);
    own_ack(&mut core, dot, promise);
    ack(&mut core, 1, dot, 1);
    ack(&mut core, 2, dot, 1);
    let outputs: Vec<_> = std::iter::from_fn(|| core.poll_output()).collect();
    let committed = outputs
        .iter()
        .position(|o| matches!(o, Output::Now(Effect::Committed { .. })))
        .expect("the host hears of the commit");
    let record = outputs
        .iter()
        .position(|o| {
            matches!(o, Output::Persist { records, .. }
                if matches!(records[..], [Record::Committed { .. }]))
        })
        .expect("the commit record");
    assert!(committed < record, "{outputs:?}");
}

#[test]
fn f2_takes_the_slow_path_when_the_highest_proposal_has_one_reporter() {
    let (mut core, dot, promise) = coordinate(2);
    assert_eq!(core.fast_quorum().len(), 4);
    core.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::ProposeAck {
            dot,
            ts: 1,
            promise,
            lane: lane(1),
            collected: Vec::new(),
        },
    );
    ack(&mut core, 1, dot, 1);
    ack(&mut core, 2, dot, 3);
    ack(&mut core, 3, dot, 5);
    let (records, sent) = synced(&mut core);
    assert_eq!(
        committed_with(&sent),
        None,
        "no fast commit: 5 was reported once"
    );
    let ballot = Ballot {
        round: 1,
        node: NodeId(0),
    };
    assert!(matches!(records[..], [Record::Accepted { ts: 5, ballot: b, .. }] if b == ballot));
    let consensus = sent
        .iter()
        .filter(|(_, m)| matches!(m, Message::Consensus { ts: 5, .. }))
        .count();
    assert_eq!(consensus, 4);
    // f + 1 = 3 accepts (its own included) commit it.
    for from in [0, 1, 4] {
        let message = Message::ConsensusAck { dot, ballot };
        core.handle_message(Time::ZERO, NodeId(from), message);
    }
    let (records, sent) = synced(&mut core);
    assert!(matches!(records[..], [Record::Committed { ts: 5, .. }]));
    assert_eq!(committed_with(&sent), Some(5));
    assert_eq!(core.metrics().get("slow_path"), 1);
    assert_eq!(core.metrics().get("fast_path"), 0);
}

#[test]
fn f2_commits_fast_when_two_members_report_the_highest_proposal() {
    let (mut core, dot, promise) = coordinate(2);
    core.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::ProposeAck {
            dot,
            ts: 1,
            promise,
            lane: lane(1),
            collected: Vec::new(),
        },
    );
    ack(&mut core, 1, dot, 1);
    ack(&mut core, 2, dot, 5);
    ack(&mut core, 3, dot, 5);
    let (_, sent) = synced(&mut core);
    assert_eq!(committed_with(&sent), Some(5));
    assert_eq!(core.metrics().get("fast_path"), 1);
}

#[test]
fn a_member_proposes_above_its_clock_durably_before_answering() {
    let mut member = replica(5, 1, 1);
    let (mut coordinator, dot, _) = coordinate(1);
    let _ = synced(&mut coordinator);
    // The member already has clock 4 on the key from an earlier command.
    let earlier = Dot {
        node: NodeId(2),
        seq: 1,
    };
    let payload = Payload {
        request: request(9, "k").id,
        resend: false,
        command: request(9, "k").command,
        quorum: vec![NodeId(2), NodeId(1), NodeId(3)],
        config_epoch: 0,
        change: None,
    };
    member.handle_message(
        Time::ZERO,
        NodeId(2),
        Message::Propose {
            dot: earlier,
            payload,
            ts: 4,
        },
    );
    let _ = synced(&mut member);
    let payload = Payload {
        request: request(1, "k").id,
        resend: false,
        command: request(1, "k").command,
        quorum: vec![NodeId(0), NodeId(1), NodeId(2)],
        config_epoch: 0,
        change: None,
    };
    member.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::Propose {
            dot,
            payload,
            ts: 1,
        },
    );
    let (records, sent) = synced(&mut member);
    assert!(matches!(records[..], [Record::Proposed { ts: 5, .. }]));
    let Some((_, Message::ProposeAck { ts, promise, .. })) = sent.first() else {
        panic!("no answer: {sent:?}");
    };
    assert_eq!(*ts, 5);
    assert_eq!(promise.clock, 5);
    assert_eq!(promise.attached, vec![(4, earlier), (5, dot)]);
}

/// Tempo orders a command only by its key's clock, so a linearizable range read is
/// refused (saying why); a local one reads this replica's state.
#[test]
fn range_reads_are_refused_unless_local() {
    use crate::command::Command;
    use crate::protocol::Effect;
    use crate::request::{ClientReply, Consistency, RequestError, Response};
    let mut core = replica(3, 0, 1);
    let mut count = request(1, "k");
    count.command = Command::Count { prefix: Vec::new() };
    core.handle_request(Time::ZERO, count.clone());
    count.id.seq = 2;
    core.handle_request(Time::ZERO, count.with_consistency(Consistency::LocalRead));
    let mut replies = Vec::new();
    while let Some(output) = core.poll_output() {
        if let Output::Now(Effect::Reply(ClientReply { outcome, .. })) = output {
            replies.push(outcome);
        }
    }
    match replies.as_slice() {
        [Err(RequestError::Invalid(text)), Ok(Response::Kv(CommandResult::Count(0)))] => {
            assert!(text.contains("linearizable only on Multi-Paxos"), "{text}")
        }
        other => panic!("{other:?}"),
    }
}
