//! Multi-Paxos configuration.

use crate::command::DEFAULT_MAX_BATCH_BYTES;
use crate::id::NodeId;
use crate::quorum::PaxosQuorums;
use crate::session::SessionLimits;
use std::time::Duration;

/// How a Multi-Paxos keyspace runs. Defaults are documented per field.
#[derive(Clone, Debug, PartialEq)]
pub struct MultiPaxosConfig {
    /// The replica that starts leading at boot (default `NodeId(0)`). It runs phase 1 at
    /// its first input; the others wait for its heartbeats.
    pub initial_leader: NodeId,
    /// Phase-1 and phase-2 quorum sizes (default `None` = majorities of the cluster;
    /// flexible quorums need `phase1 + phase2 > n`).
    pub quorums: Option<PaxosQuorums>,
    /// Most commands per slot (default 1 = no batching; e.g. 256 turns adaptive batching on). The
    /// leader only packs requests that are already queued: those of one burst (inputs the
    /// host found waiting, [`Protocol::begin_burst`](crate::Protocol::begin_burst)) or
    /// those that queued while the window was full. There is no waiting gate on the
    /// latency path.
    pub max_batch: usize,
    /// A batch stops growing once its keys and values pass this many bytes (default
    /// [`DEFAULT_MAX_BATCH_BYTES`]; its first command always goes in).
    pub max_batch_bytes: usize,
    /// Slots proposed but not yet committed before new requests queue at the leader
    /// (default 10,000).
    pub max_in_flight: usize,
    /// How often the leader tells followers it is alive (default 50 ms).
    pub heartbeat_interval: Duration,
    /// Silence from the leader after which a follower stands for election (default
    /// 500 ms, drawn uniformly in `[t, 2t]` from the seed at every reset so candidates
    /// rarely duel).
    pub election_timeout: Duration,
    /// Most committed entries sent in one catch-up message (default 256).
    pub catch_up_batch: usize,
    /// A replica that forwarded a client's request and has not executed it after this
    /// long forwards it again, to the leader it then believes in (default 1 s). Repeats are
    /// executed once (the session table), so a retry never applies a command twice.
    pub forward_retry: Duration,
    /// Forward attempts after which a replica gives up on a request and answers
    /// [`RequestError::Timeout`](crate::request::RequestError::Timeout) (default 8).
    pub max_forward_attempts: u32,
    /// Executed slots between two compactions at least (default 4,096), which also wait
    /// for as many bytes of log as the last snapshot: the log is then replaced by a
    /// snapshot of the state plus the accepted slots above it. Executed slots are
    /// forgotten in memory every this many (docs/design.md#multi-paxos-compaction).
    pub snapshot_interval: u64,
    /// Executed slots kept one by one after a compaction (default 1,024), so a follower a
    /// little behind catches up from the log instead of by state transfer.
    pub retained_slots: u64,
    /// Largest chunk of a snapshot sent in one state-transfer message (default 1 MiB).
    pub snapshot_chunk_bytes: usize,
    /// How much the exactly-once session table remembers (docs/design.md#sessions).
    pub sessions: SessionLimits,
    /// Lease length (default `None`: no leases). With leases, the leader serves `lease`
    /// reads locally, quorum-lease holders serve them for their keys, and a new leader
    /// waits out every lease its phase-1 quorum granted (docs/design.md#leases).
    pub lease: Option<Duration>,
    /// The assumed bound on clock drift, in parts per million (default 1,000 = 0.1%):
    /// every replica's clock runs at a rate within `1 ± drift` of real time. Leases are
    /// safe only within it.
    pub clock_drift_ppm: u32,
    /// Replicas that hold quorum leases on the whole keyspace (default none; needs
    /// `lease`). Writes then commit only once every holder whose lease may be live has
    /// accepted them (docs/design.md#quorum-leases).
    pub quorum_lease_holders: Vec<NodeId>,
    /// The replicas that form the configuration of epoch 0, all voters (default `None`:
    /// every replica of the cluster). The others are spares: they vote for nothing and
    /// never stand until a membership change adds them (docs/design.md#membership).
    pub initial_members: Option<Vec<NodeId>>,
    /// TEST ONLY, deliberately unsafe: votes (promises, accepts, acks) from learners and
    /// from replicas outside the configuration are counted like a voter's. Exists to show
    /// that the membership suite and the linearizability checker catch it.
    #[doc(hidden)]
    pub unsafe_count_learner_votes: bool,
    /// TEST ONLY, deliberately unsafe: a replica that lost its disk votes at once, as on a
    /// first boot, instead of rejoining through the fence rule. Exists to show that the
    /// amnesia suite and the linearizability checker catch it.
    #[doc(hidden)]
    pub unsafe_rejoin_without_fence: bool,
    /// TEST ONLY, deliberately unsafe: a new leader skips phase 1 and proposes into slots
    /// without learning what earlier ballots accepted there. Exists to show that the
    /// fault tests and the linearizability checker catch a broken protocol.
    #[doc(hidden)]
    pub unsafe_skip_phase1: bool,
}

impl Default for MultiPaxosConfig {
    fn default() -> Self {
        Self {
            initial_leader: NodeId(0),
            quorums: None,
            max_batch: 1,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            max_in_flight: 10_000,
            heartbeat_interval: Duration::from_millis(50),
            election_timeout: Duration::from_millis(500),
            catch_up_batch: 256,
            forward_retry: Duration::from_secs(1),
            max_forward_attempts: 8,
            snapshot_interval: 4_096,
            retained_slots: 1_024,
            snapshot_chunk_bytes: 1 << 20,
            sessions: SessionLimits::default(),
            lease: None,
            clock_drift_ppm: 1_000,
            quorum_lease_holders: Vec::new(),
            initial_members: None,
            unsafe_count_learner_votes: false,
            unsafe_rejoin_without_fence: false,
            unsafe_skip_phase1: false,
        }
    }
}

impl MultiPaxosConfig {
    /// Start with only `members` in the configuration (epoch 0, all voters); the rest of
    /// the cluster are spares a membership change can add.
    pub fn with_initial_members(mut self, members: Vec<NodeId>) -> Self {
        self.initial_members = Some(members);
        self
    }

    /// Start with `leader` leading.
    pub fn with_initial_leader(mut self, leader: NodeId) -> Self {
        self.initial_leader = leader;
        self
    }

    /// Use flexible quorums.
    pub fn with_quorums(mut self, quorums: PaxosQuorums) -> Self {
        self.quorums = Some(quorums);
        self
    }

    /// Pack up to `max_batch` queued commands per slot (at least 1).
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// At most `max_in_flight` uncommitted slots at the leader (at least 1).
    pub fn with_max_in_flight(mut self, max_in_flight: usize) -> Self {
        self.max_in_flight = max_in_flight.max(1);
        self
    }

    /// Pack up to `max_batch` queued commands per slot, with at most `max_in_flight`
    /// uncommitted slots.
    pub fn with_batching(self, max_batch: usize, max_in_flight: usize) -> Self {
        self.with_max_batch(max_batch)
            .with_max_in_flight(max_in_flight)
    }

    /// Leader heartbeat period.
    pub fn with_heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// Base election timeout (randomized up to twice this).
    pub fn with_election_timeout(mut self, timeout: Duration) -> Self {
        self.election_timeout = timeout;
        self
    }

    /// Failure detection timing.
    pub fn with_timeouts(self, heartbeat_interval: Duration, election_timeout: Duration) -> Self {
        self.with_heartbeat_interval(heartbeat_interval)
            .with_election_timeout(election_timeout)
    }

    /// Most committed entries per catch-up message (at least 1).
    pub fn with_catch_up_batch(mut self, entries: usize) -> Self {
        self.catch_up_batch = entries.max(1);
        self
    }

    /// When and how often a forwarded request is forwarded again.
    pub fn with_forward_retry(mut self, after: Duration, max_attempts: u32) -> Self {
        self.forward_retry = after;
        self.max_forward_attempts = max_attempts.max(1);
        self
    }

    /// Compact every `interval` executed slots, keeping `retained` of them one by one (at
    /// least 1 each).
    pub fn with_compaction(mut self, interval: u64, retained: u64) -> Self {
        self.snapshot_interval = interval.max(1);
        self.retained_slots = retained.max(1);
        self
    }

    /// State-transfer chunks of at most `bytes` (at least 1).
    pub fn with_snapshot_chunk_bytes(mut self, bytes: usize) -> Self {
        self.snapshot_chunk_bytes = bytes.max(1);
        self
    }

    /// Exactly-once session table limits.
    pub fn with_session_limits(mut self, limits: SessionLimits) -> Self {
        self.sessions = limits;
        self
    }

    /// Leases of `length`, safe while clocks drift less than `drift_ppm`.
    pub fn with_lease(mut self, length: Duration, drift_ppm: u32) -> Self {
        self.lease = Some(length);
        self.clock_drift_ppm = drift_ppm.min(100_000);
        self
    }

    /// Quorum leases (on the whole keyspace) held by `holders`.
    pub fn with_quorum_lease_holders(mut self, holders: Vec<NodeId>) -> Self {
        self.quorum_lease_holders = holders;
        self
    }

    /// The quorums for a cluster of `n`: the configured ones, or majorities.
    ///
    /// # Panics
    /// If configured quorums do not intersect for `n` replicas (`phase1 + phase2 <= n`
    /// or a size outside `1..=n`): an operator error, caught at construction.
    /// Quorums for `n` voters after a membership change: the configured flexible sizes
    /// if they are valid for `n`, else majorities (changes are refused while flexible
    /// quorums are configured, so only a mixed-up cluster lands here; never a panic).
    pub(super) fn quorums_after_change(&self, n: usize) -> PaxosQuorums {
        self.quorums
            .and_then(|q| PaxosQuorums::flexible(n, q.phase1, q.phase2).ok())
            .unwrap_or_else(|| PaxosQuorums::majority(n))
    }

    pub(super) fn quorums_for(&self, n: usize) -> PaxosQuorums {
        match self.quorums {
            None => PaxosQuorums::majority(n),
            Some(q) => match PaxosQuorums::flexible(n, q.phase1, q.phase2) {
                Ok(q) => q,
                Err(error) => panic!("invalid Multi-Paxos configuration: {error}"),
            },
        }
    }
}
