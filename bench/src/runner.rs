//! Runs one (protocol, workload) pair on a backend and turns the measurements into a
//! [`RunReport`].

use crate::backend::sim::{self, SimOutcome, SimRun};
use crate::optimum;
use crate::protocols::ProtocolSpec;
use crate::report::{region_reports, RunReport};
use anyhow::anyhow;
use indicatif::ProgressBar;
use meridian_engine::dynamo::{Dynamo, DynamoConfig, Op, Ring};
use meridian_engine::epaxos::{Epaxos, EpaxosConfig};
use meridian_engine::multipaxos::{MultiPaxos, MultiPaxosConfig};
use meridian_engine::sim::OpRecord;
use meridian_engine::topology::Topology;
use meridian_engine::NodeId;
use meridian_engine::{Command, Consistency, Level};

/// Run `spec` under `run` in the simulator; returns the report and every operation (if
/// `run.keep_ops`).
pub fn run_sim(
    spec: &ProtocolSpec,
    run: &SimRun,
    check: bool,
    progress: Option<&ProgressBar>,
) -> anyhow::Result<(RunReport, Vec<OpRecord>)> {
    let topology = &run.topology;
    let cluster = topology.cluster_config();
    let conflict_pct = run.workload.conflict_pct().unwrap_or(0.0);
    let (outcome, optimal): (SimOutcome, Box<dyn Fn(usize) -> f64>) = match spec {
        ProtocolSpec::MultiPaxos { leader_region } => {
            let leader = leader_node(topology, leader_region)?;
            let config = MultiPaxosConfig::default().with_initial_leader(leader);
            let outcome = sim::run(
                run,
                move |id, seed, records| {
                    MultiPaxos::new(id, &cluster, config.clone(), seed, records)
                },
                |_| None,
                check,
                progress,
            );
            let topology = topology.clone();
            (
                outcome,
                Box::new(move |region| optimum::multipaxos_majority_ms(&topology, region, leader)),
            )
        }
        ProtocolSpec::Epaxos { thrifty } => {
            let config = EpaxosConfig::default().with_thrifty(*thrifty);
            let outcome = sim::run(
                run,
                move |id, seed, records| Epaxos::new(id, &cluster, config.clone(), seed, records),
                |_| None,
                check,
                progress,
            );
            let topology = topology.clone();
            (
                outcome,
                Box::new(move |region| optimum::epaxos_ms(&topology, region, conflict_pct)),
            )
        }
        ProtocolSpec::Dynamo { level } => {
            let config = DynamoConfig::default();
            let ring = Ring::new(&cluster, config.vnodes, config.replicas);
            let mut run = run.clone();
            run.workload.consistency = Consistency::Dynamo(*level);
            let (topology, level) = (topology.clone(), *level);
            let outcome = sim::run(
                &run,
                move |id, seed, records| Dynamo::new(id, &cluster, config.clone(), seed, records),
                move |op| dynamo_optimum_ms(&topology, &ring, level, op),
                false,
                progress,
            );
            // Every measured request has its own optimum; regions without any have none.
            (outcome, Box::new(|_| f64::NAN))
        }
    };
    let stats = &outcome.stats;
    let counters = outcome
        .metrics
        .iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let report = RunReport {
        protocol: spec.to_string(),
        backend: "sim".to_owned(),
        topology: topology.name().to_owned(),
        conflict_pct: run.workload.conflict_pct(),
        throughput_ops: stats.throughput(),
        fast_path_ratio: stats.fast_path_ratio(),
        measured_conflict_rate: measured_conflict_rate(&outcome.metrics),
        regions: region_reports(stats, optimal),
        seed: run.seed,
        verdict: outcome.verdict,
        counters,
    };
    Ok((report, outcome.ops))
}

/// The best latency `op` could have had at `level` (see [`optimum::dynamo_request_ms`]).
pub fn dynamo_optimum_ms(
    topology: &Topology,
    ring: &Ring,
    level: Level,
    op: &OpRecord,
) -> Option<f64> {
    let kind = match op.request.command {
        Command::Get { .. } => Op::Read,
        _ => Op::Write,
    };
    let owners = ring.preference_for(op.request.command.key());
    optimum::dynamo_request_ms(topology, owners, level, kind, op.region)
}

/// Share of EPaxos commits whose PreAccept round found conflicting attributes.
fn measured_conflict_rate(metrics: &meridian_engine::Metrics) -> Option<f64> {
    let decided = metrics.get("fast_path") + metrics.get("slow_path");
    (decided > 0).then(|| metrics.get("conflicts") as f64 / decided as f64)
}

/// The replica that leads first: the first replica in the named region.
fn leader_node(topology: &Topology, region: &str) -> anyhow::Result<NodeId> {
    let index = topology
        .region_index(region)
        .ok_or_else(|| anyhow!("region {region:?} is not in topology {}", topology.name()))?;
    topology
        .replicas()
        .into_iter()
        .find(|&(_, r)| r == index)
        .map(|(node, _)| node)
        .ok_or_else(|| anyhow!("region {region:?} has no replica to lead"))
}
