//! Dynamo mode: a leaderless, eventually consistent keyspace with tunable consistency.
//!
//! ```text
//!            client ──request──▶ any node (coordinator)
//!                                  │ ring: key → range → preference list (N owners,
//!                                  │       spread over regions) + fallbacks
//!        writes: an owner (a non-owner forwards) issues a dot (DVV) on its object,
//!                persists it and sends Store ──▶ the other owners; suspected owners'
//!                copies go to live fallbacks as hints (sloppy requests only)
//!        reads:  Read ──▶ all N owners; merge; read repair stale owners; reply
//!                                  │ reply once the level's durable acks (or, for a
//!                                  │ read, answers + blocking repairs) are in,
//!                                  ▼ else Unavailable at the deadline
//!            Response::Versioned { siblings, context, receipt }
//!
//!  background: heartbeats ─▶ failure detector ─▶ sloppy targets, hint replay
//!              hint replay (bounded rate) ─▶ owners; expired hints ─▶ priority ranges
//!              Merkle anti-entropy per (range, peer) ─▶ repair differing keys
//!              tombstone GC by each range's first owner once anti-entropy covered
//!              every owner, then Forget to the others
//!  membership: a versioned ring (`ring_state`) gossiped with the heartbeat; a joining
//!              node streams its ranges in, every node hands off keys it no longer owns,
//!              a leaving node leaves once drained (`membership`, `streaming`)
//! ```
//! Every node is both a storage replica (`replica`) and a coordinator (`coordinator`).
//! Versions are dotted version vectors (`dvv`): concurrent writes become siblings that a
//! later write carrying the read's context resolves; nothing is resolved by clocks
//! unless the keyspace opts into the lossy `lww` mode.
//!
//! # What the levels promise (honestly)
//! `R + W > N` makes a read overlap the last acknowledged write's owners, but this is
//! not linearizability: concurrent writes still become siblings, and a read racing a
//! write may see it before the write is acknowledged. Sloppy quorums void the overlap
//! until the hints are delivered. SESSION gives read-your-writes and monotonic reads to
//! a client that keeps its context (see `coordinator`).
//!
//! # Durability
//! A replica persists an object (or a hint) before acknowledging it, the coordinator's
//! own copy included: its acknowledgement to itself is a self-send released by the sync.
//! Other owners get the new object at once, in parallel with the local fsync: a crash
//! before that sync cannot make the node reissue the dot, because every boot takes a new
//! epoch (see `dvv`). Records replay in order: the last `Record::Object` of a key is its
//! state; the log is compacted into a snapshot once it is much larger than the state.
//!
//! # Losing the disk
//! [`Protocol::rejoin`] keeps its default (nothing to do): a Dynamo replica makes no
//! promises. What a lost disk could break is dot uniqueness, and every boot already takes
//! a fresh random epoch, so a replica with an empty disk never reissues a dot it issued
//! before. The objects it lost come back from the other owners by read repair, hinted
//! handoff and anti-entropy, as for any replica that missed writes.

mod anti_entropy;
mod config;
mod coordinator;
mod dvv;
mod failure_detector;
mod gc;
mod hash;
mod hints;
mod level;
mod membership;
mod merkle;
mod messages;
mod plan;
mod read;
mod read_repair;
mod replay;
mod replica;
mod ring;
mod ring_state;
mod streaming;
mod write;

#[cfg(test)]
mod cluster_test;
#[cfg(test)]
mod coordinator_test;
#[cfg(test)]
mod dvv_test;
#[cfg(test)]
mod hints_test;
#[cfg(test)]
mod level_test;
#[cfg(test)]
mod ring_change_test;
#[cfg(test)]
mod ring_test;
#[cfg(test)]
mod test_support;

pub use config::{DynamoConfig, HintLimits};
pub use dvv::{Actor, ContextError, Dot, Object, Sibling, VersionVector};
pub use failure_detector::FailureDetector;
pub use hints::{Hint, HintStore};
pub use level::{Op, Requirement};
pub use merkle::MerkleIndex;
pub use messages::{ExchangeId, Message, OpId, Record};
pub use replica::{Entry, Store};
pub use ring::{key_position, RangeId, Ring};
pub use ring_state::{MemberStatus, RingMember, RingState};

use crate::command::Key;
use crate::configuration::{Change, ChangeOutcome, Configuration};
use crate::id::{NodeId, RequestId};
use crate::protocol::{Effect, Membership, Metrics, Outbox, Output, Protocol};
use crate::request::ClientRequest;
use crate::time::Time;
use crate::timer::Timers;
use anti_entropy::AntiEntropy;
use coordinator::Coordinator;
use hash::mix2;
use plan::ReplyTo;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use replay::Replayed;
use std::collections::{BTreeSet, VecDeque};
use streaming::Moves;

/// Dynamo's background duties on the clock (docs/design.md#timers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Timer {
    /// Armed at time zero until the first input tells the node what time it is.
    Start,
    /// Liveness pings to every peer (the failure detector's input).
    Heartbeat,
    /// Expire hints and send due ones to owners that are back.
    HintReplay,
    /// Start the next Merkle exchange.
    AntiEntropy,
    /// Collect tombstones every owner is known to hold.
    TombstoneGc,
    /// Move ranges: bootstrap pages, handoffs, promotion and leaving (`streaming`).
    Moves,
}

/// One Dynamo node: storage replica and coordinator.
///
/// Drive it like every core (see [`Protocol`]): after each input drain
/// [`poll_output`](Protocol::poll_output), then sleep until
/// [`poll_timeout`](Protocol::poll_timeout); `now` never decreases.
pub struct Dynamo {
    id: NodeId,
    cluster: Membership,
    config: DynamoConfig,
    /// The versioned ring membership (`ring_state`).
    state: RingState,
    /// The read ring: owners before the move in progress (the only ring when none is).
    ring: Ring,
    /// The write ring while ranges move: owners after the move.
    next_ring: Option<Ring>,
    moves: Moves,
    /// Operator changes waiting for their outcome, and outcomes not yet polled.
    changes: Vec<(RequestId, Change)>,
    outcomes: VecDeque<ChangeOutcome>,
    region: String,
    boot: u32,
    /// This boot's epoch: with the id, the actor of the dots this node issues.
    epoch: u64,
    /// Dot counter of this epoch: the next one to issue.
    next_counter: u64,
    store: Store,
    merkle: MerkleIndex,
    hints: HintStore,
    detector: FailureDetector,
    coordinator: Coordinator,
    anti_entropy: AntiEntropy,
    /// Background duties on the clock; per-request deadlines live in the coordinator.
    timers: Timers<Timer>,
    records_since_compaction: usize,
    outbox: Outbox<Message, Record>,
    metrics: Metrics,
}

impl Dynamo {
    /// A node of `cluster`, rebuilt from its durable `recovered` records (empty on first
    /// boot or after losing its disk).
    ///
    /// # Correctness
    /// `seed` must differ on every boot (the simulator derives it per incarnation; the
    /// server draws it from the OS): every boot takes a new epoch from it, and a node
    /// that lost its disk has nothing else to tell its new dots from its old ones.
    pub fn new(
        id: NodeId,
        cluster: &Membership,
        config: DynamoConfig,
        seed: u64,
        recovered: Vec<Record>,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let initial = RingState::initial(cluster, &config.initial_members);
        let ring = Ring::new(&initial.read_membership(), config.vnodes, config.replicas);
        let Replayed {
            store,
            merkle,
            hints,
            previous_epoch,
            records,
            ring_state,
        } = replay::replay(&ring, &config, recovered);
        let state = ring_state.unwrap_or(initial);
        // A new random 64-bit epoch per boot: unique without coordination. Mixing in the
        // previous one keeps epochs distinct even if a host reused a seed with its log.
        let epoch = mix2(rng.gen(), previous_epoch);
        let region = state
            .region_of(id)
            .or_else(|| cluster.region_of(id))
            .unwrap_or_default()
            .to_owned();
        let boot: u32 = rng.gen();
        let detector = FailureDetector::new(id, cluster.ids(), config.failure_timeout, Time::ZERO);
        let mut timers = Timers::new();
        timers.set(Timer::Start, Time::ZERO);
        let mut node = Self {
            id,
            cluster: cluster.clone(),
            state,
            ring,
            next_ring: None,
            moves: Moves::default(),
            changes: Vec::new(),
            outcomes: VecDeque::new(),
            region,
            boot,
            epoch,
            next_counter: 1,
            store,
            merkle,
            hints,
            detector,
            coordinator: Coordinator::default(),
            anti_entropy: AntiEntropy::new(Vec::new(), u64::from(boot) << 32),
            timers,
            records_since_compaction: records,
            outbox: Outbox::new(),
            metrics: Metrics::new(),
            config,
        };
        node.rebuild_rings();
        node
    }

    /// The actor of the dots this node issues as an owner.
    pub(crate) fn actor(&self) -> Actor {
        Actor {
            node: self.id,
            epoch: self.epoch,
        }
    }

    /// The local object (sibling set and context) of `key`, if this node stores it.
    pub fn stored(&self, key: &[u8]) -> Option<&Object> {
        self.store.get(key).map(|e| &e.object)
    }

    /// Every locally stored key and object, in key order.
    pub fn objects(&self) -> impl Iterator<Item = (&Key, &Object)> {
        self.store.iter().map(|(k, e)| (k, &e.object))
    }

    /// Hints held for other owners.
    pub fn hint_count(&self) -> usize {
        self.hints.len()
    }

    /// Bytes of hints held (approximate).
    pub fn hint_bytes(&self) -> usize {
        self.hints.bytes()
    }

    /// The hint store.
    pub fn hints(&self) -> &HintStore {
        &self.hints
    }

    /// The ring every node shares.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// The owners of `key`.
    pub fn preference_list(&self, key: &[u8]) -> Vec<NodeId> {
        self.ring.preference_for(key).to_vec()
    }

    /// This boot's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether the failure detector presumes `node` reachable at `now`.
    pub fn is_alive(&self, node: NodeId, now: Time) -> bool {
        self.detector.is_alive(node, now)
    }

    /// Queue a `Persist` and count its records toward compaction.
    fn persist(&mut self, records: Vec<Record>, then: Vec<Effect<Message>>) {
        self.records_since_compaction += records.len();
        self.outbox.persist(records, then);
    }

    fn start(&mut self, now: Time) {
        if self.timers.is_armed(Timer::Start) {
            self.timers.cancel(Timer::Start);
        } else {
            return;
        }
        self.detector = FailureDetector::new(
            self.id,
            self.cluster.ids(),
            self.config.failure_timeout,
            now,
        );
        for member in self.state.members() {
            self.detector.watch(member.id, now);
        }
        self.hints.reset_ages(now);
        self.store.reset_tombstone_ages(now);
        // Ordered before every record this boot writes, so the next boot derives a
        // different epoch from it.
        self.persist(vec![Record::Epoch { epoch: self.epoch }], Vec::new());
        self.send_heartbeats(now);
        self.timers
            .set(Timer::HintReplay, now + self.config.hint_replay_interval);
        self.timers
            .set(Timer::AntiEntropy, now + self.config.anti_entropy_interval);
        self.timers
            .set(Timer::TombstoneGc, now + self.config.gc_interval);
        self.timers
            .set(Timer::Moves, now + self.config.hint_replay_interval);
    }

    fn send_heartbeats(&mut self, now: Time) {
        self.gossip();
        self.timers
            .set(Timer::Heartbeat, now + self.config.heartbeat_interval);
    }

    /// Drop expired hints (marking their ranges) and send due hints to live owners.
    fn replay_hints(&mut self, now: Time) {
        self.absorb_stale_hints(now);
        let expired = self.hints.expired(now);
        let mut ranges = BTreeSet::new();
        let mut removed = Vec::new();
        for (owner, key, seq) in expired {
            if self.hints.remove_exact(owner, &key, seq) {
                self.metrics.incr("hints_dropped");
                self.metrics.incr("hints_expired");
                ranges.insert(self.ring.range_of(&key));
                removed.push(Record::HintRemoved { owner, key, seq });
            }
        }
        if !removed.is_empty() {
            self.persist(removed, Vec::new());
            self.mark_priority_ranges(now, ranges);
        }
        for owner in self.hints.owners() {
            if !self.detector.is_alive(owner, now) {
                continue;
            }
            let due = self.hints.due(
                owner,
                now,
                self.config.hint_replay_batch,
                self.config.hint_retry,
            );
            self.metrics.add("hints_replayed", due.len() as u64);
            for (key, seq, object) in due {
                self.outbox
                    .send(owner, Message::HintDelivery { key, object, seq });
            }
        }
        self.timers
            .set(Timer::HintReplay, now + self.config.hint_replay_interval);
    }
}

impl Dynamo {
    /// Hints whose owner no longer owns the key after the move, and every hint of a node
    /// that is not a normal member, become local objects: the handoff then carries them to
    /// the key's owners, so a move never strands a hinted write.
    fn absorb_stale_hints(&mut self, now: Time) {
        let normal = self.state.status_of(self.id) == Some(MemberStatus::Normal);
        let ring = self.write_ring();
        let stale: Vec<(NodeId, Key, u64, Object)> = self
            .hints
            .iter()
            .filter(|((owner, key), _)| !normal || !ring.is_primary(*owner, ring.range_of(key)))
            .map(|((owner, key), hint)| (*owner, key.clone(), hint.seq, hint.object.clone()))
            .collect();
        for (owner, key, seq, object) in stale {
            if !self.hints.remove_exact(owner, &key, seq) {
                continue;
            }
            let (merged, _) = self.merge_local(now, &key, &object);
            self.metrics.incr("hints_absorbed");
            self.persist(
                vec![
                    Record::Object {
                        key: key.clone(),
                        object: merged,
                    },
                    Record::HintRemoved { owner, key, seq },
                ],
                Vec::new(),
            );
        }
    }
}

impl Protocol for Dynamo {
    type Message = Message;
    type Record = Record;

    fn id(&self) -> NodeId {
        self.id
    }

    fn handle_request(&mut self, now: Time, request: ClientRequest) {
        self.start(now);
        let region = self.region.clone();
        let deadline = now + self.config.request_timeout;
        self.coordinate(now, request, ReplyTo::Client, &region, deadline);
        self.maybe_compact();
    }

    fn handle_message(&mut self, now: Time, from: NodeId, message: Message) {
        self.start(now);
        if !self.cluster.contains(from) && !self.state.contains(from) {
            self.metrics.incr("dropped_messages");
            return;
        }
        if from != self.id {
            self.detector.heard(from, now);
        }
        match message {
            Message::Ping => {}
            Message::Forward {
                op,
                request,
                region,
                budget_us,
            } => self.on_forward(now, from, op, request, region, budget_us),
            Message::ForwardReply { op, reply } => self.on_forward_reply(from, op, reply),
            Message::Store {
                op,
                key,
                object,
                hint_for,
            } => self.on_store(now, from, op, key, object, hint_for),
            Message::Stored { op, key, hint_for } => self.on_stored(from, op, key, hint_for),
            Message::Refused { op, reason } => self.on_refused(from, op, reason),
            Message::Read { op, key, hint_for } => self.on_read(from, op, key, hint_for),
            Message::ReadReply { op, key, object } => {
                self.on_read_reply(now, from, op, key, object)
            }
            Message::Repair { op, key, object } => self.on_repair(now, from, op, key, object),
            Message::Repaired { op, key } => self.on_repaired(from, op, key),
            Message::HintDelivery { key, object, seq } => {
                self.on_hint_delivery(now, from, key, object, seq)
            }
            Message::HintAck { key, seq } => self.on_hint_ack(from, key, seq),
            Message::PriorityRange { ring, range } => self.on_priority_range(ring, range),
            Message::AeCompare {
                ring,
                exchange,
                range,
                level,
                nodes,
            } => self.on_ae_compare(now, from, ring, exchange, range, level, nodes),
            Message::AeObjects {
                ring,
                exchange,
                range,
                leaves,
                objects,
                reply,
            } => self.on_ae_objects(now, from, ring, exchange, range, leaves, objects, reply),
            Message::AeDone {
                ring,
                exchange,
                range,
            } => self.on_ae_done(from, ring, exchange, range),
            Message::Ring { state } => self.on_ring(now, state),
            Message::StreamRequest { ring, after } => self.on_stream_request(from, ring, after),
            Message::StreamPage {
                ring,
                after,
                objects,
                next,
            } => self.on_stream_page(now, from, ring, after, objects, next),
            Message::StreamSynced {
                ring,
                source,
                after,
                next,
            } => self.on_stream_synced(now, from, ring, source, after, next),
            Message::Handoff { key, object } => self.on_handoff(now, from, key, object),
            Message::HandoffAck { key, digest } => self.on_handoff_ack(from, key, digest),
            Message::Forget { key, context } => self.on_forget(from, key, context),
        }
        self.maybe_compact();
    }

    fn handle_timeout(&mut self, now: Time) {
        if self.timers.is_armed(Timer::Start) {
            self.start(now);
            return;
        }
        if self.timers.is_due(Timer::Heartbeat, now) {
            self.send_heartbeats(now);
        }
        self.expire_ops(now);
        if self.timers.is_due(Timer::HintReplay, now) {
            self.replay_hints(now);
        }
        if self.timers.is_due(Timer::AntiEntropy, now) {
            self.anti_entropy_tick(now);
            self.timers
                .set(Timer::AntiEntropy, now + self.config.anti_entropy_interval);
        }
        if self.timers.is_due(Timer::TombstoneGc, now) {
            self.collect_tombstones(now);
            self.timers
                .set(Timer::TombstoneGc, now + self.config.gc_interval);
        }
        if self.timers.is_due(Timer::Moves, now) {
            self.moves_tick(now);
            self.timers
                .set(Timer::Moves, now + self.config.hint_replay_interval);
        }
        self.maybe_compact();
    }

    fn poll_output(&mut self) -> Option<Output<Message, Record>> {
        self.outbox.pop()
    }

    fn poll_timeout(&self) -> Option<Time> {
        self.timers
            .next()
            .into_iter()
            .chain(self.coordinator.next_timer())
            .min()
    }

    fn metrics(&self) -> Metrics {
        let mut metrics = self.metrics.clone();
        metrics.set("keys", self.store.len() as u64);
        metrics.set("hints_pending", self.hints.len() as u64);
        metrics.set("hint_bytes", self.hints.bytes() as u64);
        metrics.set("requests_in_flight", self.coordinator.active() as u64);
        metrics.set("reads_lingering", self.coordinator.lingering as u64);
        metrics.set("ring_epoch", self.state.epoch());
        metrics.set("foreign_keys", self.moves.foreign.len() as u64);
        metrics
    }

    fn configuration(&self) -> Option<Configuration> {
        Some(self.state.to_configuration())
    }

    fn changes_membership(&self) -> bool {
        true
    }

    fn propose_change(&mut self, now: Time, request: RequestId, change: Change) {
        self.start(now);
        self.propose_ring_change(now, request, change);
        self.maybe_compact();
    }

    fn poll_change_outcome(&mut self) -> Option<ChangeOutcome> {
        self.outcomes.pop_front()
    }
}
