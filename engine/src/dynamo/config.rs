//! Dynamo keyspace configuration. Defaults are documented per field.

use crate::id::NodeId;
use std::time::Duration;

/// Bounds on the hints a fallback node keeps. A hint that would exceed them is refused
/// (the write does not count it); a hint older than `max_age` is dropped. Either way the
/// event is counted and the key's range is marked for priority anti-entropy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HintLimits {
    /// Hints kept for one owner (default 10,000).
    pub max_per_target: usize,
    /// Bytes of hinted objects kept for one owner (default 64 MiB).
    pub max_bytes_per_target: usize,
    /// Hints kept in total (default 50,000).
    pub max_total: usize,
    /// Bytes kept in total (default 256 MiB).
    pub max_bytes_total: usize,
    /// Age after which an undelivered hint is dropped (default 3 hours, as Cassandra's
    /// `max_hint_window`). Measured from when this node (re)started holding it: ages do
    /// not survive restarts, so a restart extends a hint's life, never shortens it.
    pub max_age: Duration,
}

impl Default for HintLimits {
    fn default() -> Self {
        Self {
            max_per_target: 10_000,
            max_bytes_per_target: 64 << 20,
            max_total: 50_000,
            max_bytes_total: 256 << 20,
            max_age: Duration::from_secs(3 * 3600),
        }
    }
}

/// How a Dynamo keyspace runs.
#[derive(Clone, Debug, PartialEq)]
pub struct DynamoConfig {
    /// Owners per key, `N` (default 3; capped at the cluster size).
    pub replicas: usize,
    /// Tokens per member on the ring (default 16).
    pub vnodes: usize,
    /// Sloppy quorum for requests that do not say (default false: only the preference
    /// list counts). `ClientRequest::sloppy` overrides it per request.
    pub sloppy: bool,
    /// Last-write-wins (default false). LOSSY: concurrent writes are resolved by the
    /// coordinators' clocks and the losers are discarded without a trace. Never on by
    /// default; siblings are the safe behaviour.
    pub lww: bool,
    /// Siblings on one key above which a write is counted as a warning
    /// (`sibling_warnings`) (default 8).
    pub sibling_soft_limit: usize,
    /// Siblings a write may not exceed: such a write is rejected, never pruned
    /// (default 64). Resolve siblings by writing with the context of a read.
    pub sibling_hard_limit: usize,
    /// Largest object a write may produce, in bytes: the key plus every sibling's value and
    /// version metadata and the causal context (`Object::approx_bytes`) (default 4 MiB). A
    /// write above it is rejected, never stored, so every object fits one message; the
    /// server derives it from its frame limit (docs/design.md#object-size). Anti-entropy
    /// batches stop at this many bytes too.
    pub max_object_bytes: usize,
    /// Coordinator-side deadline of a request (default 1 s). At the deadline a request
    /// whose level is unmet fails with `Unavailable`.
    pub request_timeout: Duration,
    /// SESSION reads: how often to ask again when every asked replica is older than the
    /// client's context (default 50 ms).
    pub session_retry: Duration,
    /// Heartbeat period of the failure detector (default 100 ms).
    pub heartbeat_interval: Duration,
    /// Silence after which a peer is considered down (default 500 ms).
    pub failure_timeout: Duration,
    /// Hint-store bounds.
    pub hints: HintLimits,
    /// Period of hint replay rounds (default 100 ms).
    pub hint_replay_interval: Duration,
    /// Hints sent to one owner per replay round: the replay rate bound (default 64).
    pub hint_replay_batch: usize,
    /// Time after which an unacknowledged hint delivery is sent again (default 1 s).
    pub hint_retry: Duration,
    /// Period between Merkle exchanges started by this node, one (range, peer) pair each
    /// (default 200 ms).
    pub anti_entropy_interval: Duration,
    /// Children per Merkle node (default 16).
    pub merkle_fanout: u32,
    /// Merkle levels below the root (default 2: 256 leaves per range).
    pub merkle_depth: u8,
    /// Objects sent in one anti-entropy repair message (default 256; the rest is
    /// repaired by later rounds).
    pub anti_entropy_max_keys: usize,
    /// An exchange that has not finished by then is abandoned (default 2 s).
    pub anti_entropy_timeout: Duration,
    /// A tombstone is garbage-collected only after this long (default 4 hours: longer
    /// than `hints.max_age`, so no hint can bring the deleted value back) *and* after the
    /// range's first owner completed an anti-entropy exchange, started after it stored the
    /// tombstone, with every other owner (see `gc` for the rule).
    pub tombstone_grace: Duration,
    /// Period of tombstone collection rounds (default 1 s).
    pub gc_interval: Duration,
    /// Records appended since the last compaction before the log is compacted into a
    /// snapshot of live objects and hints (default 20,000; at least twice the live set).
    pub compact_after_records: usize,
    /// Requests a node coordinates at once; more are rejected (default 10,000).
    pub max_pending_requests: usize,
    /// The members of the ring at epoch 0 (default empty: every member of the cluster).
    /// The others are spares a membership change can add.
    pub initial_members: Vec<NodeId>,
}

impl Default for DynamoConfig {
    fn default() -> Self {
        Self {
            replicas: 3,
            vnodes: 16,
            sloppy: false,
            lww: false,
            sibling_soft_limit: 8,
            sibling_hard_limit: 64,
            max_object_bytes: 4 << 20,
            request_timeout: Duration::from_secs(1),
            session_retry: Duration::from_millis(50),
            heartbeat_interval: Duration::from_millis(100),
            failure_timeout: Duration::from_millis(500),
            hints: HintLimits::default(),
            hint_replay_interval: Duration::from_millis(100),
            hint_replay_batch: 64,
            hint_retry: Duration::from_secs(1),
            anti_entropy_interval: Duration::from_millis(200),
            merkle_fanout: 16,
            merkle_depth: 2,
            anti_entropy_max_keys: 256,
            anti_entropy_timeout: Duration::from_secs(2),
            tombstone_grace: Duration::from_secs(4 * 3600),
            gc_interval: Duration::from_secs(1),
            compact_after_records: 20_000,
            max_pending_requests: 10_000,
            initial_members: Vec::new(),
        }
    }
}

impl DynamoConfig {
    /// `N` owners per key.
    pub fn with_replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas.max(1);
        self
    }

    /// Sloppy quorum by default for this keyspace.
    pub fn with_sloppy(mut self, sloppy: bool) -> Self {
        self.sloppy = sloppy;
        self
    }

    /// Last-write-wins (lossy; see [`DynamoConfig::lww`]).
    pub fn with_lww(mut self, lww: bool) -> Self {
        self.lww = lww;
        self
    }

    /// Sibling warning and rejection thresholds.
    pub fn with_sibling_limits(mut self, soft: usize, hard: usize) -> Self {
        self.sibling_soft_limit = soft;
        self.sibling_hard_limit = hard.max(1);
        self
    }

    /// Object size limit (see [`DynamoConfig::max_object_bytes`]).
    pub fn with_max_object_bytes(mut self, bytes: usize) -> Self {
        self.max_object_bytes = bytes.max(1);
        self
    }

    /// Coordinator deadline.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Failure-detector timing.
    pub fn with_failure_detection(mut self, heartbeat: Duration, timeout: Duration) -> Self {
        self.heartbeat_interval = heartbeat;
        self.failure_timeout = timeout;
        self
    }

    /// Merkle exchange period.
    pub fn with_anti_entropy_interval(mut self, interval: Duration) -> Self {
        self.anti_entropy_interval = interval;
        self
    }

    /// Ring members at epoch 0 (see [`DynamoConfig::initial_members`]).
    pub fn with_initial_members(mut self, members: Vec<NodeId>) -> Self {
        self.initial_members = members;
        self
    }

    /// Tombstone grace period.
    pub fn with_tombstone_grace(mut self, grace: Duration) -> Self {
        self.tombstone_grace = grace;
        self
    }
}
