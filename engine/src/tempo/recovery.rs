//! Recovery of a command whose coordinator went quiet: a higher ballot, `n - f`
//! answers, and the timestamp rule that keeps a possibly fast-committed timestamp
//! (docs/design.md#tempo).

use super::acceptor::{on_rec, send};
use super::coordinator::{start_consensus, Drives, Stage};
use super::messages::{Ballot, Dot, Message, Payload, RecReport};
use super::replica::Replica;
use crate::id::NodeId;
use crate::time::Time;
use std::collections::BTreeMap;

/// Start recovering `dot` (this replica knows its payload and not its commit).
pub(super) fn start(r: &mut Replica, drives: &mut Drives, now: Time, dot: Dot) {
    let Some(cmd) = r.cmds.get(&dot) else {
        return;
    };
    if !r.fence.may_vote(dot) {
        // Its former self may have used any ballot for it (docs/design.md#tempo-rejoin-rule).
        return;
    }
    let (Some(payload), None) = (cmd.payload.clone(), cmd.decided) else {
        return;
    };
    if r.voters_of(payload.config_epoch).is_none() {
        // An epoch this replica has not reached: it cannot size the quorums.
        return;
    }
    let heard = drives.heard.get(&dot).copied().unwrap_or_default();
    let round = cmd.ballot.round.max(heard.round).max(1) + 1;
    let ballot = Ballot { round, node: r.id };
    r.metrics.incr("recoveries");
    // Promise our own ballot first: the others hear of it only once it is durable, so a
    // restart can never reuse it for another value.
    on_rec(r, now, r.id, dot, ballot, payload.clone());
    let sends = r
        .audience(payload.config_epoch)
        .into_iter()
        .map(|peer| {
            let message = Message::Rec {
                dot,
                ballot,
                payload: payload.clone(),
            };
            send(peer, message)
        })
        .collect();
    r.outbox.persist(Vec::new(), sends);
    let stage = Stage::Recover {
        ballot,
        acks: BTreeMap::new(),
    };
    drives.start(dot, stage, payload, now);
}

/// An answer to our recovery; with `n - f` of them, choose the timestamp and run
/// consensus on it.
pub(super) fn on_rec_ack(
    r: &mut Replica,
    drives: &mut Drives,
    now: Time,
    from: NodeId,
    dot: Dot,
    ballot: Ballot,
    report: RecReport,
) {
    let Some(drive) = drives.map.get_mut(&dot) else {
        return;
    };
    let Stage::Recover { ballot: ours, acks } = &mut drive.stage else {
        return;
    };
    if *ours != ballot {
        return;
    }
    // Only the voters of the command's epoch count (rule 1 of the epochs).
    let Some(voters) = r.voters_of(drive.payload.config_epoch) else {
        return;
    };
    if voters.contains(&from) {
        acks.insert(from, report);
    }
    if acks.len() < r.config.recovery_quorum(voters.len()) {
        return;
    }
    let ts = choose(acks, &drive.payload, dot);
    let payload = drive.payload.clone();
    start_consensus(r, drives, now, dot, ballot, ts, payload);
}

/// The recovery rule.
/// - A timestamp was accepted in some ballot: take the one of the highest ballot.
/// - Else, if the coordinator answered, or a fast-quorum member answered with a
///   proposal made for a recovery, the fast path was not taken: any proposal set of
///   `n - f` replicas will do, take the highest.
/// - Else the fast path may have been taken with the highest proposal of the fast
///   quorum, reported by at least `f` members; at most `f - 1` members besides the
///   coordinator are missing here, so one of them answered: take the highest proposal
///   among the fast-quorum members that answered.
pub(super) fn choose(acks: &BTreeMap<NodeId, RecReport>, payload: &Payload, dot: Dot) -> u64 {
    if let Some(report) = acks
        .values()
        .filter(|r| r.accepted.is_set())
        .max_by_key(|r| r.accepted)
    {
        return report.accepted_ts;
    }
    let in_quorum: Vec<&RecReport> = acks
        .iter()
        .filter(|(node, _)| payload.quorum.contains(node))
        .map(|(_, report)| report)
        .collect();
    let fast_ruled_out = acks.contains_key(&dot.node)
        || in_quorum.iter().any(|r| r.in_recovery)
        || in_quorum.is_empty();
    if fast_ruled_out {
        acks.values().map(|r| r.proposal).max().unwrap_or(0)
    } else {
        in_quorum.iter().map(|r| r.proposal).max().unwrap_or(0)
    }
}

/// Commands this replica should recover now: known, uncommitted, not driven here, and
/// quiet for longer than its patience (longer the further it is from the coordinator).
pub(super) fn due(r: &Replica, drives: &Drives, now: Time) -> Vec<Dot> {
    let n = r.cluster.len() as u64;
    r.cmds
        .iter()
        .filter(|(dot, cmd)| {
            cmd.decided.is_none()
                && cmd.payload.is_some()
                && !drives.map.contains_key(dot)
                && r.fence.may_vote(**dot)
        })
        .filter(|(dot, cmd)| {
            let rank = (u64::from(r.id.0) + n - u64::from(dot.node.0) % n) % n;
            let patience = r.config.recovery_timeout * (1 + rank as u32);
            now.saturating_since(cmd.since) >= patience
        })
        .map(|(&dot, _)| dot)
        .collect()
}
