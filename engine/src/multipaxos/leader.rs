//! The leader role: phase 2 per slot, pipelined, with optional batching; heartbeats and
//! Accept retransmission.
//!
//! Latency path: a request is proposed in the input that delivers it (no batching timer);
//! the Accept leaves at once while the leader's own accept is being synced, and the
//! leader's vote counts when the sync completes. It commits at the first phase-2 quorum of
//! durable votes, executes, and sends Commit to every follower.

use super::lease::{Rounds, Waiter};
use super::messages::{Ballot, Batch, Message, Proposal, Record, Slot};
use super::{MultiPaxos, Role, Timer};
use crate::command::batch_len;
use crate::id::{NodeId, RequestId};
use crate::protocol::{CommitPath, Effect};
use crate::quorum::VoteSet;
use crate::time::Time;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Requests the leader holds while its pipeline window is full.
const MAX_QUEUE: usize = 100_000;

pub(super) struct Leadership {
    pub(super) ballot: Ballot,
    next_slot: Slot,
    /// Votes per uncommitted slot of this leadership.
    votes: BTreeMap<Slot, VoteSet>,
    /// When each uncommitted slot's Accept was last sent (for retransmission).
    sent_at: BTreeMap<Slot, Time>,
    /// Requests in uncommitted slots: a forwarded retry of one of them is not proposed
    /// again.
    in_flight: BTreeSet<RequestId>,
    /// Proposals waiting for room in the pipeline window.
    pub(super) queue: VecDeque<Proposal>,
    /// The end of the slots taken over at election: no read index is below it (they may
    /// hold writes a former leader answered).
    pub(super) read_floor: Slot,
    /// Heartbeat rounds (lease grants, leadership confirmations).
    pub(super) rounds: Rounds,
    /// Reads waiting for a round, by round.
    pub(super) read_waiters: BTreeMap<u64, Vec<Waiter>>,
    /// The leader lease: lease reads are served locally until then (own clock).
    pub(super) lease_until: Time,
    /// Per peer, its clock at its latest ack (echoed as freshness proofs).
    pub(super) acks_at: BTreeMap<NodeId, Time>,
    /// Quorum-lease holders and until when (own clock) their lease may be live.
    pub(super) holders: BTreeMap<NodeId, Time>,
    /// The slot of a membership change proposed and not yet executed here: nothing is
    /// proposed above it until it is (docs/design.md#membership).
    pub(super) change_slot: Option<Slot>,
    /// Whether this leader's phase 1 covers the slots above `change_slot`: true for a
    /// change it proposed itself, false for one its phase 1 found (it re-proposed only up
    /// to it, so it must run phase 1 again once it executes, applied or not).
    pub(super) covers_above_change: bool,
    /// Per peer (voters and learners), its executed frontier at its latest ack.
    pub(super) progress: BTreeMap<NodeId, Slot>,
}

impl Leadership {
    pub(super) fn new(ballot: Ballot, next_slot: Slot) -> Self {
        Self {
            ballot,
            next_slot,
            votes: BTreeMap::new(),
            sent_at: BTreeMap::new(),
            in_flight: BTreeSet::new(),
            queue: VecDeque::new(),
            read_floor: next_slot,
            rounds: Rounds::default(),
            read_waiters: BTreeMap::new(),
            lease_until: Time::ZERO,
            acks_at: BTreeMap::new(),
            holders: BTreeMap::new(),
            change_slot: None,
            covers_above_change: true,
            progress: BTreeMap::new(),
        }
    }

    /// The next slot this leader proposes into.
    pub(super) fn next_slot(&self) -> Slot {
        self.next_slot
    }

    /// Queue a proposal unless it is already in a slot of ours; false if full.
    pub(super) fn enqueue(&mut self, proposal: Proposal) -> bool {
        if self.in_flight.contains(&proposal.request)
            || self.queue.iter().any(|p| p.request == proposal.request)
        {
            return true;
        }
        if self.queue.len() >= MAX_QUEUE {
            return false;
        }
        self.queue.push_back(proposal);
        true
    }
}

impl MultiPaxos {
    /// Put queued proposals into new slots while the pipeline window has room; a slot
    /// takes up to `max_batch` of the proposals already queued.
    pub(super) fn propose(&mut self, now: Time) {
        if self.burst {
            return;
        }
        loop {
            let Role::Leader(leadership) = &mut self.role else {
                return;
            };
            if leadership.queue.is_empty()
                || leadership.votes.len() >= self.config.max_in_flight
                || leadership.change_slot.is_some()
            {
                // The stall: nothing above an unexecuted change.
                return;
            }
            let change = leadership.queue.front().and_then(|p| p.change.clone());
            if let Some(change) = &change {
                if let Err(reason) = self.vet_change(change) {
                    if let Some(proposal) = self.take_front() {
                        self.refuse_change(proposal, reason);
                    }
                    continue;
                }
            }
            let stall = change.as_ref().is_some_and(|c| !self.keeps_voters(c));
            let Role::Leader(leadership) = &mut self.role else {
                return;
            };
            // A change has a slot of its own; a batch of commands stops before one.
            let commands = leadership
                .queue
                .iter()
                .take_while(|p| !p.is_change())
                .count();
            let take = if commands == 0 {
                1
            } else {
                batch_len(
                    leadership.queue.iter().take(commands).map(|p| &p.command),
                    self.config.max_batch,
                    self.config.max_batch_bytes,
                )
            };
            let batch: Batch = leadership.queue.drain(..take).collect();
            if batch.iter().any(Proposal::is_change) {
                if stall {
                    leadership.change_slot = Some(leadership.next_slot);
                }
                self.metrics.incr("changes_proposed");
            }
            self.metrics.incr("slots_proposed");
            self.metrics.add("commands_proposed", batch.len() as u64);
            let slot = leadership.next_slot;
            self.propose_in(now, slot, batch);
        }
    }

    fn take_front(&mut self) -> Option<Proposal> {
        match &mut self.role {
            Role::Leader(leadership) => leadership.queue.pop_front(),
            _ => None,
        }
    }

    /// Phase 2a for one slot: the Accept leaves now, our own vote once our accept is
    /// durable.
    pub(super) fn propose_in(&mut self, now: Time, slot: Slot, value: Batch) {
        let Role::Leader(leadership) = &mut self.role else {
            return;
        };
        let ballot = leadership.ballot;
        leadership
            .votes
            .insert(slot, VoteSet::new(self.quorums.phase2));
        leadership.sent_at.insert(slot, now);
        leadership.in_flight.extend(value.iter().map(|p| p.request));
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

    /// A snapshot executed up to `frontier` is about to replace our log below it. Our
    /// uncommitted slots there are chosen and executed in it, so they leave the pipeline
    /// now, while their values are still at hand: otherwise their quorum, once complete,
    /// would commit a slot whose value the log no longer holds. Their requests leave
    /// `in_flight` (a retry is proposed again, and answered from the session table), and
    /// ours still waiting for an answer queue again for the same reason: the snapshot
    /// executed them without a reply.
    pub(super) fn release_covered_slots(&mut self, frontier: Slot) {
        let Role::Leader(leadership) = &mut self.role else {
            return;
        };
        let covered: Vec<Slot> = leadership
            .votes
            .range(..frontier)
            .map(|(&s, _)| s)
            .collect();
        for slot in covered {
            leadership.votes.remove(&slot);
            leadership.sent_at.remove(&slot);
            let Some(state) = self.log.get(slot) else {
                continue;
            };
            for proposal in state.value.iter() {
                leadership.in_flight.remove(&proposal.request);
                if proposal.origin == self.id && self.pending.contains_key(&proposal.request) {
                    leadership.queue.push_back(proposal.clone());
                }
            }
            self.metrics.incr("slots_covered_by_snapshot");
        }
    }

    /// Phase 2b arrived: commit once a phase-2 quorum accepted durably.
    pub(super) fn on_accepted(&mut self, now: Time, from: NodeId, ballot: Ballot, slot: Slot) {
        let Role::Leader(leadership) = &mut self.role else {
            self.drop_message(false);
            return;
        };
        if leadership.ballot != ballot {
            self.drop_message(false);
            return;
        }
        let Some(votes) = leadership.votes.get_mut(&slot) else {
            // Late vote for a slot already committed (or never proposed).
            self.drop_message(false);
            return;
        };
        votes.add(from);
        if !votes.is_complete() {
            return;
        }
        self.try_commit(now, slot);
    }

    /// Commit `slot` if a phase-2 quorum accepted it durably and so did every quorum-lease
    /// holder whose lease may be live (docs/design.md#quorum-leases).
    fn try_commit(&mut self, now: Time, slot: Slot) {
        let Role::Leader(leadership) = &mut self.role else {
            return;
        };
        let Some(votes) = leadership.votes.get(&slot) else {
            return;
        };
        if !votes.is_complete() {
            return;
        }
        let waiting = leadership
            .holders
            .iter()
            .any(|(holder, until)| now < *until && !votes.voters().contains(holder));
        if waiting {
            self.metrics.incr("commits_held_for_lease_holders");
            return;
        }
        leadership.votes.remove(&slot);
        leadership.sent_at.remove(&slot);
        let Some(value) = self.log.get(slot).map(|s| s.value.clone()) else {
            // The slot left our log (a snapshot covers it: it is chosen and executed
            // here, see `release_covered_slots`). Its value is gone with it, and a
            // Commit must carry the chosen value, never a stand-in.
            return;
        };
        for proposal in value.iter() {
            leadership.in_flight.remove(&proposal.request);
        }
        self.metrics.incr("commits");
        for proposal in value.iter() {
            self.outbox.now(Effect::Committed {
                request: proposal.request,
                path: CommitPath::Leader,
            });
        }
        self.log.commit(slot, value.clone());
        self.broadcast(Message::Commit { slot, value });
        self.execute(now);
        self.propose(now);
    }

    /// Heartbeat every follower (with our commit point, for catch-up), and resend Accepts
    /// that have waited too long for a quorum: a lost Accept or Accepted would otherwise
    /// leave a hole that stalls in-order execution for good.
    pub(super) fn send_heartbeats(&mut self, now: Time) {
        let retry_after = self.config.election_timeout / 2;
        let Role::Leader(leadership) = &mut self.role else {
            return;
        };
        let ballot = leadership.ballot;
        // Slots held for a quorum-lease holder commit once its lease has lapsed.
        let held: Vec<Slot> = leadership
            .votes
            .iter()
            .filter(|(_, v)| v.is_complete())
            .map(|(&s, _)| s)
            .collect();
        leadership.holders.retain(|_, until| now < *until);
        let mut resend = Vec::new();
        for (&slot, sent) in leadership.sent_at.iter_mut() {
            if now >= *sent + retry_after {
                *sent = now;
                let voted = leadership
                    .votes
                    .get(&slot)
                    .map(|v| v.voters().clone())
                    .unwrap_or_default();
                resend.push((slot, voted));
            }
        }
        for (slot, voted) in resend {
            let Some(value) = self.log.get(slot).map(|s| s.value.clone()) else {
                continue;
            };
            self.metrics.incr("accepts_resent");
            let missing: Vec<NodeId> = self.peers().filter(|n| !voted.contains(n)).collect();
            for to in missing {
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
        for slot in held {
            self.try_commit(now, slot);
        }
        self.send_round(now);
        self.timers
            .set(Timer::Heartbeat, now + self.config.heartbeat_interval);
    }

    /// A heartbeat round: every follower grants a lease and confirms our leadership
    /// (docs/design.md#leases). Returns the round number.
    pub(super) fn send_round(&mut self, now: Time) -> u64 {
        let commit_point = self.log.commit_point();
        self.grant(now);
        let Role::Leader(leadership) = &mut self.role else {
            return 0;
        };
        let ballot = leadership.ballot;
        let index = self.log.committed_end().max(leadership.read_floor);
        let round = leadership
            .rounds
            .open(self.id, ballot, now, index, leadership.acks_at.clone());
        let confirmed = leadership.rounds.confirmed.as_ref().map(|(_, r)| r.clone());
        let peers: Vec<NodeId> = self.peers().collect();
        for peer in peers {
            let fresh = confirmed
                .as_ref()
                .and_then(|r| r.echoes.get(&peer).map(|&at| (r.index, at)));
            self.outbox.send(
                peer,
                Message::Heartbeat {
                    ballot,
                    commit_point,
                    round,
                    fresh,
                },
            );
        }
        round
    }

    /// A follower acknowledged a heartbeat round.
    pub(super) fn on_heartbeat_ack(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        round: u64,
        at: Time,
        executed: Slot,
    ) {
        let Role::Leader(leadership) = &mut self.role else {
            self.drop_message(false);
            return;
        };
        if leadership.ballot != ballot || from == self.id {
            self.drop_message(false);
            return;
        }
        leadership.progress.insert(from, executed);
        let last = leadership.acks_at.entry(from).or_default();
        *last = (*last).max(at);
        let needed = self.quorums.phase2;
        if let Some(done) = leadership
            .rounds
            .vote(round, ballot, from, needed, None, None)
        {
            self.round_confirmed(round, done);
        }
    }

    /// Confirm `round` at once if it already has enough votes (a one-replica quorum).
    pub(super) fn confirm_if_done(&mut self, round: u64) {
        let Role::Leader(leadership) = &mut self.role else {
            return;
        };
        let (ballot, needed) = (leadership.ballot, self.quorums.phase2);
        if let Some(done) = leadership
            .rounds
            .vote(round, ballot, self.id, needed, None, None)
        {
            self.round_confirmed(round, done);
        }
    }

    /// A phase-2-sized quorum acknowledged `round`: no higher ballot had completed phase
    /// 1 when it left. Extend the lease, prove freshness, release waiting reads.
    fn round_confirmed(&mut self, round: u64, done: super::lease::Round) {
        let lease_end = self.lease_end(done.sent_at);
        if let (Some(end), Role::Leader(leadership)) = (lease_end, &mut self.role) {
            leadership.lease_until = leadership.lease_until.max(end);
        }
        self.leases.claim(done.index, done.sent_at);
        self.release_waiters(round, done.index);
    }
}
