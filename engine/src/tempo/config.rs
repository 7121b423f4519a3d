//! Tempo configuration.

use crate::id::NodeId;
use crate::session::KEY_SESSION_WINDOW;
use std::time::Duration;

/// How a Tempo keyspace runs. Defaults are documented per field.
#[derive(Clone, Debug, PartialEq)]
pub struct TempoConfig {
    /// Failures tolerated, `1 <= f < n/2` (default 1). The fast quorum has
    /// `floor(n/2) + f` replicas, the slow path needs `f + 1` accepts and recovery `n - f`
    /// answers.
    pub f: usize,
    /// How often a replica announces the clocks that changed (its detached promises)
    /// (default 5 ms). Execution waits for a majority's promises, so this bounds part of
    /// the stability delay.
    pub promise_interval: Duration,
    /// How often a replica looks for commands waiting for stability since the previous
    /// look and asks the members whose promises it lacks to announce them again, so a
    /// lost announcement is repaired (default 100 ms).
    pub promise_resend: Duration,
    /// Time a coordinator or recoverer waits for answers before sending again (default
    /// 300 ms).
    pub retry_timeout: Duration,
    /// Time a command may stay uncommitted here before this replica recovers it (default
    /// 1 s), times one plus the replica's distance from the coordinator in id order, so
    /// recoverers do not start together.
    pub recovery_timeout: Duration,
    /// How often timers are checked for retransmissions and recoveries (default 50 ms).
    pub tick: Duration,
    /// How often a replica reports how far it executed (collection of commands executed
    /// everywhere, catch-up of lost commits) (default 1 s).
    pub gc_interval: Duration,
    /// Keep every executed command in memory for inspection (default true).
    pub record_execution: bool,
    /// Answer a put or delete once a majority's clocks cover its committed timestamp,
    /// before the commands with lower proposals commit and it executes (default true;
    /// its result, `Written`, does not depend on them). Off: every command is answered
    /// when it executes.
    pub answer_promised_writes: bool,
    /// Writes each key remembers for exactly-once execution (default
    /// [`KEY_SESSION_WINDOW`], 8; docs/design.md#sessions). Every replica of a keyspace
    /// must use the same.
    pub key_session_window: usize,
    /// Compact once this many commands executed since the last compaction and the
    /// records persisted since are at least as many encoded bytes as its snapshot
    /// (default 4,096; 0: never; docs/design.md#tempo-compaction).
    pub snapshot_interval: u64,
    /// Bytes per chunk of state sent to a replica that lost its disk (default 1 MiB).
    pub snapshot_chunk_bytes: usize,
    /// Tests only: a replica that lost its disk votes and proposes at once, without the
    /// rejoin rule (docs/design.md#tempo-rejoin-rule). Never set it in production.
    pub unsafe_rejoin_without_fence: bool,
    /// Tests only: a switch runs once the switch lane is stable up to it, without floor
    /// promises from a majority of its epoch's voters, though every closed range still
    /// counts as stable on every key (docs/design.md, "Tempo epochs", rule 4). Never set
    /// it in production.
    pub unsafe_switch_without_floor_promises: bool,
    /// The replicas that form the configuration of epoch 0, all voters (default `None`:
    /// every replica of the cluster). The others are spares until a membership switch
    /// adds them (docs/design.md, "Tempo epochs").
    pub initial_members: Option<Vec<NodeId>>,
}

impl Default for TempoConfig {
    fn default() -> Self {
        Self {
            f: 1,
            promise_interval: Duration::from_millis(5),
            promise_resend: Duration::from_millis(100),
            retry_timeout: Duration::from_millis(300),
            recovery_timeout: Duration::from_secs(1),
            tick: Duration::from_millis(50),
            gc_interval: Duration::from_secs(1),
            record_execution: true,
            answer_promised_writes: true,
            key_session_window: KEY_SESSION_WINDOW,
            snapshot_interval: 4_096,
            snapshot_chunk_bytes: 1 << 20,
            unsafe_rejoin_without_fence: false,
            unsafe_switch_without_floor_promises: false,
            initial_members: None,
        }
    }
}

impl TempoConfig {
    /// Tolerate `f` failures.
    pub fn with_f(mut self, f: usize) -> Self {
        self.f = f;
        self
    }

    /// Keep (or not) the executed-command log.
    pub fn with_record_execution(mut self, record: bool) -> Self {
        self.record_execution = record;
        self
    }

    /// Compact every `interval` executed commands (at the soonest; 0: never).
    pub fn with_snapshot_interval(mut self, interval: u64) -> Self {
        self.snapshot_interval = interval;
        self
    }

    /// Start with only `members` in the configuration (epoch 0, all voters).
    pub fn with_initial_members(mut self, members: Vec<NodeId>) -> Self {
        self.initial_members = Some(members);
        self
    }

    /// Send state to a rejoining replica in chunks of `bytes`.
    pub fn with_snapshot_chunk_bytes(mut self, bytes: usize) -> Self {
        self.snapshot_chunk_bytes = bytes.max(1);
        self
    }

    /// Whether `f` suits a cluster of `n` replicas (`1 <= f < n/2`, i.e. `2f < n`).
    pub fn check(&self, n: usize) -> Result<(), String> {
        if self.f >= 1 && 2 * self.f < n {
            Ok(())
        } else {
            Err(format!(
                "tempo: f = {} does not suit {n} replicas (need 1 <= f and 2f < n)",
                self.f
            ))
        }
    }

    /// Fast quorum size `floor(n/2) + f`, at most `n`.
    pub fn fast_quorum(&self, n: usize) -> usize {
        (n / 2 + self.f).min(n)
    }

    /// Recovery quorum size `n - f`.
    pub fn recovery_quorum(&self, n: usize) -> usize {
        n.saturating_sub(self.f).max(1)
    }

    /// Slow-path (accept) quorum size `f + 1`.
    pub fn slow_quorum(&self, n: usize) -> usize {
        (self.f + 1).min(n)
    }
}
