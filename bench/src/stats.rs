//! Latency and outcome statistics per region: commit and execution latency histograms
//! (hdrhistogram, microseconds), path counts, errors and timeouts.

use hdrhistogram::Histogram;
use meridian_engine::sim::OpRecord;
use meridian_engine::{CommitPath, Time};

/// Highest latency recorded exactly; anything slower is clamped (and counted).
pub(crate) const MAX_LATENCY_US: u64 = 120_000_000;

pub(crate) fn histogram() -> Histogram<u64> {
    // 3 significant digits over 1 µs ..= 120 s: 0.1% resolution.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static histogram bounds are valid")
}

/// Everything measured for the clients of one region.
#[derive(Clone, Debug)]
pub struct RegionStats {
    /// Region name.
    pub region: String,
    /// Call → the client could learn of the commit.
    pub commit_us: Histogram<u64>,
    /// Call → reply (the command executed).
    pub execution_us: Histogram<u64>,
    /// Call → reply of reads only.
    pub read_us: Histogram<u64>,
    /// Call → reply of writes only.
    pub write_us: Histogram<u64>,
    /// Requests that completed successfully in the measured window.
    pub ok: u64,
    /// Requests answered with an error.
    pub errors: u64,
    /// Requests that timed out.
    pub timeouts: u64,
    /// Commits by path.
    pub fast: u64,
    /// Slow-path commits.
    pub slow: u64,
    /// Commits through a leader.
    pub leader: u64,
    /// Commits by recovery.
    pub recovered: u64,
    /// The best latency each successful request could have had, when the caller knows it
    /// per request (Dynamo: it depends on the key's preference list).
    pub optimum_us: Histogram<u64>,
}

impl RegionStats {
    /// Empty statistics for `region`.
    pub fn new(region: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            commit_us: histogram(),
            execution_us: histogram(),
            read_us: histogram(),
            write_us: histogram(),
            ok: 0,
            errors: 0,
            timeouts: 0,
            fast: 0,
            slow: 0,
            leader: 0,
            recovered: 0,
            optimum_us: histogram(),
        }
    }

    fn record(&mut self, op: &OpRecord, optimum_ms: Option<f64>) {
        if op.timed_out {
            self.timeouts += 1;
            return;
        }
        let Some(reply) = &op.reply else { return };
        if reply.outcome.is_err() {
            self.errors += 1;
            return;
        }
        self.ok += 1;
        let clamp = |d: std::time::Duration| (d.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        if let Some(latency) = op.latency() {
            let execution = clamp(latency);
            let commit = op
                .commit_latency()
                .map_or(execution, |c| clamp(c).min(execution));
            // Recording cannot fail: values are clamped into the histogram's bounds.
            let _ = self.execution_us.record(execution);
            let _ = if op.request.command.is_read() {
                self.read_us.record(execution)
            } else {
                self.write_us.record(execution)
            };
            let _ = self.commit_us.record(commit);
        }
        if let Some(optimum) = optimum_ms {
            let optimum_us = ((optimum * 1e3).round() as u64).clamp(1, MAX_LATENCY_US);
            let _ = self.optimum_us.record(optimum_us);
        }
        match op.commit.map(|(_, path)| path) {
            Some(CommitPath::Fast) => self.fast += 1,
            Some(CommitPath::Slow) => self.slow += 1,
            Some(CommitPath::Leader) => self.leader += 1,
            Some(CommitPath::Recovered) => self.recovered += 1,
            None => {}
        }
    }

    /// Commit-latency quantile in milliseconds.
    pub fn commit_ms(&self, quantile: f64) -> f64 {
        self.commit_us.value_at_quantile(quantile) as f64 / 1e3
    }

    /// Execution-latency quantile in milliseconds.
    pub fn execution_ms(&self, quantile: f64) -> f64 {
        self.execution_us.value_at_quantile(quantile) as f64 / 1e3
    }

    /// Read-latency (call → reply) quantile in milliseconds (0 without reads).
    pub fn read_ms(&self, quantile: f64) -> f64 {
        self.read_us.value_at_quantile(quantile) as f64 / 1e3
    }

    /// Write-latency (call → reply) quantile in milliseconds (0 without writes).
    pub fn write_ms(&self, quantile: f64) -> f64 {
        self.write_us.value_at_quantile(quantile) as f64 / 1e3
    }

    /// Quantile of the per-request optima in milliseconds (`None` if none was recorded).
    pub fn optimum_ms(&self, quantile: f64) -> Option<f64> {
        (!self.optimum_us.is_empty())
            .then(|| self.optimum_us.value_at_quantile(quantile) as f64 / 1e3)
    }
}

/// Per-region statistics for one run, counting only requests issued inside the measured
/// window (after warm-up, before the end).
#[derive(Clone, Debug)]
pub struct RunStats {
    /// One entry per topology region, in topology order.
    pub regions: Vec<RegionStats>,
    window: (Time, Time),
}

impl RunStats {
    /// Statistics for `regions`, measuring requests called in `[from, to)`.
    pub fn new(regions: impl IntoIterator<Item = String>, from: Time, to: Time) -> Self {
        Self {
            regions: regions.into_iter().map(RegionStats::new).collect(),
            window: (from, to),
        }
    }

    /// Account one finished request, with the best latency it could have had if known.
    pub fn record(&mut self, op: &OpRecord, optimum_ms: Option<f64>) {
        if op.call < self.window.0 || op.call >= self.window.1 {
            return;
        }
        if let Some(region) = self.regions.get_mut(op.region) {
            region.record(op, optimum_ms);
        }
    }

    /// Successful requests across regions.
    pub fn ok(&self) -> u64 {
        self.regions.iter().map(|r| r.ok).sum()
    }

    /// Length of the measured window in seconds.
    pub fn window_secs(&self) -> f64 {
        self.window.1.saturating_since(self.window.0).as_secs_f64()
    }

    /// Successful requests per second of the measured window.
    pub fn throughput(&self) -> f64 {
        let secs = self.window_secs();
        if secs > 0.0 {
            self.ok() as f64 / secs
        } else {
            0.0
        }
    }

    /// Share of commits that took the EPaxos fast path, among fast and slow ones
    /// (`None` when the protocol reports neither).
    pub fn fast_path_ratio(&self) -> Option<f64> {
        let fast: u64 = self.regions.iter().map(|r| r.fast).sum();
        let slow: u64 = self.regions.iter().map(|r| r.slow + r.recovered).sum();
        (fast + slow > 0).then(|| fast as f64 / (fast + slow) as f64)
    }

    /// All regions merged (cluster-wide latency).
    pub fn merged(&self) -> RegionStats {
        let mut all = RegionStats::new("all");
        for region in &self.regions {
            let _ = all.commit_us.add(&region.commit_us);
            let _ = all.execution_us.add(&region.execution_us);
            let _ = all.read_us.add(&region.read_us);
            let _ = all.write_us.add(&region.write_us);
            all.ok += region.ok;
            all.errors += region.errors;
            all.timeouts += region.timeouts;
            all.fast += region.fast;
            all.slow += region.slow;
            all.leader += region.leader;
            all.recovered += region.recovered;
            let _ = all.optimum_us.add(&region.optimum_us);
        }
        all
    }
}
