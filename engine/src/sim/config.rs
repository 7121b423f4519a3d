//! Simulation parameters. A run is reproducible from `(seed, SimConfig)`.

use super::clock::ClockConfig;
use super::fault::FaultConfig;
use crate::topology::Topology;
use std::time::Duration;

/// Everything a simulation run depends on besides the protocol factory and workloads.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Master seed: every random draw of the run derives from it.
    pub seed: u64,
    /// Regions, RTTs and placement of replicas.
    pub topology: Topology,
    /// Message loss, duplication, reordering (partitions and crashes are scheduled actions).
    pub faults: FaultConfig,
    /// How long an fsync takes.
    pub disk: DiskModel,
    /// Client behaviour.
    pub clients: ClientConfig,
    /// Add the topology's jitter to link delays.
    pub jitter: bool,
    /// Keep every link FIFO (a later message never overtakes an earlier one on the same
    /// link) unless the fault config reorders explicitly.
    pub fifo_links: bool,
    /// Keep a record of every client operation (needed for histories; benches with very
    /// many operations may turn it off and use the completion observer instead).
    pub record_ops: bool,
    /// Replica clocks: skew and drift against real time (default: exact clocks).
    pub clocks: ClockConfig,
    /// How long writes no effect waits for stay unsynced when nothing else is synced
    /// (the server's `IDLE_SYNC_AFTER`). `None`: until an awaited write's sync takes
    /// them, however long, so a suite can show that no liveness hangs on the deadline.
    pub idle_sync_after: Option<Duration>,
}

impl SimConfig {
    /// Fault-free defaults on `topology` with `seed`.
    pub fn new(seed: u64, topology: Topology) -> Self {
        Self {
            seed,
            topology,
            faults: FaultConfig::default(),
            disk: DiskModel::default(),
            clients: ClientConfig::default(),
            jitter: true,
            fifo_links: true,
            record_ops: true,
            clocks: ClockConfig::default(),
            idle_sync_after: Some(crate::storage::IDLE_SYNC_AFTER),
        }
    }

    /// Same config with writes no effect waits for synced only by awaited writes' syncs
    /// (see [`SimConfig::idle_sync_after`]).
    pub fn without_idle_sync(mut self) -> Self {
        self.idle_sync_after = None;
        self
    }

    /// Same config with other faults.
    pub fn with_faults(mut self, faults: FaultConfig) -> Self {
        self.faults = faults;
        self
    }

    /// Same config with another disk model.
    pub fn with_disk(mut self, disk: DiskModel) -> Self {
        self.disk = disk;
        self
    }

    /// Same config with other client parameters.
    pub fn with_clients(mut self, clients: ClientConfig) -> Self {
        self.clients = clients;
        self
    }

    /// Same config with skewed and drifting replica clocks.
    pub fn with_clocks(mut self, clocks: ClockConfig) -> Self {
        self.clocks = clocks;
        self
    }

    /// Same config without link jitter (exact RTT/2 delays).
    pub fn without_jitter(mut self) -> Self {
        self.jitter = false;
        self
    }
}

/// Disk latency model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskModel {
    /// Time from starting a sync to it completing (group commit: records appended while a
    /// sync runs join the next one).
    pub fsync: Duration,
}

impl Default for DiskModel {
    /// 0 µs: latency runs measure the network only, as the EPaxos paper did.
    fn default() -> Self {
        Self {
            fsync: Duration::ZERO,
        }
    }
}

/// How simulated clients behave.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClientConfig {
    /// Give up on a request after this long: its outcome is recorded as unknown and the
    /// client moves to the next-nearest replica.
    pub timeout: Duration,
    /// Closed loop (one outstanding request, next one when it completes) or open loop.
    pub mode: ClientMode,
    /// Do not issue requests after this time (lets the run drain).
    pub stop_at: Option<crate::time::Time>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            mode: ClientMode::Closed,
            stop_at: None,
        }
    }
}

/// Client issue discipline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ClientMode {
    /// One request at a time; the next is issued as soon as the previous one completes.
    Closed,
    /// Poisson arrivals at `rate_per_sec` per client, regardless of completions.
    Open {
        /// Mean requests per second per client.
        rate_per_sec: f64,
    },
}
