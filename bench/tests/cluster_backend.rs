//! The cluster backend end to end: local replica processes (this package's
//! `meridian-bench serve-replica`), clients over QUIC, a checked history and the
//! replicas' path counters.

use meridian_bench::backend::cluster::{ClusterRun, Deployment};
use meridian_bench::protocols::ProtocolSpec;
use meridian_bench::report::RunReport;
use meridian_bench::runner;
use meridian_bench::workload::WorkloadSpec;
use meridian_engine::check::history::OpRecord;
use meridian_engine::id::ClientId;
use meridian_engine::sim::ClientMode;
use meridian_engine::time::Time;
use meridian_engine::topology::Topology;
use meridian_server::launcher::ServerCommand;
use std::collections::HashMap;
use std::time::Duration;

/// `lan-3` with two clients per rack, and EPaxos beside Multi-Paxos led from `leader`.
fn lan_3(leader: &str) -> (Topology, [ProtocolSpec; 2]) {
    let topology = Topology::builtin("lan-3")
        .expect("builtin")
        .with_clients_per_region(2);
    let protocols = [
        ProtocolSpec::Epaxos {
            thrifty: false,
            ordered: false,
        },
        ProtocolSpec::MultiPaxos {
            leader_region: leader.into(),
        },
    ];
    (topology, protocols)
}

/// Local replicas (this package's `serve-replica`) serving `protocols`, in a fresh
/// directory named by `tag`, the topology named as `topology_ref` (a builtin or a file).
async fn start(
    topology: &Topology,
    topology_ref: &str,
    protocols: &[ProtocolSpec],
    tag: &str,
) -> (Deployment, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("meridian-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let command = ServerCommand {
        program: env!("CARGO_BIN_EXE_meridian-bench").into(),
        args: vec!["serve-replica".into()],
    };
    let keyspaces =
        runner::keyspaces_for(protocols, topology, runner::Tuning::default()).expect("keyspaces");
    let deployment = Deployment::local(topology, topology_ref, keyspaces, &dir, command, true)
        .await
        .expect("replicas start");
    (deployment, dir)
}

fn assert_linearizable(spec: &ProtocolSpec, report: &RunReport) {
    assert!(
        report
            .verdict
            .as_deref()
            .is_some_and(|v| v.starts_with("linearizable")),
        "{spec}: {:?}",
        report.verdict
    );
}

/// Whether some client had a request in flight when it issued another.
fn overlaps_within_a_client(ops: &[OpRecord]) -> bool {
    let mut by_client: HashMap<ClientId, Vec<(Time, Time)>> = HashMap::new();
    for op in ops {
        let ret = op.ret.unwrap_or(Time::MAX);
        by_client.entry(op.client).or_default().push((op.call, ret));
    }
    by_client.values_mut().any(|spans| {
        spans.sort();
        spans.windows(2).any(|pair| pair[1].0 < pair[0].1)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epaxos_and_multipaxos_runs_on_real_replicas_are_measured_and_linearizable() {
    let (topology, protocols) = lan_3("rack-2");
    let (deployment, dir) = start(&topology, "lan-3", &protocols, "it").await;
    for spec in &protocols {
        for conflict_pct in [0.0, 100.0] {
            // The contended run keeps three requests in flight per client: pipelined
            // lanes on one connection must stay linearizable too.
            let outstanding = if conflict_pct == 100.0 { 3 } else { 1 };
            let run = ClusterRun {
                topology: topology.clone(),
                seed: 7,
                workload: WorkloadSpec::conflicts(conflict_pct),
                warmup: Duration::from_millis(500),
                duration: Duration::from_secs(2),
                mode: ClientMode::Closed,
                outstanding,
                keep_ops: true,
                client_timeout: Duration::from_secs(5),
                timeline: None,
                reconfigure: Vec::new(),
            };
            let keyspace = runner::keyspace_name(spec, true);
            let (report, ops) = runner::run_cluster(spec, &run, &deployment, &keyspace, true, None)
                .await
                .expect("run");
            println!(
                "{spec} {conflict_pct}%: {:.0} ops/s, fast path {:?}, {:?}",
                report.throughput_ops, report.fast_path_ratio, report.verdict
            );
            assert_linearizable(spec, &report);
            assert!(
                report.regions.iter().all(|r| r.ops > 0),
                "{spec}: a region did nothing"
            );
            assert!(ops.len() as f64 >= report.throughput_ops, "every op kept");
            assert_eq!(
                overlaps_within_a_client(&ops),
                outstanding > 1,
                "{spec}: a client's requests overlap exactly when it keeps several in flight"
            );
            if let ProtocolSpec::Epaxos { .. } = spec {
                let ratio = report.fast_path_ratio.expect("path counters scraped");
                if conflict_pct == 0.0 {
                    assert_eq!(ratio, 1.0, "no conflicts: every commit on the fast path");
                }
            }
        }
    }
    drop(deployment);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--reconfigure`: a replica added and then removed while the clients run, for a
/// leaderless and a leader-based keyspace; the changes go through, the history stays
/// linearizable and the timeline shows the cluster serving before, during and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_added_and_removed_during_a_run_show_in_its_timeline() {
    use meridian_bench::backend::reconfigure::Change;
    let (_, protocols) = lan_3("rack-1");
    // A topology file (not a builtin): the replicas' configs and the added replica must
    // find it again by its path.
    let file =
        std::env::temp_dir().join(format!("meridian-rc-topology-{}.toml", std::process::id()));
    let builtin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../topologies/lan-3.toml");
    let text = std::fs::read_to_string(builtin).expect("lan-3.toml");
    std::fs::write(
        &file,
        text.replace("name = \"lan-3\"", "name = \"lan-3-copy\""),
    )
    .expect("write");
    let file = file.to_string_lossy().into_owned();
    let topology = Topology::resolve(&file)
        .expect("the copy loads")
        .with_clients_per_region(2);
    assert_eq!(topology.name(), "lan-3-copy");
    let (deployment, dir) = start(&topology, &file, &protocols, "rc").await;
    let changes: Vec<Change> = ["add:rack-2@2", "remove:added@5"]
        .iter()
        .map(|c| c.parse().expect("change"))
        .collect();
    for (run_index, spec) in protocols.iter().enumerate() {
        let run = ClusterRun {
            topology: topology.clone(),
            seed: 11,
            workload: WorkloadSpec::conflicts(25.0),
            warmup: Duration::from_millis(500),
            duration: Duration::from_secs(7),
            mode: ClientMode::Closed,
            outstanding: 1,
            keep_ops: true,
            client_timeout: Duration::from_secs(5),
            timeline: Some(Duration::from_secs(1)),
            reconfigure: changes.clone(),
        };
        let keyspace = runner::keyspace_name(spec, true);
        let (report, _) = runner::run_cluster(spec, &run, &deployment, &keyspace, true, None)
            .await
            .expect("run");
        let timeline = report.timeline.clone().expect("a timeline");
        println!("{spec}: {:?}", timeline.changes);
        // Each run adds the next id: 3, then 4.
        let added = 3 + run_index as u16;
        assert_eq!(timeline.changes.len(), 2, "{spec}");
        for change in &timeline.changes {
            assert_eq!(change.outcome, "ok", "{spec}: {change:?}");
            assert_eq!(change.node, Some(added), "{spec}: {change:?}");
        }
        assert!(timeline.changes[0].start_s >= 2.0 && timeline.changes[1].start_s >= 5.0);
        assert_linearizable(spec, &report);
        // The added and removed replica's CPU is counted too (read before its stop).
        assert!(
            report.efficiency.replica_cpu_s_per_kop.is_some(),
            "{spec}: replica CPU unknown"
        );
        // Served before the add, around the changes, and at the end of the run (the
        // removal may end after it on a loaded machine: a stopped replica drains first).
        let last = timeline.rows.last().expect("rows").start_s;
        for (what, t) in [
            ("before", 1.0),
            ("around the changes", 4.0),
            ("at the end", last),
        ] {
            let row = timeline
                .rows
                .iter()
                .find(|r| r.start_s <= t && t < r.start_s + timeline.bucket_s)
                .unwrap_or_else(|| panic!("{spec}: no bucket at {t} s: {:?}", timeline.rows));
            assert!(
                row.ops_per_s > 0.0,
                "{spec}: nothing served {what}: {row:?}"
            );
        }
    }
    drop(deployment);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&file);
}
