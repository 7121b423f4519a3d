//! Leader election: failure detection by heartbeats, phase 1 with a fresh ballot, and
//! taking over the log.
//!
//! A candidate's ballot is durable before its Prepare leaves: a candidate that crashed
//! and restarted could otherwise reuse the same ballot for a second, different set of
//! proposals, and two values accepted under one ballot in one slot break the phase-1
//! rule "adopt the value with the highest ballot".

use super::leader::Leadership;
use super::messages::{AcceptedEntry, Ballot, Batch, Message, Proposal, Record, Slot};
use super::{MultiPaxos, Role, Timer};
use crate::id::NodeId;
use crate::protocol::Effect;
use crate::time::Time;
use std::collections::{BTreeMap, VecDeque};

/// Forwarded proposals a candidate holds for when it wins.
const MAX_CANDIDATE_QUEUE: usize = 10_000;

pub(super) struct Candidacy {
    pub(super) ballot: Ballot,
    /// Our commit point when we stood: every slot below is chosen and known here.
    pub(super) from_slot: Slot,
    /// Promises needed.
    needed: usize,
    /// Each promiser's own fence, as it reported it.
    votes: BTreeMap<NodeId, Ballot>,
    /// The latest fence known per replica: a promise from an older incarnation is void
    /// (docs/design.md#rejoin-rule).
    fences: BTreeMap<NodeId, Ballot>,
    /// Standing to rejoin after a lost disk: our own promise does not count.
    pub(super) rejoin: bool,
    /// Per slot, the value with the highest accepted ballot reported so far, and whether a
    /// reporter knew it chosen.
    best: BTreeMap<Slot, (Ballot, bool, Batch)>,
    /// Proposals forwarded to us while campaigning, proposed once we win.
    pub(super) queue: VecDeque<Proposal>,
    /// The end of the longest lease a promiser may have granted, on our clock: we lead
    /// only after it (docs/design.md#leases).
    lease_wait: Time,
    /// Phase 1 is complete; we are waiting out `lease_wait`.
    pub(super) won: bool,
}

impl Candidacy {
    pub(super) fn new(
        ballot: Ballot,
        from_slot: Slot,
        needed: usize,
        fences: BTreeMap<NodeId, Ballot>,
        rejoin: bool,
    ) -> Self {
        Self {
            ballot,
            from_slot,
            needed,
            votes: BTreeMap::new(),
            fences,
            rejoin,
            best: BTreeMap::new(),
            queue: VecDeque::new(),
            lease_wait: Time::ZERO,
            won: false,
        }
    }

    /// Count a promise from `from` (whose own fence is `fence`, knowing `fences`); true
    /// once enough promises from current incarnations are in.
    fn count(&mut self, from: NodeId, fence: Ballot, fences: Vec<(NodeId, Ballot)>) -> bool {
        for (node, ballot) in fences.into_iter().chain([(from, fence)]) {
            let known = self.fences.entry(node).or_default();
            *known = (*known).max(ballot);
        }
        self.votes.insert(from, fence);
        let current = self
            .votes
            .iter()
            .filter(|(node, fence)| **fence >= self.fences.get(node).copied().unwrap_or_default())
            .count();
        current >= self.needed
    }

    pub(super) fn enqueue(&mut self, proposal: Proposal) -> bool {
        if self.queue.len() >= MAX_CANDIDATE_QUEUE {
            return false;
        }
        self.queue.push_back(proposal);
        true
    }

    /// Merge one acceptor's report: a value known chosen wins, else the highest ballot.
    fn merge(&mut self, accepted: Vec<AcceptedEntry>) {
        for entry in accepted {
            if entry.slot < self.from_slot {
                continue;
            }
            let better = match self.best.get(&entry.slot) {
                None => true,
                Some((_, true, _)) => false,
                Some((best, false, _)) => entry.committed || entry.ballot > *best,
            };
            if better {
                self.best
                    .insert(entry.slot, (entry.ballot, entry.committed, entry.value));
            }
        }
    }
}

impl MultiPaxos {
    /// Heartbeat from a leader: follow it, and fetch committed slots we miss.
    pub(super) fn on_heartbeat(
        &mut self,
        now: Time,
        from: NodeId,
        ballot: Ballot,
        commit_point: Slot,
        round: u64,
        fresh: Option<(Slot, Time)>,
    ) {
        if from != ballot.node || from == self.id {
            self.drop_message(true);
            return;
        }
        if ballot < self.promised {
            // A deposed leader: tell it, so it steps down.
            self.outbox.send(
                from,
                Message::Nack {
                    promised: self.promised,
                },
            );
            return;
        }
        self.follow(now, ballot);
        self.known_commit_point = self.known_commit_point.max(commit_point);
        // Grant the leader a lease and confirm we follow its ballot; a freshness proof
        // counts once we executed up to it.
        self.grant(now);
        self.outbox.send(
            from,
            Message::HeartbeatAck {
                ballot,
                round,
                at: now,
                executed: self.log.next_execute(),
            },
        );
        if let Some((index, at)) = fresh {
            self.leases.claim(index, at);
        }
        self.request_catch_up(now, from, false);
    }

    /// Stop leading or campaigning for good (a graceful shutdown): a leader asks the
    /// next replica in id order to stand at once ([`Message::TakeOver`]). Requests it
    /// queued but had not put in a slot are forwarded again by their origins.
    pub(super) fn retire(&mut self, now: Time) {
        if self.retiring {
            return;
        }
        self.retiring = true;
        self.metrics.incr("hand_offs");
        if let Role::Leader(leadership) = &self.role {
            let ballot = leadership.ballot;
            let voters: Vec<NodeId> = self.configuration().voters().collect();
            let position = voters.iter().position(|&m| m == self.id);
            let successor = position
                .map(|i| voters[(i + 1) % voters.len()])
                .filter(|&s| s != self.id);
            if let Some(successor) = successor {
                self.outbox.send(successor, Message::TakeOver { ballot });
            }
        }
        if !matches!(self.role, Role::Follower) {
            self.step_down(now);
        }
        self.timers.cancel(Timer::Election);
    }

    /// The leader of `ballot` is retiring and chose this replica: stand now.
    pub(super) fn on_take_over(&mut self, now: Time, from: NodeId, ballot: Ballot) {
        if from != ballot.node || from == self.id || ballot < self.highest_seen {
            self.drop_message(from != ballot.node);
            return;
        }
        if self.retiring || self.rejoining || !matches!(self.role, Role::Follower) {
            self.drop_message(false);
            return;
        }
        self.metrics.incr("take_overs");
        self.start_election(now);
    }

    /// Stand for election with a ballot above anything seen; only a voter of the
    /// configuration that governs our next slot stands (docs/design.md#membership).
    pub(super) fn start_election(&mut self, now: Time) {
        if !self.configuration().counts_vote(self.id) {
            self.metrics.incr("elections_not_a_voter");
            if !matches!(self.role, Role::Follower) {
                self.step_down(now);
            }
            self.reset_election_deadline(now);
            return;
        }
        let ballot = Ballot {
            round: self.promised.max(self.highest_seen).round + 1,
            node: self.id,
        };
        self.promised = ballot;
        self.highest_seen = ballot;
        // A leader running phase 1 again after a change stops heartbeating meanwhile.
        self.timers.cancel(Timer::Heartbeat);
        self.metrics.incr("elections_started");
        self.set_leader(now, None);
        // Every slot below is executed, so its configuration is the one whose quorum
        // phase 1 needs.
        let from_slot = self.log.next_execute();
        self.role = Role::Candidate(Candidacy::new(
            ballot,
            from_slot,
            self.quorums.phase1,
            self.fences.clone(),
            false,
        ));
        // Armed once we are a candidate: a leader running phase 1 again after a change
        // had no election deadline, so a lost phase 1 left it a candidate for good.
        self.reset_election_deadline(now);
        if self.config.unsafe_skip_phase1 {
            // Deliberately broken (tests only): lead with what this replica alone
            // accepted, without learning what a quorum accepted.
            let own = self.log.accepted_from(from_slot);
            if let Role::Candidate(candidacy) = &mut self.role {
                candidacy.merge(own);
            }
            self.metrics.incr("phase1_skipped");
            self.outbox
                .persist(vec![Record::Promised(ballot)], Vec::new());
            self.become_leader(now);
            return;
        }
        self.metrics.incr("phase1_rounds");
        let mut then = vec![Effect::Send {
            to: self.id,
            message: Message::OwnPromiseDurable { ballot },
        }];
        then.extend(self.peers().map(|to| Effect::Send {
            to,
            message: Message::Prepare { ballot, from_slot },
        }));
        self.outbox.persist(vec![Record::Promised(ballot)], then);
    }

    /// Our own promise is durable: vote for ourselves with what we accepted.
    pub(super) fn on_own_promise_durable(&mut self, now: Time, ballot: Ballot) {
        let from_slot = match &self.role {
            Role::Candidate(c) if c.ballot == ballot => c.from_slot,
            _ => {
                self.drop_message(false);
                return;
            }
        };
        let accepted = self.log.accepted_from(from_slot);
        let fence = self.own_fence();
        let remaining = self.lease_remaining_us(now);
        self.count_promise(now, self.id, accepted, remaining, fence, Vec::new());
    }

    /// Phase 1b from a peer (the fields of [`Message::Promise`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_promise(
        &mut self,
        now: Time,
        from: NodeId,
        ballot: Ballot,
        accepted: Vec<AcceptedEntry>,
        lease_remaining_us: u64,
        fence: Ballot,
        fences: Vec<(NodeId, Ballot)>,
    ) {
        match &self.role {
            Role::Candidate(c) if c.ballot == ballot => {
                self.count_promise(now, from, accepted, lease_remaining_us, fence, fences)
            }
            // Late promises after we won or gave up, or for an older candidacy.
            _ => self.drop_message(false),
        }
    }

    fn count_promise(
        &mut self,
        now: Time,
        from: NodeId,
        accepted: Vec<AcceptedEntry>,
        lease_remaining_us: u64,
        fence: Ballot,
        fences: Vec<(NodeId, Ballot)>,
    ) {
        let wait_end = self.lease_wait_end(now, lease_remaining_us);
        let Role::Candidate(candidacy) = &mut self.role else {
            return;
        };
        if candidacy.won {
            return;
        }
        // A void promise's report is still a true report of what was accepted: merging
        // it cannot hide a chosen value, only its vote does not count. Its lease report
        // counts too (waiting longer is always safe).
        candidacy.merge(accepted);
        candidacy.lease_wait = candidacy.lease_wait.max(wait_end);
        let won = candidacy.count(from, fence, fences);
        let (rejoin, ballot, wait) = (candidacy.rejoin, candidacy.ballot, candidacy.lease_wait);
        if won {
            candidacy.won = true;
            if rejoin {
                self.finish_rejoin(ballot);
            }
            if now < wait {
                // A lease a promiser granted to a former holder may still be in use:
                // lead (and so commit anything) only once it has surely ended.
                self.metrics.incr("lease_waits");
                self.timers.set(Timer::LeaseWait, wait);
                let deadline = wait + self.config.election_timeout;
                self.timers.set(Timer::Election, deadline);
                return;
            }
            self.become_leader(now);
        }
    }

    /// The wait for former leases is over: lead.
    pub(super) fn end_lease_wait(&mut self, now: Time) {
        self.timers.cancel(Timer::LeaseWait);
        if matches!(&self.role, Role::Candidate(c) if c.won) {
            self.become_leader(now);
        }
    }

    /// Phase 1 succeeded: commit what is known chosen, re-propose every other slot that
    /// may hold a chosen value, fill gaps with no-ops, then serve.
    pub(super) fn become_leader(&mut self, now: Time) {
        let Role::Candidate(candidacy) = std::mem::replace(&mut self.role, Role::Follower) else {
            return;
        };
        let mut end = candidacy
            .best
            .keys()
            .next_back()
            .map_or(candidacy.from_slot, |s| s + 1)
            .max(candidacy.from_slot);
        if self.config.unsafe_skip_phase1 {
            end = end.max(self.log.end());
        }
        // Our phase-1 quorum is of the configuration of `from_slot`: it covers slots up
        // to the first change, no further. Re-propose up to it; once it is executed,
        // phase 1 runs again under the new configuration (docs/design.md#membership).
        let log = &self.log;
        let change = Self::first_change(candidacy.from_slot, end, |slot| {
            let holds = |value: &Batch| value.iter().any(Proposal::is_change);
            match candidacy.best.get(&slot) {
                Some((_, _, value)) => holds(value),
                None => log
                    .get(slot)
                    .is_some_and(|s| s.committed && holds(&s.value)),
            }
        });
        if let Some(change) = change {
            end = end.min(change + 1);
        }
        let mut leadership = Leadership::new(candidacy.ballot, end);
        leadership.queue = candidacy.queue;
        leadership.change_slot = change;
        leadership.covers_above_change = change.is_none();
        self.role = Role::Leader(leadership);
        self.timers.cancel(Timer::Election);
        self.metrics.incr("elections_won");
        let mut best = candidacy.best;
        for slot in candidacy.from_slot..end {
            if self.log.is_committed(slot) {
                continue;
            }
            match best.remove(&slot) {
                Some((_, true, value)) => self.commit_known(slot, value),
                Some((_, false, value)) => self.propose_in(now, slot, value),
                None => self.propose_in(now, slot, Batch::default()),
            }
        }
        self.execute(now);
        if !self.is_leader() {
            // A change known chosen was executed: phase 1 runs again (or we handed off).
            return;
        }
        self.send_heartbeats(now);
        self.set_leader(now, Some(self.id));
        self.propose(now);
    }

    /// A slot a promiser knew chosen: commit it directly and tell everyone.
    fn commit_known(&mut self, slot: Slot, value: Batch) {
        self.log.commit(slot, value.clone());
        self.broadcast(Message::Commit { slot, value });
    }
}
