//! What a run cost the replicas: CPU per 1,000 operations (from the replica processes
//! a local deployment started), operations per fsync and commands per instance or slot
//! (from the replicas' counters).

use meridian_engine::Metrics;
use serde::Serialize;
use std::collections::BTreeMap;

/// Clock ticks per second of `/proc/PID/stat` times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// A run's efficiency figures; `None` where the run could not measure one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Efficiency {
    /// Replica CPU seconds (user + system, summed over the replicas) per 1,000
    /// successful operations; numerically, CPU milliseconds per operation.
    pub replica_cpu_s_per_kop: Option<f64>,
    /// The same for the bench's own process (its clients: on one machine they share the
    /// CPU with the replicas, so replica and client cost together bound throughput).
    pub client_cpu_s_per_kop: Option<f64>,
    /// Successful operations per fsync of the average replica (every replica syncs each
    /// write at least once, so this is how many writes one fsync covers).
    pub ops_per_fsync: Option<f64>,
    /// Client commands per EPaxos instance or Multi-Paxos slot proposed.
    pub commands_per_instance: Option<f64>,
}

impl Efficiency {
    /// The figures of a run of `ops` successful operations that cost the `replicas`
    /// replicas `cpu_seconds` and the clients `client_cpu_seconds`, and grew the replicas'
    /// counters by `counters` (see [`super::cluster::protocol_counters`]: host events are
    /// prefixed `host_`).
    pub fn of(
        ops: u64,
        cpu_seconds: Option<f64>,
        client_cpu_seconds: Option<f64>,
        replicas: usize,
        counters: &Metrics,
    ) -> Self {
        let ratio = |a: f64, b: u64| (b > 0 && a > 0.0).then(|| a / b as f64);
        let per_instance = if counters.get("instances_led") > 0 {
            ratio(
                counters.get("commands_led") as f64,
                counters.get("instances_led"),
            )
        } else {
            ratio(
                counters.get("commands_proposed") as f64,
                counters.get("slots_proposed"),
            )
        };
        Self {
            replica_cpu_s_per_kop: cpu_seconds.and_then(|cpu| ratio(cpu * 1_000.0, ops)),
            client_cpu_s_per_kop: client_cpu_seconds.and_then(|cpu| ratio(cpu * 1_000.0, ops)),
            ops_per_fsync: ratio(ops as f64 * replicas as f64, counters.get("host_fsyncs")),
            commands_per_instance: per_instance,
        }
    }
}

/// CPU seconds (user + system, every thread) process `pid` used so far; `None` if its
/// `/proc` entry cannot be read (the process is gone, or not Linux).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_ticks(&text).map(|ticks| ticks as f64 / TICKS_PER_SECOND)
}

/// `utime + stime` of a `/proc/PID/stat` line. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its last `)`.
pub fn stat_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    // After the name: state (3), ppid (4), ..., utime (14), stime (15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Replica processes started and stopped during a run (by `--reconfigure`), so the
/// run's replica CPU covers every replica that served it, not only those there at the
/// start.
#[derive(Clone, Debug, Default)]
pub struct ProcessLedger {
    /// Processes started during the run.
    pub started: Vec<u32>,
    /// CPU seconds of processes stopped during the run, read just before the stop (a
    /// SIGTERM's drain, a few milliseconds, is left out).
    pub stopped: BTreeMap<u32, f64>,
}

impl ProcessLedger {
    /// `pid` is about to be stopped: keep what it used so far.
    pub fn stopping(&mut self, pid: u32) {
        if let Some(cpu) = cpu_seconds(pid) {
            self.stopped.insert(pid, cpu);
        }
    }

    /// CPU seconds so far of the `original` processes and of those started since, as
    /// `read` gives them for running ones, and as last read for stopped ones (whose pid
    /// may belong to another process by now); `None` if one cannot be had.
    pub fn total(&self, original: &[u32], read: impl Fn(u32) -> Option<f64>) -> Option<f64> {
        if original.is_empty() {
            return None;
        }
        original
            .iter()
            .chain(&self.started)
            .map(|pid| self.stopped.get(pid).copied().or_else(|| read(*pid)))
            .sum()
    }
}

/// CPU seconds of every process in `pids` so far; `None` if any cannot be read.
pub fn total_cpu_seconds(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&pid| cpu_seconds(pid)).sum()
}

#[cfg(test)]
#[path = "efficiency_test.rs"]
mod tests;
