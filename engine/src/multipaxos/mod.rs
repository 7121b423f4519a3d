//! Multi-Paxos: the leader-based baseline.
//!
//! ```text
//!  client ─▶ any replica ──Forward──▶ leader ──Accept──▶ acceptors (persist, then Accepted)
//!                ▲                      │ q2 Accepted (own vote counts once durable)
//!                └──── Commit ◀─────────┘ commit; every replica executes slots in order;
//!                                          the replica that took the request replies
//! ```
//! A leader runs phase 1 (Prepare/Promise) once per ballot and phase 2 per slot, with
//! pipelining and optional batching. Followers watch heartbeats; after a randomized
//! silence they stand with a higher ballot. A new leader adopts, per slot, the value with
//! the highest accepted ballot among a phase-1 quorum and fills gaps with no-ops. Reads go
//! through the log (linearizable) unless the client asks for a local read. Lagging
//! replicas learn the leader's commit point from heartbeats and fetch committed slots.
//!
//! Files: `acceptor` (phase 1b/2b, reacting to higher ballots), `election` (failure
//! detection, phase 1a, taking over the log), `leader` (phase 2a, pipelining, batching,
//! heartbeats, retransmission), `learner` (commits, execution, catch-up), `requests`
//! (client intake, forwarding, replies), `log` (slots and the state machine),
//! `replay` (durable records and rebuilding a replica from them), `compaction`
//! (snapshots, log compaction, state transfer), `rejoin` (a replica that lost its disk),
//! `config`, `messages`. Tests: `*_test.rs` beside each handler file, and
//! `cluster_test.rs` on a seeded in-test pump.
//!
//! # Bounded state
//! Every [`MultiPaxosConfig::snapshot_interval`] executed slots the log is compacted: the
//! durable log becomes the promise, a snapshot of the state machine and session table,
//! and the accepted slots above it; memory keeps only the last
//! [`MultiPaxosConfig::retained_slots`] executed slots. A replica asked for anything below
//! its compaction point answers [`Message::Compacted`], and the asker fetches a snapshot
//! (docs/design.md#multi-paxos-compaction).
//!
//! # Requests across leader changes
//! The replica a client contacted keeps the request until it executes it, and forwards it
//! again when it learns of a new leader or after [`MultiPaxosConfig::forward_retry`]. A
//! request ordered twice is executed once (the replicated session table answers the
//! repeat with the first result), so retrying never applies a command twice. After
//! [`MultiPaxosConfig::max_forward_attempts`] the replica answers
//! [`RequestError::Timeout`] (an unknown outcome). A crash forgets pending requests: their
//! clients time out.

mod acceptor;
mod compaction;
mod config;
mod election;
mod leader;
mod learner;
mod lease;
mod log;
mod membership;
mod messages;
mod reads;
mod rejoin;
mod replay;
mod requests;

#[cfg(test)]
mod acceptor_test;
#[cfg(test)]
mod cluster_test;
#[cfg(test)]
mod compaction_test;
#[cfg(test)]
mod election_test;
#[cfg(test)]
mod leader_test;
#[cfg(test)]
mod learner_test;
#[cfg(test)]
mod lease_test;
#[cfg(test)]
mod membership_test;
#[cfg(test)]
mod reads_test;
#[cfg(test)]
mod rejoin_test;
#[cfg(test)]
mod requests_test;
#[cfg(test)]
mod scan_test;
#[cfg(test)]
mod test_support;

pub use crate::configuration::{ChangeFailure, ChangeOutcome};
pub use config::MultiPaxosConfig;
pub use log::{AppliedEntry, APPLIED_HISTORY};
pub use messages::{AcceptedEntry, Ballot, Batch, Message, Proposal, Record, Slot, Snapshot};

use crate::configuration::{Change, Configuration};
use crate::id::{NodeId, RequestId};
use crate::protocol::{Membership, Metrics, Outbox, Output, Protocol};
use crate::quorum::PaxosQuorums;
use crate::request::{ClientRequest, RequestError};
use crate::time::Time;
use crate::timer::Timers;
use crate::transfer::{Incoming, Outgoing};
use election::Candidacy;
use leader::Leadership;
use lease::Leases;
use log::ReplicaLog;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reads::PendingRead;
use requests::Pending;
use std::collections::BTreeMap;
use std::time::Duration;

/// Multi-Paxos duties on the clock (docs/design.md#timers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Timer {
    /// Armed at time zero until the first input: then the failure detector starts and
    /// the initial leader stands at once.
    Start,
    /// Followers and candidates: stand for election after this much leader silence.
    Election,
    /// Leader: the next heartbeat.
    Heartbeat,
    /// Forwarded requests that may need another attempt.
    Retry,
    /// A state transfer's next chunk is late: ask again.
    Transfer,
    /// Reads waiting for a read index that may need asking again.
    Reads,
    /// A candidate that won phase 1 leads once every lease its promisers granted ended.
    LeaseWait,
    /// A quorum-lease holder's next round of grants.
    QuorumLease,
}

// One per replica: the size of the leader's variant costs nothing.
#[allow(clippy::large_enum_variant)]
enum Role {
    Follower,
    Candidate(Candidacy),
    Leader(Leadership),
}

/// One Multi-Paxos replica (proposer, acceptor and learner).
///
/// Drive it through [`Protocol`]: after every input drain
/// [`poll_output`](Protocol::poll_output), then call
/// [`handle_timeout`](Protocol::handle_timeout) at [`poll_timeout`](Protocol::poll_timeout).
pub struct MultiPaxos {
    id: NodeId,
    /// Every replica the host knows (the static membership): messages from anyone else
    /// are dropped.
    cluster: Vec<NodeId>,
    /// Every member of the current configuration, voters and learners: who this replica
    /// talks to. Who votes is `log.configuration()` (docs/design.md#membership).
    members: Vec<NodeId>,
    /// The voters among `members` (a change that keeps them needs no stall).
    voters: Vec<NodeId>,
    /// The epoch of the configuration `members` and `quorums` were computed from.
    epoch: u64,
    config: MultiPaxosConfig,
    quorums: PaxosQuorums,
    rng: ChaCha8Rng,
    /// Highest ballot promised; made durable before anything that depends on it leaves.
    promised: Ballot,
    /// Highest ballot seen anywhere (a Nack may reveal one we never promised): the next
    /// candidacy starts above it.
    highest_seen: Ballot,
    log: ReplicaLog,
    role: Role,
    /// Who this replica believes leads.
    leader_hint: Option<NodeId>,
    /// Requests this replica took from its clients and has not answered yet.
    pending: BTreeMap<RequestId, Pending>,
    /// Reads served outside the log that this replica has not answered yet.
    reads: BTreeMap<RequestId, PendingRead>,
    /// Lease grants, a held quorum lease, freshness proofs.
    leases: Leases,
    /// Every duty on the clock: `poll_timeout` is the earliest.
    timers: Timers<Timer>,
    /// The leader's commit point as last heard (what catch-up aims for).
    known_commit_point: Slot,
    last_catch_up_request: Option<Time>,
    /// Built with no durable records (first boot).
    fresh: bool,
    /// The executed frontier of the last compaction.
    last_snapshot: compaction::LastSnapshot,
    /// The snapshot this replica serves to a peer behind its compaction point.
    outgoing: Option<Outgoing>,
    /// The snapshot this replica is fetching.
    incoming: Option<Incoming>,
    /// Rejoin ballots of replicas that lost their disk (this one included): their
    /// promises from before are void (docs/design.md#rejoin-rule).
    fences: BTreeMap<NodeId, Ballot>,
    /// Lost its disk and has not rejoined yet: votes for nothing.
    rejoining: bool,
    /// Shutting down on purpose ([`Protocol::hand_off`]): never stands for election again.
    retiring: bool,
    /// Membership changes this replica took from its operator that have ended, for
    /// [`MultiPaxos::poll_change_outcome`].
    change_outcomes: std::collections::VecDeque<ChangeOutcome>,
    /// The host is handing over a burst of waiting inputs: proposals wait for its end
    /// ([`Protocol::begin_burst`]).
    burst: bool,
    outbox: Outbox<Message, Record>,
    metrics: Metrics,
}

impl MultiPaxos {
    /// A replica of `cluster`, rebuilt from its durable `recovered` records, in order
    /// (empty on first boot). `seed` drives election jitter only.
    ///
    /// # Panics
    /// If `config.quorums` do not intersect for this cluster's size.
    pub fn new(
        id: NodeId,
        cluster: &Membership,
        config: MultiPaxosConfig,
        seed: u64,
        recovered: Vec<Record>,
    ) -> Self {
        let initial = membership::initial_configuration(cluster, &config);
        let recovered = replay::recover(id, recovered, config.sessions, initial);
        let configuration = recovered.log.configuration();
        let members: Vec<NodeId> = configuration.members().iter().map(|m| m.id).collect();
        let voters: Vec<NodeId> = configuration.voters().collect();
        let epoch = configuration.epoch();
        let quorums = if epoch == 0 {
            config.quorums_for(configuration.voter_count())
        } else {
            config.quorums_after_change(configuration.voter_count().max(1))
        };
        let last_snapshot = compaction::LastSnapshot::at(recovered.log.floor());
        let mut timers = Timers::new();
        // Until the first input tells the core what time it is.
        timers.set(Timer::Start, Time::ZERO);
        Self {
            id,
            cluster: cluster.ids().collect(),
            members,
            voters,
            epoch,
            config,
            quorums,
            rng: ChaCha8Rng::seed_from_u64(seed),
            promised: recovered.promised,
            highest_seen: recovered.promised,
            log: recovered.log,
            role: Role::Follower,
            leader_hint: None,
            pending: BTreeMap::new(),
            reads: BTreeMap::new(),
            leases: Leases::default(),
            timers,
            known_commit_point: 0,
            last_catch_up_request: None,
            fresh: recovered.fresh,
            last_snapshot,
            outgoing: None,
            incoming: None,
            fences: recovered.fences,
            rejoining: recovered.rejoining,
            retiring: false,
            change_outcomes: std::collections::VecDeque::new(),
            burst: false,
            outbox: Outbox::counting(),
            metrics: Metrics::new(),
        }
    }

    /// Who this replica believes leads.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader_hint
    }

    /// Whether this replica currently leads (won phase 1 and has not seen a higher ballot).
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    /// The highest ballot promised (a leader's own ballot while it leads).
    pub fn ballot(&self) -> Ballot {
        self.promised
    }

    /// The highest ballot promised (same as [`ballot`](Self::ballot)).
    pub fn promised(&self) -> Ballot {
        self.promised
    }

    /// The most recent commands applied here (at most [`APPLIED_HISTORY`]), in execution
    /// order (slot, request, command). A snapshot installed by state transfer leaves a
    /// gap in slots. Built on each call (tests and debugging).
    pub fn applied(&self) -> Vec<AppliedEntry> {
        self.log.applied()
    }

    /// First slot still held one by one (every slot below is compacted into the state).
    pub fn compacted_to(&self) -> Slot {
        self.log.floor()
    }

    /// Slots held one by one in memory.
    pub fn held_slots(&self) -> usize {
        self.log.held()
    }

    /// Whether this replica lost its disk and has not rejoined yet.
    pub fn is_rejoining(&self) -> bool {
        self.rejoining
    }

    /// First slot not yet executed.
    pub fn executed_up_to(&self) -> Slot {
        self.log.next_execute()
    }

    /// First slot not known to be committed here.
    pub fn commit_point(&self) -> Slot {
        self.log.commit_point()
    }

    /// The replicated map as applied here.
    pub fn kv(&self) -> &crate::state_machine::KvStore {
        self.log.kv()
    }

    /// The configuration this replica knows: its epoch, voters and learners.
    pub fn configuration(&self) -> &Configuration {
        self.log.configuration()
    }

    /// Client requests this replica took and has not answered yet.
    pub fn pending_requests(&self) -> usize {
        self.pending.len()
    }

    /// Whether `node` may talk to this replica: a replica of the static cluster, or a
    /// member of the current configuration (one a membership change added).
    fn knows(&self, node: NodeId) -> bool {
        self.cluster.contains(&node) || self.members.contains(&node)
    }

    fn peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.iter().copied().filter(move |&n| n != self.id)
    }

    fn broadcast(&mut self, message: Message) {
        let peers: Vec<NodeId> = self.peers().collect();
        for peer in peers {
            self.outbox.send(peer, message.clone());
        }
    }

    /// A message that cannot be used: stale (an old ballot, a finished round) or malformed
    /// (impossible for a correct peer). Counted, never a panic.
    fn drop_message(&mut self, malformed: bool) {
        self.metrics.incr("dropped_messages");
        self.metrics.incr(if malformed {
            "dropped_malformed"
        } else {
            "dropped_stale"
        });
    }

    fn election_timeout(&mut self) -> Duration {
        let base = self.config.election_timeout;
        let base_us = u64::try_from(base.as_micros()).unwrap_or(u64::MAX).max(1);
        base + Duration::from_micros(self.rng.gen_range(0..=base_us))
    }

    /// Push the failure detector's deadline out (a leader's is disarmed: it does not
    /// watch itself; a rejoining replica's keeps its time, so it retries the rejoin even
    /// while a leader is heard; the jitter is drawn either way so the seed's sequence is
    /// fixed).
    fn reset_election_deadline(&mut self, now: Time) {
        let deadline = now + self.election_timeout();
        if self.rejoining && self.timers.is_armed(Timer::Election) || self.retiring {
            return;
        }
        if !self.is_leader() {
            self.timers.set(Timer::Election, deadline);
        }
    }

    /// The first input: arm the failure detector; the initial leader stands at once.
    fn start(&mut self, now: Time) {
        if !self.timers.is_armed(Timer::Start) {
            return;
        }
        self.timers.cancel(Timer::Start);
        // A grant given before a crash is forgotten: assume one was given just now.
        self.grant(now);
        if self.is_lease_holder() {
            self.timers.set(Timer::QuorumLease, now);
        }
        self.reset_election_deadline(now);
        if self.rejoining {
            self.start_rejoin(now);
        } else if self.fresh && self.id == self.config.initial_leader {
            self.start_election(now);
        }
    }
}

impl MultiPaxos {
    /// Route one peer message to its handler.
    fn dispatch_message(&mut self, now: Time, from: NodeId, message: Message) {
        match message {
            Message::Prepare { ballot, from_slot } => self.on_prepare(now, from, ballot, from_slot),
            Message::Promise {
                ballot,
                accepted,
                fence,
                fences,
                lease_remaining_us,
            } if from != self.id => self.on_promise(
                now,
                from,
                ballot,
                accepted,
                lease_remaining_us,
                fence,
                fences,
            ),
            Message::OwnPromiseDurable { ballot } if from == self.id => {
                self.on_own_promise_durable(now, ballot)
            }
            Message::Promise { .. } | Message::OwnPromiseDurable { .. } => self.drop_message(true),
            Message::Accept {
                ballot,
                slot,
                value,
            } => self.on_accept(now, from, ballot, slot, value),
            Message::Accepted { ballot, slot } => self.on_accepted(now, from, ballot, slot),
            Message::Nack { promised } => self.on_nack(now, promised),
            Message::Commit { slot, value } => self.on_commit(now, slot, value),
            Message::Heartbeat {
                ballot,
                commit_point,
                round,
                fresh,
            } => self.on_heartbeat(now, from, ballot, commit_point, round, fresh),
            Message::HeartbeatAck {
                ballot,
                round,
                at,
                executed,
            } => self.on_heartbeat_ack(from, ballot, round, at, executed),
            Message::ChangeRefused { request, reason } => self.on_change_refused(request, reason),
            Message::ReadIndexRequest { request } => self.on_read_index_request(now, from, request),
            Message::ReadIndexReply {
                request,
                index,
                leased,
            } => self.on_read_index_reply(now, from, request, index, leased),
            Message::LeaseRequest { ballot, round } => {
                self.on_lease_request(now, from, ballot, round)
            }
            Message::LeaseGrant {
                ballot,
                round,
                log_end,
            } => self.on_lease_grant(now, from, ballot, round, log_end),
            Message::TakeOver { ballot } => self.on_take_over(now, from, ballot),
            Message::CatchUpRequest { from_slot } => self.on_catch_up_request(from, from_slot),
            Message::CatchUp { entries } => self.on_catch_up(now, from, entries),
            Message::Forward { proposal, hops } => self.on_forward(now, proposal, hops),
            Message::Compacted { floor } => self.on_compacted(now, from, floor),
            Message::SnapshotRequest { at, offset } => {
                self.on_snapshot_request(now, from, at, offset)
            }
            Message::SnapshotChunk {
                at,
                offset,
                total,
                bytes,
            } => self.on_snapshot_chunk(now, from, at, offset, total, bytes),
            Message::RejoinPrepare { ballot, from_slot } => {
                self.on_rejoin_prepare(now, from, ballot, from_slot)
            }
        }
    }
}

impl Protocol for MultiPaxos {
    type Message = Message;
    type Record = Record;

    fn id(&self) -> NodeId {
        self.id
    }

    fn configuration(&self) -> Option<Configuration> {
        Some(MultiPaxos::configuration(self).clone())
    }

    fn changes_membership(&self) -> bool {
        true
    }

    fn propose_change(&mut self, now: Time, request: RequestId, change: Change) {
        MultiPaxos::propose_change(self, now, request, change);
    }

    fn poll_change_outcome(&mut self) -> Option<ChangeOutcome> {
        MultiPaxos::poll_change_outcome(self)
    }

    fn handle_request(&mut self, now: Time, request: ClientRequest) {
        self.start(now);
        self.on_client_request(now, request);
        self.serve_reads(now);
    }

    fn begin_burst(&mut self) {
        self.burst = true;
    }

    fn compacted(&mut self, bytes: u64) {
        self.note_compacted(bytes);
    }

    fn end_burst(&mut self, now: Time) {
        self.burst = false;
        self.propose(now);
    }

    fn handle_message(&mut self, now: Time, from: NodeId, message: Message) {
        self.start(now);
        if !self.knows(from) {
            self.drop_message(true);
            return;
        }
        if message.is_vote()
            && !self.configuration().counts_vote(from)
            && !self.config.unsafe_count_learner_votes
        {
            self.note_learner_progress(from, &message);
            self.drop_message(true);
            return;
        }
        self.dispatch_message(now, from, message);
        self.serve_reads(now);
    }

    fn handle_timeout(&mut self, now: Time) {
        if self.timers.is_armed(Timer::Start) {
            self.start(now);
            return;
        }
        // Heartbeat is armed only while leading, Election only while not.
        if self.timers.is_due(Timer::Heartbeat, now) {
            self.send_heartbeats(now);
        }
        if self.timers.is_due(Timer::LeaseWait, now) {
            self.end_lease_wait(now);
        }
        if self.timers.is_due(Timer::Election, now) {
            if self.rejoining {
                self.start_rejoin(now);
            } else {
                self.start_election(now);
            }
        }
        if self.timers.is_due(Timer::Transfer, now) {
            self.retry_transfer(now);
        }
        if self.timers.is_due(Timer::Retry, now) {
            self.retry_pending(now);
        }
        if self.timers.is_due(Timer::Reads, now) {
            self.retry_reads(now);
        }
        if self.timers.is_due(Timer::QuorumLease, now) {
            self.send_lease_request(now);
        }
        self.serve_reads(now);
    }

    fn hand_off(&mut self, now: Time) {
        self.start(now);
        self.retire(now);
    }

    fn poll_output(&mut self) -> Option<Output<Message, Record>> {
        self.outbox.pop()
    }

    fn poll_timeout(&self) -> Option<Time> {
        self.timers.next()
    }

    fn metrics(&self) -> Metrics {
        let mut metrics = self.metrics.clone();
        metrics.set("executed_up_to", self.log.next_execute());
        metrics.set("pending_requests", self.pending.len() as u64);
        metrics.set("live_slots", self.log.held() as u64);
        metrics.set("compacted_to", self.log.floor());
        metrics.set("session_entries", self.log.sessions() as u64);
        metrics.set("rejoining", u64::from(self.rejoining));
        // The leader this replica knows, for operators (`meridian_multipaxos_leader`).
        metrics.set("leader_known", u64::from(self.leader_hint.is_some()));
        metrics.set("leader", self.leader_hint.map_or(0, |l| u64::from(l.0)));
        metrics
    }

    fn rejoin(&mut self, now: Time) {
        self.begin_rejoin(now);
    }
}

/// Answer for a request this replica gave up on.
fn timed_out(id: RequestId) -> crate::request::ClientReply {
    crate::request::ClientReply {
        id,
        outcome: Err(RequestError::Timeout),
    }
}
