//! EPaxos configuration.

use crate::command::{DEFAULT_MAX_BATCH, DEFAULT_MAX_BATCH_BYTES};
use crate::id::NodeId;
use crate::session::KEY_SESSION_WINDOW;
use std::time::Duration;

/// How an EPaxos keyspace runs. Defaults are documented per field.
#[derive(Clone, Debug, PartialEq)]
pub struct EpaxosConfig {
    /// Send PreAccepts only to the nearest fast quorum (by the cluster's RTT estimates)
    /// instead of every replica (default false). Falls back to all replicas when the
    /// fast quorum does not answer in time.
    pub thrifty: bool,
    /// Time a command leader waits for replies before resending (to every replica) and,
    /// in the PreAccept phase, settling for the slow path with a majority (default 500 ms).
    pub retry_timeout: Duration,
    /// How often timers are checked (default 50 ms).
    pub tick: Duration,
    /// How often a replica tells the others how far it executed, so instances executed
    /// everywhere can be forgotten and a replica that missed commits learns them, on a
    /// timer of its own, busy or idle (default 1 s). Zero turns reports and collection
    /// off (hosts that leave collection out of scope, like the model checker).
    pub gc_interval: Duration,
    /// Instances executed between two compactions at least, checked on the GC timer
    /// (default 4,096; zero: never compact); a compaction also waits for as many bytes
    /// of log as the last snapshot: the durable log is then replaced by a snapshot and
    /// the live instances (docs/design.md#epaxos-compaction).
    pub snapshot_interval: u64,
    /// Keep every executed command in memory for inspection (default true; benchmarks
    /// and long runs turn it off).
    pub record_execution: bool,
    /// Most commands per instance (default [`DEFAULT_MAX_BATCH`], 256; 1 turns batching
    /// off). A leader only packs requests that are already queued: those of one burst (inputs
    /// the host found waiting, [`Protocol::begin_burst`](crate::Protocol::begin_burst)) or
    /// those that queued while the window was full. There is no waiting gate on the
    /// latency path.
    pub max_batch: usize,
    /// A batch stops growing once its keys and values pass this many bytes (default
    /// [`DEFAULT_MAX_BATCH_BYTES`]; its first command always goes in).
    pub max_batch_bytes: usize,
    /// Own instances proposed but not committed before new requests queue at their
    /// leader (default 10,000).
    pub max_in_flight: usize,
    /// Writes each key remembers for exactly-once execution (default
    /// [`KEY_SESSION_WINDOW`], 8): a resent request still gets its first result while
    /// fewer than this many writes on its key ran after it, and `SessionExpired` later
    /// (docs/design.md#sessions). Every replica of a keyspace must use the same.
    pub key_session_window: usize,
    /// Largest chunk of a rejoin answer (a peer's state) sent in one message (default
    /// 1 MiB).
    pub snapshot_chunk_bytes: usize,
    /// Tests only: a replica that lost its disk votes and proposes at once, without the
    /// rejoin rule (docs/design.md#epaxos-rejoin-rule), so the checkers can show what the
    /// rule prevents. Never set it in a deployment.
    pub unsafe_rejoin_without_fence: bool,
    /// Ordered delivery: every replica, the leader included, processes a leader's first
    /// PreAccept of an instance about when its farthest fast-quorum member receives it
    /// (by the cluster's RTT estimates), so conflicting instances are ordered alike
    /// everywhere and their dependencies form no cycles (default false;
    /// docs/design.md#epaxos, "Ordered delivery").
    pub ordered_delivery: bool,
    /// Tests only: under ordered delivery the leader votes on its own instance when it
    /// proposes it while still keeping it out of its index until the release time, so
    /// the checkers can show why the vote waits (docs/design.md#epaxos, "Ordered
    /// delivery"). Never set it in a deployment.
    pub unsafe_vote_before_release: bool,
    /// The replicas that form the configuration of epoch 0, all voters (default `None`:
    /// every replica of the cluster). The others are spares until a membership switch
    /// adds them (docs/design.md, "EPaxos epochs").
    pub initial_members: Option<Vec<NodeId>>,
}

impl Default for EpaxosConfig {
    fn default() -> Self {
        Self {
            thrifty: false,
            retry_timeout: Duration::from_millis(500),
            tick: Duration::from_millis(50),
            gc_interval: Duration::from_secs(1),
            snapshot_interval: 4_096,
            record_execution: true,
            max_batch: DEFAULT_MAX_BATCH,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            max_in_flight: 10_000,
            key_session_window: KEY_SESSION_WINDOW,
            snapshot_chunk_bytes: 1 << 20,
            unsafe_rejoin_without_fence: false,
            ordered_delivery: false,
            unsafe_vote_before_release: false,
            initial_members: None,
        }
    }
}

impl EpaxosConfig {
    /// Keep (or not) the executed-command log.
    pub fn with_record_execution(mut self, record: bool) -> Self {
        self.record_execution = record;
        self
    }

    /// Pack up to `max_batch` queued commands per instance, with at most
    /// `max_in_flight` uncommitted own instances (both at least 1).
    pub fn with_batching(mut self, max_batch: usize, max_in_flight: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self.max_in_flight = max_in_flight.max(1);
        self
    }

    /// Compact every `interval` executed instances (zero: never).
    pub fn with_snapshot_interval(mut self, interval: u64) -> Self {
        self.snapshot_interval = interval;
        self
    }

    /// Rejoin answers in chunks of at most `bytes` (at least 1).
    pub fn with_snapshot_chunk_bytes(mut self, bytes: usize) -> Self {
        self.snapshot_chunk_bytes = bytes.max(1);
        self
    }

    /// Thrifty PreAccepts.
    pub fn with_thrifty(mut self, thrifty: bool) -> Self {
        self.thrifty = thrifty;
        self
    }

    /// Start with only `members` in the configuration (epoch 0, all voters).
    pub fn with_initial_members(mut self, members: Vec<NodeId>) -> Self {
        self.initial_members = Some(members);
        self
    }

    /// Process first PreAccepts at their release time (ordered delivery) or not.
    pub fn with_ordered_delivery(mut self, ordered: bool) -> Self {
        self.ordered_delivery = ordered;
        self
    }
}
