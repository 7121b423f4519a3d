//! Latency over time (`--timeline`, and every `--reconfigure` run): the run cut into
//! buckets of equal length by call time, each with its throughput, reply-latency
//! percentiles and failures, beside the membership changes made during it.
//!
//! ```text
//!  OpRecord ─▶ bucket = call / width ─▶ reply latency (call → reply) or a failure
//!  rows()   ─▶ [t, t + width): ops/s, p50, p99, max, failed    (JSON and the table)
//! ```
//!
//! Buckets go by call time, so a stall shows in the bucket where the waiting requests
//! were issued, and the whole run counts (warm-up and the drain after the end too).

use crate::backend::reconfigure::ChangeRecord;
use crate::stats::{histogram, MAX_LATENCY_US};
use hdrhistogram::Histogram;
use meridian_engine::sim::OpRecord;
use serde::Serialize;
use std::time::Duration;

/// The buckets of one run.
#[derive(Clone, Debug)]
pub struct Timeline {
    width: Duration,
    buckets: Vec<Bucket>,
}

#[derive(Clone, Debug)]
struct Bucket {
    latency_us: Histogram<u64>,
    failed: u64,
}

/// One bucket as reported.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimelineRow {
    /// Start of the bucket, seconds from the run's start.
    pub start_s: f64,
    /// Successful requests per second called in it.
    pub ops_per_s: f64,
    /// Reply latency percentiles of those requests (ms; 0 when none succeeded).
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Requests called in it that failed or timed out.
    pub failed: u64,
}

/// A run's latency over time and the changes made during it.
#[derive(Clone, Debug, Serialize)]
pub struct TimelineReport {
    /// Bucket length in seconds.
    pub bucket_s: f64,
    /// The buckets, in time order.
    pub rows: Vec<TimelineRow>,
    /// Membership changes (`--reconfigure`), in the order made.
    pub changes: Vec<ChangeRecord>,
}

impl Timeline {
    /// An empty timeline of `width`-long buckets (at least a millisecond).
    pub fn new(width: Duration) -> Self {
        Self {
            width: width.max(Duration::from_millis(1)),
            buckets: Vec::new(),
        }
    }

    /// Account one finished request.
    pub fn record(&mut self, op: &OpRecord) {
        let index = (op.call.as_micros() / self.width.as_micros() as u64) as usize;
        while self.buckets.len() <= index {
            self.buckets.push(Bucket {
                latency_us: histogram(),
                failed: 0,
            });
        }
        let bucket = &mut self.buckets[index];
        let ok = !op.timed_out && op.reply.as_ref().is_some_and(|r| r.outcome.is_ok());
        match op.latency().filter(|_| ok) {
            Some(latency) => {
                let us = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US);
                // Cannot fail: the value is clamped into the histogram's bounds.
                let _ = bucket.latency_us.record(us);
            }
            None => bucket.failed += 1,
        }
    }

    /// The buckets as rows.
    pub fn rows(&self) -> Vec<TimelineRow> {
        let width_s = self.width.as_secs_f64();
        let ms = |us: u64| us as f64 / 1e3;
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, bucket)| {
                let latency = &bucket.latency_us;
                TimelineRow {
                    start_s: i as f64 * width_s,
                    ops_per_s: latency.len() as f64 / width_s,
                    p50_ms: ms(latency.value_at_quantile(0.5)),
                    p99_ms: ms(latency.value_at_quantile(0.99)),
                    max_ms: ms(latency.max()),
                    failed: bucket.failed,
                }
            })
            .collect()
    }

    /// The report: rows and `changes`.
    pub fn report(&self, changes: Vec<ChangeRecord>) -> TimelineReport {
        TimelineReport {
            bucket_s: self.width.as_secs_f64(),
            rows: self.rows(),
            changes,
        }
    }
}

#[cfg(test)]
#[path = "timeline_test.rs"]
mod tests;
