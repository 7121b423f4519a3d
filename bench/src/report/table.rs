//! Plain-text tables for stdout.

use super::RunReport;
use crate::backend::efficiency::Efficiency;
use crate::timeline::TimelineReport;
use std::fmt::Write;

/// Render reports as one table per (protocol, workload).
pub fn render(reports: &[RunReport]) -> String {
    let mut out = String::new();
    for report in reports {
        let conflicts = report
            .conflict_pct
            .map_or_else(String::new, |c| format!(", {c}% conflicts"));
        let _ = writeln!(
            out,
            "\n{} on {} ({} backend{conflicts}, seed {})",
            report.protocol, report.topology, report.backend, report.seed
        );
        let mut summary = format!("  throughput {:.0} ops/s", report.throughput_ops);
        if let Some(fast) = report.fast_path_ratio {
            let _ = write!(summary, ", fast path {:.1}%", fast * 100.0);
        }
        if let Some(conflict) = report.measured_conflict_rate {
            let _ = write!(summary, ", measured conflicts {:.1}%", conflict * 100.0);
        }
        let counter = |name: &str| report.counters.get(name).copied().unwrap_or(0);
        let waits = counter("stability_waits");
        if waits > 0 {
            let mean = |name: &str| counter(name) as f64 / waits as f64 / 1000.0;
            let _ = write!(
                summary,
                ", stability wait mean {:.1} ms (promises {:.1}, lower proposals {:.1})",
                mean("stability_wait_us"),
                mean("stability_promise_wait_us"),
                mean("stability_order_wait_us")
            );
        }
        if let Some(verdict) = &report.verdict {
            let _ = write!(summary, ", verdict: {verdict}");
        }
        let _ = writeln!(out, "{summary}");
        if let Some(line) = efficiency_line(&report.efficiency) {
            let _ = writeln!(out, "  {line}");
        }
        // The read/write split only says something when the run had reads.
        let split = report.regions.iter().any(|region| region.reads > 0);
        let mut header = format!(
            "  {:<16} {:>8} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10} {:>9} {:>6}",
            "region",
            "ops",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "exec p50",
            "exec p99",
            "optimum",
            "ratio"
        );
        if split {
            let _ = write!(
                header,
                " {:>9} {:>9} {:>9} {:>9}",
                "read p50", "read p99", "write p50", "write p99"
            );
        }
        let _ = writeln!(out, "{header}");
        for region in &report.regions {
            let mut line = format!(
                "  {:<16} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>10.1} {:>10.1} {:>9.1} {:>6.3}",
                region.region,
                region.ops,
                region.p50_ms,
                region.p90_ms,
                region.p99_ms,
                region.p999_ms,
                region.exec_p50_ms,
                region.exec_p99_ms,
                region.optimal_ms,
                region.ratio
            );
            if split {
                let _ = write!(
                    line,
                    " {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                    region.read_p50_ms,
                    region.read_p99_ms,
                    region.write_p50_ms,
                    region.write_p99_ms
                );
            }
            let _ = writeln!(out, "{line}");
        }
        if let Some(timeline) = &report.timeline {
            out.push_str(&timeline_text(timeline));
        }
    }
    out
}

/// The latency over time, one line per bucket, with each membership change named in the
/// buckets where it began and ended.
fn timeline_text(timeline: &TimelineReport) -> String {
    let mut out = format!(
        "  latency over time (call -> reply, requests by call time, {} s buckets):\n  {:>7} {:>8} \
         {:>9} {:>9} {:>9} {:>6}  changes\n",
        timeline.bucket_s, "t s", "ops/s", "p50 ms", "p99 ms", "max ms", "failed"
    );
    let within = |t: f64, start: f64| t >= start && t < start + timeline.bucket_s;
    for row in &timeline.rows {
        let mut notes = Vec::new();
        for change in &timeline.changes {
            let replica = change
                .node
                .map_or_else(String::new, |id| format!(" (replica {id})"));
            if within(change.start_s, row.start_s) {
                notes.push(format!("{}{replica} begins", change.change));
            }
            if within(change.end_s, row.start_s) {
                notes.push(format!(
                    "{}{replica} ends after {:.1} s: {}",
                    change.change,
                    change.end_s - change.start_s,
                    change.outcome
                ));
            }
        }
        let _ = writeln!(
            out,
            "  {:>7.1} {:>8.1} {:>9.1} {:>9.1} {:>9.1} {:>6}  {}",
            row.start_s,
            row.ops_per_s,
            row.p50_ms,
            row.p99_ms,
            row.max_ms,
            row.failed,
            notes.join("; ")
        );
    }
    out
}

/// `replica CPU 0.290 s per 1k ops (290 us/op), client CPU 150 us/op, 1.9 ops per fsync,
/// 1.0 commands per instance`, leaving out what was not measured; `None` if nothing was.
fn efficiency_line(figures: &Efficiency) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(cpu) = figures.replica_cpu_s_per_kop {
        parts.push(format!(
            "replica CPU {cpu:.3} s per 1k ops ({:.0} us/op)",
            cpu * 1_000.0
        ));
    }
    if let Some(cpu) = figures.client_cpu_s_per_kop {
        parts.push(format!("client CPU {:.0} us/op", cpu * 1_000.0));
    }
    if let Some(ops) = figures.ops_per_fsync {
        parts.push(format!("{ops:.1} ops per fsync"));
    }
    if let Some(commands) = figures.commands_per_instance {
        parts.push(format!("{commands:.1} commands per instance"));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

#[cfg(test)]
#[path = "table_test.rs"]
mod tests;
