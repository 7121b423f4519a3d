//! Recovery of an instance whose command leader may have failed (explicit prepare,
//! Moraru et al. SOSP'13 §4.5 and the tech report's version for the optimized fast quorum
//! F+⌊(F+1)/2⌋).
//!
//! A replica whose execution waits on an instance that never commits takes a higher
//! ballot for it and asks everyone (Prepare). With a majority of replies, taking only the
//! replies for the highest ballot into account:
//! 1. someone saw it committed → commit that;
//! 2. someone accepted it (slow path) → Accept the highest-ballot accepted attributes;
//! 3. at least ⌊(F+1)/2⌋ replicas other than the leader are witnesses of the same
//!    attributes: they pre-accepted them from the leader at its initial ballot without
//!    adding anything, or took them from an earlier recovery's TryPreAccept (a fast-path
//!    commit with them may have happened, and the leader did not answer) → TryPreAccept those attributes with everyone else: once
//!    they and the replicas that agree form a majority with no conflicting instance found,
//!    Accept them (any command that committed without depending on this one would have
//!    been reported by a member of its quorum; when they already form a majority, Accept
//!    at once: that is the union the leader's slow path would take); a reported
//!    *committed* conflict proves no
//!    fast commit happened → fall through to 4; an uncommitted conflict → give up this
//!    attempt and retry later with a higher ballot;
//! 4. someone pre-accepted it → run Phase 1 again for it, never taking the fast path;
//! 5. nobody saw it → commit a no-op through Phase 1.
//!
//! The ballot of the last accepted attributes is kept apart from the highest promised
//! ballot (docs/design.md#epaxos, rule 1), and every Prepare reply is persisted before it
//! is sent (rule 5). Competing recoveries are ordered by ballot. Once recovery knows what
//! to propose, the instance is driven through the leader's phases at the recovery's
//! ballot (`leader.rs`); a decision found committed is handed back to the dispatcher.
//!
//! A recovery starts from the tick: a replica whose execution waits on an uncommitted
//! instance asks its leader first and recovers it after a few silent rounds (rule 4).

use super::gc::Collector;
use super::instance::{Attributes, Ballot, Batch, InstanceId, Status};
use super::leader::{Leadership, Proposal};
use super::messages::{InstanceReport, Message};
use super::replica::{Announce, Decision, Replica};
use super::table::InstanceTable;
use crate::id::NodeId;
use crate::protocol::Effect;
use crate::time::Time;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Hash)]
enum RecoveryPhase {
    Prepare {
        replies: BTreeMap<NodeId, Option<InstanceReport>>,
    },
    TryPreAccept {
        payload: Batch,
        attributes: Attributes,
        /// Replicas holding these attributes (reported or pre-accepted now).
        agreed: BTreeSet<NodeId>,
        /// Replicas that answered the TryPreAccept (either way).
        answered: BTreeSet<NodeId>,
        /// Replicas asked.
        asked: BTreeSet<NodeId>,
    },
}

enum Reach {
    Yes,
    No,
    Unknown,
}

#[derive(Clone, Hash)]
struct Recovery {
    ballot: Ballot,
    /// The instance's epoch, whose voters the replies are counted among: the one known
    /// here when the recovery starts (the current epoch if none), replaced by the one a
    /// report names (every replica that knows the instance reports the same).
    epoch: u64,
    phase: RecoveryPhase,
    started: Time,
}

/// What a recovery found, for the dispatcher to act on.
pub(super) enum Outcome {
    /// Committed somewhere: commit it here and tell every peer.
    Commit(Decision),
    /// Drive it through Accept at the recovery's ballot (`leader.rs`).
    Accept(Proposal),
    /// Run Phase 1 again at the recovery's ballot, never on the fast path (`leader.rs`).
    Phase1(Proposal),
}

/// Recoveries in their Prepare or TryPreAccept phase, and how often each uncommitted
/// dependency was found stalled.
#[derive(Clone, Default, Hash)]
pub(super) struct Recoveries {
    recovering: BTreeMap<InstanceId, Recovery>,
    /// Times an uncommitted dependency was found stalled (recovery starts after a few).
    stalls: BTreeMap<InstanceId, u32>,
}

impl Recoveries {
    pub(super) fn is_empty(&self) -> bool {
        self.recovering.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.recovering.len()
    }

    /// Whether `id` is in its Prepare or TryPreAccept phase here.
    pub(super) fn is_recovering(&self, id: InstanceId) -> bool {
        self.recovering.contains_key(&id)
    }

    /// Stop recovering `id` (decided).
    pub(super) fn stop(&mut self, id: InstanceId) {
        self.recovering.remove(&id);
    }

    /// Stop recovering `id` if someone owns it at a ballot above ours.
    fn stop_below(&mut self, id: InstanceId, ballot: Ballot) {
        if self.recovering.get(&id).is_some_and(|r| r.ballot < ballot) {
            self.recovering.remove(&id);
        }
    }

    /// Tick: dependencies execution waited on for a retry timeout. Ask the leader first;
    /// recover after a few silent rounds (staggered by id so replicas rarely duel for the
    /// same instance). A dependency a peer reported executing is a commit we missed
    /// (while cut off, say): ask that peer at once, without waiting a retry timeout, so
    /// a chain of missed commits is learned at the pace of round trips.
    pub(super) fn on_stalled(
        &mut self,
        replica: &mut Replica,
        leader: &mut Leadership,
        gc: &Collector,
        now: Time,
    ) {
        let executor = &replica.executor;
        self.stalls.retain(|&dep, _| executor.is_missing(dep));
        let deadline = now - replica.config.retry_timeout;
        let missed: Vec<(InstanceId, NodeId)> = executor
            .missing_since()
            .filter(|&(dep, since)| since > deadline && !self.stalls.contains_key(&dep))
            .filter_map(|(dep, _)| Some((dep, gc.executed_by(dep)?)))
            .collect();
        for (dep, peer) in missed {
            replica.executor.touch(dep, now);
            self.stalls.insert(dep, 1);
            replica.metrics.incr("missed_commits_asked");
            replica
                .outbox
                .send(peer, Message::Inquire { instance: dep });
        }
        for dep in replica.executor.stalled(deadline) {
            replica.executor.touch(dep, now);
            let stalls = self.stalls.entry(dep).or_default();
            *stalls += 1;
            let patience = 2 + u32::from(replica.id.0 % 3);
            if *stalls > patience && !leader.is_leading(dep) && !self.recovering.contains_key(&dep)
            {
                self.stalls.remove(&dep);
                self.start(replica, leader, now, dep);
            } else if dep.leader != replica.id {
                replica.metrics.incr("inquiries");
                replica
                    .outbox
                    .send(dep.leader, Message::Inquire { instance: dep });
            } else if !leader.is_leading(dep) {
                // Our own instance, taken over by a recovery while we were cut off: any
                // peer may know the outcome.
                replica.metrics.incr("inquiries");
                for peer in replica.others() {
                    replica
                        .outbox
                        .send(peer, Message::Inquire { instance: dep });
                }
            }
        }
    }

    /// Take over `id` with a ballot above any seen.
    pub(super) fn start(
        &mut self,
        replica: &mut Replica,
        leader: &mut Leadership,
        now: Time,
        id: InstanceId,
    ) {
        // A replica that lost its disk recovers nothing it may not vote on: its former
        // self may have used any ballot for it (docs/design.md#epaxos-rejoin-rule).
        if replica.is_committed(id) || !replica.fence.may_vote(id) {
            return;
        }
        let highest = replica.table.highest_ballot(id);
        let ballot = Ballot {
            round: highest.round + 1,
            node: replica.id,
        };
        replica.metrics.incr("recoveries_started");
        leader.stop(id);
        let phase = RecoveryPhase::Prepare {
            replies: BTreeMap::new(),
        };
        let epoch = replica
            .table
            .get(id)
            .map_or(replica.epochs.current(), |i| i.attributes.epoch);
        let recovery = Recovery {
            ballot,
            epoch,
            phase,
            started: now,
        };
        self.recovering.insert(id, recovery);
        let (record, report) = replica.table.promise(id, ballot);
        let own_reply = Effect::Send {
            to: replica.id,
            message: prepare_ok(id, ballot, report),
        };
        replica.outbox.persist(vec![record], vec![own_reply]);
        let message = Message::Prepare {
            ballot,
            instance: id,
        };
        for peer in replica.others() {
            replica.outbox.send(peer, message.clone());
        }
    }

    /// Acceptor side: promise `ballot` unless a higher one (or the same one, to someone
    /// else) was promised; the promise is durable before the reply leaves.
    pub(super) fn on_prepare(
        &mut self,
        replica: &mut Replica,
        leader: &mut Leadership,
        from: NodeId,
        ballot: Ballot,
        id: InstanceId,
    ) {
        let promised = replica.table.promised_for(id);
        if ballot < promised || (ballot == promised && from != ballot.node) {
            let nack = Message::Nack {
                instance: id,
                promised,
            };
            replica.outbox.send(from, nack);
            return;
        }
        replica.table.note_ballot(id, ballot);
        // Someone else now owns the instance: stop driving it ourselves.
        leader.stop_below(id, ballot);
        self.stop_below(id, ballot);
        let (record, report) = replica.table.promise(id, ballot);
        let reply = Effect::Send {
            to: from,
            message: prepare_ok(id, ballot, report),
        };
        replica.outbox.persist(vec![record], vec![reply]);
    }

    /// Someone promised a higher ballot for `id`: whoever drives it here at a lower one
    /// stops.
    pub(super) fn on_nack(
        &mut self,
        replica: &mut Replica,
        leader: &mut Leadership,
        id: InstanceId,
        promised: Ballot,
    ) {
        replica.metrics.incr("nacks");
        replica.table.note_ballot(id, promised);
        leader.stop_below(id, promised);
        self.stop_below(id, promised);
    }

    /// Give up recoveries that stalled (lost messages, duels); a later stall retries.
    pub(super) fn expire(&mut self, replica: &Replica, now: Time) {
        let limit = replica.config.retry_timeout * 4;
        self.recovering.retain(|_, r| now < r.started + limit);
    }

    /// A Prepare reply; with a majority, decide what the instance may have chosen.
    pub(super) fn on_prepare_ok(
        &mut self,
        replica: &mut Replica,
        now: Time,
        from: NodeId,
        ballot: Ballot,
        id: InstanceId,
        report: Option<InstanceReport>,
    ) -> Option<Outcome> {
        let recovery = self.recovering.get_mut(&id)?;
        let RecoveryPhase::Prepare { replies } = &mut recovery.phase else {
            return None;
        };
        if recovery.ballot != ballot {
            return None;
        }
        if let Some(named) = report.as_ref().map(|r| r.attributes.epoch) {
            if named != recovery.epoch {
                recovery.epoch = named;
                replies.retain(|&n, _| replica.epochs.counts_vote(named, n));
            }
        }
        let epoch = recovery.epoch;
        if !replica.epochs.counts_vote(epoch, from) {
            return None;
        }
        replies.insert(from, report);
        if replies.len() < replica.epochs.slow_quorum(epoch) {
            return None;
        }
        let replies = std::mem::take(replies);
        self.decide(replica, now, id, ballot, epoch, replies)
    }

    /// The cases of the module doc, in order.
    fn decide(
        &mut self,
        replica: &mut Replica,
        now: Time,
        id: InstanceId,
        ballot: Ballot,
        epoch: u64,
        replies: BTreeMap<NodeId, Option<InstanceReport>>,
    ) -> Option<Outcome> {
        let reports: Vec<(NodeId, InstanceReport)> = replies
            .into_iter()
            .filter_map(|(n, r)| r.map(|r| (n, r)))
            .collect();
        let proposal = |payload, attributes| Proposal {
            instance: id,
            ballot,
            payload,
            attributes,
        };
        // 1. Committed somewhere.
        if let Some((_, report)) = reports.iter().find(|(_, r)| r.status == Status::Committed) {
            replica.metrics.incr("recovered");
            return Some(Outcome::Commit(Decision {
                instance: id,
                payload: report.payload.clone(),
                attributes: report.attributes.clone(),
                ballot,
                announce: Announce::Peers,
            }));
        }
        // 2. Accepted somewhere: the highest accepted ballot wins.
        if let Some((_, report)) = reports
            .iter()
            .filter(|(_, r)| r.status == Status::Accepted)
            .max_by_key(|(_, r)| r.accepted_in)
        {
            let accept = proposal(report.payload.clone(), report.attributes.clone());
            return Some(self.hand_over(Outcome::Accept(accept)));
        }
        // 3. A possible fast-path commit.
        if let Some((payload, attributes, agreed)) =
            possible_fast_commit(&reports, id, replica.epochs.voter_count(epoch))
        {
            return self.try_preaccept(replica, now, proposal(payload, attributes), agreed);
        }
        // 4./5. Phase 1 again (never the fast path), with the command if anyone saw it.
        let mut attributes = Attributes {
            epoch,
            ..Attributes::default()
        };
        let payload = match reports.first() {
            Some((_, report)) => report.payload.clone(),
            None => Batch::noop(),
        };
        for (_, report) in &reports {
            attributes.merge(&report.attributes);
        }
        Some(self.hand_over(Outcome::Phase1(proposal(payload, attributes))))
    }

    /// Ask the replicas that did not report the attributes of a possible fast-path commit
    /// whether they conflict with anything they know (or Accept them at once when a
    /// majority already holds them).
    fn try_preaccept(
        &mut self,
        replica: &mut Replica,
        now: Time,
        proposal: Proposal,
        agreed: Vec<NodeId>,
    ) -> Option<Outcome> {
        let agreed: BTreeSet<NodeId> = agreed.into_iter().collect();
        let epoch = proposal.attributes.epoch;
        if agreed.len() >= replica.epochs.slow_quorum(epoch) {
            // A majority already pre-accepted these attributes for the leader: the union
            // its own slow path would accept. Nobody else's answer is needed (they may be
            // the failed leader alone).
            return Some(self.hand_over(Outcome::Accept(proposal)));
        }
        let Proposal {
            instance: id,
            ballot,
            payload,
            attributes,
        } = proposal;
        // Every voter of its epoch, this replica included, that did not report them.
        let asked: BTreeSet<NodeId> = replica
            .epochs
            .other_voters(epoch)
            .into_iter()
            .chain(std::iter::once(replica.id))
            .filter(|&n| replica.epochs.counts_vote(epoch, n) && !agreed.contains(&n))
            .collect();
        let message = Message::TryPreAccept {
            ballot,
            instance: id,
            payload: payload.clone(),
            attributes: attributes.clone(),
        };
        for &node in &asked {
            // Our own check goes through the same handler (self-send).
            replica.outbox.send(node, message.clone());
        }
        if let Some(recovery) = self.recovering.get_mut(&id) {
            recovery.phase = RecoveryPhase::TryPreAccept {
                payload,
                attributes,
                agreed,
                answered: BTreeSet::new(),
                asked,
            };
            recovery.started = now;
        }
        None
    }

    /// A TryPreAccept reply: Accept once a majority holds the attributes, run Phase 1
    /// again on a committed conflict, give up when every answer is in and undecided.
    pub(super) fn on_try_preaccept_reply(
        &mut self,
        replica: &mut Replica,
        from: NodeId,
        ballot: Ballot,
        id: InstanceId,
        conflict: Option<(InstanceId, bool)>,
    ) -> Option<Outcome> {
        let recovery = self.recovering.get_mut(&id)?;
        if recovery.ballot != ballot {
            return None;
        }
        let RecoveryPhase::TryPreAccept {
            payload,
            attributes,
            agreed,
            answered,
            asked,
        } = &mut recovery.phase
        else {
            return None;
        };
        if !asked.contains(&from) {
            return None;
        }
        answered.insert(from);
        let proposal = |payload: &Batch, attributes: &Attributes| Proposal {
            instance: id,
            ballot,
            payload: payload.clone(),
            attributes: attributes.clone(),
        };
        match conflict {
            None => {
                agreed.insert(from);
                if agreed.len() >= replica.epochs.slow_quorum(attributes.epoch) {
                    let accept = Outcome::Accept(proposal(payload, attributes));
                    return Some(self.hand_over(accept));
                }
            }
            Some((_, true)) => {
                // A committed conflict that does not depend on this instance: it cannot
                // have committed on the fast path with these attributes.
                let phase1 = Outcome::Phase1(proposal(payload, attributes));
                return Some(self.hand_over(phase1));
            }
            Some((_, false)) => {
                if answered.len() == asked.len() {
                    // Undecidable now; a later stall retries with a higher ballot.
                    replica.metrics.incr("recoveries_deferred");
                    self.recovering.remove(&id);
                }
            }
        }
        None
    }

    /// The recovery of a handed-over instance is over: the leader's phases take it on.
    fn hand_over(&mut self, outcome: Outcome) -> Outcome {
        if let Outcome::Accept(t) | Outcome::Phase1(t) = &outcome {
            self.recovering.remove(&t.instance);
        }
        outcome
    }
}

fn prepare_ok(id: InstanceId, ballot: Ballot, report: Option<InstanceReport>) -> Message {
    Message::PrepareOk {
        ballot,
        instance: id,
        report,
    }
}

/// Case 3 of the module doc: the command, attributes and replicas of a fast-path commit
/// that may have happened, if at least ⌊(F+1)/2⌋ replicas other than the leader are
/// witnesses of the same attributes (and the leader did not answer). A witness holds the
/// leader's initial-ballot attributes unchanged: a replica that added dependencies to
/// them cannot have been part of a fast commit, whatever its attributes look like
/// (docs/design.md#epaxos, rule 2).
fn possible_fast_commit(
    reports: &[(NodeId, InstanceReport)],
    id: InstanceId,
    members: usize,
) -> Option<(Batch, Attributes, Vec<NodeId>)> {
    let leader_answered_preaccepted = reports
        .iter()
        .any(|(n, r)| *n == id.leader && r.status == Status::PreAccepted);
    if leader_answered_preaccepted {
        return None;
    }
    // F of `members`, or of `members + 1` when even (`quorum::epaxos_f`).
    let f = crate::quorum::epaxos_f(members);
    let needed = f.div_ceil(2).max(1);
    let mut groups: BTreeMap<&Attributes, Vec<NodeId>> = BTreeMap::new();
    for (node, report) in reports {
        if report.status == Status::PreAccepted && report.witness && *node != id.leader {
            groups.entry(&report.attributes).or_default().push(*node);
        }
    }
    // Witnesses all hold the leader's one proposal; the largest group stands for it.
    let (attributes, nodes) = groups.into_iter().max_by_key(|(_, nodes)| nodes.len())?;
    if nodes.len() < needed {
        return None;
    }
    let payload = reports
        .iter()
        .find(|(n, _)| *n == nodes[0])
        .map(|(_, r)| r.payload.clone())
        .unwrap_or_else(Batch::noop);
    Some((payload, attributes.clone(), nodes))
}

impl Replica {
    /// Acceptor side of TryPreAccept: pre-accept the recovery's attributes unless an
    /// interfering instance known here is ordered neither before nor after it.
    pub(super) fn on_try_preaccept(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        id: InstanceId,
        payload: Batch,
        attributes: Attributes,
    ) {
        if self.reveal_commit(from, id) || self.refuse_below_promise(from, ballot, id) {
            return;
        }
        if let Some(existing) = self.table.get(id) {
            if existing.status == Status::Accepted {
                // The instance moved on since the Prepare: make the recovery retry.
                let reply = Message::TryPreAcceptReply {
                    ballot,
                    instance: id,
                    conflict: Some((id, false)),
                };
                self.outbox.send(from, reply);
                return;
            }
        }
        let conflict = find_conflict(self, id, &payload, &attributes);
        if conflict.is_some() {
            let reply = Message::TryPreAcceptReply {
                ballot,
                instance: id,
                conflict,
            };
            self.outbox.send(from, reply);
            return;
        }
        let status = Status::PreAccepted;
        self.table.store(id, payload, attributes, status, ballot);
        // A witness of the leader's attributes, as if pre-accepted from it: a later
        // recovery whose majority meets this replica instead of the fast-quorum member
        // this TryPreAccept overwrote must still see them (docs/design.md#epaxos, rule 2).
        self.table.mark_witness(id);
        let reply = Message::TryPreAcceptReply {
            ballot,
            instance: id,
            conflict: None,
        };
        self.record_and_reply(id, from, reply);
    }
}

/// An interfering instance known here that is ordered neither before nor after `id`
/// with these attributes, and whether it is committed here (an incomplete walk counts as
/// an uncommitted conflict).
///
/// An instance every replica executed is ordered before `id` without a dependency: its
/// leader left it out of the attributes if it knew (`ran_everywhere`), and if it did not,
/// `id` was committed nowhere when it ran everywhere (docs/design.md#epaxos-compaction). So
/// one below this replica's floor is no conflict, and one executed here but not known to
/// have run everywhere proves nothing: `id`'s leader may have known more (t18 seed 3467:
/// a learner's join lowered this replica's floor below the leader's, and the recovery
/// re-proposed a fast-committed instance with new dependencies).
fn find_conflict(
    replica: &Replica,
    id: InstanceId,
    payload: &Batch,
    attributes: &Attributes,
) -> Option<(InstanceId, bool)> {
    let table = &replica.table;
    let ran_everywhere = |other: InstanceId| {
        replica
            .ran_everywhere
            .get(&other.leader)
            .copied()
            .unwrap_or(0)
            > other.slot
    };
    table
        .instances
        .iter()
        .filter(|(other, instance)| **other != id && instance.payload.interferes(payload))
        .filter(|(&other, _)| !ran_everywhere(other))
        .find_map(|(&other, instance)| {
            // Ordered either way through recorded dependencies (which are transitively
            // reduced) is fine; only a complete walk proves they are unordered.
            // Never through `id` itself: what this replica recorded for it is not what
            // the recovery proposes.
            let before = reaches_any(table, attributes.deps.iter().copied(), other, id);
            let after = reaches_any(table, instance.attributes.deps.iter().copied(), id, id);
            let proven =
                instance.status == Status::Committed && !replica.executor.is_executed(other);
            match (before, after) {
                (Reach::Yes, _) | (_, Reach::Yes) => None,
                (Reach::No, Reach::No) => Some((other, proven)),
                _ => Some((other, false)),
            }
        })
}

/// Whether `target` is reachable from any of `starts` (included) through the
/// dependencies recorded here, never walking out of `avoid`. Dependencies are
/// transitively reduced (a leader's later instance stands for its earlier ones), so
/// membership alone is not enough.
fn reaches_any(
    table: &InstanceTable,
    starts: impl Iterator<Item = InstanceId>,
    target: InstanceId,
    avoid: InstanceId,
) -> Reach {
    let mut seen = BTreeSet::new();
    let mut queue: Vec<InstanceId> = Vec::new();
    for start in starts {
        if start == target {
            return Reach::Yes;
        }
        if seen.insert(start) {
            queue.push(start);
        }
    }
    let mut complete = true;
    while let Some(node) = queue.pop() {
        if seen.len() > 100_000 {
            return Reach::Unknown;
        }
        if node == avoid {
            continue;
        }
        let Some(instance) = table.get(node) else {
            complete = false;
            continue;
        };
        for &dep in &instance.attributes.deps {
            if dep == target {
                return Reach::Yes;
            }
            if seen.insert(dep) {
                queue.push(dep);
            }
        }
    }
    if complete {
        Reach::No
    } else {
        Reach::Unknown
    }
}
