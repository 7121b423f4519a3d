//! What a run reports: per (protocol, workload) results, rendered as a table, JSON or
//! SVG charts.

pub mod json;
pub mod plot;
pub mod table;

use crate::stats::RunStats;
use serde::Serialize;

/// Latency of one region under one protocol and workload.
#[derive(Clone, Debug, Serialize)]
pub struct RegionReport {
    /// Region name (alias when the topology gives one).
    pub region: String,
    /// Successful requests measured.
    pub ops: u64,
    /// Requests that failed or timed out.
    pub errors: u64,
    /// Commit latency quantiles, ms.
    pub p50_ms: f64,
    /// 90th percentile commit latency, ms.
    pub p90_ms: f64,
    /// 99th percentile commit latency, ms.
    pub p99_ms: f64,
    /// 99.9th percentile commit latency, ms.
    pub p999_ms: f64,
    /// Execution latency quantiles (call → reply), ms.
    pub exec_p50_ms: f64,
    /// 99th percentile execution latency, ms.
    pub exec_p99_ms: f64,
    /// Reads measured (0: the table leaves out the read/write split).
    pub reads: u64,
    /// Reads only: median call → reply, ms.
    pub read_p50_ms: f64,
    /// Reads only: 99th percentile call → reply, ms.
    pub read_p99_ms: f64,
    /// Writes only: median call → reply, ms.
    pub write_p50_ms: f64,
    /// Writes only: 99th percentile call → reply, ms.
    pub write_p99_ms: f64,
    /// The best commit latency the topology allows this region under this protocol, ms
    /// (Dynamo: the median over the measured requests of each one's optimum, which
    /// depends on its key's preference list).
    pub optimal_ms: f64,
    /// `p50_ms / optimal_ms`.
    pub ratio: f64,
    /// Every commit-latency sample's CDF points `(ms, quantile)` for plots (not in JSON).
    #[serde(skip)]
    pub cdf: Vec<(f64, f64)>,
}

/// One (protocol, workload) result.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// Protocol label, e.g. `epaxos`, `multipaxos(leader=CA)`.
    pub protocol: String,
    /// Backend that produced it (`sim` or `cluster`).
    pub backend: String,
    /// Topology name.
    pub topology: String,
    /// Conflict percentage of the workload (conflict workloads only).
    pub conflict_pct: Option<f64>,
    /// Successful requests per second over the measured window.
    pub throughput_ops: f64,
    /// Fast-path commits / (fast + slow + recovered), EPaxos only.
    pub fast_path_ratio: Option<f64>,
    /// Share of EPaxos PreAccept rounds whose attributes were changed by a conflict, as
    /// measured by the replicas (not the workload knob).
    pub measured_conflict_rate: Option<f64>,
    /// Per-region results, in topology order.
    pub regions: Vec<RegionReport>,
    /// Run seed.
    pub seed: u64,
    /// Correctness verdict of the run (linearizability / no lost write), when checked.
    pub verdict: Option<String>,
    /// Protocol and simulator counters.
    pub counters: std::collections::BTreeMap<String, u64>,
    /// Replica CPU per 1,000 operations, operations per fsync, commands per instance
    /// (the first two on the cluster backend only).
    #[serde(flatten)]
    pub efficiency: crate::backend::efficiency::Efficiency,
    /// Latency over time and membership changes (`--timeline`, `--reconfigure`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<crate::timeline::TimelineReport>,
}

/// Empirical CDF as a staircase over every recorded value (ms, fraction), so mixed
/// distributions (fast and slow paths) show as steps, not ramps.
fn step_cdf(histogram: &hdrhistogram::Histogram<u64>) -> Vec<(f64, f64)> {
    let total = histogram.len() as f64;
    if total == 0.0 {
        return Vec::new();
    }
    let mut points = Vec::new();
    let mut cumulative = 0u64;
    for value in histogram.iter_recorded() {
        let x = value.value_iterated_to() as f64 / 1e3;
        points.push((x, cumulative as f64 / total));
        cumulative += value.count_at_value();
        points.push((x, cumulative as f64 / total));
    }
    points
}

/// Build region reports from statistics and per-region optima; a region whose requests
/// each had their own optimum reports the median of those instead.
pub fn region_reports(stats: &RunStats, optimal_ms: impl Fn(usize) -> f64) -> Vec<RegionReport> {
    stats
        .regions
        .iter()
        .enumerate()
        .map(|(index, region)| {
            let p50 = region.commit_ms(0.5);
            let optimal = region.optimum_ms(0.5).unwrap_or_else(|| optimal_ms(index));
            let cdf = step_cdf(&region.commit_us);
            RegionReport {
                region: region.region.clone(),
                ops: region.ok,
                errors: region.errors + region.timeouts,
                p50_ms: p50,
                p90_ms: region.commit_ms(0.9),
                p99_ms: region.commit_ms(0.99),
                p999_ms: region.commit_ms(0.999),
                exec_p50_ms: region.execution_ms(0.5),
                exec_p99_ms: region.execution_ms(0.99),
                reads: region.read_us.len(),
                read_p50_ms: region.read_ms(0.5),
                read_p99_ms: region.read_ms(0.99),
                write_p50_ms: region.write_ms(0.5),
                write_p99_ms: region.write_ms(0.99),
                optimal_ms: optimal,
                ratio: if optimal > 0.0 {
                    p50 / optimal
                } else {
                    f64::NAN
                },
                cdf,
            }
        })
        .collect()
}
