//! A replica that lost its disk (docs/design.md#epaxos-rejoin-rule).
//!
//! Its former self may have pre-accepted, accepted and promised things it no longer
//! remembers, and used own slots it no longer knows of; voting or proposing as if it had
//! not could let a possibly fast-committed instance be recovered differently, or two
//! interfering commands commit without depending on each other.
//!
//! ```text
//!  rejoin ─▶ persist Fence{Querying} (a restart resumes it); vote on nothing, propose nothing
//!        ─▶ RejoinQuery{nonce} ─▶ every peer (retried; the answer comes in chunks, one
//!           encoding per attempt: the nonce, drawn at boot, names it)
//!  peer L: RejoinState{its next slot s_L, a bound u_L on the asker's own slots, its
//!          executed state and key index}, taken when it handles the query, sent behind
//!          its durable records
//!  first answer: install its executed state (compact: durable), execute what was learned
//!  every peer answered: merge every key index; bounds s_L; own start S = max u_L +
//!          max_in_flight (+ 0 if no answer says the asker may have led: a spare);
//!          persist Fence{Announcing}: vote on (L, i) only if i >= s_L
//!        ─▶ RejoinStart{S} ─▶ every peer: persist S, RejoinStarted
//!  every peer recorded S: persist Fence{Rejoined}; propose from S
//! ```
//! The peer first in id order after the rejoined replica recovers its own slots below
//! S it did not see committed (never-used ones become no-ops), so every replica's
//! executed prefix passes them and collection does not stall. The rejoined replica itself
//! recovers nothing it may not vote on (its former self may have used any ballot for it).

use super::execution::Executor;
use super::fence::Stage;
use super::instance::{InstanceId, Payload, Status};
use super::key_index::KeyIndex;
use super::messages::{Message, Record, RejoinState};
use super::{Epaxos, EpaxosTimer};
use crate::id::{NodeId, RequestId};
use crate::request::{ClientReply, RequestError};
use crate::time::Time;
use crate::transfer::{self, Answers, Incoming, Received};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Recoveries of a rejoined peer's skipped slots running at once.
const GAP_RECOVERIES: usize = 32;

/// A rejoin in progress here, and the answers served to peers that rejoin.
#[derive(Clone, Default)]
pub(super) struct Rejoin {
    /// Answers being fetched, per peer.
    incoming: BTreeMap<NodeId, Incoming>,
    /// Answers received: the peer's next slot and its bound on our own slots.
    answers: BTreeMap<NodeId, (u64, u64)>,
    /// Whether an answer said our former self may have led instances nobody saw yet.
    may_have_led: bool,
    /// When the last fetch of the peers' state began (this boot).
    fetched_at: Option<Time>,
    /// Other leaders' switches held uncommitted at the last GC tick.
    stuck_switches: BTreeSet<InstanceId>,
    /// Peers that recorded our start.
    acks: BTreeSet<NodeId>,
    /// This attempt's nonce (from the core's seed: each boot draws a new one).
    nonce: u64,
    /// Answers encoded for rejoining peers (source side).
    served: Answers,
    /// The first own slot not committed here, if nothing here drove it at the last GC
    /// tick (see [`Epaxos::unstick_own`]).
    stuck: Option<u64>,
}

impl Rejoin {
    /// A rejoin whose attempts are named from `seed`.
    pub(super) fn new(seed: u64) -> Self {
        Self {
            nonce: seed | 1,
            ..Self::default()
        }
    }
}

impl Epaxos {
    /// The host rebuilt us without records because the disk was lost.
    pub(super) fn begin_rejoin(&mut self, now: Time) {
        if self.replica.config.unsafe_rejoin_without_fence {
            self.replica.metrics.incr("rejoin_rule_skipped");
            return;
        }
        self.fetch_state(now, false);
    }

    /// Fetch the peers' state and fence as after a lost disk; `intact`: our records are
    /// all here (behind the collection, or removed), so our own slots need no margin.
    /// With our records intact we keep voting meanwhile: a replica removed still answers
    /// as an acceptor of the epoch it left until that epoch drains (t18 seed 508 stalled
    /// when it did not), and nothing of ours needs a fence.
    fn fetch_state(&mut self, now: Time, intact: bool) {
        let replica = &mut self.replica;
        if !intact {
            replica.fence.stage = Stage::Querying;
            replica.fence.bounds.clear();
        }
        replica.fence.lost_state = true;
        // The configurations known so far stay until a peer's state replaces them.
        let configurations = replica.executor.configurations().to_vec();
        let fresh = Executor::new(
            replica.config.record_execution,
            replica.config.key_session_window,
        );
        let mut old = std::mem::replace(&mut replica.executor, fresh);
        replica.executor.start_from(configurations);
        replica.executor.halt_when_removed(replica.id);
        replica.executor.keep_order_of(&mut old);
        replica.metrics.incr("rejoins");
        self.resume.clear();
        self.rejoin = Rejoin::new(self.rejoin.nonce.wrapping_add(2));
        self.rejoin.fetched_at = Some(now);
        self.persist_fence();
        self.query_peers(now);
    }

    /// Whether a fetch of the peers' state with our records intact is under way.
    fn fetching_intact(&self) -> bool {
        let fence = &self.replica.fence;
        fence.lost_state && matches!(fence.stage, Stage::Voter | Stage::Rejoined)
    }

    /// A peer forgot `instance`, which every member executed, before we executed it: we
    /// fell behind the collection (removed, stopped reporting, added again), and asking
    /// for instances one by one cannot bring us level. Fetch the peers' state as a
    /// replica that lost its disk does: more cautious than needed (our records are
    /// intact), but one path that is already checked, and rare.
    pub(super) fn on_collected_elsewhere(&mut self, now: Time, instance: InstanceId) {
        let fence = &self.replica.fence;
        let rejoining = fence.stage.rejoining();
        if rejoining || !fence.executes() || self.replica.executor.is_executed(instance) {
            return;
        }
        self.replica.metrics.incr("behind_collection");
        self.fetch_state(now, true);
    }

    /// After every input: a switch that removed us halted execution (commands after it
    /// may leave out what we never executed). Fetch the peers' state, as a spare does:
    /// they answer once a switch adds us again.
    pub(super) fn leave_when_removed(&mut self, now: Time) {
        let fence = &self.replica.fence;
        let rejoining = fence.stage.rejoining();
        // A peer's state older than our removal ran it again: fetch anew, at most once
        // a retry timeout (the GC tick comes back), while the peers catch up.
        let patience = self.replica.config.retry_timeout;
        let recent = self.rejoin.fetched_at.is_some_and(|at| now < at + patience);
        if self.replica.executor.halted() && !rejoining && fence.executes() && !recent {
            self.replica.metrics.incr("removed_here");
            self.intake.refuse_queued(&mut self.replica);
            self.give_up_own_requests();
            self.fetch_state(now, true);
        }
    }

    /// A restart found a rejoin under way: pick it up at once.
    pub(super) fn resume_rejoin(&mut self) {
        if self.fetching_intact() || self.replica.fence.stage.rejoining() {
            self.timers.set(EpaxosTimer::Rejoin, Time::ZERO);
        }
    }

    /// The rejoin timer: ask the peers that have not answered again, or announce the
    /// start again to those that have not recorded it.
    pub(super) fn on_rejoin_timer(&mut self, now: Time) {
        if self.fetching_intact() {
            self.query_peers(now);
            return;
        }
        match self.replica.fence.stage {
            Stage::Querying => self.query_peers(now),
            Stage::Announcing | Stage::AnnouncingUnfenced => self.announce(now),
            Stage::Voter | Stage::Rejoined => {}
        }
    }

    /// This boot's rejoin attempt (asks of an earlier boot are answered to no one).
    pub(super) fn rejoin_nonce(&self) -> u64 {
        self.rejoin.nonce
    }

    pub(super) fn persist_fence(&mut self) {
        let record = Record::Fence(Box::new(self.replica.fence.clone()));
        self.replica.outbox.persist(vec![record], Vec::new());
    }

    /// Ask every peer that has not answered for (the next chunk of) its answer.
    fn query_peers(&mut self, now: Time) {
        let patience = self.replica.config.retry_timeout;
        for peer in self.replica.rejoin_peers() {
            if self.rejoin.answers.contains_key(&peer) {
                continue;
            }
            let (at, offset) = match self.rejoin.incoming.get(&peer) {
                Some(incoming) if now < incoming.last_progress() + patience * 4 => {
                    incoming.request()
                }
                _ => {
                    self.rejoin.incoming.insert(peer, Incoming::new(peer, now));
                    (0, 0)
                }
            };
            let nonce = self.rejoin.nonce;
            let query = Message::RejoinQuery { nonce, at, offset };
            self.replica.outbox.send(peer, query);
        }
        self.timers.set(EpaxosTimer::Rejoin, now + patience);
    }

    /// Source side: serve a chunk of our answer to a rejoining peer (a new answer for a
    /// new query). Chunks leave behind every record persisted so far: the answer tells
    /// only durable state.
    pub(super) fn on_rejoin_query(
        &mut self,
        now: Time,
        from: NodeId,
        nonce: u64,
        at: u64,
        offset: u64,
    ) {
        let members = self.replica.epochs.current_members();
        let fence = &self.replica.fence;
        if !fence.may_propose() || !fence.executes() || !members.contains(&self.replica.id) {
            // Rejoining ourselves, or removed: we know too little to answer (peers
            // collect without waiting for a removed replica).
            self.replica.metrics.incr("votes_withheld");
            return;
        }
        if !members.contains(&from) {
            // Not a member (a spare, or a removed replica that came back): it fetches
            // state once a switch adds it, or it would fall behind what the members
            // collect without waiting for it.
            return;
        }
        // An answer encoded for this attempt was taken after the asker's former self
        // died: serve it (from the start if another encoding was asked for). Another
        // attempt's may be older than the last incarnation that voted: encode anew.
        let fresh = !self.rejoin.served.holds(from, nonce);
        let encoded = fresh.then(|| transfer::encode(&self.rejoin_state(from)));
        if fresh {
            self.replica.metrics.incr("rejoin_answers_encoded");
        }
        let max = self.replica.config.snapshot_chunk_bytes;
        let answers = &mut self.rejoin.served;
        let encoded = || encoded.unwrap_or_default();
        let Some(chunk) = answers.serve(from, nonce, (at, offset), max, now, encoded) else {
            return;
        };
        let replica = &mut self.replica;
        replica
            .metrics
            .add("state_transfer_bytes_sent", chunk.bytes.len() as u64);
        let chunk = Message::RejoinChunk {
            nonce,
            at: chunk.at,
            offset: chunk.offset,
            total: chunk.total,
            bytes: chunk.bytes,
        };
        let send = crate::protocol::Effect::Send {
            to: from,
            message: chunk,
        };
        replica.outbox.persist(Vec::new(), vec![send]);
    }

    /// What we tell a peer that lost its disk (see [`RejoinState`]).
    pub(super) fn rejoin_state(&self, asker: NodeId) -> RejoinState {
        let replica = &self.replica;
        let executed = replica.executor.executed_state();
        let table = &replica.table;
        let own_bound = [
            replica.fence.starts.get(&asker).copied().unwrap_or(0),
            above(
                table
                    .instances
                    .range(of(asker))
                    .next_back()
                    .map(|(id, _)| id),
            ),
            above(
                table
                    .promises
                    .range(of(asker))
                    .next_back()
                    .map(|(id, _)| id),
            ),
            above(
                table
                    .seen_ballots
                    .range(of(asker))
                    .next_back()
                    .map(|(id, _)| id),
            ),
            above(executed.above.range(of(asker)).next_back()),
            executed.prefix.get(&asker).copied().unwrap_or(0),
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        RejoinState {
            next_slot: self.leader.next_slot(),
            own_bound,
            may_have_led: own_bound > 0 || self.may_have_voted(asker),
            starts: replica.fence.starts.clone(),
            executed,
            index: KeyIndex::clone(&replica.table.index),
        }
    }

    /// Whether `asker` votes in a configuration we know, or a switch we hold (executed or
    /// not) promotes it. A promotion it executed was recorded durably by a quorum of the
    /// epoch before; every member of that epoch that has not executed the promotion is
    /// still a member, hence asked, so one answer at least says so.
    fn may_have_voted(&self, asker: NodeId) -> bool {
        let replica = &self.replica;
        let voted = replica
            .executor
            .configurations()
            .iter()
            .any(|c| c.counts_vote(asker));
        let promotes = |payload: &Payload| {
            payload
                .change
                .as_ref()
                .is_some_and(|c| c.change == crate::configuration::Change::Promote(asker))
        };
        voted
            || replica
                .table
                .instances
                .values()
                .any(|i| i.payload.commands().iter().any(promotes))
    }

    /// A chunk `(at, offset, total, bytes)` of a peer's answer.
    pub(super) fn on_rejoin_chunk(
        &mut self,
        now: Time,
        from: NodeId,
        nonce: u64,
        chunk: (u64, u64, u64, Vec<u8>),
    ) {
        let (at, offset, total, bytes) = chunk;
        let stale = nonce != self.rejoin.nonce || self.rejoin.answers.contains_key(&from);
        let fetching = self.replica.fence.stage == Stage::Querying || self.fetching_intact();
        if !fetching || stale {
            return;
        }
        let Some(incoming) = self.rejoin.incoming.get_mut(&from) else {
            return;
        };
        let len = bytes.len() as u64;
        match incoming.receive(from, at, offset, total, bytes, now) {
            Received::Ignored => {}
            Received::Next { at, offset } => {
                self.replica
                    .metrics
                    .add("state_transfer_bytes_received", len);
                let query = Message::RejoinQuery { nonce, at, offset };
                self.replica.outbox.send(from, query);
            }
            Received::Complete(encoded) => {
                self.replica
                    .metrics
                    .add("state_transfer_bytes_received", len);
                let elapsed = incoming.elapsed_ms(now);
                self.replica.metrics.set("last_state_transfer_ms", elapsed);
                self.rejoin.incoming.remove(&from);
                if let Some(state) = transfer::decode::<RejoinState>(&encoded) {
                    self.take_answer(now, from, state);
                }
            }
        }
    }

    /// A peer's complete answer.
    fn take_answer(&mut self, now: Time, from: NodeId, state: RejoinState) {
        // Read before the state is installed (which clears `lost_state`).
        let intact = self.fetching_intact();
        let RejoinState {
            next_slot,
            own_bound,
            may_have_led,
            starts,
            executed,
            index,
        } = state;
        self.rejoin.answers.insert(from, (next_slot, own_bound));
        self.rejoin.may_have_led |= may_have_led;
        let replica = &mut self.replica;
        for (node, start) in starts {
            let known = replica.fence.starts.entry(node).or_default();
            *known = (*known).max(start);
        }
        Arc::make_mut(&mut replica.table.index).merge(&index);
        replica.metrics.incr("rejoin_answers");
        if replica.fence.lost_state {
            replica.executor.restore(executed);
            replica.fence.lost_state = false;
            replica.metrics.incr("state_transfers_completed");
            // What was learned meanwhile runs now (what the state executed is skipped).
            let committed: Vec<_> = replica
                .table
                .instances
                .iter()
                .filter(|(_, i)| i.status == Status::Committed)
                .map(|(&id, i)| (id, i.payload.clone(), i.attributes.clone()))
                .collect();
            for (id, payload, attributes) in committed {
                let ran = replica.executor.commit(now, id, payload, attributes);
                replica.metrics.add("executed", ran.len() as u64);
            }
            replica.take_switches();
            replica.follow_configurations();
            // Durable at once: a restart does not need another transfer.
            self.compact();
        }
        if intact {
            self.finish_intact();
            return;
        }
        let peers = self.replica.rejoin_peers();
        if peers.iter().all(|p| self.rejoin.answers.contains_key(p)) {
            self.fence_up(now);
        }
    }

    /// With our records intact one peer's state is enough: nothing of ours needs a
    /// fence or a new start, and waiting for every peer of a configuration we left
    /// could wait for one that left too (t18 seed 193). A state older than our removal
    /// runs it again, and `leave_when_removed` fetches anew.
    fn finish_intact(&mut self) {
        self.replica.metrics.incr("rejoins_completed");
        self.timers.cancel(EpaxosTimer::Rejoin);
    }

    /// Every peer answered: fix the bounds and our own start, then announce the start.
    fn fence_up(&mut self, now: Time) {
        let replica = &mut self.replica;
        let me = replica.id;
        let learned = above(
            replica
                .table
                .instances
                .range(of(me))
                .next_back()
                .map(|(id, _)| id),
        );
        let bound = self
            .rejoin
            .answers
            .values()
            .map(|&(_, bound)| bound)
            .chain([learned, replica.fence.starts.get(&me).copied().unwrap_or(0)])
            .max()
            .unwrap_or(0);
        // A former self that led may have instances in flight that no answer counted; a
        // spare that was never a voter led nothing, and a margin would only leave slots
        // for a peer to fill with no-ops, one recovery each.
        let led = self.rejoin.may_have_led || learned > 0;
        let margin = if led {
            replica.config.max_in_flight as u64
        } else {
            0
        };
        replica.metrics.set("rejoin_margin", margin);
        let start = bound.saturating_add(margin);
        let mut bounds: BTreeMap<NodeId, u64> = self
            .rejoin
            .answers
            .iter()
            .map(|(&node, &(next, _))| (node, next))
            .collect();
        bounds.insert(me, start);
        replica.fence.bounds = bounds;
        replica.fence.stage = if led {
            Stage::Announcing
        } else {
            Stage::AnnouncingUnfenced
        };
        replica.metrics.set("rejoin_start", start);
        self.leader.raise_next_slot(start);
        self.persist_fence();
        self.announce(now);
    }

    /// Tell every peer that has not recorded it where our own instances start, behind
    /// the durable fence: a restart then announces the same start (and, unfenced, still
    /// knows it has nothing to fence) instead of fetching anew.
    fn announce(&mut self, now: Time) {
        let me = self.replica.id;
        let start = self.replica.fence.own_start(me);
        let sends: Vec<_> = self
            .replica
            .rejoin_peers()
            .into_iter()
            .filter(|peer| !self.rejoin.acks.contains(peer))
            .map(|to| crate::protocol::Effect::Send {
                to,
                message: Message::RejoinStart { start },
            })
            .collect();
        self.replica.outbox.persist(Vec::new(), sends);
        let retry = self.replica.config.retry_timeout;
        self.timers.set(EpaxosTimer::Rejoin, now + retry);
    }

    /// A peer that lost its disk starts its own instances at `start`: durable here before
    /// we say so (its next rejoin starts above it).
    pub(super) fn on_rejoin_start(&mut self, from: NodeId, start: u64) {
        self.rejoin.served.forget(from);
        let known = self.replica.fence.starts.get(&from).copied().unwrap_or(0);
        let record = (start > known).then(|| {
            self.replica.fence.starts.insert(from, start);
            Record::Fence(Box::new(self.replica.fence.clone()))
        });
        let reply = crate::protocol::Effect::Send {
            to: from,
            message: Message::RejoinStarted { start },
        };
        self.replica
            .outbox
            .persist(record.into_iter().collect(), vec![reply]);
    }

    /// Removed: our own commands not executed here run elsewhere (or never), and we
    /// will not answer them; their clients learn the outcome is unknown.
    fn give_up_own_requests(&mut self) {
        let replica = &mut self.replica;
        let me = replica.id;
        let executor = &replica.executor;
        let requests: Vec<RequestId> = replica
            .table
            .instances
            .range(of(me))
            .filter(|(&id, _)| !executor.is_executed(id))
            .flat_map(|(_, instance)| instance.payload.commands())
            .filter(|p| !p.is_noop() && !p.is_switch())
            .map(|p| p.request)
            .collect();
        for request in requests {
            replica.outbox.reply(ClientReply {
                id: request,
                outcome: Err(RequestError::Timeout),
            });
        }
    }

    /// A peer recorded our start; with every peer, we have rejoined.
    pub(super) fn on_rejoin_started(&mut self, from: NodeId, start: u64) {
        let me = self.replica.id;
        let stage = self.replica.fence.stage;
        if !matches!(stage, Stage::Announcing | Stage::AnnouncingUnfenced)
            || start != self.replica.fence.own_start(me)
        {
            return;
        }
        self.rejoin.acks.insert(from);
        let peers = self.replica.rejoin_peers();
        if !peers.iter().all(|p| self.rejoin.acks.contains(p)) {
            return;
        }
        // Nothing to fence (a spare that never voted, or our records intact): we vote
        // on everything, as members that never rejoined do. A fenced replica would
        // never vote on instances a later member led before it was asked for a bound
        // (t18 seed 67 stalled on one).
        self.replica.fence.stage = if stage == Stage::AnnouncingUnfenced {
            Stage::Voter
        } else {
            Stage::Rejoined
        };
        self.replica.metrics.incr("rejoins_completed");
        self.timers.cancel(EpaxosTimer::Rejoin);
        self.persist_fence();
    }

    /// On the GC timer: recover a rejoined peer's own slots below its start that we
    /// never saw committed, if we are the peer first in id order after it (one replica
    /// does it, so recoveries do not duel). Slots its former self never used become
    /// no-ops: every executed prefix passes them and collection goes on.
    pub(super) fn recover_gaps(&mut self, now: Time) {
        if !self.replica.fence.executes() || !self.replica.fence.may_propose() {
            return;
        }
        let me = self.replica.id;
        let starts: Vec<(NodeId, u64)> = self
            .replica
            .fence
            .starts
            .iter()
            .map(|(&n, &s)| (n, s))
            .collect();
        for (node, start) in starts {
            let members = self.replica.epochs.members();
            let after = members.iter().copied().find(|&m| m > node);
            let designated = after.or_else(|| members.iter().copied().find(|&m| m != node));
            if node == me || designated != Some(me) {
                continue;
            }
            let prefix = self.replica.executor.executed_prefix().get(&node).copied();
            let mut slot = prefix.unwrap_or(0);
            while slot < start && self.recoveries.len() < GAP_RECOVERIES {
                let id = InstanceId { leader: node, slot };
                slot += 1;
                let replica = &self.replica;
                if replica.is_committed(id)
                    || replica.executor.is_executed(id)
                    || self.leader.is_leading(id)
                    || self.recoveries.is_recovering(id)
                {
                    continue;
                }
                self.replica.metrics.incr("rejoin_gap_recoveries");
                self.recoveries
                    .start(&mut self.replica, &mut self.leader, now, id);
            }
        }
    }

    /// On the GC timer: the first own slot not known committed bounds the window of new
    /// own slots (`batch.rs`) and every executed prefix. If nothing here drives it (a
    /// recovery elsewhere took it over, then stopped) for two ticks in a row, recover it:
    /// nobody else may ever need it, and the window would close for good.
    pub(super) fn unstick_own(&mut self, now: Time) {
        let me = self.replica.id;
        let slot = self.leader.own_prefix(&self.replica);
        let id = InstanceId { leader: me, slot };
        let stuck = slot < self.leader.next_slot()
            && self.resume.is_empty()
            && !self.leader.is_leading(id)
            && !self.recoveries.is_recovering(id);
        let again = stuck && self.rejoin.stuck == Some(slot);
        self.rejoin.stuck = stuck.then_some(slot);
        if again {
            self.replica.metrics.incr("own_recoveries");
            self.recoveries
                .start(&mut self.replica, &mut self.leader, now, id);
        }
    }

    /// On the GC timer: a switch of another leader that this replica holds uncommitted
    /// for two ticks in a row, with nothing here driving it, is recovered. A command
    /// after it would depend on it (a switch is a barrier) and recover it; with none,
    /// a switch whose leader committed it, executed it and was stopped before its commit
    /// reached anyone (a replica that removed itself) stays unexecuted here, and the
    /// configuration never moves on (t18 retiring seed 85621).
    pub(super) fn recover_stuck_switches(&mut self, now: Time) {
        let me = self.replica.id;
        let stuck: BTreeSet<InstanceId> = self
            .replica
            .table
            .instances
            .iter()
            .filter(|(id, instance)| {
                id.leader != me
                    && instance.status != Status::Committed
                    && instance.payload.is_switch()
            })
            .map(|(&id, _)| id)
            .filter(|&id| !self.recoveries.is_recovering(id) && !self.leader.is_leading(id))
            .collect();
        let again: Vec<InstanceId> = stuck
            .intersection(&self.rejoin.stuck_switches)
            .copied()
            .collect();
        self.rejoin.stuck_switches = stuck;
        for id in again {
            self.replica.metrics.incr("switch_recoveries");
            self.recoveries
                .start(&mut self.replica, &mut self.leader, now, id);
        }
    }

    /// A vote asked of a replica that may not give it (see the module doc): a decision
    /// known here is still told.
    pub(super) fn withhold_vote(&mut self, from: NodeId, id: InstanceId) {
        if !self.replica.reveal_commit(from, id) {
            self.replica.metrics.incr("votes_withheld");
        }
    }
}

/// Every instance id of `leader`.
fn of(leader: NodeId) -> std::ops::RangeInclusive<InstanceId> {
    InstanceId { leader, slot: 0 }..=InstanceId {
        leader,
        slot: u64::MAX,
    }
}

/// The slot after `id` (0 for none).
fn above(id: Option<&InstanceId>) -> u64 {
    id.map_or(0, |id| id.slot.saturating_add(1))
}
