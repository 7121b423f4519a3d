use super::render;
use crate::backend::efficiency::Efficiency;
use crate::report::{RegionReport, RunReport};

fn region(name: &str, reads: u64) -> RegionReport {
    RegionReport {
        region: name.to_string(),
        ops: 100,
        errors: 0,
        p50_ms: 71.0,
        p90_ms: 71.0,
        p99_ms: 71.0,
        p999_ms: 71.0,
        exec_p50_ms: 71.0,
        exec_p99_ms: 71.0,
        reads,
        read_p50_ms: if reads > 0 { 0.14 } else { 0.0 },
        read_p99_ms: if reads > 0 { 0.2 } else { 0.0 },
        write_p50_ms: 71.0,
        write_p99_ms: 71.0,
        optimal_ms: 70.8,
        ratio: 1.003,
        cdf: Vec::new(),
    }
}

fn report(regions: Vec<RegionReport>) -> RunReport {
    RunReport {
        protocol: "epaxos".to_string(),
        backend: "sim".to_string(),
        topology: "epaxos-5".to_string(),
        conflict_pct: Some(0.0),
        throughput_ops: 610.0,
        fast_path_ratio: Some(1.0),
        measured_conflict_rate: None,
        regions,
        seed: 1,
        verdict: None,
        counters: Default::default(),
        efficiency: Default::default(),
        timeline: None,
    }
}

#[test]
fn a_run_without_reads_has_no_read_write_columns() {
    let text = render(&[report(vec![region("VA", 0), region("CA", 0)])]);
    assert!(!text.contains("read p50"), "{text}");
    let va = text
        .lines()
        .find(|line| line.trim_start().starts_with("VA"))
        .unwrap();
    assert!(va.trim_end().ends_with("1.003"), "{va}");
}

#[test]
fn a_run_with_reads_in_any_region_splits_reads_from_writes_everywhere() {
    let text = render(&[report(vec![region("VA", 0), region("CA", 5)])]);
    assert!(
        text.contains("read p50") && text.contains("write p99"),
        "{text}"
    );
    let ca = text
        .lines()
        .find(|line| line.trim_start().starts_with("CA"))
        .unwrap();
    assert!(ca.contains("0.14"), "{ca}");
    let va = text
        .lines()
        .find(|line| line.trim_start().starts_with("VA"))
        .unwrap();
    assert!(va.trim_end().ends_with("71.00"), "{va}");
}

#[test]
fn efficiency_figures_are_printed_when_measured() {
    let mut measured = report(vec![region("VA", 0)]);
    assert!(!render(std::slice::from_ref(&measured)).contains("per fsync"));
    measured.efficiency = Efficiency {
        replica_cpu_s_per_kop: Some(0.29),
        client_cpu_s_per_kop: Some(0.151),
        ops_per_fsync: Some(1.94),
        commands_per_instance: Some(3.0),
    };
    let text = render(&[measured]);
    assert!(
        text.contains("replica CPU 0.290 s per 1k ops (290 us/op), client CPU 151 us/op, 1.9 ops per fsync, 3.0 commands per instance"),
        "{text}"
    );
}

#[test]
fn tempo_runs_split_the_mean_stability_wait() {
    let mut run = report(vec![region("VA", 0)]);
    let text = render(std::slice::from_ref(&run));
    assert!(!text.contains("stability"), "{text}");
    for (name, value) in [
        ("stability_waits", 4),
        ("stability_wait_us", 100_000),
        ("stability_promise_wait_us", 20_000),
        ("stability_order_wait_us", 80_000),
    ] {
        run.counters.insert(name.to_string(), value);
    }
    let text = render(&[run]);
    assert!(
        text.contains("stability wait mean 25.0 ms (promises 5.0, lower proposals 20.0)"),
        "{text}"
    );
}

#[test]
fn a_timeline_names_each_change_where_it_began_and_ended() {
    use crate::backend::reconfigure::ChangeRecord;
    use crate::timeline::{TimelineReport, TimelineRow};
    let mut run = report(vec![region("VA", 0)]);
    assert!(!render(std::slice::from_ref(&run)).contains("latency over time"));
    let row = |start_s: f64, p50_ms: f64| TimelineRow {
        start_s,
        ops_per_s: 290.0,
        p50_ms,
        p99_ms: 130.0,
        max_ms: 140.0,
        failed: 0,
    };
    run.timeline = Some(TimelineReport {
        bucket_s: 2.0,
        rows: vec![row(0.0, 74.0), row(2.0, 103.5), row(4.0, 74.0)],
        changes: vec![ChangeRecord {
            change: "add:CA@2".into(),
            start_s: 2.0,
            end_s: 4.6,
            node: Some(5),
            outcome: "ok".into(),
        }],
    });
    let text = render(&[run]);
    let lines: Vec<&str> = text.lines().collect();
    let at = |t: &str| {
        *lines
            .iter()
            .find(|l| l.trim_start().starts_with(t))
            .unwrap_or_else(|| panic!("no row {t}: {text}"))
    };
    assert!(at("0.0").trim_end().ends_with('0'), "{text}");
    assert!(
        at("2.0").contains("103.5") && at("2.0").ends_with("add:CA@2 (replica 5) begins"),
        "{text}"
    );
    assert!(
        at("4.0").ends_with("add:CA@2 (replica 5) ends after 2.6 s: ok"),
        "{text}"
    );
}
