//! The sans-IO contract between a protocol core and its host.
//!
//! ```text
//!            inputs (each with `now`)                 outputs (drain after every input)
//!  host ──▶ handle_request(ClientRequest)  ──▶ core ──▶ poll_output(): Persist{records, then}
//!           handle_message(from, Message)                            | Now(effect)
//!           handle_timeout()                                poll_timeout(): next deadline
//! ```
//!
//! # The ordering rule
//! [`Output::Persist`] carries records that must be durable (fsynced) **before** any of
//! its `then` effects is performed. A host may batch many `Persist` outputs into one sync
//! (group commit) but never releases an effect before the records it came with. A
//! [`Effect::Send`] addressed to the core's own id inside `then` is how a core learns that
//! its own write is durable (the "storage synced" input): the host delivers it through
//! `handle_message(now, own_id, message)` once the records are synced, without the
//! network.
//!
//! [`Output::Now`] effects need no durability and may overtake earlier `Persist` effects
//! still waiting for a sync; a core must not put anything in a `Now` effect that depends
//! on records not yet synced.
//!
//! A crash loses every record not yet synced and every effect not yet released; the host
//! rebuilds the core from the synced records, in order, with the protocol's constructor.

use crate::configuration::{Change, ChangeOutcome, Configuration};
use crate::hashed::HashedMap;
use crate::id::{NodeId, RequestId};
use crate::request::{ClientReply, ClientRequest};
use crate::time::Time;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Debug;

/// A replication protocol core: a deterministic state machine over inputs and outputs.
///
/// # Correctness
/// - Never read a clock, sleep, spawn, touch a socket or a file, or draw ambient
///   randomness: `now` and the constructor's seed are the only sources of time and chance.
/// - Calls come with non-decreasing `now`. After every input the host drains
///   [`poll_output`](Self::poll_output) until `None`, then sleeps until
///   [`poll_timeout`](Self::poll_timeout).
/// - Input from peers may be malformed, duplicated, stale or reordered: it must never
///   panic; drop what cannot be used and count it.
/// - Iteration order that can reach outputs must be deterministic (`BTreeMap`, not
///   `HashMap` with a random hasher).
pub trait Protocol {
    /// Peer-to-peer messages.
    type Message: Clone + Debug + Serialize + DeserializeOwned + Send + 'static;
    /// What must survive a crash; replayed in order into the constructor on restart.
    type Record: Clone + Debug + Serialize + DeserializeOwned + Send + 'static;

    /// This replica's id.
    fn id(&self) -> NodeId;

    /// A client asked this replica to run a request.
    fn handle_request(&mut self, now: Time, request: ClientRequest);

    /// A peer (or this node itself, after a sync) sent a message.
    fn handle_message(&mut self, now: Time, from: NodeId, message: Self::Message);

    /// Fire every internal timer due at `now`. Spurious calls are no-ops.
    fn handle_timeout(&mut self, now: Time);

    /// The next output, in the order the core produced them.
    #[must_use]
    fn poll_output(&mut self) -> Option<Output<Self::Message, Self::Record>>;

    /// When [`handle_timeout`](Self::handle_timeout) should next be called, if ever.
    #[must_use]
    fn poll_timeout(&self) -> Option<Time>;

    /// Counters for observability and benchmarks.
    fn metrics(&self) -> Metrics;

    /// The configuration this replica currently works under, for operators (`meridian
    /// status`, `meridian member list`). `None`, the default, means the core runs the
    /// static membership it was built with: the host reports that as
    /// [`Configuration::initial`], epoch 0. A core that changes membership returns its
    /// newest configuration.
    fn configuration(&self) -> Option<Configuration> {
        None
    }

    /// Whether [`propose_change`](Self::propose_change) can change this core's
    /// membership. The default, `false`: the core runs the static membership it was built
    /// with.
    fn changes_membership(&self) -> bool {
        false
    }

    /// An operator asks for a membership change; its end is reported by
    /// [`poll_change_outcome`](Self::poll_change_outcome). Hosts ask only cores whose
    /// [`changes_membership`](Self::changes_membership) is true; the default ignores it.
    fn propose_change(&mut self, now: Time, request: RequestId, change: Change) {
        let _ = (now, request, change);
    }

    /// The next membership change taken by [`propose_change`](Self::propose_change) that
    /// ended (committed and executed here, or failed).
    fn poll_change_outcome(&mut self) -> Option<ChangeOutcome> {
        None
    }

    /// The host built this core with no records because the node lost its disk (an
    /// "amnesia" restart) or the operator said so (`meridian serve --rejoin`). Called once,
    /// right after construction and before any other input.
    ///
    /// The default does nothing, which is right only for cores that make no promises.
    /// Cores that make promises (acceptors) must override: until it returns to normal, a
    /// rejoining core answers no vote, because its former self may have promised or
    /// accepted things it no longer remembers (docs/design.md#the-contract, "Rejoining after disk loss").
    fn rejoin(&mut self, now: Time) {
        let _ = now;
    }

    /// This replica is about to stop on purpose (a graceful shutdown): give up any role
    /// the others wait on, so they need not detect the absence by timeout. It keeps
    /// answering peers until the host stops it, and must not take such a role again.
    ///
    /// The default does nothing, which is right for cores with no such role (EPaxos and
    /// Dynamo: every replica leads its own commands). A Multi-Paxos leader hands its
    /// leadership to a peer.
    fn hand_off(&mut self, now: Time) {
        let _ = now;
    }

    /// The host encoded the records of the last [`Output::Compact`] in `bytes` bytes. A
    /// core that compacts sizes its next compaction from it (the log written since must
    /// be as long): every host encodes the records anyway, and a count of its own was a
    /// second encoding of the whole state per compaction. Until told, a core takes the
    /// snapshot as empty (its next compaction waits only for its instance interval). The
    /// default does nothing.
    fn compacted(&mut self, bytes: u64) {
        let _ = bytes;
    }

    /// The host is about to hand over several inputs that were already waiting (a
    /// burst): the core may hold new proposals back until [`end_burst`](Self::end_burst)
    /// so that requests of the burst share an instance or slot (adaptive batching: only
    /// requests that already wait are packed, a lone request is never held back). Every
    /// `begin_burst` is followed by `end_burst` before the host polls for a timeout.
    /// The default does nothing.
    fn begin_burst(&mut self) {}

    /// The burst announced by [`begin_burst`](Self::begin_burst) is over: propose what it
    /// brought. The default does nothing.
    fn end_burst(&mut self, now: Time) {
        let _ = now;
    }
}

/// One output of a protocol core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output<M, R> {
    /// Make `records` durable, then perform `then`, never before.
    Persist {
        /// Records to append to the durable log.
        records: Vec<R>,
        /// Effects released once the records are synced.
        then: Vec<Effect<M>>,
    },
    /// An effect that depends on no unsynced record.
    Now(Effect<M>),
    /// The durable log may be replaced, atomically, by `snapshot`: these records alone
    /// rebuild this node's state as of this output. It is ordered after every earlier
    /// `Persist` (the host applies it once those are synced) and before every later one.
    /// Hosts may apply it lazily; it never gates any effect.
    Compact {
        /// The records that replace the whole log.
        snapshot: Vec<R>,
    },
}

/// Something the host does on the core's behalf.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Effect<M> {
    /// Send a message to a peer (or to self: see the module doc).
    Send {
        /// Destination.
        to: NodeId,
        /// Payload.
        message: M,
    },
    /// Answer a client request.
    Reply(ClientReply),
    /// Observability: a client's command is committed (its order is decided) but may not
    /// be executed yet. Hosts use it to measure commit latency apart from execution
    /// latency.
    Committed {
        /// The request whose command committed.
        request: RequestId,
        /// How it committed.
        path: CommitPath,
    },
}

/// How a command reached commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CommitPath {
    /// EPaxos fast path: one round trip to a fast quorum.
    Fast,
    /// EPaxos slow path: PreAccept then Accept.
    Slow,
    /// Committed by a leader's phase 2 (Multi-Paxos).
    Leader,
    /// Committed by recovery of a failed command leader.
    Recovered,
}

/// A queue of outputs a core fills while handling an input and the host drains.
#[derive(Clone, Debug)]
pub struct Outbox<M, R> {
    queue: VecDeque<Output<M, R>>,
    /// Encoded bytes of the records queued for persisting so far, if counted.
    persisted_bytes: Option<u64>,
}

impl<M, R> Default for Outbox<M, R> {
    fn default() -> Self {
        Self {
            queue: VecDeque::new(),
            persisted_bytes: None,
        }
    }
}

impl<M, R> Outbox<M, R> {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty outbox that counts the encoded bytes of the records it queues for
    /// persisting (compaction compares the log written since the last snapshot with the
    /// snapshot).
    pub fn counting() -> Self {
        Self {
            persisted_bytes: Some(0),
            ..Self::default()
        }
    }

    /// Encoded bytes of the records queued for persisting so far (0 if not counting).
    pub fn persisted_bytes(&self) -> u64 {
        self.persisted_bytes.unwrap_or(0)
    }

    /// Queue a message that needs no durability.
    pub fn send(&mut self, to: NodeId, message: M) {
        self.queue
            .push_back(Output::Now(Effect::Send { to, message }));
    }

    /// Queue a client reply that needs no durability.
    pub fn reply(&mut self, reply: ClientReply) {
        self.queue.push_back(Output::Now(Effect::Reply(reply)));
    }

    /// Queue any effect that needs no durability.
    pub fn now(&mut self, effect: Effect<M>) {
        self.queue.push_back(Output::Now(effect));
    }

    /// Queue records and the effects to release once they are durable.
    pub fn persist(&mut self, records: Vec<R>, then: Vec<Effect<M>>)
    where
        R: Serialize,
    {
        if let Some(bytes) = self.persisted_bytes.as_mut() {
            *bytes += records
                .iter()
                .map(crate::transfer::encoded_len)
                .sum::<u64>();
        }
        self.queue.push_back(Output::Persist { records, then });
    }

    /// Queue a log compaction (see [`Output::Compact`]).
    pub fn compact(&mut self, snapshot: Vec<R>) {
        self.queue.push_back(Output::Compact { snapshot });
    }

    /// Next output, oldest first.
    pub fn pop(&mut self) -> Option<Output<M, R>> {
        self.queue.pop_front()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Number of queued outputs.
    pub fn len(&self) -> usize {
        self.queue.len()
    }
}

/// Named counters a core exposes (fast path, slow path, elections, hints, ...).
///
/// Cores count per command on every replica, so counters are found by hash (a B-tree
/// compared the name's bytes at every level: about 2% of a simulated Multi-Paxos run);
/// they are read, printed and encoded in name order, as the B-tree they were.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Metrics {
    counters: HashedMap<String, u64>,
}

/// [`Metrics`] as encoded: its counters in name order.
#[derive(Serialize, Deserialize)]
#[serde(rename = "Metrics")]
struct SortedMetrics<C> {
    counters: C,
}

impl Serialize for Metrics {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SortedMetrics {
            counters: self.sorted(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Metrics {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let decoded = SortedMetrics::<BTreeMap<String, u64>>::deserialize(deserializer)?;
        Ok(Self {
            counters: decoded.counters.into_iter().collect(),
        })
    }
}

impl Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("counters", &self.sorted())
            .finish()
    }
}

impl Metrics {
    /// No counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `by` to counter `name`.
    pub fn add(&mut self, name: &str, by: u64) {
        match self.counters.get_mut(name) {
            Some(value) => *value += by,
            None => {
                self.counters.insert(name.to_owned(), by);
            }
        }
    }

    /// Add one to counter `name`.
    pub fn incr(&mut self, name: &str) {
        self.add(name, 1);
    }

    /// Set gauge-like counter `name` to `value`.
    pub fn set(&mut self, name: &str, value: u64) {
        self.counters.insert(name.to_owned(), value);
    }

    /// Current value of `name` (zero if never counted).
    pub fn get(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    /// Every counter in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.sorted().into_iter()
    }

    fn sorted(&self) -> BTreeMap<&str, u64> {
        self.counters
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect()
    }

    /// Sum another set of counters into this one (cluster totals).
    pub fn merge(&mut self, other: &Self) {
        for (name, &value) in &other.counters {
            self.add(name, value);
        }
    }
}

/// One replica of a cluster and where it runs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Member {
    /// Its id.
    pub id: NodeId,
    /// The region it runs in (a topology region name).
    pub region: String,
}

/// Static cluster membership shared by every replica of a keyspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// Every replica, in id order.
    pub members: Vec<Member>,
    /// Estimated round-trip time between members in microseconds, indexed
    /// `[from.index()][to.index()]`; empty when unknown. Cores use it only to prefer near
    /// replicas (thrifty quorums, region-aware placement), never for safety.
    pub rtt_us: Vec<Vec<u64>>,
}

impl Membership {
    /// A cluster of `n` replicas `0..n`, all in region `local`, with no latency estimates.
    pub fn local(n: u16) -> Self {
        Self {
            members: (0..n)
                .map(|i| Member {
                    id: NodeId(i),
                    region: "local".to_owned(),
                })
                .collect(),
            rtt_us: Vec::new(),
        }
    }

    /// Number of replicas.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the cluster has no replica.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Every replica id in order.
    pub fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.iter().map(|m| m.id)
    }

    /// Whether `id` is a member.
    pub fn contains(&self, id: NodeId) -> bool {
        self.members.iter().any(|m| m.id == id)
    }

    /// The region of `id`, if it is a member.
    pub fn region_of(&self, id: NodeId) -> Option<&str> {
        self.members
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.region.as_str())
    }

    /// Estimated RTT between two members, if known.
    pub fn rtt_us(&self, from: NodeId, to: NodeId) -> Option<u64> {
        self.rtt_us.get(from.index())?.get(to.index()).copied()
    }

    /// Every member ordered by estimated RTT from `from` (itself first), ties by id.
    /// Without estimates: `from` first, then id order.
    pub fn by_distance(&self, from: NodeId) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self.ids().collect();
        ids.sort_by_key(|&id| {
            let distance = if id == from {
                0
            } else {
                self.rtt_us(from, id).unwrap_or(u64::MAX / 2)
            };
            (id != from, distance, id)
        });
        ids
    }
}

#[cfg(test)]
#[path = "protocol_test.rs"]
mod tests;
