//! EPaxos replicas that missed commits learn them without further load (issue 17, item
//! 1): executed-prefix reports run on their own timer, busy or idle, so a replica cut off
//! while the others committed hears, within seconds of the heal, what it never saw
//! committed and asks for it.

use meridian_engine::command::Command;
use meridian_engine::epaxos::{Epaxos, EpaxosConfig};
use meridian_engine::sim::{ClientConfig, DiskModel, PartitionMode, RandomKv, Sim, SimConfig};
use meridian_engine::topology::Topology;
use meridian_engine::{NodeId, RequestId, Response, Time};
use meridian_tests::seeds;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::time::Duration;

/// How long after the heal every replica must have executed every acknowledged write.
const CATCH_UP_BOUND: Duration = Duration::from_secs(10);

/// How long after the catch-up an idle cluster has forgotten every instance (a few GC
/// intervals: each replica reports, then collects on the others' reports).
const COLLECTION_BOUND: Duration = Duration::from_secs(3);

/// Requests whose reply was `Ok` and that change the map.
fn acknowledged_writes(sim: &Sim<Epaxos>) -> BTreeSet<RequestId> {
    sim.ops()
        .iter()
        .filter(|op| !matches!(op.request.command, Command::Get { .. }))
        .filter(|op| {
            op.reply
                .as_ref()
                .is_some_and(|r| matches!(r.outcome, Ok(Response::Kv(_))))
        })
        .map(|op| op.request.id)
        .collect()
}

/// Per replica, how many of `writes` it has not executed.
fn missing_per_replica(sim: &Sim<Epaxos>, writes: &BTreeSet<RequestId>) -> Vec<usize> {
    sim.live_nodes()
        .map(|(_, node)| {
            let executed: BTreeSet<RequestId> =
                node.executed().iter().map(|e| e.payload.request).collect();
            writes.difference(&executed).count()
        })
        .collect()
}

/// What a catch-up run found.
struct CaughtUp {
    /// How long after the heal the slowest replica executed the last acknowledged write.
    took: Duration,
    /// The simulation, idle, at that moment.
    sim: Sim<Epaxos>,
    /// How to run the seed again.
    replay: String,
}

/// One replica (drawn from the seed) is cut off for 3-10 s while the others commit; the
/// clients stop before the heal and nothing is asked afterwards. Within
/// [`CATCH_UP_BOUND`] of the heal every replica has executed every acknowledged write.
fn partitioned_replica_catches_up(
    test: &str,
    seed: u64,
    topology: Topology,
    config: EpaxosConfig,
) -> Result<CaughtUp, String> {
    let mut draw = ChaCha8Rng::seed_from_u64(seed ^ 0x17);
    let n = topology.membership().len();
    let victim = NodeId(draw.gen_range(0..n as u16));
    let cut_at = Time::from_millis(draw.gen_range(500..2_000));
    let heal_at = cut_at + Duration::from_millis(draw.gen_range(3_000..10_000));
    // The load ends before the heal, at a random point of the outage.
    let stop = heal_at - Duration::from_millis(draw.gen_range(200..2_500));
    let sim_config = SimConfig::new(seed, topology.clone())
        .with_disk(DiskModel {
            fsync: Duration::from_millis(1),
        })
        .with_clients(ClientConfig {
            timeout: Duration::from_secs(1),
            stop_at: Some(stop),
            ..ClientConfig::default()
        });
    let cluster = topology.membership();
    let mut sim = Sim::new(sim_config, move |id, seed, records| {
        Epaxos::new(id, &cluster, config.clone(), seed, records)
    });
    sim.add_topology_clients(|_, _| Box::new(RandomKv::new(500)), Time::ZERO);
    let others: Vec<NodeId> = sim.cluster().ids().filter(|&id| id != victim).collect();
    sim.run_until(cut_at);
    sim.partition(&[victim], &others, PartitionMode::Full);
    sim.run_until(heal_at);
    sim.heal();
    let writes = acknowledged_writes(&sim);
    let replay =
        format!("MERIDIAN_SEED={seed} cargo test -p meridian-tests --test sim -- {test} --exact");
    let missing_at_heal = missing_per_replica(&sim, &writes);
    assert!(
        missing_at_heal[victim.index()] > 0,
        "seed {seed}: {victim:?} missed nothing: the test does not exercise catch-up\n  replay: {replay}"
    );
    let step = Duration::from_millis(100);
    let mut waited = Duration::ZERO;
    loop {
        let missing = missing_per_replica(&sim, &writes);
        if missing.iter().all(|&m| m == 0) {
            return Ok(CaughtUp {
                took: waited,
                sim,
                replay,
            });
        }
        if waited >= CATCH_UP_BOUND {
            return Err(format!(
                "seed {seed}: {CATCH_UP_BOUND:?} after the heal, acknowledged writes not executed \
                 per replica: {missing:?} (at the heal: {missing_at_heal:?}, {} acknowledged)\n  replay: {replay}",
                writes.len()
            ));
        }
        sim.run_for(step);
        waited += step;
    }
}

fn topology_for(seed: u64) -> Topology {
    let name = if seed % 2 == 0 { "lan-3" } else { "epaxos-5" };
    Topology::builtin(name)
        .expect("builtin")
        .with_clients_per_region(3)
}

/// Issue 17: commits lost to a partition, no requests after the heal, 3 and 5 replicas
/// over 40 seeds: every replica executes every acknowledged write within seconds, and the
/// idle cluster then collects every instance.
#[test]
fn a_partitioned_replica_learns_every_commit_it_missed_without_further_load() {
    let test = "t12_epaxos_catch_up::a_partitioned_replica_learns_every_commit_it_missed_without_further_load";
    let mut times = Vec::new();
    let mut collected = 0;
    for seed in seeds(40) {
        let run =
            partitioned_replica_catches_up(test, seed, topology_for(seed), EpaxosConfig::default());
        let CaughtUp {
            took,
            mut sim,
            replay,
        } = run.unwrap_or_else(|failure| panic!("{failure}"));
        if took > Duration::from_millis(1_500) {
            println!("seed {seed}: {took:?}");
        }
        times.push(took);
        // The cluster is idle now: garbage collection still runs and forgets every
        // instance, since every replica executed all of them.
        sim.run_for(COLLECTION_BOUND);
        let live: Vec<usize> = sim.live_nodes().map(|(_, n)| n.live_instances()).collect();
        assert!(
            live.iter().all(|&l| l == 0),
            "seed {seed}: {COLLECTION_BOUND:?} into an idle cluster, live instances per \
             replica: {live:?}\n  replay: {replay}"
        );
        collected += sim.metrics().get("instances_collected");
    }
    assert!(collected > 0, "nothing collected");
    times.sort();
    println!(
        "catch-up after the heal over {} seeds: median {:?}, slowest {:?}; {collected} \
         instances collected on idle clusters",
        times.len(),
        times[times.len() / 2],
        times[times.len() - 1]
    );
}

/// Negative control: without executed-prefix reports (GC off) the same outage leaves
/// acknowledged writes unexecuted on the replica that was cut off.
#[test]
fn without_reports_a_partitioned_replica_stays_behind() {
    let test = "t12_epaxos_catch_up::without_reports_a_partitioned_replica_stays_behind";
    let config = EpaxosConfig {
        gc_interval: Duration::ZERO,
        ..EpaxosConfig::default()
    };
    let behind = seeds(4)
        .into_iter()
        .filter(|&seed| {
            partitioned_replica_catches_up(test, seed, topology_for(seed), config.clone()).is_err()
        })
        .count();
    assert!(
        behind > 0,
        "every replica caught up without reports: the check has no teeth"
    );
}
