//! Recovery of an instance whose command leader may have failed (explicit prepare,
//! Moraru et al. SOSP'13 §4.5 and the tech report's version for the optimized fast quorum
//! F+⌊(F+1)/2⌋).
//!
//! A replica whose execution waits on an instance that never commits takes a higher
//! ballot for it and asks everyone (Prepare). With a majority of replies, taking only the
//! replies for the highest ballot into account:
//! 1. someone saw it committed → commit that;
//! 2. someone accepted it (slow path) → Accept the highest-ballot accepted attributes;
//! 3. at least ⌊(F+1)/2⌋ replicas other than the leader pre-accepted the same attributes
//!    at the leader's initial ballot (a fast-path commit with them may have happened, and
//!    the leader did not answer) → TryPreAccept those attributes with everyone else: once
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
//! ballot (DESIGN.md EPaxos item 1), and every Prepare reply is persisted before it is
//! sent (item 5). Competing recoveries are ordered by ballot.

use super::batch::Batch;
use super::instance::{Attributes, InstanceId, Status};
use super::messages::{Ballot, InstanceReport, Message, Record};
use super::{Announce, Epaxos, Leading, Phase};
use crate::id::NodeId;
use crate::protocol::Effect;
use crate::quorum::VoteSet;
use crate::time::Time;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Hash)]
pub(super) enum RecoveryPhase {
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
pub(super) struct Recovery {
    ballot: Ballot,
    phase: RecoveryPhase,
    started: Time,
}

impl Epaxos {
    /// Take over `id` with a ballot above any seen.
    pub(super) fn start_recovery(&mut self, now: Time, id: InstanceId) {
        if self.is_committed(id) {
            return;
        }
        let highest = self
            .promised_for(id)
            .max(self.seen_ballots.get(&id).copied().unwrap_or_default());
        let ballot = Ballot {
            round: highest.round + 1,
            node: self.id,
        };
        self.metrics.incr("recoveries_started");
        self.leading.remove(&id);
        self.recovering.insert(
            id,
            Recovery {
                ballot,
                phase: RecoveryPhase::Prepare {
                    replies: BTreeMap::new(),
                },
                started: now,
            },
        );
        let own_reply = self.promise(id, ballot);
        self.outbox.persist(
            vec![own_reply.0],
            vec![Effect::Send {
                to: self.id,
                message: own_reply.1,
            }],
        );
        let message = Message::Prepare {
            ballot,
            instance: id,
        };
        for peer in self.others() {
            self.outbox.send(peer, message.clone());
        }
    }

    /// Promise `ballot` for `id`: the record to persist and the reply it allows.
    fn promise(&mut self, id: InstanceId, ballot: Ballot) -> (Record, Message) {
        let report = match self.instances.get_mut(&id) {
            Some(instance) => {
                instance.promised = instance.promised.max(ballot);
                Some(InstanceReport {
                    payload: instance.payload.clone(),
                    attributes: instance.attributes.clone(),
                    status: instance.status,
                    accepted_in: instance.accepted_in,
                })
            }
            None => {
                let promised = self.promises.entry(id).or_default();
                *promised = (*promised).max(ballot);
                None
            }
        };
        let record = self.record_of(id).unwrap_or(Record::Promise {
            instance: id,
            ballot,
        });
        (
            record,
            Message::PrepareOk {
                ballot,
                instance: id,
                report,
            },
        )
    }

    pub(super) fn on_prepare(&mut self, from: NodeId, ballot: Ballot, id: InstanceId) {
        let promised = self.promised_for(id);
        if ballot < promised || (ballot == promised && from != ballot.node) {
            self.outbox.send(
                from,
                Message::Nack {
                    instance: id,
                    promised,
                },
            );
            return;
        }
        self.note_ballot(id, ballot);
        // Someone else now owns the instance: stop driving it ourselves.
        if self.leading.get(&id).is_some_and(|l| l.ballot < ballot) {
            self.leading.remove(&id);
        }
        if self.recovering.get(&id).is_some_and(|r| r.ballot < ballot) {
            self.recovering.remove(&id);
        }
        let (record, reply) = self.promise(id, ballot);
        self.outbox.persist(
            vec![record],
            vec![Effect::Send {
                to: from,
                message: reply,
            }],
        );
    }

    fn note_ballot(&mut self, id: InstanceId, ballot: Ballot) {
        let seen = self.seen_ballots.entry(id).or_default();
        *seen = (*seen).max(ballot);
    }

    pub(super) fn on_nack(&mut self, id: InstanceId, promised: Ballot) {
        self.metrics.incr("nacks");
        self.note_ballot(id, promised);
        if self.leading.get(&id).is_some_and(|l| l.ballot < promised) {
            self.leading.remove(&id);
        }
        if self
            .recovering
            .get(&id)
            .is_some_and(|r| r.ballot < promised)
        {
            self.recovering.remove(&id);
        }
    }

    /// Give up recoveries that stalled (lost messages, duels); a later stall retries.
    pub(super) fn expire_recoveries(&mut self, now: Time) {
        let limit = self.config.retry_timeout * 4;
        self.recovering.retain(|_, r| now < r.started + limit);
    }

    pub(super) fn on_prepare_ok(
        &mut self,
        now: Time,
        from: NodeId,
        ballot: Ballot,
        id: InstanceId,
        report: Option<InstanceReport>,
    ) {
        let Some(recovery) = self.recovering.get_mut(&id) else {
            return;
        };
        let RecoveryPhase::Prepare { replies } = &mut recovery.phase else {
            return;
        };
        if recovery.ballot != ballot {
            return;
        }
        replies.insert(from, report);
        if replies.len() < self.slow_quorum {
            return;
        }
        let replies = std::mem::take(replies);
        self.decide(now, id, ballot, replies);
    }

    fn decide(
        &mut self,
        now: Time,
        id: InstanceId,
        ballot: Ballot,
        replies: BTreeMap<NodeId, Option<InstanceReport>>,
    ) {
        let reports: Vec<(NodeId, InstanceReport)> = replies
            .into_iter()
            .filter_map(|(n, r)| r.map(|r| (n, r)))
            .collect();
        // 1. Committed somewhere.
        if let Some((_, report)) = reports.iter().find(|(_, r)| r.status == Status::Committed) {
            let (payload, attributes) = (report.payload.clone(), report.attributes.clone());
            self.metrics.incr("recovered");
            self.commit(now, id, payload, attributes, ballot, Announce::Peers);
            return;
        }
        // 2. Accepted somewhere: the highest accepted ballot wins.
        if let Some((_, report)) = reports
            .iter()
            .filter(|(_, r)| r.status == Status::Accepted)
            .max_by_key(|(_, r)| r.accepted_in)
        {
            let (payload, attributes) = (report.payload.clone(), report.attributes.clone());
            self.recover_with_accept(now, id, ballot, payload, attributes);
            return;
        }
        let initial = Ballot {
            round: 0,
            node: id.leader,
        };
        let leader_answered_preaccepted = reports
            .iter()
            .any(|(n, r)| *n == id.leader && r.status == Status::PreAccepted);
        // 3. A possible fast-path commit.
        if !leader_answered_preaccepted {
            let f = self.members.len().saturating_sub(1) / 2;
            let needed = f.div_ceil(2).max(1);
            let mut groups: BTreeMap<&Attributes, Vec<NodeId>> = BTreeMap::new();
            for (node, report) in &reports {
                if report.status == Status::PreAccepted
                    && report.accepted_in == initial
                    && *node != id.leader
                {
                    groups.entry(&report.attributes).or_default().push(*node);
                }
            }
            // Every reply extends the leader's original attributes, so only a group whose
            // attributes are contained in every other report can be the original (the
            // one a fast-path commit would have used).
            let contained = |small: &Attributes, big: &Attributes| {
                small.seq <= big.seq && small.deps.is_subset(&big.deps)
            };
            let original = groups.iter().find(|(attributes, _)| {
                reports
                    .iter()
                    .filter(|(_, r)| r.accepted_in == initial)
                    .all(|(_, r)| contained(attributes, &r.attributes))
            });
            if let Some((attributes, nodes)) = original {
                if nodes.len() >= needed {
                    let payload = reports
                        .iter()
                        .find(|(n, _)| *n == nodes[0])
                        .map(|(_, r)| r.payload.clone())
                        .unwrap_or_else(Batch::noop);
                    let (attributes, nodes) = ((*attributes).clone(), nodes.clone());
                    self.try_preaccept(now, id, ballot, payload, attributes, nodes);
                    return;
                }
            }
        }
        // 4./5. Phase 1 again (never the fast path), with the command if anyone saw it.
        let mut attributes = Attributes::default();
        let payload = match reports.first() {
            Some((_, report)) => report.payload.clone(),
            None => Batch::noop(),
        };
        for (_, report) in &reports {
            attributes.merge(&report.attributes);
        }
        self.recover_with_phase1(now, id, ballot, payload, attributes);
    }

    fn try_preaccept(
        &mut self,
        now: Time,
        id: InstanceId,
        ballot: Ballot,
        payload: Batch,
        attributes: Attributes,
        agreed: Vec<NodeId>,
    ) {
        let agreed: BTreeSet<NodeId> = agreed.into_iter().collect();
        if agreed.len() >= self.slow_quorum {
            // A majority already pre-accepted these attributes for the leader: the union
            // its own slow path would accept. Nobody else's answer is needed (they may be
            // the failed leader alone).
            self.recover_with_accept(now, id, ballot, payload, attributes);
            return;
        }
        let asked: BTreeSet<NodeId> = self
            .members
            .iter()
            .copied()
            .filter(|n| !agreed.contains(n))
            .collect();
        let message = Message::TryPreAccept {
            ballot,
            instance: id,
            payload: payload.clone(),
            attributes: attributes.clone(),
        };
        for &node in &asked {
            // Our own check goes through the same handler (self-send).
            self.outbox.send(node, message.clone());
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
    }

    pub(super) fn on_try_preaccept(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        id: InstanceId,
        payload: Batch,
        attributes: Attributes,
    ) {
        if self.refuse_below_promise(from, ballot, id) || self.reveal_commit(from, id) {
            return;
        }
        if let Some(existing) = self.instances.get(&id) {
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
        let conflict = self
            .instances
            .iter()
            .filter(|(other, instance)| **other != id && instance.payload.interferes(&payload))
            .find_map(|(&other, instance)| {
                // Ordered either way through recorded dependencies (which are transitively
                // reduced) is fine; only a complete walk proves they are unordered.
                let before = self.reaches_any(attributes.deps.iter().copied(), other);
                let after = self.reaches_any(instance.attributes.deps.iter().copied(), id);
                match (before, after) {
                    (Reach::Yes, _) | (_, Reach::Yes) => None,
                    (Reach::No, Reach::No) => Some((other, instance.status == Status::Committed)),
                    _ => Some((other, false)),
                }
            });
        if conflict.is_some() {
            let reply = Message::TryPreAcceptReply {
                ballot,
                instance: id,
                conflict,
            };
            self.outbox.send(from, reply);
            return;
        }
        self.store(id, payload, attributes, Status::PreAccepted, ballot);
        let Some(record) = self.record_of(id) else {
            return;
        };
        let reply = Message::TryPreAcceptReply {
            ballot,
            instance: id,
            conflict: None,
        };
        self.outbox.persist(
            vec![record],
            vec![Effect::Send {
                to: from,
                message: reply,
            }],
        );
    }

    pub(super) fn on_try_preaccept_reply(
        &mut self,
        now: Time,
        from: NodeId,
        ballot: Ballot,
        id: InstanceId,
        conflict: Option<(InstanceId, bool)>,
    ) {
        let Some(recovery) = self.recovering.get_mut(&id) else {
            return;
        };
        if recovery.ballot != ballot {
            return;
        }
        let RecoveryPhase::TryPreAccept {
            payload,
            attributes,
            agreed,
            answered,
            asked,
        } = &mut recovery.phase
        else {
            return;
        };
        answered.insert(from);
        match conflict {
            None => {
                agreed.insert(from);
                if agreed.len() >= self.slow_quorum {
                    let (payload, attributes) = (payload.clone(), attributes.clone());
                    self.recover_with_accept(now, id, ballot, payload, attributes);
                }
            }
            Some((_, true)) => {
                // A committed conflict that does not depend on this instance: it cannot
                // have committed on the fast path with these attributes.
                let (payload, attributes) = (payload.clone(), attributes.clone());
                self.recover_with_phase1(now, id, ballot, payload, attributes);
            }
            Some((_, false)) => {
                if answered.len() == asked.len() {
                    // Undecidable now; a later stall retries with a higher ballot.
                    self.metrics.incr("recoveries_deferred");
                    self.recovering.remove(&id);
                }
            }
        }
    }

    /// Whether `target` is reachable from any of `starts` (included) through the
    /// dependencies recorded here. Dependencies are transitively reduced (a leader's later
    /// instance stands for its earlier ones), so membership alone is not enough.
    fn reaches_any(&self, starts: impl Iterator<Item = InstanceId>, target: InstanceId) -> Reach {
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
            let Some(instance) = self.instances.get(&node) else {
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

    /// Drive `id` through Accept at `ballot` with these attributes.
    fn recover_with_accept(
        &mut self,
        now: Time,
        id: InstanceId,
        ballot: Ballot,
        payload: Batch,
        attributes: Attributes,
    ) {
        self.recovering.remove(&id);
        self.store(id, payload, attributes.clone(), Status::Accepted, ballot);
        self.leading.insert(
            id,
            Leading {
                recovery: true,
                ballot,
                original: attributes,
                phase: Phase::Accept {
                    votes: VoteSet::new(self.slow_quorum),
                },
                sent_at: now,
            },
        );
        self.send_accepts(id, true);
    }

    /// Run Phase 1 again for `payload` at `ballot`, never committing on the fast path.
    fn recover_with_phase1(
        &mut self,
        now: Time,
        id: InstanceId,
        ballot: Ballot,
        payload: Batch,
        known: Attributes,
    ) {
        self.recovering.remove(&id);
        let mut attributes = self.index.attributes_for_batch(id, &payload);
        attributes.merge(&known);
        attributes.deps.remove(&id);
        self.store(id, payload, attributes.clone(), Status::PreAccepted, ballot);
        self.leading.insert(
            id,
            Leading {
                recovery: true,
                ballot,
                original: attributes,
                phase: Phase::PreAccept {
                    replies: BTreeMap::new(),
                },
                sent_at: now,
            },
        );
        self.send_preaccepts(id, true);
    }
}
