//! EPaxos replicas restarted from disk in the middle of a heavy load catch up: every
//! replica ends with the same key-value map, with nothing left blocked. (Found by the
//! server's kill -9 test: a replica that was down while instances committed never learned
//! the ones no later command depended on, so its map lagged for good and garbage
//! collection stopped at the first of them.)

use meridian_engine::check::{check_kv, CheckConfig, Verdict};
use meridian_engine::epaxos::{Epaxos, EpaxosConfig};
use meridian_engine::sim::{ClientConfig, DiskModel, RandomKv, Sim, SimConfig};
use meridian_engine::topology::Topology;
use meridian_engine::{NodeId, Protocol, Time};
use meridian_tests::seeds;
use std::time::Duration;

/// The process test's kill -9 schedule, in the simulator: 3 replicas 1 ms apart, 30
/// clients, a 2 ms fsync; each replica in turn is down for 1.5 s while the load goes on.
#[test]
fn replicas_restarted_under_load_catch_up() {
    let topology = Topology::builtin("lan-3")
        .expect("builtin")
        .with_clients_per_region(4);
    for seed in seeds(2) {
        let stop = Time::from_millis(11_000);
        let config = SimConfig::new(seed, topology.clone())
            .with_disk(DiskModel {
                fsync: Duration::from_millis(2),
            })
            .with_clients(ClientConfig {
                timeout: Duration::from_secs(2),
                stop_at: Some(stop),
                ..ClientConfig::default()
            });
        let cluster = topology.cluster_config();
        let mut sim = Sim::new(config, move |id, seed, records| {
            Epaxos::new(id, &cluster, EpaxosConfig::default(), seed, records)
        });
        sim.add_topology_clients(|_, _| Box::new(RandomKv::new(2_000)), Time::ZERO);
        for (round, victim) in [2u16, 0, 1].into_iter().enumerate() {
            let down = Time::from_millis(1_500 + 3_000 * round as u64);
            sim.run_until(down);
            sim.crash(NodeId(victim));
            sim.run_until(down + Duration::from_millis(1_500));
            sim.restart(NodeId(victim));
        }
        sim.run_until(stop + Duration::from_secs(15));
        let replay = format!(
            "MERIDIAN_SEED={seed} cargo test -p meridian-tests --test sim -- t11_epaxos_restart --exact"
        );
        let executed: Vec<usize> = sim.live_nodes().map(|(_, n)| n.executed().len()).collect();
        println!("seed {seed}: executed per replica {executed:?}");
        let report = check_kv(&sim.linearizable_history(), &CheckConfig::default());
        assert_eq!(
            report.verdict,
            Verdict::Linearizable,
            "seed {seed}\n  replay: {replay}"
        );
        let maps: Vec<_> = sim.live_nodes().map(|(_, n)| n.kv().clone()).collect();
        assert!(
            maps.windows(2).all(|w| w[0] == w[1]),
            "seed {seed}: replicas differ after catching up (executed {executed:?})\n  replay: {replay}"
        );
        assert!(executed[0] > 5_000, "too little load: {executed:?}");
        for (id, node) in sim.live_nodes() {
            let metrics = node.metrics();
            assert_eq!(
                (
                    metrics.get("execution_waiting"),
                    metrics.get("dependencies_missing")
                ),
                (0, 0),
                "seed {seed}: {id:?} still blocked\n  replay: {replay}"
            );
        }
    }
}
