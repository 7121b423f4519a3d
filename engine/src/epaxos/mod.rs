//! EPaxos: leaderless consensus (Moraru, Andersen, Kaminsky, SOSP'13).
//!
//! ```text
//!  client ─▶ local replica L (command leader of instance L.i)
//!   L: attrs = (seq, deps) from its key index; persist; PreAccept ─▶ replicas
//!   replicas: attrs ∪= what they know; persist; PreAcceptOk ─▶ L
//!   L: fast quorum F+⌊(F+1)/2⌋ (L included) all unchanged ─▶ commit      (1 round trip)
//!      otherwise: union deps, max seq; Accept ─▶ majority ─▶ commit      (2 round trips)
//!   commit ─▶ executor: Tarjan SCC over committed deps, (seq, leader, slot) inside a
//!   component; L answers its client once the command executed.
//! ```
//! Every reply is persisted before it is sent, and a decision leaves only behind its
//! durable commit record; a restarted leader resumes its unfinished instances at its own
//! ballot unless it promised a recovery a higher one. A replica whose execution waits on
//! an instance it never saw committed asks its leader, then recovers it. The rules and
//! where each is enforced: docs/design.md#epaxos.
//!
//! [`Epaxos`] owns one part per role and this file routes inputs to them. Parts never
//! call back up: the leader and recovery hand their decisions back here, to commit or to
//! drive a recovered instance through the leader's phases.
//!
//! Files: `replica` (what every role shares: identity, quorums, options, instance table,
//! executor, outbox, counters; the commit), `table` (instances, promises, ballots heard
//! of, the key index), `acceptor` (PreAccept/Accept, promises, revealing decisions),
//! `leader` (propose, fast and slow paths, retransmission, resuming after a restart,
//! driving recovered instances), `batch` (client intake, batching window), `recovery`
//! (prepare, TryPreAccept, competing recoveries, stalled dependencies), `execution`
//! (Tarjan SCC executor), `gc` (executed-prefix reports, collection, catch-up),
//! `compaction` (snapshots), `rejoin` (a replica that lost its disk: queries, state
//! transfer, the fence; `fence` holds its value type), `replay` (rebuilding from durable
//! records), `instance`
//! (value types), `key_index`, `messages` (wire messages, durable records), `config`.
//! Tests: `*_test.rs` beside each handler file, `test_support.rs`, and `model_check/`
//! (exhaustive small-scope check of recovery with a negative control).

mod acceptor;
mod batch;
mod compaction;
mod config;
mod epochs;
mod execution;
mod fence;
mod gc;
mod hold;
mod instance;
mod key_index;
mod leader;
mod messages;
mod recovery;
mod rejoin;
mod replay;
mod replica;
mod table;
mod vote_bounds;

#[cfg(test)]
mod acceptor_test;
#[cfg(test)]
mod batch_test;
#[cfg(test)]
mod cluster_test;
#[cfg(test)]
mod compaction_test;
#[cfg(test)]
mod epochs_test;
#[cfg(test)]
mod execution_test;
#[cfg(test)]
mod gc_test;
#[cfg(test)]
mod hold_test;
#[cfg(test)]
mod leader_test;
#[cfg(test)]
mod membership_test;
#[cfg(test)]
mod model_check;
#[cfg(test)]
mod recovery_test;
#[cfg(test)]
mod rejoin_test;
#[cfg(test)]
mod replay_test;
#[cfg(test)]
mod test_support;

pub use config::EpaxosConfig;
pub use execution::{ExecutedEntry, ExecutedState, Executor};
pub use fence::{Fence, Stage};
pub use instance::{Attributes, Ballot, Batch, Deps, InstanceId, Payload, Status};
pub use key_index::{KeyIndex, RanEverywhere};
pub use messages::{InstanceRecord, InstanceReport, Message, Record, RejoinState, Snapshot};

use crate::configuration::{Change, ChangeFailure, ChangeOutcome, Configuration, ProposedChange};
use crate::id::{NodeId, RequestId};
use crate::protocol::{Membership, Metrics, Output, Protocol};
use crate::request::ClientRequest;
use crate::time::Time;
use crate::timer::Timers;
use batch::Intake;
use compaction::LastCompaction;
use gc::Collector;
use hold::Holds;
use leader::Leadership;
use recovery::{Outcome, Recoveries};
use rejoin::Rejoin;
use replay::{replay, Replayed};
use replica::{Decision, Replica};
use vote_bounds::BoundsTold;

/// Retry timeouts a membership change may take before it is answered `Timeout` (its
/// switch may still execute later: the operator reads the epoch).
const CHANGE_TIMEOUT_ROUNDS: u32 = 20;

/// EPaxos duties on the clock (docs/design.md#timers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum EpaxosTimer {
    /// Retransmissions, stalled dependencies and recoveries: armed while instances are
    /// in flight or execution waits.
    Tick,
    /// The executed-prefix report and garbage collection: always armed (unless
    /// `gc_interval` is zero), so an idle replica still reports, collects, and learns
    /// the commits it missed (catch-up must not depend on further load).
    Gc,
    /// A rejoin after a lost disk: queries and announcements retried (`rejoin.rs`).
    Rejoin,
}

/// One EPaxos replica.
#[derive(Clone)]
pub struct Epaxos {
    /// What every role shares: identity, quorums, options, the instance table, the
    /// executor, the outbox and the counters.
    replica: Replica,
    /// Client requests waiting for room in the window of own instances.
    intake: Intake,
    /// Instances driven here: own ones, and others' taken over by a recovery.
    leader: Leadership,
    /// Recoveries in their Prepare or TryPreAccept phase; stalled dependencies.
    recoveries: Recoveries,
    /// Everyone's executed prefix (garbage collection, catch-up).
    gc: Collector,
    /// Every duty on the clock: `poll_timeout` is the earliest.
    timers: Timers<EpaxosTimer>,
    /// Time of the last input (when instances to resume are due).
    now: Time,
    /// Unfinished own instances recovered from disk, resumed at the first timeout.
    resume: Vec<InstanceId>,
    /// When the last compaction ran (when the next is due).
    last_compaction: LastCompaction,
    /// A rejoin after a lost disk, and answers served to peers that rejoin.
    rejoin: Rejoin,
    /// PreAccepts held for ordered delivery (`hold.rs`).
    holds: Holds,
    /// Vote bounds told to rejoined peers, per peer (`vote_bounds.rs`).
    bounds_told: BoundsTold,
}

impl Epaxos {
    /// Hash what can influence this replica's next moves: the model checker's state
    /// fingerprint (`crate::model_check`). Every field is named, so a new one does not
    /// compile until its place here is decided; the parts derive `Hash`.
    #[cfg(test)]
    fn hash_state(&self, state: &mut impl std::hash::Hasher) {
        use std::hash::Hash;
        let Self {
            replica,
            intake,
            leader,
            recoveries,
            gc,
            timers,
            now,
            resume,
            last_compaction,
            // Empty unless a disk was lost (out of the model checker's scope).
            rejoin: _,
            bounds_told: _,
            holds,
        } = self;
        replica.hash_state(state);
        holds.hash(state);
        (
            intake,
            leader,
            recoveries,
            gc,
            timers,
            resume,
            last_compaction,
        )
            .hash(state);
        // The time of the last input matters only to a core with instances to resume.
        if !resume.is_empty() {
            now.hash(state);
        }
    }

    /// A replica of `cluster`, rebuilt from its durable `recovered` records.
    pub fn new(
        id: NodeId,
        cluster: &Membership,
        config: EpaxosConfig,
        seed: u64,
        recovered: Vec<Record>,
    ) -> Self {
        let ordered = config.ordered_delivery;
        let fresh = recovered.is_empty();
        let mut replica = Replica::new(id, cluster, config);
        let epoch = replica.epochs.current();
        let holds = Holds::new(id, cluster, replica.epochs.fast_quorum(epoch), ordered);
        let Replayed {
            next_slot,
            resume,
            fence,
            bounds_told,
        } = replay(id, recovered, &mut replica.table, &mut replica.executor);
        replica.fence = fence;
        // The epochs of the snapshot and of the switches replay executed.
        replica.take_switches();
        replica.follow_configurations();
        let mut timers = Timers::new();
        if !replica.config.gc_interval.is_zero() {
            // The first report goes out one interval after start (at once after a restart
            // in the simulator, whose clock does not restart).
            timers.set(EpaxosTimer::Gc, Time::ZERO + replica.config.gc_interval);
        }
        let mut leader = Leadership::new(next_slot);
        leader.set_own_delay(holds.own_delay(id));
        let mut epaxos = Self {
            replica,
            intake: Intake::default(),
            leader,
            recoveries: Recoveries::default(),
            gc: Collector::default(),
            timers,
            now: Time::ZERO,
            resume,
            last_compaction: LastCompaction::default(),
            rejoin: Rejoin::new(seed),
            holds,
            bounds_told,
        };
        epaxos.resume_rejoin();
        if fresh && !epaxos.replica.epochs.is_member(id) {
            // A spare holds nothing of what its peers executed and may have collected:
            // it fetches their state (as after a lost disk) once a switch adds it, and
            // executes and votes only then (docs/design.md, "EPaxos epochs", rule 5).
            epaxos.begin_rejoin(Time::ZERO);
        }
        // Replay may have executed our removal again (a crash before its fetch began).
        epaxos.leave_when_removed(Time::ZERO);
        epaxos
    }

    /// Every command executed here, in order.
    pub fn executed(&self) -> &[ExecutedEntry] {
        self.replica.executor.order()
    }

    /// The key-value map as executed here.
    pub fn kv(&self) -> &crate::state_machine::KvStore {
        self.replica.executor.kv()
    }

    /// The rejoin fence: what this replica may vote on after a lost disk.
    pub fn fence(&self) -> &Fence {
        &self.replica.fence
    }

    /// Instances held in memory.
    pub fn live_instances(&self) -> usize {
        self.replica.table.instances.len()
    }

    /// Keys in the dependency index.
    pub fn indexed_keys(&self) -> usize {
        self.replica.table.index.len()
    }

    /// Whether this replica knows `instance` committed.
    pub fn is_committed(&self, instance: InstanceId) -> bool {
        self.replica.is_committed(instance)
    }

    /// Commit a decision (ours, a recovery's, or learned from a peer): whoever still
    /// drives the instance here stops.
    fn commit(&mut self, now: Time, decision: Decision) {
        let id = decision.instance;
        if self.replica.is_committed(id) {
            return;
        }
        self.leader.stop(id);
        self.leader.on_committed(id, &decision.payload);
        self.recoveries.stop(id);
        self.replica.commit(now, decision);
    }

    /// Act on what a recovery found.
    fn follow(&mut self, now: Time, outcome: Option<Outcome>) {
        let replica = &mut self.replica;
        match outcome {
            None => {}
            Some(Outcome::Commit(decision)) => self.commit(now, decision),
            Some(Outcome::Accept(proposal)) => {
                self.leader.take_over_with_accept(replica, now, proposal)
            }
            Some(Outcome::Phase1(proposal)) => {
                self.leader.take_over_with_phase1(replica, now, proposal)
            }
        }
    }

    /// Ordered delivery: process what is due, held PreAccepts and own votes, in release
    /// order (`hold.rs`).
    fn release_held(&mut self, now: Time) {
        loop {
            let held = self.holds.next().filter(|&at| at <= now);
            let own = self.leader.next_own_vote().filter(|&at| at <= now);
            match (held, own) {
                (Some(h), Some(o)) if o <= h => {
                    self.leader.cast_due_own_vote(&mut self.replica, now);
                }
                (Some(_), _) => {
                    if let Some((from, message)) = self.holds.pop_due(now) {
                        self.deliver(now, from, message);
                    }
                }
                (None, Some(_)) => {
                    self.leader.cast_due_own_vote(&mut self.replica, now);
                }
                (None, None) => return,
            }
        }
    }

    /// A peer message from a member, held or not: to the role it is for, unless it is
    /// about a collected instance or asks a vote this replica must withhold.
    fn deliver(&mut self, now: Time, from: NodeId, message: Message) {
        if message
            .recorded_instance()
            .is_some_and(|id| self.replica.is_collected(id))
        {
            self.replica.metrics.incr("stale_messages");
            return;
        }
        match message.vote_asked() {
            Some(id) if !self.replica.fence.may_vote(id) => self.withhold_vote(from, id),
            _ => self.dispatch(now, from, message),
        }
    }

    /// A peer message to the role it is for.
    fn dispatch(&mut self, now: Time, from: NodeId, message: Message) {
        let replica = &mut self.replica;
        match message {
            Message::PreAccept {
                ballot,
                instance,
                payload,
                attributes,
                ran_everywhere,
            } => replica.on_preaccept(from, ballot, instance, payload, attributes, &ran_everywhere),
            Message::PreAcceptOk {
                ballot,
                instance,
                attributes,
            } => {
                let decided = self
                    .leader
                    .on_preaccept_ok(replica, now, from, ballot, instance, attributes);
                self.follow(now, decided.map(Outcome::Commit));
            }
            Message::Accept {
                ballot,
                instance,
                payload,
                attributes,
            } => replica.on_accept(from, ballot, instance, payload, attributes),
            Message::AcceptOk { ballot, instance } => {
                let decided = self.leader.on_accept_ok(replica, from, ballot, instance);
                self.follow(now, decided.map(Outcome::Commit));
            }
            Message::EpochMoved { instance, epoch } => {
                replica.metrics.incr("epoch_refusals");
                self.leader.on_epoch_moved(replica, now, instance, epoch)
            }
            Message::Nack { instance, promised } => {
                self.recoveries
                    .on_nack(replica, &mut self.leader, instance, promised)
            }
            Message::Prepare { ballot, instance } => {
                self.recoveries
                    .on_prepare(replica, &mut self.leader, from, ballot, instance)
            }
            Message::PrepareOk {
                ballot,
                instance,
                report,
            } => {
                let outcome = self
                    .recoveries
                    .on_prepare_ok(replica, now, from, ballot, instance, report);
                self.follow(now, outcome);
            }
            Message::TryPreAccept {
                ballot,
                instance,
                payload,
                attributes,
            } => replica.on_try_preaccept(from, ballot, instance, payload, attributes),
            Message::TryPreAcceptReply {
                ballot,
                instance,
                conflict,
            } => {
                let outcome = self
                    .recoveries
                    .on_try_preaccept_reply(replica, from, ballot, instance, conflict);
                self.follow(now, outcome);
            }
            Message::Inquire { instance } => {
                replica.on_inquire(from, instance, self.gc.forgot(instance))
            }
            Message::Collected { instance } => self.on_collected_elsewhere(now, instance),
            Message::Executed {
                prefix,
                last_switch,
            } => self.gc.on_report(replica, from, prefix, last_switch),
            Message::RejoinQuery { nonce, at, offset } => {
                self.on_rejoin_query(now, from, nonce, at, offset)
            }
            Message::RejoinChunk {
                nonce,
                at,
                offset,
                total,
                bytes,
            } => {
                let chunk = (at, offset, total, bytes);
                self.on_rejoin_chunk(now, from, nonce, chunk)
            }
            Message::RejoinStart { start } => self.on_rejoin_start(from, start),
            Message::RejoinStarted { start } => self.on_rejoin_started(from, start),
            Message::AskNextSlot { nonce, start } => self.on_ask_next_slot(from, nonce, start),
            Message::NextSlot { nonce, slot } => self.on_next_slot(from, nonce, slot),
            Message::Commit {
                instance,
                payload,
                attributes,
            } => {
                let learned = replica.learned(instance, payload, attributes);
                self.commit(now, learned);
            }
        }
    }

    /// Keep the tick armed while instances are in flight or execution waits.
    fn arm_tick(&mut self, now: Time) {
        let work = !self.leader.is_empty()
            || !self.recoveries.is_empty()
            || self.replica.executor.has_blocked();
        if work {
            self.timers
                .arm(EpaxosTimer::Tick, now + self.replica.config.tick);
        } else {
            self.timers.cancel(EpaxosTimer::Tick);
        }
    }

    fn on_tick(&mut self, now: Time) {
        let Self {
            replica,
            leader,
            recoveries,
            resume,
            gc,
            ..
        } = self;
        for id in std::mem::take(resume) {
            leader.resume(replica, now, id);
        }
        leader.retransmit(replica, now);
        recoveries.on_stalled(replica, leader, gc, now);
        recoveries.expire(replica, now);
    }

    /// After every input: a commit may have freed room for queued requests, and the tick
    /// follows whether work is left.
    fn settle(&mut self, now: Time) {
        self.leave_when_removed(now);
        for batch in self.leader.take_restarts(&self.replica) {
            self.leader.lead(&mut self.replica, now, batch);
        }
        self.intake
            .propose(&mut self.leader, &mut self.replica, now);
        self.arm_tick(now);
    }

    /// Every configuration executed here, oldest first (epoch 0, then one per switch).
    pub fn configurations(&self) -> &[Configuration] {
        self.replica.executor.configurations()
    }

    /// The configuration new own instances start in.
    pub fn configuration(&self) -> Configuration {
        let history = self.replica.executor.configurations();
        // The executor always holds the initial configuration (`Replica::new`).
        history
            .last()
            .cloned()
            .unwrap_or_else(|| Configuration::from_parts(0, Vec::new()))
    }

    /// An operator asks this replica to change the membership (docs/design.md, "EPaxos
    /// epochs"): a switch from its current epoch, proposed as an instance of its own; the
    /// outcome comes from [`poll_change_outcome`](Self::poll_change_outcome) once the
    /// switch executed here (the next configuration, or `NotApplied` when another switch
    /// from the same epoch ran first), or `Timeout` when it has not within
    /// `CHANGE_TIMEOUT_ROUNDS` retry timeouts.
    pub fn propose_change(&mut self, now: Time, request: RequestId, change: Change) {
        self.now = now;
        let current = self.configuration();
        let proposed = ProposedChange {
            from_epoch: current.epoch(),
            change,
        };
        let voter = self
            .replica
            .epochs
            .counts_vote(current.epoch(), self.replica.id);
        let refusal = if !self.replica.fence.may_propose() {
            Some(ChangeFailure::Refused(
                "this replica is rejoining after a lost disk".to_owned(),
            ))
        } else if !voter {
            Some(ChangeFailure::Refused(format!(
                "this replica is not a voter of epoch {}: ask a voter",
                current.epoch()
            )))
        } else if let Err(error) = current.apply(&proposed) {
            Some(ChangeFailure::from(error))
        } else if let Change::Promote(learner) = proposed.change {
            // Liveness, not safety (rule 5): a learner still fetching its peers' state
            // would vote on nothing once promoted. It reports what it executed only once
            // that state is installed; one added again after its peers collected without
            // it reports an old prefix until it fetched their state.
            if !self.gc.has_report_from(learner) {
                Some(ChangeFailure::RefusedByLeader(format!(
                    "learner {learner} has not caught up yet (no executed-prefix report from it)"
                )))
            } else if !self.gc.passed_collection(learner) {
                Some(ChangeFailure::RefusedByLeader(format!(
                    "learner {learner} has not caught up yet (it reported executing less than \
                     its peers collected)"
                )))
            } else {
                None
            }
        } else {
            None
        };
        if let Some(failure) = refusal {
            let outcome = ChangeOutcome {
                request,
                result: Err(failure),
            };
            self.replica.change_outcomes.push_back(outcome);
            return;
        }
        let deadline = now + self.replica.config.retry_timeout * CHANGE_TIMEOUT_ROUNDS;
        self.replica.pending_changes.insert(request, deadline);
        let switch = Batch::single(Payload::switch(request, proposed));
        self.leader.lead(&mut self.replica, now, switch);
        self.settle(now);
    }

    /// The next membership change proposed here that ended.
    pub fn poll_change_outcome(&mut self) -> Option<ChangeOutcome> {
        self.replica.change_outcomes.pop_front()
    }
}

impl Protocol for Epaxos {
    type Message = Message;
    type Record = Record;

    fn id(&self) -> NodeId {
        self.replica.id
    }

    fn handle_request(&mut self, now: Time, request: ClientRequest) {
        self.now = now;
        self.intake
            .on_request(&mut self.leader, &mut self.replica, now, request);
        self.arm_tick(now);
    }

    fn begin_burst(&mut self) {
        self.intake.begin_burst();
    }

    fn compacted(&mut self, bytes: u64) {
        self.note_compacted(bytes);
    }

    fn end_burst(&mut self, now: Time) {
        self.now = now;
        self.intake
            .end_burst(&mut self.leader, &mut self.replica, now);
        self.arm_tick(now);
    }

    fn handle_message(&mut self, now: Time, from: NodeId, message: Message) {
        self.now = now;
        if !self.replica.epochs.is_member(from) {
            self.replica.metrics.incr("dropped_messages");
            return;
        }
        let hold = self.holds.delay_for(from, &message);
        if hold.is_zero() {
            self.deliver(now, from, message);
        } else {
            self.replica.metrics.incr("preaccepts_held");
            self.holds.hold(now + hold, from, message);
        }
        self.settle(now);
    }

    fn handle_timeout(&mut self, now: Time) {
        self.now = now;
        self.release_held(now);
        if self.timers.take_if_due(EpaxosTimer::Gc, now) {
            self.gc.report_executed(&mut self.replica);
            self.maybe_compact();
            self.recover_gaps(now);
            self.leave_when_removed(now);
            self.ask_missing_bounds();
            self.recover_stuck_switches(now);
            self.unstick_own(now);
            self.replica.expire_changes(now);
            let next = now + self.replica.config.gc_interval;
            self.timers.set(EpaxosTimer::Gc, next);
        }
        if self.timers.take_if_due(EpaxosTimer::Rejoin, now) {
            self.on_rejoin_timer(now);
        }
        let due = self.timers.is_due(EpaxosTimer::Tick, now);
        if due || !self.resume.is_empty() {
            self.timers.cancel(EpaxosTimer::Tick);
            self.on_tick(now);
            self.recover_gaps(now);
        }
        self.settle(now);
    }

    fn poll_output(&mut self) -> Option<Output<Message, Record>> {
        self.replica.outbox.pop()
    }

    fn poll_timeout(&self) -> Option<Time> {
        if !self.resume.is_empty() {
            // Instances recovered from disk are resumed at once.
            return Some(self.now);
        }
        let ordered = [self.holds.next(), self.leader.next_own_vote()];
        self.timers
            .next()
            .into_iter()
            .chain(ordered.into_iter().flatten())
            .min()
    }

    fn metrics(&self) -> Metrics {
        let mut metrics = self.replica.counters_and_gauges();
        metrics.set("recoveries_in_progress", self.recoveries.len() as u64);
        let rejoining = !self.replica.fence.may_propose();
        metrics.set("rejoining", u64::from(rejoining));
        metrics
    }

    fn rejoin(&mut self, now: Time) {
        self.now = now;
        self.begin_rejoin(now);
    }

    fn configuration(&self) -> Option<Configuration> {
        Some(Epaxos::configuration(self))
    }

    fn changes_membership(&self) -> bool {
        true
    }

    fn propose_change(&mut self, now: Time, request: RequestId, change: Change) {
        Epaxos::propose_change(self, now, request, change);
    }

    fn poll_change_outcome(&mut self) -> Option<ChangeOutcome> {
        Epaxos::poll_change_outcome(self)
    }
}
