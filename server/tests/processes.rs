//! Real replica processes (`meridian serve`, one per node) on loopback, driven by the
//! client library: every protocol through different replicas on 3 and 5 nodes, kill -9
//! of replicas during a write load with no acknowledged write lost, and a SIGTERM rolling
//! restart under load that fails no request at the other replicas and loses none.

mod common;

use common::{free_addrs, meridian, scrape, TempDir};
use meridian_engine::check::{check_kv, CheckConfig, History, Verdict};
use meridian_engine::topology::Topology;
use meridian_engine::{
    ClientId, ClientReply, Command, CommandResult, Consistency, Level, Response, Time, Value,
};
use meridian_server::client::{Client, ClientOptions};
use meridian_server::launcher::LocalCluster;
use meridian_server::local_cluster::{default_keyspaces, ClusterSpec, PROTOCOLS};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The tests here take turns: each runs its own replica processes, and two clusters at
/// once on a 2-core machine starve each other's timers.
static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn spec(topology: &str, protocols: &[&str]) -> ClusterSpec {
    let topology = Topology::builtin(topology).expect("builtin topology");
    let n = topology.replicas().len();
    let protocols: Vec<String> = protocols.iter().map(|p| p.to_string()).collect();
    ClusterSpec {
        topology_ref: topology.name().to_owned(),
        topology,
        addresses: free_addrs(n),
        metrics: None,
        keyspaces: default_keyspaces(&protocols, n).expect("keyspaces"),
        wan: false,
    }
}

async fn start(dir: &TempDir, spec: &ClusterSpec) -> LocalCluster {
    let cluster = LocalCluster::start(dir.path(), spec, meridian()).expect("start replicas");
    if let Err(e) = cluster.wait_all_ready(Duration::from_secs(60)).await {
        panic!("{e}\n{}", cluster.log_tail(0, 30));
    }
    cluster
}

async fn clients(cluster: &LocalCluster) -> Vec<Client> {
    let tls = cluster.client_tls().expect("client certificate");
    let mut clients = Vec::new();
    for node in &cluster.manifest().nodes {
        clients.push(Client::connect(node.address, &tls).await.expect("connect"));
    }
    clients
}

fn kv(reply: ClientReply) -> CommandResult {
    match reply.outcome {
        Ok(Response::Kv(result)) => result,
        other => panic!("expected a key-value result, got {other:?}"),
    }
}

fn siblings(reply: ClientReply) -> Vec<Option<Value>> {
    match reply.outcome {
        Ok(Response::Versioned(versioned)) => {
            assert!(versioned.receipt.met, "{:?}", versioned.receipt);
            versioned.siblings
        }
        other => panic!("expected a versioned result, got {other:?}"),
    }
}

/// Put, get, cas and delete on each consensus keyspace, and a causal overwrite on the
/// Dynamo keyspace, every step through a different replica than the previous one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protocol_serves_through_different_replicas_on_3_and_5_nodes() {
    let _turn = ONE_CLUSTER_AT_A_TIME.lock().await;
    for topology in ["lan-3", "lan-5"] {
        let dir = TempDir::new(&format!("serve-{topology}"));
        let cluster = start(&dir, &spec(topology, PROTOCOLS)).await;
        let c = clients(&cluster).await;
        let last = c.len() - 1;
        let (key, v1, v2, v3) = (b"k".as_slice(), b"v1".as_slice(), b"v2", b"v3");
        for keyspace in ["multipaxos", "epaxos", "tempo"] {
            let at = |i: usize| &c[i % c.len()];
            assert_eq!(
                kv(at(0).put(keyspace, key, v1, None).await.unwrap()),
                CommandResult::Written
            );
            assert_eq!(
                kv(at(last).get(keyspace, key, None).await.unwrap()),
                CommandResult::Value(Some(v1.to_vec()))
            );
            assert_eq!(
                kv(at(1)
                    .cas(keyspace, key, Some(v1.to_vec()), v2, None)
                    .await
                    .unwrap()),
                CommandResult::Cas {
                    applied: true,
                    previous: Some(v1.to_vec())
                }
            );
            assert_eq!(
                kv(at(2)
                    .cas(keyspace, key, Some(v1.to_vec()), v3, None)
                    .await
                    .unwrap()),
                CommandResult::Cas {
                    applied: false,
                    previous: Some(v2.to_vec())
                }
            );
            kv(at(last).delete(keyspace, key, None).await.unwrap());
            assert_eq!(
                kv(at(0).get(keyspace, key, None).await.unwrap()),
                CommandResult::Value(None),
                "{topology}/{keyspace}"
            );
        }
        let quorum = Some(Consistency::Dynamo(Level::Quorum));
        let all = Some(Consistency::Dynamo(Level::All));
        siblings(c[0].put("dynamo", key, v1, quorum).await.unwrap());
        assert_eq!(
            siblings(c[last].get("dynamo", key, quorum).await.unwrap()),
            vec![Some(v1.to_vec())]
        );
        // c[last] holds the read's context: its write supersedes v1 instead of joining it.
        siblings(c[last].put("dynamo", key, v2, quorum).await.unwrap());
        assert_eq!(
            siblings(c[1].get("dynamo", key, all).await.unwrap()),
            vec![Some(v2.to_vec())],
            "{topology}/dynamo"
        );
        for client in &c {
            client.close().await;
        }
    }
}

/// What the load saw on one keyspace.
#[derive(Default)]
struct Observed {
    history: History,
    /// Acknowledged writes of keys written exactly once.
    acknowledged: Vec<(Vec<u8>, Vec<u8>)>,
}

struct Load {
    start: Instant,
    stop: AtomicBool,
    observed: Mutex<Observed>,
}

impl Load {
    fn now(&self) -> Time {
        Time::from_micros(self.start.elapsed().as_micros() as u64)
    }
}

/// One client's loop on a consensus keyspace: mostly writes of keys written once (to
/// find them after the crashes), some puts/gets/cas on shared keys (to give the
/// linearizability checker real contention).
async fn consensus_writer(load: Arc<Load>, client: Client, keyspace: &'static str, task: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(task);
    let mut i = 0u64;
    while !load.stop.load(Ordering::Relaxed) {
        i += 1;
        let value = format!("{task}:{i}").into_bytes();
        let unique = rng.gen_bool(0.85);
        let command = if unique {
            Command::Put {
                key: format!("u/{task}/{i}").into_bytes(),
                value: value.clone(),
            }
        } else {
            let key = format!("shared/{}", rng.gen_range(0..4)).into_bytes();
            match rng.gen_range(0..3) {
                0 => Command::Put { key, value },
                1 => Command::Get { key },
                _ => Command::Cas {
                    key,
                    expected: None,
                    new: value,
                },
            }
        };
        let op = {
            let mut observed = load.observed.lock().unwrap();
            observed
                .history
                .invoke(client.id(), command.clone(), load.now())
        };
        let reply = client.execute(keyspace, command.clone(), None).await;
        let answered = {
            let mut observed = load.observed.lock().unwrap();
            let at = load.now();
            match reply.map(|r| r.outcome) {
                Ok(Ok(Response::Kv(result))) => {
                    observed.history.complete(op, at, result);
                    if let (true, Command::Put { key, value }) = (unique, command) {
                        observed.acknowledged.push((key, value));
                    }
                    true
                }
                Ok(Err(e)) if e.is_definite() => {
                    observed.history.fail(op, at, e.to_string());
                    false
                }
                _ => {
                    observed.history.unknown(op, at);
                    false
                }
            }
        };
        if !answered {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// One client's loop on the Dynamo keyspace: QUORUM writes of keys written once.
async fn dynamo_writer(load: Arc<Load>, client: Client, task: u64) {
    let quorum = Some(Consistency::Dynamo(Level::Quorum));
    let mut i = 0u64;
    while !load.stop.load(Ordering::Relaxed) {
        i += 1;
        let key = format!("u/{task}/{i}").into_bytes();
        let value = format!("{task}:{i}").into_bytes();
        match client.put("dynamo", &key, &value, quorum).await {
            Ok(ClientReply {
                outcome: Ok(Response::Versioned(v)),
                ..
            }) if v.receipt.met => {
                load.observed
                    .lock()
                    .unwrap()
                    .acknowledged
                    .push((key, value));
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Read every acknowledged write back (reads spread over the replicas, many in flight);
/// consensus reads join the keyspace's history. Returns how many were found.
async fn verify(
    keyspace: &'static str,
    load: Arc<Load>,
    readers: Vec<Arc<Client>>,
    acknowledged: Vec<(Vec<u8>, Vec<u8>)>,
) -> usize {
    let mut tasks = tokio::task::JoinSet::new();
    for (r, reader) in readers.iter().enumerate() {
        let mine: Vec<(Vec<u8>, Vec<u8>)> = acknowledged
            .iter()
            .skip(r)
            .step_by(readers.len())
            .cloned()
            .collect();
        for (c, chunk) in mine.chunks(mine.len().div_ceil(16).max(1)).enumerate() {
            // Each task is one sequential client of the history.
            let history_client = ClientId(u64::MAX - (r * 16 + c) as u64);
            let (reader, load, chunk) = (Arc::clone(reader), Arc::clone(&load), chunk.to_vec());
            tasks.spawn(async move {
                let (mut found, mut retries) = (0, 0);
                for (key, value) in chunk {
                    let wanted = Some(value);
                    if keyspace == "dynamo" {
                        let all = Some(Consistency::Dynamo(Level::All));
                        for attempt in 1.. {
                            match reader.get(keyspace, &key, all).await.map(|r| r.outcome) {
                                Ok(Ok(Response::Versioned(v))) if v.receipt.met => {
                                    found += usize::from(v.siblings.contains(&wanted));
                                    break;
                                }
                                outcome => {
                                    retries += 1;
                                    assert!(attempt < 5, "dynamo read keeps failing: {outcome:?}");
                                }
                            }
                        }
                        continue;
                    }
                    let command = Command::Get { key };
                    for attempt in 1.. {
                        let op = load.observed.lock().unwrap().history.invoke(
                            history_client,
                            command.clone(),
                            load.now(),
                        );
                        let reply = reader.execute(keyspace, command.clone(), None).await;
                        let mut observed = load.observed.lock().unwrap();
                        match reply.map(|r| r.outcome) {
                            Ok(Ok(Response::Kv(result))) => {
                                if result == CommandResult::Value(wanted.clone()) {
                                    found += 1;
                                } else {
                                    eprintln!(
                                        "{keyspace}: {} read {result:?} at {}, expected {:?}",
                                        String::from_utf8_lossy(command.key()),
                                        reader.addr(),
                                        wanted.as_deref().map(String::from_utf8_lossy)
                                    );
                                }
                                observed.history.complete(op, load.now(), result);
                                break;
                            }
                            outcome => {
                                observed.history.unknown(op, load.now());
                                retries += 1;
                                assert!(attempt < 5, "{keyspace}: read keeps failing: {outcome:?}");
                            }
                        }
                    }
                }
                (found, retries)
            });
        }
    }
    let (mut found, mut retries) = (0, 0);
    while let Some(counts) = tasks.join_next().await {
        let (f, r) = counts.expect("verification task");
        found += f;
        retries += r;
    }
    println!("{keyspace}: verification reads retried after an unknown outcome: {retries}");
    found
}

/// Issue 4: kill -9 a replica during a write load (three times: the Multi-Paxos initial
/// leader first, then the others), restart it from its data directory, and check that
/// every acknowledged write is readable afterwards through every replica and that the
/// consensus histories (load and final reads) are linearizable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_write_load_loses_no_acknowledged_write() {
    let _turn = ONE_CLUSTER_AT_A_TIME.lock().await;
    let dir = TempDir::new("kill9");
    let mut spec = spec("lan-3", PROTOCOLS);
    spec.metrics = Some(free_addrs(3));
    let mut cluster = start(&dir, &spec).await;
    let tls = cluster.client_tls().unwrap();
    let options = ClientOptions {
        timeout: Duration::from_secs(2),
        ..ClientOptions::default()
    };
    let loads: Vec<(&'static str, Arc<Load>)> = ["multipaxos", "epaxos", "tempo", "dynamo"]
        .into_iter()
        .map(|keyspace| {
            let load = Load {
                start: Instant::now(),
                stop: AtomicBool::new(false),
                observed: Mutex::default(),
            };
            (keyspace, Arc::new(load))
        })
        .collect();
    let mut tasks = Vec::new();
    let mut task = 0;
    for node in &cluster.manifest().nodes {
        for (keyspace, load) in &loads {
            for _ in 0..2 {
                task += 1;
                let client = Client::connect_with(node.address, &tls, options.clone())
                    .await
                    .expect("connect");
                let load = Arc::clone(load);
                tasks.push(if *keyspace == "dynamo" {
                    tokio::spawn(dynamo_writer(load, client, task))
                } else {
                    tokio::spawn(consensus_writer(load, client, keyspace, task))
                });
            }
        }
    }
    let ids = cluster.ids();
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let victim = ids[round % ids.len()];
        cluster.kill(victim).expect("kill -9");
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        cluster.restart(victim).expect("restart");
        if let Err(e) = cluster.wait_ready([victim], Duration::from_secs(60)).await {
            let running = cluster.is_running(victim);
            eprintln!("round {round}: {e} (victim process running: {running})");
            for node in &cluster.manifest().nodes {
                let metrics = scrape(node.metrics.expect("metrics address"));
                let epaxos: Vec<&str> = metrics
                    .lines()
                    .filter(|l| l.contains("epaxos") && !l.contains("_bucket"))
                    .collect();
                eprintln!(
                    "node {} log:\n{}\nmetrics:\n{}",
                    node.id,
                    cluster.log_tail(node.id, 40),
                    epaxos.join("\n")
                );
            }
            panic!("round {round}: {e} (victim process running: {running})");
        }
    }
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    for (_, load) in &loads {
        load.stop.store(true, Ordering::Relaxed);
    }
    for task in tasks {
        task.await.expect("load task");
    }
    cluster
        .wait_all_ready(Duration::from_secs(60))
        .await
        .expect("cluster ready after the kills");

    let readers: Vec<Arc<Client>> = clients(&cluster).await.into_iter().map(Arc::new).collect();
    for (keyspace, load) in &loads {
        let acknowledged = load.observed.lock().unwrap().acknowledged.clone();
        let verified = tokio::spawn(verify(
            keyspace,
            Arc::clone(load),
            readers.clone(),
            acknowledged.clone(),
        ));
        let found = match verified.await {
            Ok(found) => found,
            Err(e) => {
                for node in &cluster.manifest().nodes {
                    let text = scrape(node.metrics.expect("metrics address"));
                    let lines: Vec<&str> = text
                        .lines()
                        .filter(|l| l.contains(keyspace) && !l.contains("_bucket"))
                        .collect();
                    eprintln!("node {} metrics:\n{}", node.id, lines.join("\n"));
                }
                panic!("{keyspace}: verification failed: {e}");
            }
        };
        println!(
            "{keyspace}: {} acknowledged writes of unique keys, {found} found after 3 kill -9s",
            acknowledged.len()
        );
        assert!(
            acknowledged.len() > 100,
            "{keyspace}: too little load to show anything"
        );
        assert_eq!(
            found,
            acknowledged.len(),
            "{keyspace}: acknowledged writes lost"
        );
        if *keyspace != "dynamo" {
            let history = load.observed.lock().unwrap().history.clone();
            let counts = history.counts();
            let report = check_kv(&history, &CheckConfig::default());
            println!(
                "{keyspace}: history {} ok, {} failed, {} unknown: {:?} ({} ops checked)",
                counts.ok, counts.fail, counts.unknown, report.verdict, report.ops_checked
            );
            assert_eq!(report.verdict, Verdict::Linearizable, "{keyspace}");
        }
    }
}

/// Writes (key, value) acknowledged per keyspace.
type Acknowledged = BTreeMap<&'static str, Vec<(Vec<u8>, Vec<u8>)>>;

/// The rolling restart's shared state.
struct Rolling {
    stop: AtomicBool,
    /// The node being restarted (`u16::MAX`: none).
    victim: AtomicU16,
    /// Acknowledged writes per keyspace.
    acknowledged: Mutex<Acknowledged>,
    /// Requests that failed at a replica not being restarted.
    failures: Mutex<Vec<String>>,
    /// Requests that failed at the replica being restarted (expected: refused while it
    /// drains, unreachable while it is down; the writer retries).
    at_victim: AtomicU64,
}

/// Writes of keys written once through one replica, until told to stop.
async fn rolling_writer(
    state: Arc<Rolling>,
    client: Client,
    node: u16,
    keyspace: &'static str,
    task: u64,
) {
    let consistency = (keyspace == "dynamo").then_some(Consistency::Dynamo(Level::Quorum));
    let mut i = 0u64;
    while !state.stop.load(Ordering::Relaxed) {
        i += 1;
        let key = format!("r/{task}/{i}").into_bytes();
        let value = format!("{task}:{i}").into_bytes();
        let victim_before = state.victim.load(Ordering::SeqCst);
        let reply = client.put(keyspace, &key, &value, consistency).await;
        let acknowledged = match &reply {
            Ok(ClientReply {
                outcome: Ok(Response::Kv(CommandResult::Written)),
                ..
            }) => true,
            Ok(ClientReply {
                outcome: Ok(Response::Versioned(v)),
                ..
            }) => v.receipt.met,
            _ => false,
        };
        if acknowledged {
            let mut acknowledged = state.acknowledged.lock().unwrap();
            acknowledged.entry(keyspace).or_default().push((key, value));
            continue;
        }
        if node == victim_before || node == state.victim.load(Ordering::SeqCst) {
            state.at_victim.fetch_add(1, Ordering::Relaxed);
        } else {
            let failure = format!("node {node}, {keyspace}: {reply:?}");
            state.failures.lock().unwrap().push(failure);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Issue 17: a rolling restart with SIGTERM (each node drains, exits, restarts, serves
/// again before the next; the Multi-Paxos leader first) under a write load through every
/// replica on every protocol. No request through the replicas not being restarted fails,
/// and every acknowledged write is read back afterwards through every replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_rolling_restart_under_load_fails_no_request_elsewhere_and_loses_none() {
    let _turn = ONE_CLUSTER_AT_A_TIME.lock().await;
    let dir = TempDir::new("rolling");
    let mut spec = spec("lan-3", PROTOCOLS);
    spec.metrics = Some(free_addrs(3));
    let mut cluster = start(&dir, &spec).await;
    let tls = cluster.client_tls().unwrap();
    let options = ClientOptions {
        timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    };
    let state = Arc::new(Rolling {
        stop: AtomicBool::new(false),
        victim: AtomicU16::new(u16::MAX),
        acknowledged: Mutex::default(),
        failures: Mutex::default(),
        at_victim: AtomicU64::new(0),
    });
    let mut tasks = Vec::new();
    let mut task = 0;
    for node in &cluster.manifest().nodes {
        for keyspace in ["multipaxos", "epaxos", "tempo", "dynamo"] {
            for _ in 0..2 {
                task += 1;
                let client = Client::connect_with(node.address, &tls, options.clone())
                    .await
                    .expect("connect");
                let state = Arc::clone(&state);
                tasks.push(tokio::spawn(rolling_writer(
                    state, client, node.id, keyspace, task,
                )));
            }
        }
    }
    let mut drains = Vec::new();
    for victim in cluster.ids() {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        state.victim.store(victim, Ordering::SeqCst);
        let exited =
            tokio::task::block_in_place(|| cluster.terminate(victim, Duration::from_secs(20)));
        let exited = match exited {
            Ok(took) => took,
            Err(e) => panic!("{e}\n{}", cluster.log_tail(victim, 30)),
        };
        drains.push(exited);
        cluster.restart(victim).expect("restart");
        if let Err(e) = cluster.wait_ready([victim], Duration::from_secs(60)).await {
            panic!("node {victim}: {e}\n{}", cluster.log_tail(victim, 40));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        state.victim.store(u16::MAX, Ordering::SeqCst);
    }
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    state.stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("load task");
    }
    let failures = state.failures.lock().unwrap().clone();
    println!(
        "rolling restart: SIGTERM to exit {drains:?}; {} requests refused or unreachable at \
         the restarting replica; {} failed elsewhere",
        state.at_victim.load(Ordering::Relaxed),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "requests failed at replicas not being restarted:\n{}",
        failures.join("\n")
    );
    let take_overs: u64 = cluster
        .manifest()
        .nodes
        .iter()
        .flat_map(|node| {
            scrape(node.metrics.expect("metrics"))
                .lines()
                .filter(|l| {
                    l.contains("keyspace=\"multipaxos\"") && l.contains("name=\"take_overs\"")
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum();
    println!("multipaxos: {take_overs} take-overs on the running replicas");
    assert!(
        take_overs >= 1,
        "no Multi-Paxos leader hand-off was taken over"
    );

    let readers: Vec<Arc<Client>> = clients(&cluster).await.into_iter().map(Arc::new).collect();
    let acknowledged = state.acknowledged.lock().unwrap().clone();
    for keyspace in ["multipaxos", "epaxos", "tempo", "dynamo"] {
        let writes = acknowledged.get(keyspace).cloned().unwrap_or_default();
        let load = Arc::new(Load {
            start: Instant::now(),
            stop: AtomicBool::new(true),
            observed: Mutex::default(),
        });
        let found = verify(keyspace, load, readers.clone(), writes.clone()).await;
        println!(
            "{keyspace}: {} acknowledged writes during the rolling restart, {found} found",
            writes.len()
        );
        assert!(
            writes.len() > 100,
            "{keyspace}: too little load to show anything"
        );
        assert_eq!(found, writes.len(), "{keyspace}: acknowledged writes lost");
    }
}
