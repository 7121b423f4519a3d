//! Runs one (protocol, workload) pair on a backend and turns the measurements into a
//! [`RunReport`].

use crate::backend::cluster::{self, ClusterRun, Deployment};
use crate::backend::efficiency::Efficiency;
use crate::backend::sim::{self, SimOutcome, SimRun};
use crate::backend::verdict_text;
use crate::optimum;
use crate::protocols::ProtocolSpec;
use crate::report::{region_reports, RunReport};
use anyhow::anyhow;
use indicatif::ProgressBar;
use meridian_engine::dynamo::{Dynamo, DynamoConfig, Op, Ring};
use meridian_engine::epaxos::{Epaxos, EpaxosConfig};
use meridian_engine::multipaxos::{MultiPaxos, MultiPaxosConfig};
use meridian_engine::sim::{linearizable_history_of, OpRecord};
use meridian_engine::tempo::{Tempo, TempoConfig};
use meridian_engine::topology::Topology;
use meridian_engine::NodeId;
use meridian_engine::{Command, Consistency, Level};
use meridian_server::config::{
    DynamoKeyspace, EpaxosKeyspace, KeyspaceConfig, MultiPaxosKeyspace, TempoKeyspace,
};

/// Protocol settings a run varies besides the protocol itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// Most commands per Multi-Paxos slot and per EPaxos instance (default the engine's,
    /// 256: the replicas batch adaptively; 1 = no batching).
    pub batch: usize,
    /// Uncommitted own EPaxos instances per replica before requests queue (and so
    /// batch).
    pub epaxos_in_flight: usize,
    /// Multi-Paxos lease length (`None`: no leases).
    pub lease: Option<std::time::Duration>,
    /// Multi-Paxos: every replica holds a quorum lease.
    pub quorum_leases: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        let epaxos = EpaxosConfig::default();
        Self {
            batch: epaxos.max_batch,
            epaxos_in_flight: epaxos.max_in_flight,
            lease: None,
            quorum_leases: false,
        }
    }
}

impl Tuning {
    /// The Multi-Paxos configuration led from `leader` in a cluster of `members`.
    pub fn multipaxos(&self, leader: NodeId, members: Vec<NodeId>) -> MultiPaxosConfig {
        let mut config = MultiPaxosConfig::default()
            .with_initial_leader(leader)
            .with_max_batch(self.batch);
        config.lease = self.lease;
        if self.quorum_leases {
            config.quorum_lease_holders = members;
        }
        config
    }

    fn epaxos(&self, thrifty: bool, ordered: bool) -> EpaxosConfig {
        // The executed-command log is for tests: a run keeps only statistics (kept, it
        // grew by one entry per command and replica).
        EpaxosConfig::default()
            .with_thrifty(thrifty)
            .with_ordered_delivery(ordered)
            .with_batching(self.batch, self.epaxos_in_flight)
            .with_record_execution(false)
    }
}

/// Run `spec` under `run` in the simulator; returns the report and every operation (if
/// `run.keep_ops`).
pub fn run_sim(
    spec: &ProtocolSpec,
    run: &SimRun,
    tuning: Tuning,
    check: bool,
    progress: Option<&ProgressBar>,
) -> anyhow::Result<(RunReport, Vec<OpRecord>)> {
    let topology = &run.topology;
    let cluster = topology.membership();
    let conflict_pct = run.workload.conflict_pct().unwrap_or(0.0);
    let optimal = region_optimum(spec, topology, conflict_pct)?;
    let outcome: SimOutcome = match spec {
        ProtocolSpec::MultiPaxos { leader_region } => {
            let leader = leader_node(topology, leader_region)?;
            let config = tuning.multipaxos(leader, cluster.ids().collect());
            sim::run(
                run,
                move |id, seed, records| {
                    MultiPaxos::new(id, &cluster, config.clone(), seed, records)
                },
                |_| None,
                check,
                progress,
            )
        }
        ProtocolSpec::Epaxos { thrifty, ordered } => {
            let config = tuning.epaxos(*thrifty, *ordered);
            sim::run(
                run,
                move |id, seed, records| Epaxos::new(id, &cluster, config.clone(), seed, records),
                |_| None,
                check,
                progress,
            )
        }
        ProtocolSpec::Tempo { f } => {
            let config = TempoConfig::default()
                .with_f(*f)
                .with_record_execution(false);
            config.check(cluster.len()).map_err(|e| anyhow!("{e}"))?;
            sim::run(
                run,
                move |id, seed, records| Tempo::new(id, &cluster, config.clone(), seed, records),
                |_| None,
                check,
                progress,
            )
        }
        ProtocolSpec::Dynamo { level } => {
            let config = DynamoConfig::default();
            let mut run = run.clone();
            run.workload.consistency = Consistency::Dynamo(*level);
            let per_request = request_optimum(spec, topology);
            sim::run(
                &run,
                move |id, seed, records| Dynamo::new(id, &cluster, config.clone(), seed, records),
                move |op| per_request.as_ref().and_then(|f| f(op)),
                false,
                progress,
            )
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
        measured_conflict_rate: matches!(spec, ProtocolSpec::Epaxos { .. })
            .then(|| measured_conflict_rate(&outcome.metrics))
            .flatten(),
        regions: region_reports(stats, optimal),
        seed: run.seed,
        verdict: outcome.verdict,
        efficiency: Efficiency::of(0, None, None, topology.replicas().len(), &outcome.metrics),
        timeline: None,
        counters,
    };
    Ok((report, outcome.ops))
}

/// The optimum latency per region for `spec` (NaN for Dynamo, where every request has
/// its own: see [`request_optimum`]).
fn region_optimum(
    spec: &ProtocolSpec,
    topology: &Topology,
    conflict_pct: f64,
) -> anyhow::Result<Box<dyn Fn(usize) -> f64>> {
    let topology = topology.clone();
    Ok(match spec {
        ProtocolSpec::MultiPaxos { leader_region } => {
            let leader = leader_node(&topology, leader_region)?;
            Box::new(move |region| optimum::multipaxos_majority_ms(&topology, region, leader))
        }
        ProtocolSpec::Epaxos { .. } => {
            Box::new(move |region| optimum::epaxos_ms(&topology, region, conflict_pct))
        }
        ProtocolSpec::Tempo { f } => {
            let f = *f;
            Box::new(move |region| optimum::tempo_ms(&topology, region, f))
        }
        ProtocolSpec::Dynamo { .. } => Box::new(|_| f64::NAN),
    })
}

/// A request's own optimum, where the protocol has one (Dynamo: the key's owners).
pub type RequestOptimum = std::sync::Arc<dyn Fn(&OpRecord) -> Option<f64> + Send + Sync>;

/// [`RequestOptimum`] of `spec` on `topology`, if any.
fn request_optimum(spec: &ProtocolSpec, topology: &Topology) -> Option<RequestOptimum> {
    let ProtocolSpec::Dynamo { level } = spec else {
        return None;
    };
    let config = DynamoConfig::default();
    let ring = Ring::new(&topology.membership(), config.vnodes, config.replicas);
    let (topology, level) = (topology.clone(), *level);
    Some(std::sync::Arc::new(move |op| {
        dynamo_optimum_ms(&topology, &ring, level, op)
    }))
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

/// The keyspace a protocol configuration runs in. A local deployment serves one per
/// configuration; an existing one (`--nodes`) must serve `epaxos`, `tempo`, `multipaxos` and/or
/// `dynamo` as `meridian cluster up` generates them.
pub fn keyspace_name(spec: &ProtocolSpec, local: bool) -> String {
    match (spec, local) {
        (ProtocolSpec::Epaxos { thrifty: true, .. }, true) => "epaxos-thrifty".to_owned(),
        (ProtocolSpec::Epaxos { ordered: true, .. }, true) => "epaxos-ordered".to_owned(),
        (ProtocolSpec::Epaxos { .. }, _) => "epaxos".to_owned(),
        (ProtocolSpec::Tempo { f: 1 }, _) => "tempo".to_owned(),
        (ProtocolSpec::Tempo { f }, true) => format!("tempo-f{f}"),
        (ProtocolSpec::Tempo { .. }, false) => "tempo".to_owned(),
        (ProtocolSpec::MultiPaxos { leader_region }, true) => {
            format!("multipaxos-{}", leader_region.to_ascii_lowercase())
        }
        (ProtocolSpec::MultiPaxos { .. }, false) => "multipaxos".to_owned(),
        (ProtocolSpec::Dynamo { .. }, _) => "dynamo".to_owned(),
    }
}

/// The keyspaces a local deployment serves for `specs` (one per distinct name).
pub fn keyspaces_for(
    specs: &[ProtocolSpec],
    topology: &Topology,
    tuning: Tuning,
) -> anyhow::Result<Vec<KeyspaceConfig>> {
    let mut keyspaces: Vec<KeyspaceConfig> = Vec::new();
    for spec in specs {
        let name = keyspace_name(spec, true);
        if keyspaces.iter().any(|k| k.name() == name) {
            continue;
        }
        keyspaces.push(match spec {
            ProtocolSpec::Epaxos { thrifty, ordered } => KeyspaceConfig::Epaxos(EpaxosKeyspace {
                name,
                thrifty: Some(*thrifty),
                ordered_delivery: Some(*ordered),
                max_batch: Some(tuning.batch),
                max_in_flight: Some(tuning.epaxos_in_flight),
                ..Default::default()
            }),
            ProtocolSpec::Tempo { f } => KeyspaceConfig::Tempo(TempoKeyspace {
                name,
                f: Some(*f),
                ..Default::default()
            }),
            ProtocolSpec::MultiPaxos { leader_region } => {
                KeyspaceConfig::Multipaxos(MultiPaxosKeyspace {
                    name,
                    initial_leader: Some(leader_node(topology, leader_region)?),
                    max_batch: Some(tuning.batch),
                    lease_ms: tuning
                        .lease
                        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                    quorum_lease_holders: if tuning.quorum_leases {
                        topology.membership().ids().collect()
                    } else {
                        Vec::new()
                    },
                    ..Default::default()
                })
            }
            ProtocolSpec::Dynamo { .. } => KeyspaceConfig::Dynamo(DynamoKeyspace {
                name,
                replicas: Some(
                    DynamoConfig::default()
                        .replicas
                        .min(topology.replicas().len()),
                ),
                ..Default::default()
            }),
        });
    }
    Ok(keyspaces)
}

/// Run `spec` under `run` against `deployment`; returns the report and every operation
/// (if `run.keep_ops`).
pub async fn run_cluster(
    spec: &ProtocolSpec,
    run: &ClusterRun,
    deployment: &Deployment,
    keyspace: &str,
    check: bool,
    progress: Option<&ProgressBar>,
) -> anyhow::Result<(RunReport, Vec<OpRecord>)> {
    let topology = &run.topology;
    let mut run = run.clone();
    if let ProtocolSpec::Dynamo { level } = spec {
        run.workload.consistency = Consistency::Dynamo(*level);
    }
    let per_request = request_optimum(spec, topology);
    let outcome = cluster::run(deployment, keyspace, &run, per_request, progress).await?;
    let verdict = (run.keep_ops && check && spec.is_consensus())
        .then(|| verdict_text(&linearizable_history_of(&outcome.ops, run.client_timeout)));
    let counters = outcome
        .metrics
        .iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let decided = outcome.metrics.get("fast_path") + outcome.metrics.get("slow_path");
    let fast_path_ratio =
        (decided > 0).then(|| outcome.metrics.get("fast_path") as f64 / decided as f64);
    let optimal = region_optimum(spec, topology, run.workload.conflict_pct().unwrap_or(0.0))?;
    let report = RunReport {
        protocol: spec.to_string(),
        backend: "cluster".to_owned(),
        topology: topology.name().to_owned(),
        conflict_pct: run.workload.conflict_pct(),
        throughput_ops: outcome.stats.throughput(),
        fast_path_ratio,
        measured_conflict_rate: matches!(spec, ProtocolSpec::Epaxos { .. })
            .then(|| measured_conflict_rate(&outcome.metrics))
            .flatten(),
        regions: region_reports(&outcome.stats, optimal),
        seed: run.seed,
        verdict,
        counters,
        efficiency: outcome.efficiency,
        timeline: outcome.timeline,
    };
    Ok((report, outcome.ops))
}

#[cfg(test)]
#[path = "runner_test.rs"]
mod tests;
