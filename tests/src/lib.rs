//! Shared fixtures for Meridian's integration tests: seeded fault suites over the
//! simulator (swarm testing: every fault parameter derives from the seed; a chaos phase
//! then a reliable phase for liveness), with the command that replays a failing seed.

pub mod membership_plan;

use meridian_engine::check::{
    bounded_staleness_history_of, check_execution_order, check_kv, CheckConfig, Verdict,
};
use meridian_engine::epaxos::{Epaxos, EpaxosConfig, InstanceId, Record as EpaxosRecord};
use meridian_engine::sim::{
    ClientConfig, ClockConfig, DiskModel, FaultPlan, FaultProfile, RandomKv, Sim, SimConfig,
};
use meridian_engine::tempo::{Dot, Record as TempoRecord, Tempo, TempoConfig};
use meridian_engine::topology::Topology;
use meridian_engine::{Command, Consistency};
use meridian_engine::{Membership, NodeId, Protocol, Time};
use std::time::Duration;

/// Parameters of one seeded fault run.
#[derive(Clone, Debug)]
pub struct FaultRun {
    /// Topology.
    pub topology: Topology,
    /// Fault kinds drawn from the seed.
    pub profile: FaultProfile,
    /// Faults happen in `[0, chaos)`; everything is repaired at `chaos`.
    pub chaos: Duration,
    /// Time after the chaos phase for the cluster to recover and clients to finish.
    pub recovery: Duration,
    /// Requests per client.
    pub ops_per_client: u64,
    /// Keys the clients share (few keys = many conflicts).
    pub keys: u32,
    /// fsync latency (so crashes can catch records mid-sync).
    pub fsync: Duration,
    /// Client timeout.
    pub client_timeout: Duration,
    /// Replicas crashed for good at random times in the chaos phase (never restarted):
    /// use with a profile without crashes so no plan restarts them.
    pub permanent_crashes: usize,
    /// Replica clocks (skew and drift).
    pub clocks: ClockConfig,
    /// Reads at this level, with this share of gets (`None`: the default workload).
    pub reads: Option<(Consistency, f64)>,
    /// This share of the reads are range reads (scans of every key, some cut short by
    /// their limit, and counts) at this level (`None`: none).
    pub scans: Option<(Consistency, f64)>,
    /// Sync writes no effect waits for after the idle deadline, as the server does
    /// (false: only awaited writes' syncs take them; see `SimConfig::idle_sync_after`).
    pub idle_sync: bool,
}

impl Default for FaultRun {
    fn default() -> Self {
        Self {
            topology: Topology::builtin("epaxos-5").expect("builtin topology"),
            profile: FaultProfile::Chaos,
            chaos: Duration::from_secs(4),
            recovery: Duration::from_secs(20),
            ops_per_client: 30,
            keys: 3,
            fsync: Duration::from_micros(500),
            client_timeout: Duration::from_secs(2),
            permanent_crashes: 0,
            clocks: ClockConfig::default(),
            reads: None,
            scans: None,
            idle_sync: true,
        }
    }
}

/// What one seed's run produced.
pub struct FaultOutcome<P: Protocol> {
    /// The simulator after the run (for protocol-specific invariants).
    pub sim: Sim<P>,
    /// Requests that completed successfully.
    pub ok: usize,
    /// Requests with unknown outcome (timeouts).
    pub unknown: usize,
}

/// The checker's limits for the fault suites: ten times the default steps per key.
/// Bounded-staleness reads widened by their bound make wide histories: t23 seeds 480068
/// and 640099 ran out of the default 20 million steps and were reported inconclusive;
/// with this budget both are found linearizable in 3 to 6 s. A budget only matters when
/// a search runs out of it (the suite's time and memory did not move).
fn fault_suite_check() -> CheckConfig {
    CheckConfig {
        max_steps_per_key: 200_000_000,
        ..CheckConfig::default()
    }
}

/// Run one seed: random faults during the chaos phase, then a reliable network. Panics
/// (naming the seed and the replay command) if the history is not linearizable, or if
/// clients did not all finish after the faults healed (liveness).
pub fn run_fault_seed<P: Protocol + 'static>(
    test_name: &str,
    seed: u64,
    run: &FaultRun,
    factory: impl FnMut(NodeId, u64, Vec<P::Record>) -> P + 'static,
) -> FaultOutcome<P> {
    run_fault_seed_driven(test_name, seed, run, factory, None, |_| {})
}

/// [`run_fault_seed`] with an operator: every `tick` (if given) of the chaos and recovery
/// phases, `operator` acts on the running simulation (e.g. membership changes drawn from
/// the seed). Without a tick it is never called and the run is [`run_fault_seed`]'s.
pub fn run_fault_seed_driven<P: Protocol + 'static>(
    test_name: &str,
    seed: u64,
    run: &FaultRun,
    factory: impl FnMut(NodeId, u64, Vec<P::Record>) -> P + 'static,
    tick: Option<Duration>,
    mut operator: impl FnMut(&mut Sim<P>),
) -> FaultOutcome<P> {
    let replay = format!(
        "MERIDIAN_SEED={seed} cargo test -p meridian-tests --test sim -- {test_name} --exact"
    );
    let topology = run.topology.clone();
    let heal_at = Time::ZERO + run.chaos;
    let config = SimConfig::new(seed, topology)
        .with_disk(DiskModel { fsync: run.fsync })
        .with_clients(ClientConfig {
            timeout: run.client_timeout,
            ..ClientConfig::default()
        })
        .with_clocks(run.clocks.clone());
    let config = if run.idle_sync {
        config
    } else {
        config.without_idle_sync()
    };
    let mut sim = Sim::new(config, factory);
    // `MERIDIAN_TRACE=FILE` with `MERIDIAN_SEED`: the replayed run's event trace.
    let trace_file = std::env::var_os("MERIDIAN_TRACE");
    if trace_file.is_some() {
        sim.enable_trace();
    }
    let nodes: Vec<NodeId> = sim.cluster().ids().collect();
    sim.apply_plan(&FaultPlan::random(
        seed,
        run.profile,
        &nodes,
        Time::ZERO,
        heal_at,
    ));
    let (ops, keys) = (run.ops_per_client, run.keys);
    let (reads, scans) = (run.reads, run.scans);
    sim.add_topology_clients(
        move |_, _| {
            let workload = RandomKv::new(keys).with_max_ops(ops);
            let workload = match reads {
                Some((level, ratio)) => workload.with_reads(level, ratio),
                None => workload,
            };
            Box::new(match scans {
                Some((level, ratio)) => workload.with_scans(level, ratio),
                None => workload,
            })
        },
        Time::ZERO,
    );
    let end = heal_at + run.recovery;
    match tick {
        Some(tick) => {
            while sim.now() < end {
                let next = (sim.now() + tick).min(end);
                sim.run_until(next);
                operator(&mut sim);
            }
        }
        None => sim.run_until(end),
    }
    if let Some(file) = trace_file {
        std::fs::write(&file, sim.trace().join("\n")).expect("the trace file is writable");
    }

    assert!(
        sim.clients_idle(),
        "seed {seed}: liveness: clients still waiting {:?} after faults healed at {heal_at}\n  replay: {replay}",
        run.recovery
    );
    if let Ok(key) = std::env::var("MERIDIAN_HISTORY") {
        // Every operation on one key, to read a violation against the trace.
        for record in sim.ops().iter().chain(sim.in_flight()) {
            if record.request.command.key().as_slice() == key.as_bytes() {
                println!(
                    "{} at {:?} call {} ret {:?} {:?} {:?} -> {:?}",
                    record.client,
                    record.node,
                    record.call,
                    record.ret,
                    record.request.consistency,
                    record.request.command,
                    record.reply.as_ref().map(|r| &r.outcome)
                );
            }
        }
    }
    // Linearizable levels as they are, bounded-staleness reads widened by their bound.
    let history =
        bounded_staleness_history_of(sim.ops().iter().chain(sim.in_flight()), run.client_timeout);
    let report = check_kv(&history, &fault_suite_check());
    match report.verdict {
        Verdict::Linearizable => {}
        Verdict::Violation {
            key, explanation, ..
        } => panic!(
            "seed {seed}: history not linearizable on key {:?}:\n{explanation}\n  replay: {replay}",
            String::from_utf8_lossy(&key)
        ),
        Verdict::Inconclusive { keys } => {
            panic!(
                "seed {seed}: linearizability check inconclusive on {} keys\n  replay: {replay}",
                keys.len()
            )
        }
    }
    let ok = sim
        .ops()
        .iter()
        .filter(|o| o.reply.as_ref().is_some_and(|r| r.outcome.is_ok()))
        .count();
    let unknown = sim.ops().iter().filter(|o| o.timed_out).count();
    FaultOutcome { sim, ok, unknown }
}

/// A LAN-like topology of `n` single-replica regions with `rtt_ms` between any two,
/// for cluster sizes the built-in files do not have (N = 7, 9).
pub fn uniform_topology(n: usize, rtt_ms: f64) -> Topology {
    let mut text = format!("name = \"uniform-{n}\"\ndescription = \"{n} regions, {rtt_ms} ms apart (synthetic)\"\nregions = [\n");
    for i in 0..n {
        text += &format!("  {{ name = \"r{i}\", intra_rtt_ms = 0.1 }},\n");
    }
    text += "]\nlinks = [\n";
    for a in 0..n {
        for b in (a + 1)..n {
            text += &format!("  {{ a = \"r{a}\", b = \"r{b}\", rtt_ms = {rtt_ms:.3} }},\n");
        }
    }
    text += "]\n";
    Topology::parse(&text).expect("generated topology is valid")
}

/// Disks lost and rejoins completed in one seed's run: every replica that lost its disk
/// rejoined (checked per seed, so a failure names it). A rejoin can complete more than
/// once per lost disk: a crash before its end was durable resumes it at the restart.
pub fn lost_and_rejoined<P: Protocol>(seed: u64, sim: &Sim<P>) -> (u64, u64) {
    let lost = sim.stats().disks_lost;
    let rejoined = sim.metrics().get("rejoins_completed");
    let still: Vec<NodeId> = sim
        .live_nodes()
        .filter(|(_, node)| node.metrics().get("rejoining") != 0)
        .map(|(id, _)| id)
        .collect();
    assert!(
        still.is_empty() && rejoined >= lost,
        "seed {seed}: {lost} disks lost, {rejoined} rejoins completed, still rejoining at \
         the end: {still:?}"
    );
    (lost, rejoined)
}

/// Interfering commands ran in the same order on every live EPaxos replica that ran both.
pub fn epaxos_same_order(sim: &Sim<Epaxos>) -> Result<(), String> {
    let sequences: Vec<Vec<(InstanceId, Command)>> = sim
        .live_nodes()
        .map(|(_, node)| {
            node.executed()
                .iter()
                .map(|e| (e.instance, e.payload.command.clone()))
                .collect()
        })
        .collect();
    check_execution_order(&sequences)
}

/// EPaxos replicas of `cluster` with `config`, as the simulator builds them.
pub fn epaxos_factory(
    cluster: Membership,
    config: EpaxosConfig,
) -> impl FnMut(NodeId, u64, Vec<EpaxosRecord>) -> Epaxos {
    move |id, seed, records| Epaxos::new(id, &cluster, config.clone(), seed, records)
}

/// Tempo replicas of `cluster` with `config`, as the simulator builds them.
pub fn tempo_factory(
    cluster: Membership,
    config: TempoConfig,
) -> impl FnMut(NodeId, u64, Vec<TempoRecord>) -> Tempo {
    move |id, seed, records| Tempo::new(id, &cluster, config.clone(), seed, records)
}

/// Commands on one key ran in the same order on every live Tempo replica that ran both.
pub fn tempo_same_order(sim: &Sim<Tempo>) -> Result<(), String> {
    let sequences: Vec<Vec<(Dot, Command)>> = sim
        .live_nodes()
        .map(|(_, node)| {
            node.executed()
                .iter()
                .map(|e| (e.dot, e.command.clone()))
                .collect()
        })
        .collect();
    check_execution_order(&sequences)
}

/// A negative control's search: the first of `seeds` whose run breaks safety, described
/// with its seed. `run_seed` panics like [`run_fault_seed`] or returns a divergence;
/// only a history that is not linearizable or a divergence counts (a stalled run is not
/// evidence).
pub fn first_unsafe_seed(
    seeds: impl IntoIterator<Item = u64>,
    mut run_seed: impl FnMut(u64) -> Result<(), String>,
) -> Option<String> {
    for seed in seeds {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_seed(seed)));
        match result {
            Err(panic) => {
                let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
                if message.contains("not linearizable") {
                    let first = message.lines().next().unwrap_or("");
                    return Some(format!("seed {seed}: {first}"));
                }
            }
            Ok(Err(divergence)) => return Some(format!("seed {seed}: {divergence}")),
            Ok(Ok(())) => {}
        }
    }
    None
}

/// Seeds to run: `MERIDIAN_SEED=n` runs just that one (replay); otherwise `0..count`
/// offset by `MERIDIAN_SEED_BASE` (default 0) so CI can explore new seeds.
pub fn seeds(count: u64) -> Vec<u64> {
    if let Some(seed) = std::env::var("MERIDIAN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![seed];
    }
    let base: u64 = std::env::var("MERIDIAN_SEED_BASE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (base..base + count).collect()
}

/// Whether every sequence is a prefix of the longest one (state machine replication:
/// replicas apply the same commands in the same order, some lagging).
pub fn all_prefixes_of_longest<T: PartialEq>(sequences: &[&[T]]) -> Result<(), String> {
    let Some(longest) = sequences.iter().max_by_key(|s| s.len()) else {
        return Ok(());
    };
    for (i, sequence) in sequences.iter().enumerate() {
        if let Some(at) = sequence
            .iter()
            .zip(longest.iter())
            .position(|(a, b)| a != b)
        {
            return Err(format!(
                "sequence {i} diverges from the longest at position {at}"
            ));
        }
    }
    Ok(())
}

/// Whether replicas agree wherever both applied something: per position (a log slot),
/// every view that has entries there has the same ones. Views may lag, and may have gaps
/// where a replica installed a snapshot instead of applying slot by slot, or where it
/// keeps only recent history.
pub fn agree_by_slot<K: Ord + Clone + std::fmt::Debug, T: PartialEq + Clone>(
    views: &[&[(K, T)]],
) -> Result<(), String> {
    let mut reference: std::collections::BTreeMap<K, (usize, Vec<T>)> = Default::default();
    for (i, view) in views.iter().enumerate() {
        let mut grouped: std::collections::BTreeMap<K, Vec<T>> = Default::default();
        for (slot, item) in view.iter() {
            grouped.entry(slot.clone()).or_default().push(item.clone());
        }
        for (slot, items) in grouped {
            match reference.get(&slot) {
                Some((first, expected)) if *expected != items => {
                    return Err(format!(
                        "view {i} applied something else than view {first} at {slot:?}"
                    ));
                }
                Some(_) => {}
                None => {
                    reference.insert(slot, (i, items));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "lib_test.rs"]
mod tests;
