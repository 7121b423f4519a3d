//! Multi-Paxos configuration.

use crate::id::NodeId;
use crate::quorum::PaxosQuorums;
use std::time::Duration;

/// How a Multi-Paxos keyspace runs. Defaults are documented per field.
#[derive(Clone, Debug, PartialEq)]
pub struct MultiPaxosConfig {
    /// The replica that starts leading at boot (default `NodeId(0)`). Its first election
    /// runs at start; the others wait for its heartbeats.
    pub initial_leader: NodeId,
    /// Phase-1 and phase-2 quorum sizes (default: majorities; flexible quorums need
    /// `phase1 + phase2 > n`).
    pub quorums: Option<PaxosQuorums>,
    /// Commands per slot (default 1 = no batching). The leader only packs requests that
    /// are already queued: there is no waiting gate on the latency path.
    pub max_batch: usize,
    /// Slots proposed but not yet committed before new requests queue (default 10,000;
    /// a small window plus `max_batch > 1` trades latency for throughput).
    pub max_in_flight: usize,
    /// How often the leader tells followers it is alive (default 50 ms).
    pub heartbeat_interval: Duration,
    /// Silence from the leader after which a follower stands for election (default
    /// 500 ms, randomized up to 2× from the seed so candidates rarely duel).
    pub election_timeout: Duration,
    /// Most committed entries sent in one catch-up message (default 256).
    pub catch_up_batch: usize,
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
            max_in_flight: 10_000,
            heartbeat_interval: Duration::from_millis(50),
            election_timeout: Duration::from_millis(500),
            catch_up_batch: 256,
            unsafe_skip_phase1: false,
        }
    }
}

impl MultiPaxosConfig {
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

    /// Pack up to `max_batch` queued commands per slot, with at most `max_in_flight`
    /// uncommitted slots.
    pub fn with_batching(mut self, max_batch: usize, max_in_flight: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self.max_in_flight = max_in_flight.max(1);
        self
    }

    /// Failure detection timing.
    pub fn with_timeouts(
        mut self,
        heartbeat_interval: Duration,
        election_timeout: Duration,
    ) -> Self {
        self.heartbeat_interval = heartbeat_interval;
        self.election_timeout = election_timeout;
        self
    }
}
