//! The acceptor role: promises and accepts, each made durable before the reply leaves.

use super::messages::{Ballot, Batch, Message, Record, Slot};
use super::{MultiPaxos, Role};
use crate::id::NodeId;
use crate::protocol::Effect;
use crate::time::Time;

impl MultiPaxos {
    /// Phase 1b. A duplicate prepare for the ballot already promised is answered again
    /// (through the sync pipeline, so never before the promise is durable).
    pub(super) fn on_prepare(&mut self, now: Time, from: NodeId, ballot: Ballot, from_slot: Slot) {
        if ballot < self.promised || (ballot == self.promised && from != ballot.node) {
            self.outbox.send(
                from,
                Message::Nack {
                    promised: self.promised,
                },
            );
            return;
        }
        let mut records = Vec::new();
        if ballot > self.promised {
            self.observe_higher_ballot(now, ballot);
            self.promised = ballot;
            records.push(Record::Promised(ballot));
        }
        let promise = Message::Promise {
            ballot,
            accepted: self.log.accepted_from(from_slot),
        };
        self.outbox.persist(
            records,
            vec![Effect::Send {
                to: from,
                message: promise,
            }],
        );
    }

    /// Phase 2b.
    pub(super) fn on_accept(
        &mut self,
        now: Time,
        from: NodeId,
        ballot: Ballot,
        slot: Slot,
        value: Batch,
    ) {
        if ballot < self.promised {
            self.outbox.send(
                from,
                Message::Nack {
                    promised: self.promised,
                },
            );
            return;
        }
        let mut records = Vec::new();
        if ballot > self.promised {
            self.promised = ballot;
            records.push(Record::Promised(ballot));
        }
        self.follow(now, ballot);
        self.log.accept(slot, ballot, value.clone());
        records.push(Record::Accepted {
            slot,
            ballot,
            value,
        });
        self.outbox.persist(
            records,
            vec![Effect::Send {
                to: from,
                message: Message::Accepted { ballot, slot },
            }],
        );
    }

    /// A higher ballot exists: stop leading or campaigning.
    pub(super) fn observe_higher_ballot(&mut self, now: Time, ballot: Ballot) {
        let own = match &self.role {
            Role::Leader(l) => Some(l.ballot),
            Role::Candidate(c) => Some(c.ballot),
            Role::Follower => None,
        };
        if own.is_some_and(|own| ballot > own) {
            self.step_down(now);
        }
        if ballot > self.promised {
            self.leader_hint = Some(ballot.node).filter(|&n| n != self.id);
            self.reset_election_deadline(now);
        }
    }

    /// Follow the leader of `ballot` (from an Accept or Heartbeat at or above our promise).
    pub(super) fn follow(&mut self, now: Time, ballot: Ballot) {
        self.observe_higher_ballot(now, ballot);
        if ballot.node == self.id {
            return;
        }
        self.leader_hint = Some(ballot.node);
        self.reset_election_deadline(now);
        if !self.waiting.is_empty() && !matches!(self.role, Role::Leader(_)) {
            self.release_waiting(now);
        }
    }

    /// Become a follower; proposals not yet in a slot are kept for the next leader.
    pub(super) fn step_down(&mut self, now: Time) {
        if let Role::Leader(leadership) = std::mem::replace(&mut self.role, Role::Follower) {
            self.waiting.extend(leadership.queue);
        }
        self.leader_hint = None;
        self.reset_election_deadline(now);
    }
}
