//! EPaxos replicas restarted from disk in the middle of a heavy load catch up: every
//! replica ends with the same key-value map, with nothing left blocked. (Found by the
//! server's kill -9 test: a replica that was down while instances committed never learned
//! the ones no later command depended on, so its map lagged for good and garbage
//! collection stopped at the first of them.)

use meridian_engine::check::{check_kv, CheckConfig, Verdict};
use meridian_engine::epaxos::{Epaxos, EpaxosConfig};
use meridian_engine::sim::{
    ClientConfig, DiskModel, OpRecord, PartitionMode, RandomKv, Sim, SimConfig,
};
use meridian_engine::topology::Topology;
use meridian_engine::{ClientId, NodeId, Protocol, Time};
use meridian_tests::seeds;
use std::time::Duration;

type EpaxosSim = Sim<Epaxos>;

/// 3 replicas 1 ms apart, 12 clients, a 2 ms fsync, load until `stop`; `schedule` injects
/// the faults, then the run goes on 15 s past `stop` and everything is checked.
fn run_restarts(
    test: &str,
    seed: u64,
    stop: Time,
    schedule: impl FnOnce(&mut EpaxosSim),
) -> EpaxosSim {
    let topology = Topology::builtin("lan-3")
        .expect("builtin")
        .with_clients_per_region(4);
    let config = SimConfig::new(seed, topology.clone())
        .with_disk(DiskModel {
            fsync: Duration::from_millis(2),
        })
        .with_clients(ClientConfig {
            timeout: Duration::from_secs(2),
            stop_at: Some(stop),
            ..ClientConfig::default()
        });
    let cluster = topology.membership();
    let mut sim = Sim::new(config, move |id, seed, records| {
        Epaxos::new(id, &cluster, EpaxosConfig::default(), seed, records)
    });
    sim.add_topology_clients(|_, _| Box::new(RandomKv::new(2_000)), Time::ZERO);
    schedule(&mut sim);
    sim.run_until(stop + Duration::from_secs(15));
    let replay =
        format!("MERIDIAN_SEED={seed} cargo test -p meridian-tests --test sim -- {test} --exact");
    let executed: Vec<usize> = sim.live_nodes().map(|(_, n)| n.executed().len()).collect();
    println!("seed {seed}: executed per replica {executed:?}");
    let report = check_kv(&sim.linearizable_history(), &CheckConfig::default());
    assert_eq!(
        report.verdict,
        Verdict::Linearizable,
        "seed {seed}\n  replay: {replay}"
    );
    for (id, node) in sim.live_nodes() {
        let metrics = node.metrics();
        assert_eq!(
            (
                metrics.get("execution_waiting"),
                metrics.get("dependencies_missing"),
                metrics.get("recoveries_in_progress"),
            ),
            (0, 0, 0),
            "seed {seed}: {id:?} still blocked\n  replay: {replay}"
        );
    }
    let maps: Vec<_> = sim.live_nodes().map(|(_, n)| n.kv().clone()).collect();
    assert!(
        maps.windows(2).all(|w| w[0] == w[1]),
        "seed {seed}: replicas differ after catching up (executed {executed:?})\n  replay: {replay}"
    );
    assert!(executed[0] > 5_000, "too little load: {executed:?}");
    sim
}

/// The process test's kill -9 schedule: each replica in turn is down for 1.5 s while the
/// load goes on.
#[test]
fn replicas_restarted_under_load_catch_up() {
    for seed in seeds(2) {
        let stop = Time::from_millis(11_000);
        run_restarts(
            "t11_epaxos_restart::replicas_restarted_under_load_catch_up",
            seed,
            stop,
            |sim| {
                for (round, victim) in [2u16, 0, 1].into_iter().enumerate() {
                    let down = Time::from_millis(1_500 + 3_000 * round as u64);
                    sim.run_until(down);
                    sim.crash(NodeId(victim));
                    sim.run_until(down + Duration::from_millis(1_500));
                    sim.restart(NodeId(victim));
                }
            },
        );
    }
}

/// The kill -9 schedule as CI once ran it over QUIC, where a survivor kept sending on its
/// connection to the dead process until the idle timeout: n1 restarts but cannot reach n0
/// for 8.5 s; meanwhile n2 dies, and after its restart it reaches nobody for 16 s. Work
/// stalls for lack of a majority and must all finish once the network heals.
#[test]
fn restarts_behind_stale_connections_finish_every_request() {
    let [n0, n1, n2] = [NodeId(0), NodeId(1), NodeId(2)];
    for seed in seeds(3) {
        let at = Time::from_millis;
        let stop = at(30_000);
        let sim = run_restarts(
            "t11_epaxos_restart::restarts_behind_stale_connections_finish_every_request",
            seed,
            stop,
            |sim| {
                sim.run_until(at(1_500));
                sim.crash(n0);
                sim.run_until(at(3_000));
                sim.restart(n0);
                sim.run_until(at(4_500));
                sim.crash(n1);
                sim.run_until(at(6_000));
                sim.partition(&[n1], &[n0], PartitionMode::Full);
                sim.restart(n1);
                sim.run_until(at(7_500));
                sim.crash(n2);
                sim.run_until(at(9_000));
                sim.partition(&[n2], &[n0, n1], PartitionMode::Full);
                sim.restart(n2);
                sim.run_until(at(14_500));
                sim.heal();
                sim.partition(&[n2], &[n0, n1], PartitionMode::Full);
                sim.run_until(at(25_000));
                sim.heal();
                for client in 0..sim.client_count() as u64 {
                    let client = ClientId(client);
                    let home = sim.client_region(client).expect("client");
                    sim.redirect_client(client, NodeId(home as u16));
                }
            },
        );
        // Progress resumed after the last heal, on every replica: the clients that failed
        // over come home, and from then on every request is answered.
        for (id, node) in [n0, n1, n2].into_iter().enumerate() {
            let issued: Vec<&OpRecord> = sim
                .ops()
                .iter()
                .filter(|op| op.node == node && op.call >= at(25_000))
                .collect();
            let answered = issued.iter().filter(|op| op.reply.is_some()).count();
            assert!(
                answered > 100 && answered == issued.len(),
                "seed {seed}: replica {id} answered {answered} of {} requests after the heal",
                issued.len()
            );
        }
    }
}
