//! The leader role: phase 2 per slot, pipelined, with optional batching.

use super::messages::{Ballot, Batch, Message, Proposal, Record, Slot};
use super::{MultiPaxos, Role};
use crate::id::NodeId;
use crate::protocol::{CommitPath, Effect};
use crate::quorum::VoteSet;
use crate::time::Time;
use std::collections::{BTreeMap, VecDeque};

pub(super) struct Leadership {
    pub(super) ballot: Ballot,
    next_slot: Slot,
    votes: BTreeMap<Slot, VoteSet>,
    /// When each uncommitted slot's Accept was last sent (for retransmission).
    sent_at: BTreeMap<Slot, Time>,
    pub(super) queue: VecDeque<Proposal>,
}

impl Leadership {
    pub(super) fn new(ballot: Ballot, next_slot: Slot) -> Self {
        Self {
            ballot,
            next_slot,
            votes: BTreeMap::new(),
            sent_at: BTreeMap::new(),
            queue: VecDeque::new(),
        }
    }
}

impl MultiPaxos {
    /// Put queued proposals into new slots while the pipeline window has room.
    pub(super) fn propose(&mut self, now: Time) {
        loop {
            let Role::Leader(leadership) = &mut self.role else {
                return;
            };
            if leadership.queue.is_empty() || leadership.votes.len() >= self.config.max_in_flight {
                return;
            }
            let take = leadership.queue.len().min(self.config.max_batch.max(1));
            let batch: Batch = leadership.queue.drain(..take).collect();
            let slot = leadership.next_slot;
            leadership.next_slot += 1;
            self.propose_in(now, slot, batch);
        }
    }

    /// Phase 2a for one slot: our own accept is durable before our vote counts.
    pub(super) fn propose_in(&mut self, now: Time, slot: Slot, value: Batch) {
        let Role::Leader(leadership) = &mut self.role else {
            return;
        };
        let ballot = leadership.ballot;
        leadership
            .votes
            .insert(slot, VoteSet::new(self.quorums.phase2));
        leadership.sent_at.insert(slot, now);
        leadership.next_slot = leadership.next_slot.max(slot + 1);
        self.log.accept(slot, ballot, value.clone());
        self.outbox.persist(
            vec![Record::Accepted {
                slot,
                ballot,
                value: value.clone(),
            }],
            vec![Effect::Send {
                to: self.id,
                message: Message::Accepted { ballot, slot },
            }],
        );
        self.broadcast(Message::Accept {
            ballot,
            slot,
            value,
        });
    }

    /// Phase 2b arrived: commit once a phase-2 quorum accepted.
    pub(super) fn on_accepted(&mut self, now: Time, from: NodeId, ballot: Ballot, slot: Slot) {
        let Role::Leader(leadership) = &mut self.role else {
            return;
        };
        if leadership.ballot != ballot {
            return;
        }
        let Some(votes) = leadership.votes.get_mut(&slot) else {
            return;
        };
        if !votes.add(from) {
            return;
        }
        leadership.votes.remove(&slot);
        leadership.sent_at.remove(&slot);
        let value = self
            .log
            .get(slot)
            .map(|s| s.value.clone())
            .unwrap_or_default();
        self.metrics.incr("commits");
        for proposal in &value {
            self.outbox.now(Effect::Committed {
                request: proposal.request,
                path: CommitPath::Leader,
            });
        }
        self.log.commit(slot, value.clone());
        self.broadcast(Message::Commit { slot, value });
        self.execute();
        self.propose(now);
    }

    /// Heartbeat every follower, and resend Accepts that have waited too long for a
    /// quorum (a lost Accept or Accepted would otherwise leave a hole that stalls
    /// in-order execution for good).
    pub(super) fn send_heartbeats(&mut self, now: Time) {
        let retry_after = self.config.election_timeout / 2;
        let Role::Leader(leadership) = &mut self.role else {
            return;
        };
        let ballot = leadership.ballot;
        let mut resend = Vec::new();
        for (&slot, sent) in leadership.sent_at.iter_mut() {
            if now >= *sent + retry_after {
                *sent = now;
                let missing: Vec<NodeId> = self
                    .members
                    .iter()
                    .copied()
                    .filter(|n| {
                        leadership
                            .votes
                            .get(&slot)
                            .is_some_and(|v| !v.voters().contains(n))
                    })
                    .collect();
                resend.push((slot, missing));
            }
        }
        for (slot, missing) in resend {
            let Some(value) = self.log.get(slot).map(|s| s.value.clone()) else {
                continue;
            };
            self.metrics.incr("accepts_resent");
            for to in missing.into_iter().filter(|&n| n != self.id) {
                self.outbox.send(
                    to,
                    Message::Accept {
                        ballot,
                        slot,
                        value: value.clone(),
                    },
                );
            }
        }
        let Role::Leader(leadership) = &self.role else {
            return;
        };
        let message = Message::Heartbeat {
            ballot: leadership.ballot,
            commit_point: self.log.commit_point(),
        };
        self.broadcast(message);
        self.heartbeat_due = now + self.config.heartbeat_interval;
    }
}
