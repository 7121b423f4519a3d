//! A replica that lost its disk (docs/design.md#tempo-rejoin-rule), and state transfer.
//!
//! Its former self may have proposed timestamps (attached promises) and accepted and
//! promised ballots for commands it no longer remembers, announced clocks (detached
//! promises) that others counted for stability, and used own sequence numbers.
//!
//! ```text
//!  rejoin ─▶ persist Fence{Querying}; vote on nothing, propose nothing, execute nothing
//!        ─▶ RejoinQuery ─▶ every peer ─▶ RejoinBound{highest epoch of ours it knows}
//!  every peer answered: epoch E = max + 1; persist Fence{Fetching, E}
//!        ─▶ RejoinFetch{E, at, offset} ─▶ every peer P: persist starts[R] = E (from now
//!           on P ignores promises and reports of R's earlier epochs, and Proposes of
//!           commands of R's earlier epochs it does not know), then, behind that record,
//!           in chunks: RejoinState{P's last own seq, per key max(P's clock, every clock
//!           announced to P), the commands P holds, P's executed state}; P forgets what
//!           R's former selves announced and reported
//!  (P rejoining itself answers phase 1 at once and phase 2 once it chose its epoch,
//!   with that epoch's base as its last seq and no executed state)
//!  first answer with a state: install it; commits learned meanwhile run
//!  every answer: clocks raised to its clocks; a promise at timestamp 0 attached to each
//!           command it holds; bound on P's commands = its last seq + 1
//!  every peer answered, none with a state: start over
//!  every peer answered: Fence{Rejoined}; compact (durable); vote on (P, s) only if s is
//!           at or above P's bound; propose in epoch E
//! ```

use super::coordinator;
use super::dots::{epoch_base, epoch_of, Dot};
use super::fence::Stage;
use super::messages::{Message, PeerState, Record, RejoinState};
use super::replica::Replica;
use super::{compaction, gc, Tempo, TempoTimer};
use crate::id::NodeId;
use crate::protocol::Effect;
use crate::request::ClientRequest;
use crate::time::Time;
use crate::transfer::{self, Answers, Incoming, Received};
use std::collections::{BTreeMap, BTreeSet};

/// A rejoin in progress here, and the answers served to peers that rejoin.
#[derive(Clone, Default)]
pub(super) struct Rejoin {
    /// This attempt's nonce (from the core's seed: each boot draws a new one).
    nonce: u64,
    /// Phase 1: the highest epoch of ours each peer knows of.
    epochs: BTreeMap<NodeId, u64>,
    /// Phase 2: answers being fetched, per peer.
    incoming: BTreeMap<NodeId, Incoming>,
    /// Peers whose answer is in.
    answered: BTreeSet<NodeId>,
    /// Client requests that came while rejoining.
    queued: Vec<ClientRequest>,
    /// Answers encoded for rejoining peers (source side).
    served: Answers,
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

fn send(to: NodeId, message: Message) -> Effect<Message> {
    Effect::Send { to, message }
}

/// Ask for the chunk at `offset` of answer `at` (`at == 0`: a new answer) in `epoch`.
fn fetch(nonce: u64, epoch: u64, (at, offset): (u64, u64)) -> Message {
    Message::RejoinFetch {
        nonce,
        epoch,
        at,
        offset,
    }
}

fn persist_fence(r: &mut Replica) {
    let record = Record::Fence(Box::new(r.fence.clone()));
    r.outbox.persist(vec![record], Vec::new());
}

impl Tempo {
    /// The host rebuilt us without records because the disk was lost.
    pub(super) fn begin_rejoin(&mut self, now: Time) {
        if self.replica.config.unsafe_rejoin_without_fence {
            self.replica.metrics.incr("rejoin_rule_skipped");
            return;
        }
        self.fence_for_rejoin(false);
        self.on_rejoin_timer(now);
    }

    /// The members collected commands this replica never ran (it was removed and added
    /// again while away): their promises leave those out, so count none and fetch the
    /// members' state. A replica without a state of its own (rejoining, or removed)
    /// only leaves the promises uncounted.
    pub(super) fn left_behind(&mut self, now: Time) {
        let r = &mut self.replica;
        if !(r.fence.may_propose() && r.fence.executes()) {
            r.metrics.incr("promises_not_counted");
            return;
        }
        r.metrics.incr("behind_collection");
        self.fence_for_rejoin(true);
        self.on_rejoin_timer(now);
    }

    /// Propose nothing and execute nothing until every member answered (durably; a
    /// restart resumes the rejoin). Vote on nothing meanwhile, unless `records_intact`
    /// (the disk was not lost) and this replica holds the record of every vote it gave
    /// since its last lost disk: then it votes as before, so the commands it voted on
    /// keep their recovery quorums (docs/design.md#tempo-rejoin-rule).
    pub(super) fn fence_for_rejoin(&mut self, records_intact: bool) {
        let r = &mut self.replica;
        let with_records = records_intact && r.fence.stage.keeps_records();
        r.fence.stage = Stage::querying(with_records);
        r.fence.answerers = None;
        r.fence.lost_state = true;
        r.metrics.incr("rejoins");
        persist_fence(r);
        self.rejoin = Rejoin::new(self.rejoin.nonce.wrapping_add(2));
    }

    /// Who must answer this rejoin: the members of the newest configuration a peer
    /// named, else every replica of the cluster (the asker excluded).
    fn answerers(&self) -> Vec<NodeId> {
        match &self.replica.fence.answerers {
            Some((_, members)) => members.clone(),
            None => {
                let me = self.replica.id;
                self.replica.cluster.ids().filter(|&n| n != me).collect()
            }
        }
    }

    /// A restart found a rejoin under way: pick it up at once.
    pub(super) fn resume_rejoin(&mut self) {
        let stage = self.replica.fence.stage;
        if stage.is_querying() || stage.is_fetching() {
            self.timers.set(TempoTimer::Rejoin, Time::ZERO);
        }
    }

    /// A configuration learned since phase 1 removed an answerer that has not answered:
    /// a removed replica answers nobody, so the fetch would wait for it for good (t19
    /// seed 1480119).
    fn answerer_removed(&self) -> bool {
        let r = &self.replica;
        let Some((named, members)) = &r.fence.answerers else {
            return false;
        };
        r.configuration().epoch() > *named
            && members
                .iter()
                .any(|m| !self.rejoin.answered.contains(m) && !r.members.contains(m))
    }

    /// Ask again whoever has not answered (a fetch only once it went quiet). A fetch
    /// waiting for a replica removed since starts over: phase 1 follows the newest
    /// configuration, as after a fetch where nobody had a state.
    pub(super) fn on_rejoin_timer(&mut self, now: Time) {
        if self.replica.fence.stage.is_fetching() && self.answerer_removed() {
            self.fence_for_rejoin(true);
        }
        let patience = self.replica.config.retry_timeout;
        let nonce = self.rejoin.nonce;
        let answerers = self.answerers();
        let r = &mut self.replica;
        match r.fence.stage {
            Stage::Querying | Stage::QueryingWithRecords => {
                // Everyone, answered or not: a member of an older configuration may never
                // answer (removed since), and a newer configuration names who must.
                let me = r.id;
                for peer in r.cluster.ids().filter(|&n| n != me) {
                    r.outbox.send(peer, Message::RejoinQuery { nonce });
                }
            }
            Stage::Fetching | Stage::FetchingWithRecords => {
                let epoch = r.fence.epoch;
                for peer in answerers {
                    if self.rejoin.answered.contains(&peer) {
                        continue;
                    }
                    let incoming = self
                        .rejoin
                        .incoming
                        .entry(peer)
                        .or_insert_with(|| Incoming::new(peer, now));
                    let quiet = now.saturating_since(incoming.last_progress()) >= patience;
                    if incoming.received() > 0 && !quiet {
                        continue;
                    }
                    r.outbox.send(peer, fetch(nonce, epoch, incoming.request()));
                }
            }
            Stage::Voter | Stage::Rejoined => return,
        }
        self.timers.set(TempoTimer::Rejoin, now + patience);
    }

    /// Source side, phase 1: the highest epoch of `from` known here ([`serves_rejoin`]).
    pub(super) fn on_rejoin_query(&mut self, from: NodeId, nonce: u64) {
        let r = &mut self.replica;
        if !serves_rejoin(r, from) {
            r.metrics.incr("votes_withheld");
            return;
        }
        let own = r
            .cmds
            .range(
                Dot { node: from, seq: 0 }..=Dot {
                    node: from,
                    seq: u64::MAX,
                },
            )
            .next_back()
            .map_or(0, |(d, _)| d.seq);
        let highest = own
            .max(r.executor.executed.highest(from))
            .max(r.collected.highest(from));
        let fenced = r.fence.starts.get(&from).copied().unwrap_or(0);
        let epoch = epoch_of(highest).max(fenced);
        let answer = Message::RejoinBound {
            nonce,
            epoch,
            config_epoch: r.configuration().epoch(),
            members: r.members.clone(),
        };
        r.outbox.persist(Vec::new(), vec![send(from, answer)]);
    }

    /// Phase 1 answer: with the answer of every member of the newest configuration named,
    /// choose our epoch and fetch.
    pub(super) fn on_rejoin_bound(
        &mut self,
        now: Time,
        from: NodeId,
        nonce: u64,
        epoch: u64,
        (config_epoch, members): (u64, Vec<NodeId>),
    ) {
        if !self.replica.fence.stage.is_querying() || nonce != self.rejoin.nonce {
            return;
        }
        self.rejoin.epochs.insert(from, epoch);
        let fence = &mut self.replica.fence;
        if fence
            .answerers
            .as_ref()
            .is_none_or(|(known, _)| config_epoch > *known)
        {
            let me = self.replica.id;
            let members = members.into_iter().filter(|&m| m != me).collect();
            // Persisted with the fence of phase 2 (phase 1 starts over after a restart).
            fence.answerers = Some((config_epoch, members));
        }
        let answerers = self.answerers();
        if !answerers.iter().all(|m| self.rejoin.epochs.contains_key(m)) {
            return;
        }
        let highest = answerers
            .iter()
            .filter_map(|m| self.rejoin.epochs.get(m))
            .copied()
            .max()
            .unwrap_or(0);
        let r = &mut self.replica;
        r.fence.epoch = highest.saturating_add(1).max(r.fence.epoch);
        r.fence.stage = r.fence.stage.fetching();
        r.metrics.set("rejoin_epoch", r.fence.epoch);
        persist_fence(r);
        self.on_rejoin_timer(now);
    }

    /// Source side, phase 2: fence `from`'s former selves (durably), then serve a chunk
    /// of our answer (a new answer for a new attempt).
    pub(super) fn on_rejoin_fetch(
        &mut self,
        now: Time,
        from: NodeId,
        nonce: u64,
        epoch: u64,
        (at, offset): (u64, u64),
    ) {
        let r = &mut self.replica;
        if !serves_rejoin(r, from) {
            r.metrics.incr("votes_withheld");
            return;
        }
        if !r.fence.current(from, epoch) {
            r.metrics.incr("stale_messages");
            return;
        }
        if r.fence.stage.is_querying() {
            // Rejoining ourselves without an epoch yet: no bound on our commands to give.
            return;
        }
        // One answer per attempt, taken once the former selves are fenced (see
        // `transfer::Answers`).
        let fresh = !self.rejoin.served.holds(from, nonce);
        let encoded = fresh.then(|| {
            if r.fence.starts.get(&from) != Some(&epoch) {
                r.fence.starts.insert(from, epoch);
                r.fence.admit_votes_from(from, epoch);
                persist_fence(r);
            }
            let state = rejoin_state(r, self.drives.last_seq);
            r.promises.forget_node(from);
            r.floors.forget_node(from);
            self.collector.forget(from);
            r.metrics.incr("rejoin_answers_encoded");
            transfer::encode(&state)
        });
        let max = r.config.snapshot_chunk_bytes;
        let encoded = || encoded.unwrap_or_default();
        let answers = &mut self.rejoin.served;
        let Some(chunk) = answers.serve(from, nonce, (at, offset), max, now, encoded) else {
            return;
        };
        r.metrics
            .add("state_transfer_bytes_sent", chunk.bytes.len() as u64);
        let chunk = Message::RejoinChunk {
            nonce,
            at: chunk.at,
            offset: chunk.offset,
            total: chunk.total,
            bytes: chunk.bytes,
        };
        r.outbox.persist(Vec::new(), vec![send(from, chunk)]);
    }

    /// A chunk `(at, offset, total, bytes)` of a peer's answer.
    pub(super) fn on_rejoin_chunk(
        &mut self,
        now: Time,
        from: NodeId,
        nonce: u64,
        (at, offset, total, bytes): (u64, u64, u64, Vec<u8>),
    ) {
        let stale = nonce != self.rejoin.nonce || self.rejoin.answered.contains(&from);
        if !self.replica.fence.stage.is_fetching() || stale {
            return;
        }
        let Some(incoming) = self.rejoin.incoming.get_mut(&from) else {
            return;
        };
        let len = bytes.len() as u64;
        let epoch = self.replica.fence.epoch;
        match incoming.receive(from, at, offset, total, bytes, now) {
            Received::Ignored => {}
            Received::Next { at, offset } => {
                let r = &mut self.replica;
                r.metrics.add("state_transfer_bytes_received", len);
                r.outbox.send(from, fetch(nonce, epoch, (at, offset)));
            }
            Received::Complete(encoded) => {
                let r = &mut self.replica;
                r.metrics.add("state_transfer_bytes_received", len);
                self.rejoin.incoming.remove(&from);
                match transfer::decode::<RejoinState>(&encoded) {
                    Some(state) => self.take_answer(now, from, state),
                    None => self.replica.metrics.incr("dropped_messages"),
                }
            }
        }
    }

    /// A peer's complete answer.
    fn take_answer(&mut self, now: Time, from: NodeId, answer: RejoinState) {
        let RejoinState {
            last_seq,
            clocks,
            floor,
            pending,
            state,
            starts,
        } = answer;
        self.rejoin.answered.insert(from);
        let r = &mut self.replica;
        if !r.fence.stage.keeps_records() {
            // Our former self may have voted on any command `from` had made by now.
            r.fence.bounds.insert(from, last_seq.saturating_add(1));
        } else if !r.fence.votes_on_everything() {
            // Fenced since an earlier lost disk, with our records since: we never voted
            // on a command of a member we hold no bound for (one that joined while we
            // were out), and our former self only on those it had made by now.
            r.fence
                .bounds
                .entry(from)
                .or_insert(last_seq.saturating_add(1));
        }
        for (node, epoch) in starts {
            if node != r.id {
                let known = r.fence.starts.entry(node).or_default();
                *known = (*known).max(epoch);
            }
        }
        r.clocks.raise_floor(floor);
        for (key, clock) in clocks {
            r.clocks.bump(&key, clock);
        }
        if let Some(state) = state.filter(|_| r.fence.lost_state) {
            install(r, state);
        }
        for (key, dot) in pending {
            // Our former self may have proposed any timestamp for it: our promises on
            // the key count nowhere until it is committed there.
            if !r.collected.contains(dot) {
                r.clocks.attach(&key, dot, 0);
            }
        }
        r.metrics.incr("rejoin_answers");
        let answerers = self.answerers();
        if !answerers.iter().all(|m| self.rejoin.answered.contains(m)) {
            return;
        }
        if self.replica.fence.lost_state {
            // Every answerer was rejoining too: none had a state to give. Ask again
            // (their own rejoins end with the others' states).
            self.replica.metrics.incr("rejoins_without_state");
            self.fence_for_rejoin(true);
            self.on_rejoin_timer(now);
            return;
        }
        self.finish_rejoin(now);
    }

    /// Every peer answered: vote per the bounds, propose in our epoch, durably.
    fn finish_rejoin(&mut self, now: Time) {
        let r = &mut self.replica;
        if r.fence.votes_on_everything() {
            // Our records hold every vote we ever gave: vote on everything, as before.
            r.fence.stage = Stage::Voter;
        } else {
            bound_votes(r);
        }
        r.fence.answerers = None;
        r.clocks.set_epoch(r.fence.epoch);
        r.metrics.incr("rejoins_completed");
        self.drives.last_seq = self.drives.last_seq.max(epoch_base(r.fence.epoch));
        self.timers.cancel(TempoTimer::Rejoin);
        let last_seq = self.drives.last_seq;
        compaction::compact(&mut self.replica, &mut self.last_compaction, last_seq);
        gc::announce(&mut self.replica, true);
        for request in std::mem::take(&mut self.rejoin.queued) {
            coordinator::submit(&mut self.replica, &mut self.drives, now, request);
        }
    }

    /// A client request while rejoining waits for the end of it.
    pub(super) fn queue_request(&mut self, request: ClientRequest) {
        self.rejoin.queued.push(request);
    }
}

/// Vote per the bounds from now on: those the answers set after a lost disk (ours
/// from our new epoch), or those of our last lost disk if we kept our records since
/// (with the answers' for members that joined while we were out).
fn bound_votes(r: &mut Replica) {
    let start = r.fence.own_start();
    r.fence.bounds.entry(r.id).or_insert(start);
    // A replica that did not answer (not a member now) votes again only in an
    // incarnation none of the answers knew: our former self, dead before this rejoin
    // began, saw none of its commands (docs/design.md, "Tempo epochs").
    let others: Vec<NodeId> = r.cluster.ids().filter(|&n| n != r.id).collect();
    for node in others {
        let known = r.fence.starts.get(&node).copied().unwrap_or(0);
        let first_unknown = epoch_base(known.saturating_add(1)).saturating_add(1);
        r.fence.bounds.entry(node).or_insert(first_unknown);
    }
    r.fence.stage = Stage::Rejoined;
}

/// Whether this replica answers `from`'s rejoin: both are members of its current
/// configuration, or this replica rejoins itself (its configuration may be stale, and
/// two members rejoining at once wait for each other). A spare fetches state once a
/// switch adds it; a removed replica answers nobody.
fn serves_rejoin(r: &Replica, from: NodeId) -> bool {
    !r.fence.may_propose() || (r.members.contains(&r.id) && r.members.contains(&from))
}

/// What we tell a peer that lost its disk (see [`RejoinState`]).
fn rejoin_state(r: &Replica, last_seq: u64) -> RejoinState {
    let mut clocks: BTreeMap<_, u64> = r.clocks.clocks().into_iter().collect();
    for (key, clock) in r.promises.highest_all() {
        let entry = clocks.entry(key.clone()).or_default();
        *entry = (*entry).max(clock);
    }
    let pending = r
        .cmds
        .iter()
        .filter_map(|(&dot, c)| Some((c.payload.as_ref()?.key().clone(), dot)))
        .collect();
    let state = r.fence.executes().then(|| {
        let (kv, sessions) = r.executor.state();
        PeerState {
            executed: r.executor.executed.clone(),
            kv: kv.clone(),
            sessions: sessions.clone(),
            epochs: r.executor.epochs().clone(),
            collected: r.collected.clone(),
        }
    });
    // Rejoining ourselves, we propose only above our new epoch's base.
    let last_seq = if r.fence.may_propose() {
        last_seq
    } else {
        epoch_base(r.fence.epoch)
    };
    RejoinState {
        last_seq,
        clocks: clocks.into_iter().collect(),
        floor: r.clocks.floor().max(r.promises.forgotten()),
        pending,
        state,
        starts: r.fence.starts.iter().map(|(&n, &e)| (n, e)).collect(),
    }
}

/// Take a peer's executed state in place of ours; what was learned meanwhile runs now.
fn install(r: &mut Replica, state: PeerState) {
    let PeerState {
        executed,
        kv,
        sessions,
        epochs,
        collected,
    } = state;
    r.executor.restore(executed, (kv, sessions), epochs);
    r.follow_configuration();
    r.collected = collected;
    // Announced promises had their holes passed over for commands committed by what we
    // held before: a collection we counted without ourselves while our state was lost,
    // or executions the installed state lacks. Those commands may have to run here
    // again, so count only what is announced from now on (t19 seed 560032 ran a put
    // before a read below it on the key: the read's hole was dropped while fetching).
    r.promises.forget_announcements();
    r.floors.forget_all();
    r.fence.lost_state = false;
    r.metrics.incr("state_transfers_completed");
    // What the state executed is skipped.
    let learned: Vec<_> = r
        .cmds
        .iter()
        .filter(|(_, c)| c.durable)
        .filter_map(|(&d, c)| Some((d, c.decided?, c.payload.as_ref()?.key().clone())))
        .collect();
    for (dot, ts, key) in learned {
        r.executor.add(&key, ts, dot);
        r.touched.insert(key);
    }
    let collected = &r.collected;
    r.cmds.retain(|dot, _| !collected.contains(*dot));
}

/// Whether a vote on `dot` may be given here; if not, a decision known here is still
/// told to `from`.
pub(super) fn may_vote(r: &mut Replica, from: NodeId, dot: Dot) -> bool {
    if r.fence.may_vote(dot) {
        return true;
    }
    match r.cmds.get(&dot) {
        Some(cmd) if cmd.decided.is_some() && cmd.payload.is_some() => {
            if let (Some(ts), Some(payload)) = (cmd.decided, cmd.payload.clone()) {
                r.outbox.send(from, Message::Commit { dot, payload, ts });
            }
        }
        _ => r.metrics.incr("votes_withheld"),
    }
    false
}
