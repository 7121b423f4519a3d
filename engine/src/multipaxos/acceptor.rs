//! The acceptor role: promises and accepts, each made durable before the reply leaves,
//! and reacting to ballots above our own.
//!
//! Two refusals keep bounded state safe: a prepare from below our compaction point gets
//! [`Message::Compacted`] (we no longer hold what we accepted there, so we must not
//! promise as if we had accepted nothing: the candidate fetches a snapshot first), and a
//! replica that lost its disk votes for nothing until it has rejoined
//! (docs/design.md#rejoin-rule).

use super::messages::{Ballot, Batch, Message, Record, Slot};
use super::{MultiPaxos, Role, Timer};
use crate::id::NodeId;
use crate::protocol::Effect;
use crate::time::Time;

impl MultiPaxos {
    /// Phase 1b. A duplicate prepare for the ballot already promised is answered again
    /// (through the sync pipeline, so never before the promise is durable).
    pub(super) fn on_prepare(&mut self, now: Time, from: NodeId, ballot: Ballot, from_slot: Slot) {
        if from != ballot.node || from == self.id {
            // Only a ballot's owner prepares it, and our own candidacy votes through
            // `OwnPromiseDurable`.
            self.drop_message(true);
            return;
        }
        if self.rejoining {
            self.metrics.incr("votes_withheld");
            return;
        }
        if ballot < self.promised {
            self.nack(from);
            return;
        }
        if self.refuse_below_floor(from, from_slot) {
            return;
        }
        let mut records = Vec::new();
        if ballot > self.promised {
            self.observe_higher_ballot(now, ballot);
            self.promised = ballot;
            records.push(Record::Promised(ballot));
        }
        self.promise(now, from, ballot, from_slot, records);
        self.hold_off_election(now);
    }

    /// A phase 1 from below our compaction point: answer `Compacted` instead of a promise.
    pub(super) fn refuse_below_floor(&mut self, from: NodeId, from_slot: Slot) -> bool {
        let floor = self.log.floor();
        if from_slot >= floor {
            return false;
        }
        self.metrics.incr("prepares_below_floor");
        self.outbox.send(from, Message::Compacted { floor });
        true
    }

    /// Send a promise of `ballot` once `records` are durable, with what we accepted from
    /// `from_slot` on and the fences we know.
    pub(super) fn promise(
        &mut self,
        now: Time,
        to: NodeId,
        ballot: Ballot,
        from_slot: Slot,
        records: Vec<Record>,
    ) {
        let promise = Message::Promise {
            ballot,
            accepted: self.log.accepted_from(from_slot),
            lease_remaining_us: self.lease_remaining_us(now),
            fence: self.own_fence(),
            fences: self.fences.iter().map(|(&n, &b)| (n, b)).collect(),
        };
        self.outbox.persist(
            records,
            vec![Effect::Send {
                to,
                message: promise,
            }],
        );
    }

    /// Phase 2b: accept unless promised higher; the vote leaves once the value is durable.
    pub(super) fn on_accept(
        &mut self,
        now: Time,
        from: NodeId,
        ballot: Ballot,
        slot: Slot,
        value: Batch,
    ) {
        if from != ballot.node || from == self.id {
            // Only a ballot's owner proposes in it; a leader votes for itself by self-send.
            self.drop_message(true);
            return;
        }
        if self.rejoining {
            self.metrics.incr("votes_withheld");
            return;
        }
        if ballot < self.promised {
            self.nack(from);
            return;
        }
        let mut records = Vec::new();
        if ballot > self.promised {
            self.promised = ballot;
            records.push(Record::Promised(ballot));
        }
        self.follow(now, ballot);
        if slot >= self.log.floor() {
            self.log.accept(slot, ballot, value.clone());
            records.push(Record::Accepted {
                slot,
                ballot,
                value,
            });
        }
        // Below the floor the slot is chosen and executed here: a leader re-proposing it
        // proposes the chosen value, and this replica answers no phase 1 from below its
        // floor, so voting without a record keeps every promise.
        self.outbox.persist(
            records,
            vec![Effect::Send {
                to: from,
                message: Message::Accepted { ballot, slot },
            }],
        );
    }

    /// Refuse a ballot below our promise, telling the sender what it must beat. Refusing
    /// needs no durability.
    pub(super) fn nack(&mut self, to: NodeId) {
        self.metrics.incr("nacks_sent");
        self.outbox.send(
            to,
            Message::Nack {
                promised: self.promised,
            },
        );
    }

    /// A peer refused our ballot: remember what to beat, and stop leading if it is higher.
    pub(super) fn on_nack(&mut self, now: Time, promised: Ballot) {
        if promised <= self.own_ballot().unwrap_or_default() {
            // A refusal of an older ballot of ours (or a duplicate): nothing new.
            self.drop_message(false);
            return;
        }
        self.observe_higher_ballot(now, promised);
    }

    /// The ballot this replica leads or campaigns with.
    pub(super) fn own_ballot(&self) -> Option<Ballot> {
        match &self.role {
            Role::Leader(l) => Some(l.ballot),
            Role::Candidate(c) => Some(c.ballot),
            Role::Follower => None,
        }
    }

    /// A ballot exists above what we promised: stop leading or campaigning, and believe
    /// its owner is (or is about to be) the leader.
    pub(super) fn observe_higher_ballot(&mut self, now: Time, ballot: Ballot) {
        self.highest_seen = self.highest_seen.max(ballot);
        if self.own_ballot().is_some_and(|own| ballot > own) {
            self.step_down(now);
        }
        if ballot > self.promised && ballot.node != self.id {
            self.reset_election_deadline(now);
            self.set_leader(now, Some(ballot.node));
        }
    }

    /// Follow the leader of `ballot` (from an Accept or Heartbeat at or above our promise).
    pub(super) fn follow(&mut self, now: Time, ballot: Ballot) {
        self.observe_higher_ballot(now, ballot);
        if ballot.node == self.id {
            return;
        }
        self.reset_election_deadline(now);
        self.set_leader(now, Some(ballot.node));
    }

    /// Become a follower. Proposals queued but not yet in a slot are dropped: their
    /// origins forward them again to the next leader.
    pub(super) fn step_down(&mut self, now: Time) {
        self.role = Role::Follower;
        self.timers.cancel(Timer::Heartbeat);
        self.metrics.incr("step_downs");
        self.reset_election_deadline(now);
        self.set_leader(now, None);
    }
}
