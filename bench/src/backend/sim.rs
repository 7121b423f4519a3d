//! The simulator backend: the same protocol cores, virtual time, topology delays.

use crate::stats::RunStats;
use crate::workload::WorkloadSpec;
use indicatif::ProgressBar;
use meridian_engine::sim::{
    ClientConfig, ClientMode, DiskModel, FaultPlan, FaultProfile, OpRecord, Sim, SimConfig,
};
use meridian_engine::topology::Topology;
use meridian_engine::{Metrics, NodeId, Protocol, Time};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// One simulated run's parameters.
#[derive(Clone, Debug)]
pub struct SimRun {
    /// Topology (its `clients` per region are used).
    pub topology: Topology,
    /// Run seed.
    pub seed: u64,
    /// What clients ask.
    pub workload: WorkloadSpec,
    /// Requests issued before this are not measured.
    pub warmup: Duration,
    /// Measured time after warm-up.
    pub duration: Duration,
    /// Closed or open loop.
    pub mode: ClientMode,
    /// fsync latency of every replica.
    pub fsync: Duration,
    /// Faults during the measured window (healed at its end).
    pub faults: FaultProfile,
    /// Keep every operation (for `--history` and the correctness verdict).
    pub keep_ops: bool,
    /// Client request timeout.
    pub client_timeout: Duration,
}

/// What a simulated run produced.
pub struct SimOutcome {
    /// Latency statistics of the measured window.
    pub stats: RunStats,
    /// Protocol counters summed over replicas, plus simulator counters.
    pub metrics: Metrics,
    /// Every operation (when `keep_ops`).
    pub ops: Vec<OpRecord>,
    /// Linearizability verdict (when `keep_ops` and the protocol is a consensus one).
    pub verdict: Option<String>,
}

/// Time after the measured window for in-flight requests to finish (and, under faults,
/// for the cluster to recover).
const DRAIN: Duration = Duration::from_secs(10);

/// Run `factory`'s protocol under `run`. `optimum_ms` gives the best latency a request
/// could have had when it depends on the request (Dynamo keys); `None` otherwise.
pub fn run<P: Protocol + 'static>(
    run: &SimRun,
    factory: impl FnMut(NodeId, u64, Vec<P::Record>) -> P + 'static,
    optimum_ms: impl Fn(&OpRecord) -> Option<f64> + 'static,
    check_linearizability: bool,
    progress: Option<&ProgressBar>,
) -> SimOutcome {
    let start = Time::ZERO;
    let measure_from = start + run.warmup;
    let measure_to = measure_from + run.duration;
    let mut config = SimConfig::new(run.seed, run.topology.clone())
        .with_disk(DiskModel { fsync: run.fsync })
        .with_clients(ClientConfig {
            timeout: run.client_timeout,
            mode: run.mode,
            stop_at: Some(measure_to),
        });
    config.record_ops = run.keep_ops;
    let mut sim = Sim::new(config, factory);
    if run.faults != FaultProfile::None {
        let nodes: Vec<NodeId> = sim.cluster().ids().collect();
        sim.apply_plan(&FaultPlan::random(
            run.seed,
            run.faults,
            &nodes,
            measure_from,
            measure_to,
        ));
    }
    let regions = run
        .topology
        .regions()
        .iter()
        .map(|r| r.alias.clone().unwrap_or_else(|| r.name.clone()));
    let stats = Rc::new(RefCell::new(RunStats::new(
        regions,
        measure_from,
        measure_to,
    )));
    let observed = Rc::clone(&stats);
    sim.set_observer(move |op| observed.borrow_mut().record(op, optimum_ms(op)));
    let workload = run.workload.clone();
    sim.add_topology_clients(|_, _| Box::new(workload.generator()), start);

    let end = measure_to + DRAIN;
    let step = Duration::from_millis(100);
    while sim.now() < end {
        sim.run_for(step);
        if let Some(bar) = progress {
            bar.set_position(sim.now().as_micros() * 1000 / end.as_micros().max(1));
        }
        if sim.now() >= measure_to && sim.clients_idle() {
            break;
        }
    }
    let mut metrics = sim.metrics();
    let sim_stats = sim.stats();
    metrics.set("sim.events", sim_stats.events);
    metrics.set("sim.messages_sent", sim_stats.messages_sent);
    metrics.set("sim.messages_lost", sim_stats.messages_lost);
    metrics.set("sim.crashes", sim_stats.crashes);
    let verdict = (run.keep_ops && check_linearizability)
        .then(|| super::verdict_text(&sim.linearizable_history()));
    let stats = stats.borrow().clone();
    SimOutcome {
        stats,
        metrics,
        ops: sim.ops().to_vec(),
        verdict,
    }
}
