//! Client intake: local reads, forwarding to the leader, retries across leader changes.
//!
//! ```text
//!  handle_request ─▶ pending[id] ─▶ dispatch: leader?    → queue in our own pipeline
//!                                             leader known → Forward to it (retry later)
//!                                             no leader    → wait for one
//!  set_leader(new) ─▶ dispatch every pending request again
//!  execute(slot)   ─▶ pending.remove(id) ─▶ Reply
//! ```

use super::messages::{Message, Proposal};
use super::{timed_out, MultiPaxos, Role, Timer};
use crate::command::CommandResult;
use crate::id::{NodeId, RequestId};
use crate::request::{ClientReply, ClientRequest, Consistency, RequestError, Response};
use crate::time::Time;

/// Requests one replica holds for its clients at most; more are rejected.
const MAX_PENDING: usize = 10_000;
/// Forwarding hops before a proposal is dropped (elections can bounce it around); its
/// origin retries.
const MAX_HOPS: u8 = 3;

/// A request this replica took from a client and has not answered.
#[derive(Clone, Debug)]
pub(super) struct Pending {
    proposal: Proposal,
    /// Where it was last sent (ourselves when we lead), if anywhere.
    sent_to: Option<NodeId>,
    /// When it was last sent or queued.
    last_sent: Time,
    /// Dispatch attempts so far.
    attempts: u32,
}

impl MultiPaxos {
    /// A client's request to this replica.
    pub(super) fn on_client_request(&mut self, now: Time, request: ClientRequest) {
        let reply = |outcome| ClientReply {
            id: request.id,
            outcome,
        };
        match request.consistency {
            Consistency::Dynamo(level) => {
                self.outbox.reply(reply(Err(RequestError::Invalid(format!(
                    "consistency level {level} applies to Dynamo keyspaces; this keyspace runs \
                     Multi-Paxos (use {})",
                    Consistency::READ_LEVELS
                )))));
            }
            Consistency::LocalRead if request.command.is_read() => {
                self.metrics.incr("local_reads");
                let result = self.log.kv().read_only(&request.command);
                let result = result.unwrap_or(CommandResult::Value(None));
                self.outbox.reply(reply(Ok(Response::Kv(result))));
            }
            level @ (Consistency::Lease
            | Consistency::ReadIndex
            | Consistency::Follower
            | Consistency::Stale { .. })
                if request.command.prefix().is_some() =>
            {
                self.outbox.reply(reply(Err(RequestError::Invalid(format!(
                    "scan and keys take linearizable (ordered in the log) or local on \
                     Multi-Paxos keyspaces, not {level}"
                )))));
            }
            Consistency::Lease
            | Consistency::ReadIndex
            | Consistency::Follower
            | Consistency::Stale { .. }
                if request.command.is_read() =>
            {
                self.on_read(now, request);
            }
            // Writes at a read level are ordered like linearizable ones.
            Consistency::LocalRead
            | Consistency::Linearizable
            | Consistency::Lease
            | Consistency::ReadIndex
            | Consistency::Follower
            | Consistency::Stale { .. } => {
                let proposal = Proposal::command(request.id, self.id, request.command);
                if !self.take_proposal(now, proposal) {
                    self.outbox.reply(reply(Err(RequestError::Rejected(
                        "too many requests pending at this replica".to_owned(),
                    ))));
                }
            }
        }
    }

    /// Hold `proposal` (ours) until it is executed, and send it to whoever leads; false
    /// if too many are pending. A retry of a request we already hold is taken once.
    pub(super) fn take_proposal(&mut self, now: Time, proposal: Proposal) -> bool {
        let id = proposal.request;
        if self.pending.contains_key(&id) {
            return true;
        }
        if self.pending.len() >= MAX_PENDING {
            self.metrics.incr("requests_rejected");
            return false;
        }
        self.pending.insert(
            id,
            Pending {
                proposal,
                sent_to: None,
                last_sent: now,
                attempts: 0,
            },
        );
        self.dispatch(now, id);
        true
    }

    /// Stop holding a pending request (answered another way); whether it was held.
    pub(super) fn forget_pending(&mut self, id: RequestId) -> bool {
        self.pending.remove(&id).is_some()
    }

    /// Send a pending request to whoever leads, or keep it until a leader is known.
    fn dispatch(&mut self, now: Time, id: RequestId) {
        let Some(pending) = self.pending.get_mut(&id) else {
            return;
        };
        pending.last_sent = now;
        pending.attempts += 1;
        if pending.attempts > self.config.max_forward_attempts {
            let change = pending.proposal.is_change();
            self.pending.remove(&id);
            self.metrics.incr("requests_timed_out");
            if change {
                self.answer_change(id, Err(super::ChangeFailure::Timeout));
            } else {
                self.outbox.reply(timed_out(id));
            }
            return;
        }
        let proposal = pending.proposal.clone();
        match &mut self.role {
            Role::Leader(leadership) => {
                pending.sent_to = Some(self.id);
                if !leadership.enqueue(proposal) {
                    self.metrics.incr("requests_dropped");
                }
                self.propose(now);
            }
            _ => match self.leader_hint.filter(|&l| l != self.id) {
                Some(leader) => {
                    pending.sent_to = Some(leader);
                    self.metrics.incr("forwarded");
                    self.outbox
                        .send(leader, Message::Forward { proposal, hops: 0 });
                    self.arm_retry(now);
                }
                None => {
                    pending.sent_to = None;
                    self.arm_retry(now);
                }
            },
        }
    }

    fn arm_retry(&mut self, now: Time) {
        let due = now + self.config.forward_retry;
        let due = self
            .timers
            .deadline(Timer::Retry)
            .map_or(due, |d| d.min(due));
        self.timers.set(Timer::Retry, due);
    }

    /// Dispatch again every pending request that has waited `forward_retry` (lost
    /// forwards, a leader that stepped down without us noticing).
    pub(super) fn retry_pending(&mut self, now: Time) {
        self.timers.cancel(Timer::Retry);
        if self.is_leader() {
            // Our own requests are in our pipeline; Accept retransmission covers them.
            return;
        }
        let retry = self.config.forward_retry;
        let due: Vec<RequestId> = self
            .pending
            .iter()
            .filter(|(_, p)| now >= p.last_sent + retry)
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            self.metrics.incr("forward_retries");
            self.dispatch(now, id);
        }
        if let Some(earliest) = self.pending.values().map(|p| p.last_sent).min() {
            self.timers.set(Timer::Retry, earliest + retry);
        }
    }

    /// A peer forwarded a client's proposal to us.
    pub(super) fn on_forward(&mut self, now: Time, proposal: Proposal, hops: u8) {
        if !self.knows(proposal.origin) {
            self.drop_message(true);
            return;
        }
        match &mut self.role {
            Role::Leader(leadership) => {
                if !leadership.enqueue(proposal) {
                    self.metrics.incr("requests_dropped");
                }
                self.propose(now);
            }
            Role::Candidate(candidacy) => {
                if !candidacy.enqueue(proposal) {
                    self.metrics.incr("requests_dropped");
                }
            }
            Role::Follower => match self.leader_hint.filter(|&l| l != self.id) {
                Some(leader) if hops < MAX_HOPS => {
                    self.metrics.incr("forwarded");
                    self.outbox.send(
                        leader,
                        Message::Forward {
                            proposal,
                            hops: hops + 1,
                        },
                    );
                }
                // Its origin forwards it again once a leader is known.
                _ => self.metrics.incr("requests_dropped"),
            },
        }
    }

    /// Record who leads; a change sends every pending request to the new leader.
    pub(super) fn set_leader(&mut self, now: Time, leader: Option<NodeId>) {
        if self.leader_hint == leader {
            return;
        }
        self.leader_hint = leader;
        let Some(leader) = leader else {
            return;
        };
        self.redirect_reads(now);
        if leader == self.id && !self.is_leader() {
            return;
        }
        let redirect: Vec<RequestId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.sent_to != Some(leader))
            .map(|(&id, _)| id)
            .collect();
        for id in redirect {
            self.dispatch(now, id);
        }
    }
}
