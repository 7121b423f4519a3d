//! The acceptor role: PreAccept and Accept from a command leader (or a recovering
//! replica), and inquiries about decided instances.
//!
//! A phase message is refused below the highest ballot promised for its instance, seen
//! or not: a promise made to a recovery binds the original leader's late messages too.
//! Every reply is persisted before it is sent (docs/design.md#epaxos, rule 5), and a
//! decision is revealed only once its commit record is durable.

use super::instance::{Attributes, Ballot, Batch, InstanceId, Status};
use super::key_index::RanEverywhere;
use super::messages::Message;
use super::replica::Replica;
use crate::id::NodeId;
use crate::protocol::Effect;

/// Dependencies asked of a sender per PreAccept of an epoch ahead of ours: the switch
/// is among the instance's direct dependencies, and a resend asks again.
const MAX_DEPENDENCIES_ASKED: usize = 64;

impl Replica {
    pub(super) fn on_preaccept(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        id: InstanceId,
        payload: Batch,
        leader_attributes: Attributes,
        ran_everywhere: &RanEverywhere,
    ) {
        if self.reveal_commit(from, id) || self.refuse_below_promise(from, ballot, id) {
            return;
        }
        if let Some(existing) = self.table.get(id) {
            if existing.accepted_in == ballot {
                // A resend (or the leader resuming after a restart): the same answer.
                let reply = Message::PreAcceptOk {
                    ballot,
                    instance: id,
                    attributes: existing.attributes.clone(),
                };
                self.outbox.persist(
                    Vec::new(),
                    vec![Effect::Send {
                        to: from,
                        message: reply,
                    }],
                );
                return;
            }
        }
        if !self.admits(from, id, &leader_attributes) {
            return;
        }
        let mut attributes = self.table.attributes_for(id, &payload, ran_everywhere);
        attributes.merge(&leader_attributes);
        let unchanged = attributes == leader_attributes;
        if !unchanged {
            self.metrics.incr("preaccept_attributes_changed");
        }
        self.table
            .store(id, payload, attributes.clone(), Status::PreAccepted, ballot);
        if unchanged && ballot == Ballot::initial(id) {
            self.table.mark_witness(id);
        }
        let reply = Message::PreAcceptOk {
            ballot,
            instance: id,
            attributes,
        };
        self.record_and_reply(id, from, reply);
    }

    pub(super) fn on_accept(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        id: InstanceId,
        payload: Batch,
        attributes: Attributes,
    ) {
        // A committed instance answers with its decision, never with a vote for other
        // attributes, nor with a refusal: a stale driver learns the outcome at once.
        if self.reveal_commit(from, id) || self.refuse_below_promise(from, ballot, id) {
            return;
        }
        self.table
            .store(id, payload, attributes, Status::Accepted, ballot);
        let reply = Message::AcceptOk {
            ballot,
            instance: id,
        };
        self.record_and_reply(id, from, reply);
    }

    /// Whether this replica computes attributes for an instance of epoch `attributes.epoch`
    /// (docs/design.md, "EPaxos epochs", rule 3): only in that epoch and as its voter.
    /// Past it, the sender is told the epoch moved (its leader restarts the commands in
    /// the new one); before it, or not a voter of it, nothing is said. An epoch ahead of
    /// ours means we missed a switch: the instance depends on it (a switch is a barrier),
    /// so its dependencies we never saw committed are asked of the sender, which executed
    /// the switch. Learning it from commits alone is not enough: a lost commit of a
    /// switch that executed above a gap in its leader's slots is named by no report
    /// (t18 seed 137163, a cluster stuck for good one epoch behind).
    pub(super) fn admits(&mut self, from: NodeId, id: InstanceId, attributes: &Attributes) -> bool {
        let current = self.epochs.current();
        let epoch = attributes.epoch;
        if self.epochs.votes_in_current(epoch, self.id) {
            return true;
        }
        self.metrics.incr("preaccepts_refused_epoch");
        if epoch < current {
            let moved = Message::EpochMoved {
                instance: id,
                epoch: current,
            };
            self.outbox.send(from, moved);
        } else if epoch > current {
            self.ask_unknown_dependencies(from, attributes);
        }
        false
    }

    /// Ask `from` for the dependencies in `attributes` this replica never saw committed
    /// (a few, each time the sender resends).
    fn ask_unknown_dependencies(&mut self, from: NodeId, attributes: &Attributes) {
        let unknown: Vec<InstanceId> = attributes
            .deps
            .iter()
            .copied()
            .filter(|&dep| !self.committed_or_executed(dep))
            .take(MAX_DEPENDENCIES_ASKED)
            .collect();
        for dep in unknown {
            self.metrics.incr("epoch_behind_inquiries");
            self.outbox.send(from, Message::Inquire { instance: dep });
        }
    }

    /// Persist `id`'s record, then send `reply` to `to` (a vote never goes out before
    /// the state it depends on is durable: docs/design.md#epaxos, rule 5).
    pub(super) fn record_and_reply(&mut self, id: InstanceId, to: NodeId, reply: Message) {
        let Some(record) = self.table.record_of(id) else {
            return;
        };
        self.outbox
            .persist(vec![record], vec![Effect::Send { to, message: reply }]);
    }

    /// A peer asks for the decision on `id`: tell it if we hold one; if we forgot `id`
    /// because every member executed it (`forgotten`, see `Collector::forgot`), say so:
    /// the asker fell behind the collection.
    pub(super) fn on_inquire(&mut self, from: NodeId, id: InstanceId, forgotten: bool) {
        if !self.reveal_commit(from, id) && forgotten {
            self.outbox.send(from, Message::Collected { instance: id });
        }
    }

    /// Nack `ballot` if a higher one was promised for `id`; true if refused.
    pub(super) fn refuse_below_promise(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        id: InstanceId,
    ) -> bool {
        let promised = self.table.promised_for(id);
        if ballot >= promised {
            return false;
        }
        self.outbox.send(
            from,
            Message::Nack {
                instance: id,
                promised,
            },
        );
        true
    }

    /// Tell `to` the decision on `id` if there is one here; true if told.
    pub(super) fn reveal_commit(&mut self, to: NodeId, id: InstanceId) -> bool {
        let Some(instance) = self.table.get(id).filter(|i| i.status == Status::Committed) else {
            return false;
        };
        let message = Message::Commit {
            instance: id,
            payload: instance.payload.clone(),
            attributes: instance.attributes.clone(),
        };
        // Behind our own commit record: never reveal a decision before it is durable.
        self.outbox
            .persist(Vec::new(), vec![Effect::Send { to, message }]);
        true
    }
}
