//! Membership changes through the log (docs/design.md#membership).
//!
//! ```text
//!  operator ─▶ propose_change(change) at any replica ─▶ pending, forwarded like a command
//!  leader: a change gets a slot c of its own; nothing is proposed above c until c is
//!          executed here (the one-slot stall) if it changes the voters (a learner added
//!          or removed does not: no stall, no phase 1 again); a Promote of a learner that
//!          is not close behind is refused (ChangeRefused to the origin)
//!  execute c: ConfigSchedule.record(c) ─▶ the new configuration governs slots > c
//!          ─▶ the origin answers its operator (poll_change_outcome)
//!          ─▶ a leader still a voter runs phase 1 again under the new configuration
//!             before it proposes above c; a leader no longer a voter hands off (TakeOver
//!             to the next voter) and never stands again
//! ```
//! A new leader whose phase 1 reports a change in slot `c` re-proposes only up to `c`,
//! and runs phase 1 again once `c` is executed: every phase-1 quorum is one of the
//! configuration that governs every slot the leader proposes into.

use super::messages::{Message, Proposal, Slot};
use super::{MultiPaxos, Role};
use crate::configuration::{Change, ChangeFailure, ChangeOutcome, Configuration, ProposedChange};
use crate::id::{NodeId, RequestId};
use crate::protocol::Membership;
use crate::time::Time;

/// The configuration of epoch 0: the replicas of `cluster` that `config` names as initial
/// members (all of them by default), every one a voter.
pub(super) fn initial_configuration(
    cluster: &Membership,
    config: &super::MultiPaxosConfig,
) -> Configuration {
    Configuration::initial_of(cluster, config.initial_members.as_deref())
}

impl MultiPaxos {
    /// An operator asks this replica to change the membership: `change` is proposed
    /// against this replica's current configuration (its epoch), forwarded to the leader
    /// like a command, and answered through [`poll_change_outcome`](Self::poll_change_outcome)
    /// once it is executed here (the new configuration) or has failed. Replace is three
    /// changes: `AddLearner(new)`, `Promote(new)` once it caught up, `Remove(old)`.
    pub fn propose_change(&mut self, now: Time, request: RequestId, change: Change) {
        self.start(now);
        let refuse = |reason: String| ChangeOutcome {
            request,
            result: Err(ChangeFailure::Refused(reason)),
        };
        if self.config.quorums.is_some() {
            let reason = "membership changes need majority quorums; this keyspace is \
                          configured with flexible quorums"
                .to_owned();
            self.change_outcomes.push_back(refuse(reason));
            return;
        }
        let proposed = ProposedChange {
            from_epoch: self.configuration().epoch(),
            change,
        };
        if let Err(error) = self.configuration().apply(&proposed) {
            self.change_outcomes.push_back(refuse(error.to_string()));
            return;
        }
        let proposal = Proposal::change(request, self.id, proposed);
        if !self.take_proposal(now, proposal) {
            let reason = "too many requests pending at this replica".to_owned();
            self.change_outcomes.push_back(refuse(reason));
        }
    }

    /// The next finished membership change this replica took from its operator.
    pub fn poll_change_outcome(&mut self) -> Option<ChangeOutcome> {
        self.change_outcomes.pop_front()
    }

    /// A pending change of ours ended.
    pub(super) fn answer_change(
        &mut self,
        request: RequestId,
        result: Result<Configuration, ChangeFailure>,
    ) {
        self.change_outcomes
            .push_back(ChangeOutcome { request, result });
    }

    /// The leader refused a change we forwarded.
    pub(super) fn on_change_refused(&mut self, request: RequestId, reason: String) {
        if self.forget_pending(request) {
            self.answer_change(request, Err(ChangeFailure::RefusedByLeader(reason)));
        } else {
            self.drop_message(false);
        }
    }

    /// A learner's (or a spare's) heartbeat acknowledgement: not a vote, but it tells the
    /// leader how far the learner has caught up.
    pub(super) fn note_learner_progress(&mut self, from: NodeId, message: &Message) {
        if let (
            Message::HeartbeatAck {
                ballot, executed, ..
            },
            Role::Leader(leadership),
        ) = (message, &mut self.role)
        {
            if leadership.ballot == *ballot {
                leadership.progress.insert(from, *executed);
            }
        }
    }

    /// Whether the leader may propose `change` now: a learner is promoted only once its
    /// executed frontier is within `retained_slots` of ours (it can then catch up from
    /// the log). `Err` says why not, for the operator.
    pub(super) fn vet_change(&self, change: &ProposedChange) -> Result<(), String> {
        self.configuration()
            .apply(change)
            .map_err(|error| error.to_string())?;
        let Change::Promote(id) = change.change else {
            return Ok(());
        };
        let Role::Leader(leadership) = &self.role else {
            return Ok(());
        };
        let ours = self.log.next_execute();
        match leadership.progress.get(&id) {
            Some(&theirs) if theirs.saturating_add(self.config.retained_slots) >= ours => Ok(()),
            Some(&theirs) => Err(format!(
                "learner {id} has not caught up: it executed {theirs} slots, the leader {ours}; \
                 retry once it is within {} slots",
                self.config.retained_slots
            )),
            None => Err(format!(
                "learner {id} has not acknowledged this leader yet; retry once it has caught up"
            )),
        }
    }

    /// Whether `change` keeps the voters as they are (a learner added or removed): the
    /// slots after it are decided by the same quorums as those before it, so the leader
    /// neither stalls behind it nor runs phase 1 again once it executes.
    pub(super) fn keeps_voters(&self, change: &ProposedChange) -> bool {
        let current = self.configuration();
        current
            .apply(change)
            .map_or(true, |next| next.voters().eq(current.voters()))
    }

    /// Tell the origin of a change the leader will not propose.
    pub(super) fn refuse_change(&mut self, proposal: Proposal, reason: String) {
        self.metrics.incr("changes_refused");
        if proposal.origin == self.id {
            self.on_change_refused(proposal.request, reason);
        } else {
            self.outbox.send(
                proposal.origin,
                Message::ChangeRefused {
                    request: proposal.request,
                    reason,
                },
            );
        }
    }

    /// After execution or a snapshot: if the configuration changed, talk to its members,
    /// size quorums from its voters, and settle this replica's role under it.
    pub(super) fn sync_configuration(&mut self, now: Time) {
        let configuration = self.log.configuration();
        if configuration.epoch() == self.epoch {
            return;
        }
        self.epoch = configuration.epoch();
        self.members = configuration.members().iter().map(|m| m.id).collect();
        let voters: Vec<NodeId> = configuration.voters().collect();
        let voters_changed = voters != self.voters;
        self.voters = voters;
        self.quorums = self
            .config
            .quorums_after_change(configuration.voter_count().max(1));
        let voter = configuration.counts_vote(self.id);
        let successor = self.successor();
        self.metrics.incr("configurations_applied");
        self.metrics.set("configuration_epoch", self.epoch);
        match &mut self.role {
            // A learner added or removed, proposed by this leader without a stall: the
            // quorums are those phase 1 was run with. A leader that stalled at the change
            // (its phase 1 found it, and it re-proposed only up to it) runs phase 1 again
            // all the same: that is how it learns what was accepted above the change.
            Role::Leader(leadership)
                if voter && !voters_changed && leadership.change_slot.is_none() => {}
            Role::Leader(leadership) if voter => {
                // Phase 1 again, of the new configuration, before any slot it governs.
                let queue = std::mem::take(&mut leadership.queue);
                self.metrics.incr("phase1_after_change");
                self.start_election(now);
                self.requeue(queue);
            }
            Role::Leader(leadership) => {
                let ballot = leadership.ballot;
                self.metrics.incr("hand_offs");
                if let Some(successor) = successor {
                    self.outbox.send(successor, Message::TakeOver { ballot });
                }
                self.step_down(now);
            }
            Role::Candidate(candidacy) if !candidacy.rejoin => {
                let queue = std::mem::take(&mut candidacy.queue);
                if voter {
                    self.start_election(now);
                    self.requeue(queue);
                } else {
                    self.step_down(now);
                }
            }
            Role::Candidate(_) | Role::Follower => {}
        }
    }

    /// The voter that takes over from this one: the next in id order, wrapping around.
    fn successor(&self) -> Option<NodeId> {
        let voters: Vec<NodeId> = self.configuration().voters().collect();
        voters
            .iter()
            .copied()
            .find(|&v| v > self.id)
            .or_else(|| voters.first().copied())
            .filter(|&v| v != self.id)
    }

    /// Hand proposals a former leadership queued to the new candidacy.
    pub(super) fn requeue(&mut self, queue: std::collections::VecDeque<Proposal>) {
        if let Role::Candidate(candidacy) = &mut self.role {
            for proposal in queue {
                if !candidacy.enqueue(proposal) {
                    self.metrics.incr("requests_dropped");
                }
            }
        }
    }

    /// The first slot in `[from, to)` whose value (as `value_at` reports it) holds a
    /// change: a new leader re-proposes up to it and no further.
    pub(super) fn first_change(
        from: Slot,
        to: Slot,
        mut value_at: impl FnMut(Slot) -> bool,
    ) -> Option<Slot> {
        (from..to).find(|&slot| value_at(slot))
    }
}
