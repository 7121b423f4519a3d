//! What every replica does for others' commands: propose in a fast quorum, accept in
//! the slow path or a recovery, learn commits, take promises. Every answer leaves behind
//! the record it depends on.

use super::messages::{Ballot, Dot, KeyPromise, Message, Payload, RecReport, Record, SWITCH_LANE};
use super::replica::Replica;
use crate::id::NodeId;
use crate::protocol::Effect;
use crate::time::Time;

/// A coordinator's `Propose`: a fast-quorum member proposes `max(ts, clock + 1)`
/// (durably) and answers with its promises on the key; others keep the payload.
pub(super) fn on_propose(
    r: &mut Replica,
    now: Time,
    from: NodeId,
    dot: Dot,
    payload: Payload,
    ts: u64,
) {
    if from != dot.node {
        r.metrics.incr("dropped_messages");
        return;
    }
    let member = payload.quorum.contains(&r.id);
    let key = payload.key().clone();
    let Some(cmd) = r.cmd(now, dot) else {
        return;
    };
    cmd.since = now;
    if cmd.decided.is_some() || cmd.ballot.is_set() {
        return;
    }
    if cmd.payload.is_none() {
        cmd.payload = Some(payload.clone());
    }
    if !member {
        return;
    }
    if let Some(proposal) = cmd.proposal {
        // A retransmission: answer again (the proposal is durable or about to be, and
        // this answer leaves behind it).
        let ack = Message::ProposeAck {
            dot,
            ts: proposal,
            promise: r.clocks.promise_since_announced(&key),
            lane: r.clocks.promise(SWITCH_LANE),
            collected: r.collected.prefixes(),
        };
        r.outbox.persist(Vec::new(), vec![send(from, ack)]);
        return;
    }
    let proposal = r.clocks.propose(&key, dot, ts);
    if let Some(cmd) = r.cmds.get_mut(&dot) {
        cmd.proposal = Some(proposal);
    }
    let record = Record::Proposed {
        dot,
        payload,
        ts: proposal,
        in_recovery: false,
    };
    let ack = Message::ProposeAck {
        dot,
        ts: proposal,
        promise: r.clocks.promise_since_announced(&key),
        lane: r.clocks.promise(SWITCH_LANE),
        collected: r.collected.prefixes(),
    };
    r.outbox.persist(vec![record], vec![send(from, ack)]);
}

/// Accept `ts` in `ballot` unless a higher ballot is promised; the clock rises to it.
pub(super) fn on_consensus(
    r: &mut Replica,
    now: Time,
    from: NodeId,
    dot: Dot,
    ballot: Ballot,
    ts: u64,
    payload: Payload,
) {
    if !admit(r, now, from, dot, ballot, &payload) {
        return;
    }
    let Some(cmd) = r.cmds.get_mut(&dot) else {
        return;
    };
    cmd.ballot = ballot;
    cmd.accepted = ballot;
    cmd.accepted_ts = ts;
    if cmd.payload.is_none() {
        cmd.payload = Some(payload.clone());
    }
    r.clocks.raise(payload.key(), ts);
    let record = Record::Accepted {
        dot,
        ballot,
        ts,
        payload,
    };
    let ack = Message::ConsensusAck { dot, ballot };
    r.outbox.persist(vec![record], vec![send(from, ack)]);
}

/// A recoverer's `Rec`: promise its ballot (durably) and report the proposal, making one
/// now if this replica never proposed for the command.
pub(super) fn on_rec(
    r: &mut Replica,
    now: Time,
    from: NodeId,
    dot: Dot,
    ballot: Ballot,
    payload: Payload,
) {
    let key = payload.key().clone();
    if !admit(r, now, from, dot, ballot, &payload) {
        return;
    }
    let Some(cmd) = r.cmds.get_mut(&dot) else {
        return;
    };
    let mut records = Vec::new();
    if ballot > cmd.ballot {
        cmd.ballot = ballot;
        records.push(Record::Promised { dot, ballot });
    }
    if cmd.payload.is_none() {
        cmd.payload = Some(payload.clone());
    }
    let proposal = match cmd.proposal {
        Some(p) => p,
        None => {
            cmd.in_recovery = true;
            let p = r.clocks.propose(&key, dot, 0);
            records.push(Record::Proposed {
                dot,
                payload,
                ts: p,
                in_recovery: true,
            });
            p
        }
    };
    let Some(cmd) = r.cmds.get_mut(&dot) else {
        return;
    };
    cmd.proposal = Some(proposal);
    let report = RecReport {
        proposal,
        in_recovery: cmd.in_recovery,
        accepted: cmd.accepted,
        accepted_ts: cmd.accepted_ts,
    };
    let ack = Message::RecAck {
        dot,
        ballot,
        report,
    };
    r.outbox.persist(records, vec![send(from, ack)]);
}

/// Someone's promises: remember those of an epoch still current and look at those keys
/// again.
pub(super) fn on_promises(r: &mut Replica, from: NodeId, keys: &[KeyPromise]) {
    for promise in keys {
        if r.fence.current(from, promise.epoch) {
            r.take_promise(from, promise);
        }
    }
}

/// Whether a ballot's message about `dot` may be acted on: not when the command is
/// committed (the sender learns the commit) or a higher ballot is promised (refused).
fn admit(
    r: &mut Replica,
    now: Time,
    from: NodeId,
    dot: Dot,
    ballot: Ballot,
    payload: &Payload,
) -> bool {
    let Some(cmd) = r.cmd(now, dot) else {
        return false;
    };
    cmd.since = now;
    if let Some(ts) = cmd.decided {
        let payload = cmd.payload.clone().unwrap_or_else(|| payload.clone());
        r.outbox.send(from, Message::Commit { dot, payload, ts });
        return false;
    }
    if ballot < cmd.ballot {
        let promised = cmd.ballot;
        r.outbox.send(from, Message::Nack { dot, promised });
        return false;
    }
    true
}

pub(super) fn send(to: NodeId, message: Message) -> Effect<Message> {
    Effect::Send { to, message }
}
