//! The learner role: commits, in-order execution with replies, and catch-up of lagging
//! replicas.
//!
//! A follower learns the leader's commit point from heartbeats. When it has not executed
//! up to it (lost Commits, a restart that forgot everything but its acceptor state), it
//! asks the leader for the committed slots it misses, a bounded batch at a time, and asks
//! for the next batch as soon as one arrives.

use super::log::Executed;
use super::messages::{Batch, Message, Slot};
use super::{MultiPaxos, Role};
use crate::id::NodeId;
use crate::request::{ClientReply, Response};
use crate::time::Time;

impl MultiPaxos {
    /// The value of `slot` is chosen. Commits carry no ballot: a chosen value is unique,
    /// so any Commit from a member is true.
    pub(super) fn on_commit(&mut self, now: Time, slot: Slot, value: Batch) {
        if self.log.is_committed(slot) {
            self.drop_message(false);
            return;
        }
        self.log.commit(slot, value);
        self.execute(now);
    }

    /// Execute newly committed slots in order; answer the clients this replica took the
    /// requests from; compact when due.
    pub(super) fn execute(&mut self, now: Time) {
        for ran in self.log.execute() {
            let ours = ran.origin == self.id && self.pending.remove(&ran.request).is_some();
            match ran.executed {
                Executed::Command(outcome) => {
                    match &outcome {
                        Ok(_) => self.metrics.incr("executed"),
                        Err(_) => self.metrics.incr("sessions_expired"),
                    }
                    if ours {
                        self.outbox.reply(ClientReply {
                            id: ran.request,
                            outcome: outcome.map(Response::Kv),
                        });
                    }
                }
                Executed::Change(result) => {
                    if result.is_ok() {
                        self.metrics.incr("changes_applied");
                    } else {
                        self.metrics.incr("changes_not_applied");
                    }
                    if ours {
                        self.answer_change(ran.request, result.map_err(Into::into));
                    }
                }
            }
        }
        self.sync_configuration(now);
        let next = self.log.next_execute();
        if let Role::Leader(leadership) = &mut self.role {
            if leadership.change_slot.is_some_and(|slot| slot < next) {
                if leadership.covers_above_change {
                    // Our own change did not apply (the configuration is the same): go on.
                    leadership.change_slot = None;
                    self.propose(now);
                } else {
                    // Our phase 1 found the change and re-proposed only up to it: what
                    // was accepted above it is known only to a phase 1 run now, applied
                    // or not.
                    let queue = std::mem::take(&mut leadership.queue);
                    self.metrics.incr("phase1_after_change");
                    self.start_election(now);
                    self.requeue(queue);
                }
            }
        }
        self.maybe_compact(now);
    }

    /// Ask `leader` for committed slots we have not executed, unless we asked recently
    /// (`eager`: a batch just arrived, ask for the next one now).
    pub(super) fn request_catch_up(&mut self, now: Time, leader: NodeId, eager: bool) {
        let next = self.log.next_execute();
        if next >= self.known_commit_point {
            return;
        }
        let asked_recently = self
            .last_catch_up_request
            .is_some_and(|t| now < t + self.config.heartbeat_interval * 2);
        if asked_recently && !eager {
            return;
        }
        self.last_catch_up_request = Some(now);
        self.metrics.incr("catch_up_requests");
        self.outbox
            .send(leader, Message::CatchUpRequest { from_slot: next });
    }

    /// A peer misses committed slots from `from_slot` on: send what we know, bounded, or
    /// tell it to fetch our snapshot if they are compacted.
    pub(super) fn on_catch_up_request(&mut self, from: NodeId, from_slot: Slot) {
        if from_slot < self.log.floor() {
            self.outbox.send(
                from,
                Message::Compacted {
                    floor: self.log.floor(),
                },
            );
            return;
        }
        let to = self.log.commit_point();
        let entries = self
            .log
            .committed_range(from_slot, to, self.config.catch_up_batch);
        if entries.is_empty() {
            // It asked beyond what we know committed (or we restarted and forgot).
            self.drop_message(false);
            return;
        }
        self.metrics
            .add("catch_up_entries_sent", entries.len() as u64);
        self.outbox.send(from, Message::CatchUp { entries });
    }

    /// Committed slots we asked for.
    pub(super) fn on_catch_up(&mut self, now: Time, from: NodeId, entries: Vec<(Slot, Batch)>) {
        let before = self.log.next_execute();
        for (slot, value) in entries {
            self.log.commit(slot, value);
        }
        self.execute(now);
        if self.log.next_execute() > before {
            self.request_catch_up(now, from, true);
        }
    }
}
