//! The coordinator: propose to a fast quorum, take the fast path when the highest
//! proposal was made by at least `f` replicas, otherwise run consensus on it (the slow
//! path, `f + 1` accepts); retransmission; handing a stuck command to recovery.

use super::acceptor::{on_consensus, send};
use super::messages::{Ballot, Dot, KeyPromise, Message, Payload, RecReport, Record, SWITCH_LANE};
use super::replica::{Cmd, Replica};
use crate::id::NodeId;
use crate::protocol::CommitPath;
use crate::request::ClientRequest;
use crate::time::Time;
use std::collections::{BTreeMap, BTreeSet};

/// Where a command driven here stands.
#[derive(Clone, Debug, Hash)]
pub(super) enum Stage {
    /// Waiting for every fast-quorum member's proposal.
    Propose { acks: BTreeMap<NodeId, u64> },
    /// Waiting for `f + 1` accepts of `ts` in `ballot`.
    Consensus {
        ballot: Ballot,
        ts: u64,
        acks: BTreeSet<NodeId>,
    },
    /// Waiting for `n - f` answers to a recovery in `ballot`.
    Recover {
        ballot: Ballot,
        acks: BTreeMap<NodeId, RecReport>,
    },
}

/// One command driven here.
#[derive(Clone, Debug, Hash)]
pub(super) struct Drive {
    pub stage: Stage,
    pub payload: Payload,
    /// When the current stage started.
    pub started: Time,
    /// When its messages were last sent.
    pub sent: Time,
}

/// Commands this replica drives (its own, and others' it recovers).
#[derive(Clone, Debug, Default, Hash)]
pub(super) struct Drives {
    pub map: BTreeMap<Dot, Drive>,
    /// Own sequence numbers used so far.
    pub last_seq: u64,
    /// Highest ballot heard of per command (in refusals), for the next recovery.
    pub heard: BTreeMap<Dot, Ballot>,
}

impl Drives {
    /// Drive `dot` from `now` in `stage`.
    pub(super) fn start(&mut self, dot: Dot, stage: Stage, payload: Payload, now: Time) {
        let drive = Drive {
            stage,
            payload,
            started: now,
            sent: now,
        };
        self.map.insert(dot, drive);
    }
}

/// A client's request: a new command of the current configuration epoch.
pub(super) fn submit(r: &mut Replica, drives: &mut Drives, now: Time, request: ClientRequest) {
    let payload = Payload {
        request: request.id,
        resend: request.resend,
        command: request.command,
        quorum: r.fast_quorum.clone(),
        config_epoch: r.configuration().epoch(),
        change: None,
    };
    let dot = start(r, drives, now, payload);
    r.clients.insert(dot, now);
}

/// A new command with this replica's proposal (above its clock and every clock
/// announced on the key), durable before the `Propose` leaves. Returns its id.
pub(super) fn start(r: &mut Replica, drives: &mut Drives, now: Time, payload: Payload) -> Dot {
    drives.last_seq += 1;
    let dot = Dot {
        node: r.id,
        seq: drives.last_seq,
    };
    let key = payload.key().clone();
    // Above every clock announced on the key and every clock this replica had on any
    // key (so above every member's floor: a member forgets only keys whose commands ran
    // everywhere, here too): the members' clocks are most likely below it, so they
    // propose the same timestamp and their answers already promise it.
    let floor = r.promises.highest(&key).max(r.clocks.high()) + 1;
    let ts = r.clocks.propose(&key, dot, floor);
    let mut cmd = Cmd::new(now);
    cmd.payload = Some(payload.clone());
    cmd.proposal = Some(ts);
    r.cmds.insert(dot, cmd);
    let mut then: Vec<_> = r
        .peers()
        .into_iter()
        .map(|peer| {
            let message = Message::Propose {
                dot,
                payload: payload.clone(),
                ts,
            };
            send(peer, message)
        })
        .collect();
    let own = Message::ProposeAck {
        dot,
        ts,
        promise: r.clocks.promise_since_announced(&key),
        lane: r.clocks.promise(SWITCH_LANE),
        collected: Vec::new(),
    };
    then.push(send(r.id, own));
    let record = Record::Proposed {
        dot,
        payload: payload.clone(),
        ts,
        in_recovery: false,
    };
    r.outbox.persist(vec![record], then);
    let stage = Stage::Propose {
        acks: BTreeMap::new(),
    };
    drives.start(dot, stage, payload, now);
    r.metrics.incr("proposed");
    dot
}

/// A fast-quorum member's proposal (and promises).
pub(super) fn on_propose_ack(
    r: &mut Replica,
    drives: &mut Drives,
    now: Time,
    from: NodeId,
    dot: Dot,
    ts: u64,
    (promise, lane): (KeyPromise, KeyPromise),
) {
    r.take_promise(from, &promise);
    r.take_promise(from, &lane);
    let Some(drive) = drives.map.get_mut(&dot) else {
        return;
    };
    let Stage::Propose { acks } = &mut drive.stage else {
        return;
    };
    if r.cmds.get(&dot).is_none_or(|c| c.ballot.is_set()) {
        // A recovery took over: the fast path is closed to us.
        drives.map.remove(&dot);
        return;
    }
    if !drive.payload.quorum.contains(&from) {
        return;
    }
    acks.insert(from, ts);
    if acks.len() < drive.payload.quorum.len() {
        return;
    }
    let max = acks.values().copied().max().unwrap_or(0);
    let count = acks.values().filter(|&&t| t == max).count();
    let payload = drive.payload.clone();
    if count >= r.config.f {
        drives.map.remove(&dot);
        r.commit(now, dot, payload, max, Some(CommitPath::Fast));
    } else {
        let ballot = Ballot {
            round: 1,
            node: r.id,
        };
        start_consensus(r, drives, now, dot, ballot, max, payload);
    }
}

/// Ask everyone to accept `ts` in `ballot` (this replica accepts through its own
/// acceptor, whose answer is a self-send behind its record).
pub(super) fn start_consensus(
    r: &mut Replica,
    drives: &mut Drives,
    now: Time,
    dot: Dot,
    ballot: Ballot,
    ts: u64,
    payload: Payload,
) {
    for peer in r.audience(payload.config_epoch) {
        let message = Message::Consensus {
            dot,
            ballot,
            ts,
            payload: payload.clone(),
        };
        r.outbox.send(peer, message);
    }
    on_consensus(r, now, r.id, dot, ballot, ts, payload.clone());
    let stage = Stage::Consensus {
        ballot,
        ts,
        acks: BTreeSet::new(),
    };
    drives.start(dot, stage, payload, now);
}

/// An accept: with `f + 1` the timestamp is chosen.
pub(super) fn on_consensus_ack(
    r: &mut Replica,
    drives: &mut Drives,
    now: Time,
    from: NodeId,
    dot: Dot,
    ballot: Ballot,
) {
    let Some(drive) = drives.map.get_mut(&dot) else {
        return;
    };
    let Stage::Consensus {
        ballot: ours,
        ts,
        acks,
    } = &mut drive.stage
    else {
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
        acks.insert(from);
    }
    if acks.len() < r.config.slow_quorum(voters.len()) {
        return;
    }
    let (ts, payload) = (*ts, drive.payload.clone());
    drives.map.remove(&dot);
    let path = if ballot.round == 1 {
        CommitPath::Slow
    } else {
        CommitPath::Recovered
    };
    r.commit(now, dot, payload, ts, Some(path));
}

/// A refusal: someone recovers the command with a higher ballot; let it.
pub(super) fn on_nack(r: &mut Replica, drives: &mut Drives, now: Time, dot: Dot, promised: Ballot) {
    let heard = drives.heard.entry(dot).or_default();
    *heard = (*heard).max(promised);
    let ours = match drives.map.get(&dot).map(|d| &d.stage) {
        Some(Stage::Consensus { ballot, .. } | Stage::Recover { ballot, .. }) => *ballot,
        Some(Stage::Propose { .. }) => Ballot::ZERO,
        None => return,
    };
    if ours < promised {
        drives.map.remove(&dot);
        if let Some(cmd) = r.cmds.get_mut(&dot) {
            cmd.since = now;
        }
    }
}

/// Send again what was not answered in time. Returns the commands whose fast quorum did
/// not answer within the recovery timeout (the coordinator recovers them itself).
pub(super) fn retransmit(r: &mut Replica, drives: &mut Drives, now: Time) -> Vec<Dot> {
    let mut stuck = Vec::new();
    let mut silent = BTreeSet::new();
    for (&dot, drive) in drives.map.iter_mut() {
        if now.saturating_since(drive.sent) < r.config.retry_timeout {
            continue;
        }
        drive.sent = now;
        r.metrics.incr("retransmissions");
        let payload = &drive.payload;
        match &drive.stage {
            Stage::Propose { acks } => {
                if now.saturating_since(drive.started) >= r.config.recovery_timeout {
                    stuck.push(dot);
                    continue;
                }
                let ts = r.cmds.get(&dot).and_then(|c| c.proposal).unwrap_or(0);
                for &peer in &payload.quorum {
                    if peer != r.id && !acks.contains_key(&peer) {
                        silent.insert(peer);
                        let message = Message::Propose {
                            dot,
                            payload: payload.clone(),
                            ts,
                        };
                        r.outbox.send(peer, message);
                    }
                }
            }
            Stage::Consensus { ballot, ts, acks } => {
                for peer in r.audience(payload.config_epoch) {
                    if !acks.contains(&peer) {
                        let message = Message::Consensus {
                            dot,
                            ballot: *ballot,
                            ts: *ts,
                            payload: payload.clone(),
                        };
                        r.outbox.send(peer, message);
                    }
                }
            }
            Stage::Recover { ballot, acks } => {
                for peer in r.audience(payload.config_epoch) {
                    if !acks.contains_key(&peer) {
                        let message = Message::Rec {
                            dot,
                            ballot: *ballot,
                            payload: payload.clone(),
                        };
                        r.outbox.send(peer, message);
                    }
                }
            }
        }
    }
    for dot in &stuck {
        drives.map.remove(dot);
    }
    for peer in silent {
        r.suspect(peer);
    }
    stuck
}
