//! The cluster backend end to end: local replica processes (this package's
//! `meridian-bench serve-replica`), clients over QUIC, a checked history and the
//! replicas' path counters.

use meridian_bench::backend::cluster::{ClusterRun, Deployment};
use meridian_bench::protocols::ProtocolSpec;
use meridian_bench::runner;
use meridian_bench::workload::WorkloadSpec;
use meridian_engine::sim::ClientMode;
use meridian_engine::topology::Topology;
use meridian_server::launcher::ServerCommand;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epaxos_and_multipaxos_runs_on_real_replicas_are_measured_and_linearizable() {
    let topology = Topology::builtin("lan-3")
        .expect("builtin")
        .with_clients_per_region(2);
    let protocols = [
        ProtocolSpec::Epaxos {
            thrifty: false,
            ordered: false,
        },
        ProtocolSpec::MultiPaxos {
            leader_region: "rack-2".into(),
        },
    ];
    let dir = std::env::temp_dir().join(format!("meridian-bench-it-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let command = ServerCommand {
        program: env!("CARGO_BIN_EXE_meridian-bench").into(),
        args: vec!["serve-replica".into()],
    };
    let keyspaces =
        runner::keyspaces_for(&protocols, &topology, runner::Tuning::default()).expect("keyspaces");
    let deployment = Deployment::local(&topology, keyspaces, &dir, command, true)
        .await
        .expect("replicas start");
    for spec in &protocols {
        for conflict_pct in [0.0, 100.0] {
            let run = ClusterRun {
                topology: topology.clone(),
                seed: 7,
                workload: WorkloadSpec::conflicts(conflict_pct),
                warmup: Duration::from_millis(500),
                duration: Duration::from_secs(2),
                mode: ClientMode::Closed,
                keep_ops: true,
                client_timeout: Duration::from_secs(5),
            };
            let keyspace = runner::keyspace_name(spec, true);
            let (report, ops) = runner::run_cluster(spec, &run, &deployment, &keyspace, true, None)
                .await
                .expect("run");
            println!(
                "{spec} {conflict_pct}%: {:.0} ops/s, fast path {:?}, {:?}",
                report.throughput_ops, report.fast_path_ratio, report.verdict
            );
            assert!(
                report
                    .verdict
                    .as_deref()
                    .is_some_and(|v| v.starts_with("linearizable")),
                "{spec}: {:?}",
                report.verdict
            );
            assert!(
                report.regions.iter().all(|r| r.ops > 0),
                "{spec}: a region did nothing"
            );
            assert!(ops.len() as f64 >= report.throughput_ops, "every op kept");
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
