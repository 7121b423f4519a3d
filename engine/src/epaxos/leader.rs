//! The command leader's side: proposing an instance, PreAccept and its replies, the fast
//! path (a fast quorum F+⌊(F+1)/2⌋ of unchanged replies, the leader's own included once
//! durable: docs/design.md#epaxos, rule 2), the slow path (Accept the union of
//! dependencies and the highest sequence number with a majority), retransmission, and
//! resuming own instances after a restart.
//!
//! A recovery that takes an instance over drives it through the same phases at its higher
//! ballot (`recovery.rs` decides what to propose; the instance is then led here with
//! `recovery` set: never on the fast path, and its commit counts as recovered).
//!
//! A leader persists an instance before anyone hears of it, its own reply included (a
//! self-send released by the sync): after a crash it resumes at its own ballot.
//! Decisions are handed back to the dispatcher, which commits them (`replica.rs`).

use super::instance::{Attributes, Ballot, Batch, InstanceId, Status};
use super::messages::{InstanceRecord, Message, Record};
use super::replica::{Announce, Decision, Replica};
use crate::id::NodeId;
use crate::protocol::{CommitPath, Effect};
use crate::quorum::VoteSet;
use crate::time::Time;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

#[derive(Clone, Hash)]
enum Phase {
    PreAccept {
        /// Replies so far (the leader's own included once durable).
        replies: BTreeMap<NodeId, Attributes>,
    },
    Accept {
        votes: VoteSet,
    },
}

/// A command leader's (or a recovering replica's) progress on an instance.
#[derive(Clone, Hash)]
struct Leading {
    /// Run by a recovering replica: never take the fast path; commits count as recovered.
    recovery: bool,
    ballot: Ballot,
    original: Attributes,
    phase: Phase,
    sent_at: Time,
}

/// What a leader proposes for an instance at a ballot: its own new instance, or one a
/// recovery hands over at the recovery's ballot.
pub(super) struct Proposal {
    pub(super) instance: InstanceId,
    pub(super) ballot: Ballot,
    pub(super) payload: Batch,
    pub(super) attributes: Attributes,
}

/// The instances this replica drives (see the module doc).
#[derive(Clone, Default, Hash)]
pub(super) struct Leadership {
    /// The next slot of an own instance.
    next_slot: u64,
    /// Every own slot below is known committed or executed here (a cache of
    /// [`Leadership::own_prefix`]).
    committed_below: u64,
    leading: BTreeMap<InstanceId, Leading>,
    /// Ordered delivery (`hold.rs`): how long after proposing an own instance its own
    /// vote is cast (zero: at once), and the own instances waiting for it, by release
    /// time; they are stored but not indexed here until then.
    own_delay: Duration,
    own_votes: BTreeSet<(Time, InstanceId)>,
    /// Own instances abandoned for a no-op, with the commands they held: proposed again
    /// once the no-op commits (then the commands cannot run through them).
    abandoned: BTreeMap<InstanceId, Batch>,
    /// Commands of abandoned instances decided as no-ops, to propose again in the current
    /// epoch (`take_restarts`).
    restarts: Vec<Batch>,
    /// The newest epoch a refusal named: restarts wait until this replica executed the
    /// switches up to it (proposed earlier they would be refused again).
    refused_up_to: u64,
}

impl Leadership {
    /// A leader whose next own instance takes `next_slot`.
    pub(super) fn new(next_slot: u64) -> Self {
        Self {
            next_slot,
            committed_below: 0,
            leading: BTreeMap::new(),
            own_delay: Duration::ZERO,
            own_votes: BTreeSet::new(),
            abandoned: BTreeMap::new(),
            restarts: Vec::new(),
            refused_up_to: 0,
        }
    }

    /// Cast own votes `delay` after proposing (ordered delivery; zero: at once).
    pub(super) fn set_own_delay(&mut self, delay: Duration) {
        self.own_delay = delay;
    }

    /// When the next own vote is due.
    pub(super) fn next_own_vote(&self) -> Option<Time> {
        self.own_votes.first().map(|&(at, _)| at)
    }

    /// Cast the first own vote if it is due at `now`; whether one was.
    pub(super) fn cast_due_own_vote(&mut self, replica: &mut Replica, now: Time) -> bool {
        match self.own_votes.first() {
            Some(&(at, id)) if at <= now => {
                self.own_votes.pop_first();
                self.cast_own_vote(replica, now, id);
                true
            }
            _ => false,
        }
    }

    /// Ordered delivery: index an own instance at its release time and, while it still
    /// waits for PreAccept replies at its initial ballot, vote on it as an acceptor
    /// would, from what is indexed here by now (its record is persisted again first if
    /// that adds anything). Whatever happened to it meanwhile, it is indexed.
    fn cast_own_vote(&mut self, replica: &mut Replica, now: Time, id: InstanceId) {
        let initial = Ballot::initial(id);
        let waiting = self.leading.get(&id).is_some_and(|l| {
            l.ballot == initial && !l.recovery && matches!(l.phase, Phase::PreAccept { .. })
        });
        let epoch = replica.table.get(id).map(|i| i.attributes.epoch);
        if waiting && epoch.is_some_and(|e| !replica.epochs.votes_in_current(e, replica.id)) {
            // A switch ran here since it was proposed: no attributes for its old epoch
            // (rule 3 of "EPaxos epochs"), as from any other replica.
            replica.table.index_stored(id);
            self.on_epoch_moved(replica, now, id, replica.epochs.current());
            return;
        }
        // A recovery's higher ballot promised here meanwhile: no vote in the initial one.
        let promised_higher = replica.table.promised_for(id) > initial;
        let instance = replica.table.get(id);
        let pre_accepted = !promised_higher
            && instance
                .is_some_and(|i| i.status == Status::PreAccepted && i.accepted_in == initial);
        let (Some(instance), true, true, false) =
            (instance, waiting, pre_accepted, Self::votes_early(replica))
        else {
            replica.table.index_stored(id);
            return;
        };
        let payload = instance.payload.clone();
        let stored = instance.attributes.clone();
        let mut attributes = replica
            .table
            .attributes_for(id, &payload, &replica.ran_everywhere);
        attributes.merge(&stored);
        attributes.deps.remove(&id);
        let changed = attributes != stored;
        replica.table.store(
            id,
            payload,
            attributes.clone(),
            Status::PreAccepted,
            initial,
        );
        let records = match (changed, replica.table.instance_record(id)) {
            (true, Some(record)) => vec![Record::Instance(record)],
            _ => Vec::new(),
        };
        if changed {
            replica.metrics.incr("own_vote_attributes_changed");
        }
        let own_reply = Message::PreAcceptOk {
            ballot: initial,
            instance: id,
            attributes,
        };
        let to_self = Effect::Send {
            to: replica.id,
            message: own_reply,
        };
        replica.outbox.persist(records, vec![to_self]);
    }

    /// Ordered delivery: `attributes` of a new own instance proposing `payload` also name
    /// the own instances still waiting for their release time that it interferes with
    /// (every replica processes those first; they are not indexed here yet).
    fn add_own_waiting(&self, replica: &Replica, payload: &Batch, attributes: &mut Attributes) {
        for &(_, waiting) in &self.own_votes {
            let Some(instance) = replica.table.get(waiting) else {
                continue;
            };
            if instance.payload.interferes(payload) {
                attributes.deps.insert(waiting);
                attributes.seq = attributes.seq.max(instance.attributes.seq + 1);
            }
        }
    }

    /// New own instances start at `start` or later (a rejoin's fence).
    pub(super) fn raise_next_slot(&mut self, start: u64) {
        self.next_slot = self.next_slot.max(start);
    }

    /// The first own slot not known committed or executed here.
    pub(super) fn own_prefix(&mut self, replica: &Replica) -> u64 {
        let me = replica.id;
        let executed = replica.executor.executed_prefix().get(&me).copied();
        let mut slot = self.committed_below.max(executed.unwrap_or(0));
        while slot < self.next_slot {
            let id = InstanceId { leader: me, slot };
            if !replica.is_committed(id) && !replica.executor.is_executed(id) {
                break;
            }
            slot += 1;
        }
        self.committed_below = slot;
        slot
    }

    pub(super) fn is_empty(&self) -> bool {
        self.leading.is_empty()
    }

    /// The slot the next own instance takes.
    pub(super) fn next_slot(&self) -> u64 {
        self.next_slot
    }

    /// Instances driven here (own and taken over).
    pub(super) fn len(&self) -> usize {
        self.leading.len()
    }

    /// Own instances proposed here and not committed (recoveries excluded).
    pub(super) fn own_in_flight(&self, me: NodeId) -> usize {
        self.leading
            .iter()
            .filter(|(id, l)| id.leader == me && !l.recovery)
            .count()
    }

    /// Whether some instance is driven here by a recovery.
    #[cfg(test)]
    pub(super) fn drives_a_recovery(&self) -> bool {
        self.leading.values().any(|l| l.recovery)
    }

    pub(super) fn is_leading(&self, id: InstanceId) -> bool {
        self.leading.contains_key(&id)
    }

    /// Stop driving `id` (decided, or taken over here by a recovery).
    pub(super) fn stop(&mut self, id: InstanceId) {
        self.leading.remove(&id);
    }

    /// Stop driving `id` if someone owns it at a ballot above ours.
    pub(super) fn stop_below(&mut self, id: InstanceId, ballot: Ballot) {
        if self.leading.get(&id).is_some_and(|l| l.ballot < ballot) {
            self.leading.remove(&id);
        }
    }

    /// Propose `payload` as a new own instance.
    pub(super) fn lead(&mut self, replica: &mut Replica, now: Time, payload: Batch) {
        let id = InstanceId {
            leader: replica.id,
            slot: self.next_slot,
        };
        self.next_slot += 1;
        let mut attributes = replica
            .table
            .attributes_for(id, &payload, &replica.ran_everywhere);
        attributes.epoch = replica.epochs.current();
        self.add_own_waiting(replica, &payload, &mut attributes);
        let proposal = Proposal {
            instance: id,
            ballot: Ballot::initial(id),
            payload,
            attributes,
        };
        self.preaccept(replica, now, proposal, false);
        if !self.own_delay.is_zero() {
            self.own_votes.insert((now + self.own_delay, id));
        }
    }

    /// Phase 1 for `proposal`: record it, then PreAccept.
    fn preaccept(&mut self, replica: &mut Replica, now: Time, proposal: Proposal, recovery: bool) {
        let replies = BTreeMap::new();
        self.begin(
            replica,
            now,
            proposal,
            Phase::PreAccept { replies },
            recovery,
        );
    }

    /// Record `proposal` in the status `phase` records, and drive it from there: its
    /// record is persisted before the first round leaves.
    fn begin(
        &mut self,
        replica: &mut Replica,
        now: Time,
        proposal: Proposal,
        phase: Phase,
        recovery: bool,
    ) {
        let Proposal {
            instance: id,
            ballot,
            payload,
            attributes,
        } = proposal;
        let status = match phase {
            Phase::PreAccept { .. } => Status::PreAccepted,
            Phase::Accept { .. } => Status::Accepted,
        };
        if self.defers_own_vote(id, ballot, recovery) {
            replica
                .table
                .store_unindexed(id, payload, attributes.clone(), status, ballot);
        } else {
            replica
                .table
                .store(id, payload, attributes.clone(), status, ballot);
        }
        let leading = Leading {
            recovery,
            ballot,
            original: attributes,
            phase,
            sent_at: now,
        };
        self.leading.insert(id, leading);
        match status {
            Status::Accepted => self.send_accepts(replica, id, true),
            _ => self.send_preaccepts(replica, id, true),
        }
    }

    /// Whether the own vote on `id` is cast at its release time (ordered delivery): a new
    /// own instance's first round.
    fn defers_own_vote(&self, id: InstanceId, ballot: Ballot, recovery: bool) -> bool {
        !self.own_delay.is_zero() && !recovery && ballot == Ballot::initial(id)
    }

    /// Whether the own vote is cast when proposing, whatever ordered delivery says (the
    /// unsafe test variant: the instance still waits for its release time to be indexed).
    fn votes_early(replica: &Replica) -> bool {
        replica.config.unsafe_vote_before_release
    }

    /// Persist the instance, then PreAccept to the fast quorum (thrifty) or everyone, and
    /// count our own reply (at the release time under ordered delivery).
    fn send_preaccepts(&mut self, replica: &mut Replica, id: InstanceId, first: bool) {
        let (Some(record), Some(leading)) =
            (replica.table.instance_record(id), self.leading.get(&id))
        else {
            return;
        };
        let epoch = leading.original.epoch;
        let targets: Vec<NodeId> = if replica.config.thrifty && first && !leading.recovery {
            replica
                .peers_by_distance
                .iter()
                .copied()
                .filter(|&n| replica.epochs.counts_vote(epoch, n))
                .take(replica.epochs.fast_quorum(epoch).saturating_sub(1))
                .collect()
        } else {
            let replied: Vec<NodeId> = match &leading.phase {
                Phase::PreAccept { replies } => replies.keys().copied().collect(),
                Phase::Accept { .. } => Vec::new(),
            };
            replica
                .epochs
                .other_voters(epoch)
                .into_iter()
                .filter(|n| !replied.contains(n))
                .collect()
        };
        let message = Message::PreAccept {
            ballot: leading.ballot,
            instance: id,
            payload: record.payload.clone(),
            attributes: leading.original.clone(),
            ran_everywhere: replica.ran_everywhere.clone(),
        };
        let early = Self::votes_early(replica);
        let own_reply = (early || !self.defers_own_vote(id, leading.ballot, leading.recovery))
            .then(|| Message::PreAcceptOk {
                ballot: leading.ballot,
                instance: id,
                attributes: leading.original.clone(),
            });
        send(
            replica,
            targets,
            &message,
            first.then_some((record, own_reply)),
        );
    }

    /// A PreAccept reply: commit on the fast path, or go to Accept with a majority.
    pub(super) fn on_preaccept_ok(
        &mut self,
        replica: &mut Replica,
        now: Time,
        from: NodeId,
        ballot: Ballot,
        id: InstanceId,
        attributes: Attributes,
    ) -> Option<Decision> {
        let leading = self.leading.get_mut(&id)?;
        let Phase::PreAccept { replies } = &mut leading.phase else {
            return None;
        };
        let epoch = leading.original.epoch;
        if leading.ballot != ballot || !replica.epochs.counts_vote(epoch, from) {
            return None;
        }
        replies.insert(from, attributes);
        let unchanged = replies.values().all(|a| *a == leading.original);
        let fast_quorum = replica.epochs.fast_quorum(epoch);
        if unchanged && replies.len() >= fast_quorum && !leading.recovery {
            replica.metrics.incr("fast_path");
            let attributes = leading.original.clone();
            return self.decided(replica, id, attributes, CommitPath::Fast);
        }
        let slow_quorum = replica.epochs.slow_quorum(epoch);
        if (!unchanged || leading.recovery) && replies.len() >= slow_quorum {
            self.start_accept(replica, now, id);
        }
        None
    }

    /// Slow path: accept the union of dependencies and the highest sequence number.
    fn start_accept(&mut self, replica: &mut Replica, now: Time, id: InstanceId) {
        let Some(leading) = self.leading.get_mut(&id) else {
            return;
        };
        let Phase::PreAccept { replies } = &leading.phase else {
            return;
        };
        let mut attributes = leading.original.clone();
        for reply in replies.values() {
            attributes.merge(reply);
        }
        if replies.values().any(|a| *a != leading.original) {
            replica.metrics.incr("conflicts");
        }
        let ballot = leading.ballot;
        leading.phase = Phase::Accept {
            votes: VoteSet::new(replica.epochs.slow_quorum(attributes.epoch)),
        };
        leading.sent_at = now;
        let Some(payload) = replica.table.get(id).map(|i| i.payload.clone()) else {
            return;
        };
        let status = Status::Accepted;
        replica.table.store(id, payload, attributes, status, ballot);
        self.send_accepts(replica, id, true);
    }

    fn send_accepts(&mut self, replica: &mut Replica, id: InstanceId, first: bool) {
        let (Some(record), Some(leading)) =
            (replica.table.instance_record(id), self.leading.get(&id))
        else {
            return;
        };
        let Phase::Accept { votes } = &leading.phase else {
            return;
        };
        let message = Message::Accept {
            ballot: leading.ballot,
            instance: id,
            payload: record.payload.clone(),
            attributes: record.attributes.clone(),
        };
        let own_reply = Message::AcceptOk {
            ballot: leading.ballot,
            instance: id,
        };
        let targets: Vec<NodeId> = replica
            .epochs
            .other_voters(record.attributes.epoch)
            .into_iter()
            .filter(|n| !votes.voters().contains(n))
            .collect();
        send(
            replica,
            targets,
            &message,
            first.then_some((record, Some(own_reply))),
        );
    }

    /// An Accept vote: commit with a majority.
    pub(super) fn on_accept_ok(
        &mut self,
        replica: &mut Replica,
        from: NodeId,
        ballot: Ballot,
        id: InstanceId,
    ) -> Option<Decision> {
        let leading = self.leading.get_mut(&id)?;
        let Phase::Accept { votes } = &mut leading.phase else {
            return None;
        };
        let counts = replica.epochs.counts_vote(leading.original.epoch, from);
        if leading.ballot != ballot || !counts || !votes.add(from) {
            return None;
        }
        if !leading.recovery {
            replica.metrics.incr("slow_path");
        }
        let attributes = replica.table.get(id).map(|i| i.attributes.clone())?;
        self.decided(replica, id, attributes, CommitPath::Slow)
    }

    /// Our instance is decided: stop driving it, and hand it to the dispatcher to commit.
    fn decided(
        &mut self,
        replica: &mut Replica,
        id: InstanceId,
        attributes: Attributes,
        path: CommitPath,
    ) -> Option<Decision> {
        let leading = self.leading.remove(&id)?;
        let payload = replica.table.get(id).map(|i| i.payload.clone())?;
        let path = if leading.recovery {
            replica.metrics.incr("recovered");
            CommitPath::Recovered
        } else {
            path
        };
        Some(Decision {
            instance: id,
            payload,
            attributes,
            ballot: leading.ballot,
            announce: Announce::PeersAndHost(path),
        })
    }

    /// Rule 4 of "EPaxos epochs": a PreAccept of `id` was refused because its epoch
    /// ended there. With a majority of its epoch's replies in hand the slow path goes on
    /// (Accept is answered whatever the epoch); otherwise the instance commits a no-op
    /// (with the instance's own attributes) through Accept at its ballot (nothing can have
    /// been chosen for it: only this
    /// driver could have decided at this ballot, and it did not), and once it committed
    /// as a no-op an own instance's commands are proposed again in the current epoch
    /// (`on_committed`, `take_restarts`). Should a recovery commit the commands instead,
    /// they are not proposed again.
    pub(super) fn on_epoch_moved(
        &mut self,
        replica: &mut Replica,
        now: Time,
        id: InstanceId,
        moved_to: u64,
    ) {
        self.refused_up_to = self.refused_up_to.max(moved_to);
        let Some(leading) = self.leading.get_mut(&id) else {
            return;
        };
        let Phase::PreAccept { replies } = &leading.phase else {
            return;
        };
        let epoch = leading.original.epoch;
        if replies.len() >= replica.epochs.slow_quorum(epoch) {
            self.start_accept(replica, now, id);
            return;
        }
        let own = id.leader == replica.id && !leading.recovery;
        // The no-op keeps the instance's attributes: the key index names only each
        // leader's latest instance on a key and reaches its earlier ones through their
        // dependencies, so a no-op that dropped them would cut that chain.
        let noop = leading.original.clone();
        leading.phase = Phase::Accept {
            votes: VoteSet::new(replica.epochs.slow_quorum(epoch)),
        };
        leading.sent_at = now;
        let ballot = leading.ballot;
        let abandoned = replica
            .table
            .get(id)
            .map(|i| i.payload.clone())
            .filter(|_| own);
        if let Some(batch) = abandoned.filter(|b| !b.is_noop()) {
            self.abandoned.insert(id, batch);
        }
        replica.metrics.incr("instances_abandoned");
        let status = Status::Accepted;
        replica.table.store(id, Batch::noop(), noop, status, ballot);
        self.send_accepts(replica, id, true);
    }

    /// `id` committed with `payload`: an abandoned instance decided as the no-op gives
    /// its commands back to propose again.
    pub(super) fn on_committed(&mut self, id: InstanceId, payload: &Batch) {
        if let Some(batch) = self.abandoned.remove(&id) {
            if payload.is_noop() {
                self.restarts.push(batch);
            }
        }
    }

    /// Own commands of abandoned instances, to propose again once this replica is in the
    /// newest epoch a refusal named.
    pub(super) fn take_restarts(&mut self, replica: &Replica) -> Vec<Batch> {
        let current = replica.epochs.current();
        // Only voters lead (`batch.rs`, `has_room`): a replica removed meanwhile keeps
        // them, and their clients time out.
        if current < self.refused_up_to || !replica.epochs.counts_vote(current, replica.id) {
            return Vec::new();
        }
        std::mem::take(&mut self.restarts)
    }

    /// Resend what went unanswered for a retry timeout: PreAccepts to everyone not heard
    /// from (settling for the slow path once a majority replied), Accepts likewise.
    pub(super) fn retransmit(&mut self, replica: &mut Replica, now: Time) {
        let retry = replica.config.retry_timeout;
        let late: Vec<InstanceId> = self
            .leading
            .iter()
            .filter(|(_, l)| now >= l.sent_at + retry)
            .map(|(&id, _)| id)
            .collect();
        for id in late {
            let Some(leading) = self.leading.get_mut(&id) else {
                continue;
            };
            leading.sent_at = now;
            replica.metrics.incr("retransmissions");
            let slow_quorum = replica.epochs.slow_quorum(leading.original.epoch);
            match &leading.phase {
                Phase::PreAccept { replies } if replies.len() >= slow_quorum => {
                    self.start_accept(replica, now, id)
                }
                Phase::PreAccept { .. } => self.send_preaccepts(replica, id, false),
                Phase::Accept { .. } => self.send_accepts(replica, id, false),
            }
        }
    }

    /// Restart path: pick up an own instance where its durable state left it.
    pub(super) fn resume(&mut self, replica: &mut Replica, now: Time, id: InstanceId) {
        let Some(instance) = replica.table.get(id) else {
            return;
        };
        let ballot = instance.accepted_in;
        let original = instance.attributes.clone();
        // Under ordered delivery the own vote is cast again from what is indexed now: the
        // one cast before the restart (if any) may be missing instances this replica
        // processed while its own was not indexed.
        let vote_again = !self.own_delay.is_zero() && ballot == Ballot::initial(id);
        let phase = match instance.status {
            Status::Committed => return,
            Status::PreAccepted => {
                let mut replies = BTreeMap::new();
                if !vote_again {
                    replies.insert(replica.id, original.clone());
                }
                Phase::PreAccept { replies }
            }
            Status::Accepted => {
                let mut votes = VoteSet::new(replica.epochs.slow_quorum(original.epoch));
                votes.add(replica.id);
                Phase::Accept { votes }
            }
        };
        let accept = matches!(phase, Phase::Accept { .. });
        let leading = Leading {
            recovery: false,
            ballot,
            original,
            phase,
            sent_at: now,
        };
        self.leading.insert(id, leading);
        if accept {
            self.send_accepts(replica, id, false);
        } else {
            self.send_preaccepts(replica, id, false);
            if vote_again {
                self.cast_own_vote(replica, now, id);
            }
        }
    }

    /// Recovery found these attributes may have been chosen: Accept them at its ballot.
    pub(super) fn take_over_with_accept(
        &mut self,
        replica: &mut Replica,
        now: Time,
        proposal: Proposal,
    ) {
        let votes = VoteSet::new(replica.epochs.slow_quorum(proposal.attributes.epoch));
        self.begin(replica, now, proposal, Phase::Accept { votes }, true);
    }

    /// Recovery found nothing chosen: run Phase 1 again for the command at its ballot,
    /// with what is known added, never committing on the fast path.
    pub(super) fn take_over_with_phase1(
        &mut self,
        replica: &mut Replica,
        now: Time,
        known: Proposal,
    ) {
        let id = known.instance;
        let mut attributes =
            replica
                .table
                .attributes_for(id, &known.payload, &replica.ran_everywhere);
        attributes.merge(&known.attributes);
        attributes.deps.remove(&id);
        let proposal = Proposal {
            attributes,
            ..known
        };
        self.preaccept(replica, now, proposal, true);
    }
}

/// Send a phase message to `targets`. The first time (`first` holds the instance's record
/// and the leader's own reply, unless it is cast later), the record is persisted before
/// anything leaves and the reply comes back as a self-send released by the sync; a
/// resend writes nothing and only keeps the release order behind earlier writes.
fn send(
    replica: &mut Replica,
    targets: Vec<NodeId>,
    message: &Message,
    first: Option<(InstanceRecord, Option<Message>)>,
) {
    let mut then: Vec<Effect<Message>> = targets
        .into_iter()
        .map(|to| Effect::Send {
            to,
            message: message.clone(),
        })
        .collect();
    match first {
        Some((record, own_reply)) => {
            then.extend(own_reply.map(|message| Effect::Send {
                to: replica.id,
                message,
            }));
            replica.outbox.persist(vec![Record::Instance(record)], then);
        }
        None => replica.outbox.persist(Vec::new(), then),
    }
}
