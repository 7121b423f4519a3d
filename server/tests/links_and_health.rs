//! Peer links between real replica processes when something else claims a node's
//! identity or cannot join: a live duplicate of a node (same id, same certificate, other
//! ports) is refused and the real node keeps its links; an impostor that exits leaves no
//! replica cut off; an impostor accepted while the real node was down gives the link back
//! when the real node returns; misconfigured processes (a foreign CA, a client
//! certificate as node certificate) redial with backoff and are logged at WARN once per
//! interval, never at INFO per attempt; "peer connected" is logged once per peer.

mod common;

use common::{free_addrs, meridian, scrape, TempDir};
use meridian_engine::topology::Topology;
use meridian_engine::{ClientReply, CommandResult, Consistency, Level, Response};
use meridian_server::client::{Client, ClientOptions};
use meridian_server::launcher::{self, LocalCluster};
use meridian_server::local_cluster::{default_keyspaces, ClusterSpec};
use meridian_server::tls::TlsIdentity;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

/// One cluster at a time: each test runs its own replica processes.
static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn start(dir: &TempDir, protocols: &[&str]) -> LocalCluster {
    let topology = Topology::builtin("lan-3").expect("builtin topology");
    let protocols: Vec<String> = protocols.iter().map(|p| p.to_string()).collect();
    let spec = ClusterSpec {
        topology_ref: topology.name().to_owned(),
        topology,
        addresses: free_addrs(3),
        metrics: Some(launcher::free_tcp_addrs(3).expect("free tcp ports")),
        keyspaces: default_keyspaces(&protocols, 3).expect("keyspaces"),
        wan: false,
    };
    let cluster = LocalCluster::start(dir.path(), &spec, meridian()).expect("start replicas");
    if let Err(e) = cluster.wait_all_ready(Duration::from_secs(60)).await {
        panic!("{e}\n{}", cluster.log_tail(0, 30));
    }
    cluster
}

fn log(dir: &TempDir, name: &str) -> String {
    std::fs::read_to_string(dir.path().join(name)).unwrap_or_default()
}

fn lines_with(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

/// A copy of node `id`'s config as a second process would run it: its own listen port,
/// data directory and metrics port; `edit` changes more lines (certificates).
fn copy_config(
    dir: &TempDir,
    id: u16,
    name: &str,
    edit: impl Fn(&str) -> Option<String>,
) -> PathBuf {
    let text = std::fs::read_to_string(dir.path().join(format!("node-{id}.toml"))).unwrap();
    let listen = free_addrs(1)[0];
    let metrics = launcher::free_tcp_addrs(1).unwrap()[0];
    let copied: Vec<String> = text
        .lines()
        .map(|line| {
            if let Some(edited) = edit(line) {
                edited
            } else if line.starts_with("listen = ") {
                format!("listen = \"{listen}\"")
            } else if line.starts_with("data_dir = ") {
                format!("data_dir = \"data/{name}\"")
            } else if line.starts_with("metrics = ") {
                format!("metrics = \"{metrics}\"")
            } else {
                line.to_owned()
            }
        })
        .collect();
    let path = dir.path().join(format!("{name}.toml"));
    std::fs::write(&path, copied.join("\n")).unwrap();
    path
}

/// A process started here, killed when dropped (a failing test leaves none behind).
struct Spawned(Child);

impl Spawned {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    fn running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The copy has a data directory of its own, so it starts with `--init` (else the data
/// directory identity check refuses it before it reaches the peers).
fn spawn(dir: &TempDir, config: &Path, name: &str) -> Spawned {
    let mut command = meridian();
    command.args.push("--init".into());
    let child = launcher::spawn_replica(
        &command,
        config,
        &dir.path().join(format!("{name}.log")),
        false,
    )
    .expect("start a process");
    Spawned(child)
}

async fn client(cluster: &LocalCluster, tls: &TlsIdentity, id: u16) -> Client {
    let options = ClientOptions {
        timeout: Duration::from_secs(2),
        ..ClientOptions::default()
    };
    let addr = cluster.manifest().nodes[usize::from(id)].address;
    Client::connect_with(addr, tls, options)
        .await
        .expect("connect")
}

/// A put that needs node 2: at ALL on Dynamo (every replica acknowledges), linearizable
/// on Multi-Paxos.
async fn put(client: &Client, keyspace: &str, key: &str) -> Result<(), String> {
    let consistency = (keyspace == "dynamo").then_some(Consistency::Dynamo(Level::All));
    match client
        .put(keyspace, key.as_bytes(), b"v", consistency)
        .await
    {
        Ok(ClientReply {
            outcome: Ok(Response::Versioned(v)),
            ..
        }) if v.receipt.met => Ok(()),
        Ok(ClientReply {
            outcome: Ok(Response::Kv(CommandResult::Written)),
            ..
        }) => Ok(()),
        Ok(reply) => Err(format!("{keyspace}: {:?}", reply.outcome)),
        Err(e) => Err(format!("{keyspace}: {e}")),
    }
}

/// Puts through every client on both keyspaces.
async fn all_puts(clients: &[&Client], tag: &str) -> Result<(), String> {
    for (i, c) in clients.iter().enumerate() {
        for keyspace in ["dynamo", "multipaxos"] {
            put(c, keyspace, &format!("{tag}/{i}")).await?;
        }
    }
    Ok(())
}

/// How long until puts through every client succeed (panics after `limit`).
async fn heal_time(clients: &[&Client], started: Instant, limit: Duration) -> Duration {
    let mut n = 0;
    loop {
        n += 1;
        match all_puts(clients, &format!("heal-{n}")).await {
            Ok(()) => return started.elapsed(),
            Err(e) if started.elapsed() > limit => {
                panic!("still cut off {:?} later: {e}", started.elapsed())
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn transport_counter(page: &str, event: &str) -> u64 {
    let needle = format!("event=\"{event}\"}}");
    page.lines()
        .find(|l| l.starts_with("meridian_transport_total{") && l.contains(&needle))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no transport counter {event} in:\n{page}"))
}

fn metrics_addr(cluster: &LocalCluster, id: u16) -> SocketAddr {
    cluster.manifest().nodes[usize::from(id)]
        .metrics
        .expect("metrics address")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_node_is_refused_and_links_heal_whatever_the_impostor_does() {
    let _turn = ONE_CLUSTER_AT_A_TIME.lock().await;
    let dir = TempDir::new("dup-node");
    let mut cluster = start(&dir, &["multipaxos", "dynamo"]).await;
    let tls = cluster.client_tls().unwrap();
    let (c0, c1) = (
        client(&cluster, &tls, 0).await,
        client(&cluster, &tls, 1).await,
    );
    all_puts(&[&c0, &c1], "before")
        .await
        .expect("healthy cluster");
    let startup_logs: Vec<String> = (0..3)
        .map(|id| log(&dir, &format!("node-{id}.log")))
        .collect();

    // A live duplicate of node 2 (same id and certificate, other ports): refused by
    // both survivors; node 2 keeps its links and every put needing it succeeds.
    let config = copy_config(&dir, 2, "impostor-a", |_| None);
    let mut impostor = spawn(&dir, &config, "impostor-a");
    let phase = Instant::now();
    let mut n = 0;
    while phase.elapsed() < Duration::from_secs(4) {
        n += 1;
        all_puts(&[&c0, &c1], &format!("dup-{n}"))
            .await
            .unwrap_or_else(|e| panic!("a put failed while a duplicate ran: {e}"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(impostor.running(), "the duplicate kept running");
    // The duplicate exits (kill -9): nobody is cut off.
    impostor.kill();
    let healed = heal_time(&[&c0, &c1], Instant::now(), Duration::from_secs(20)).await;
    eprintln!("after the duplicate's exit: puts through both survivors in {healed:?}");
    assert!(healed < Duration::from_secs(3), "{healed:?}");

    // One "peer connected" per peer at startup (issue 11, defect 11).
    for (id, text) in startup_logs.iter().enumerate() {
        assert_eq!(
            lines_with(text, "peer connected"),
            2,
            "node {id} logs each of its 2 peers once:\n{text}"
        );
    }
    // What the survivors and the duplicate said about it.
    for id in [0, 1] {
        let page = scrape(metrics_addr(&cluster, id));
        assert!(
            transport_counter(&page, "duplicate_refused") >= 1,
            "node {id} counts the refused duplicate"
        );
        let text = log(&dir, &format!("node-{id}.log"));
        let warned: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("refused a duplicate node id"))
            .collect();
        assert!(
            !warned.is_empty() && warned.iter().all(|l| l.contains("WARN")),
            "node {id} warns about the duplicate: {warned:?}"
        );
        assert!(
            warned.len() <= 2,
            "once per interval, not per attempt: {warned:?}"
        );
    }
    let impostor_log = log(&dir, "impostor-a.log");
    assert_eq!(
        lines_with(&impostor_log, "peer connected"),
        0,
        "the duplicate never got a link:\n{impostor_log}"
    );
    assert!(
        impostor_log.contains("refused this node as a duplicate"),
        "the duplicate is told why:\n{impostor_log}"
    );
    let node2 = log(&dir, "node-2.log");
    assert_eq!(
        lines_with(&node2, "peer disconnected"),
        0,
        "the real node kept its links:\n{node2}"
    );

    // The real node 2 dies; an impostor takes its place (accepted: the old link does not
    // answer) and exits; the real node comes back: the links heal within seconds.
    cluster.kill(2).unwrap();
    let config = copy_config(&dir, 2, "impostor-b", |_| None);
    let mut impostor = spawn(&dir, &config, "impostor-b");
    let deadline = Instant::now() + Duration::from_secs(15);
    while lines_with(&log(&dir, "impostor-b.log"), "peer connected") < 2 {
        assert!(
            Instant::now() < deadline,
            "the impostor was not accepted in place of a dead node:\n{}",
            log(&dir, "impostor-b.log")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    impostor.kill();
    let restarted = Instant::now();
    cluster.restart(2).unwrap();
    let c2 = loop {
        let options = ClientOptions {
            timeout: Duration::from_secs(2),
            ..ClientOptions::default()
        };
        let addr = cluster.manifest().nodes[2].address;
        if let Ok(c) = Client::connect_with(addr, &tls, options).await {
            break c;
        }
        assert!(restarted.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let healed = heal_time(&[&c0, &c1, &c2], restarted, Duration::from_secs(30)).await;
    eprintln!("impostor in place of a dead node, then the real node back: healed {healed:?} after the restart");
    assert!(healed < Duration::from_secs(10), "{healed:?}");
    for c in [c0, c1, c2] {
        c.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misconfigured_peers_back_off_and_are_warned_about_once_per_interval() {
    let _turn = ONE_CLUSTER_AT_A_TIME.lock().await;
    let dir = TempDir::new("misconfigured");
    let cluster = start(&dir, &["dynamo"]).await;
    let foreign = dir.path().join("foreign");
    meridian_server::certs::init(&foreign, 3, 30, 30).expect("a foreign CA");
    let foreign_paths = |line: &str| {
        let key = line.split(" = ").next()?;
        let file = match key {
            "ca" => "ca.pem",
            "cert" => "node-2.pem",
            "key" => "node-2.key",
            _ => return None,
        };
        Some(format!("{key} = {:?}", foreign.join(file)))
    };
    let wrong_ca = copy_config(&dir, 2, "wrong-ca", foreign_paths);
    let client_cert = copy_config(&dir, 2, "client-cert", |line| {
        match line.split(" = ").next()? {
            "cert" => Some("cert = \"certs/client.pem\"".into()),
            "key" => Some("key = \"certs/client.key\"".into()),
            _ => None,
        }
    });
    let before = scrape(metrics_addr(&cluster, 0));
    let refused_before = transport_counter(&before, "refused_connections");
    let log_before = log(&dir, "node-0.log").lines().count();
    let mut wrong = spawn(&dir, &wrong_ca, "wrong-ca");
    let mut impostor = spawn(&dir, &client_cert, "client-cert");
    let window = Duration::from_secs(8);
    tokio::time::sleep(window).await;
    let still_running = [wrong.running(), impostor.running()];
    wrong.kill();
    impostor.kill();
    assert!(
        still_running.iter().all(|&running| running),
        "both misconfigured processes kept running: {still_running:?}\n{}\n{}",
        log(&dir, "wrong-ca.log"),
        log(&dir, "client-cert.log")
    );

    let after = scrape(metrics_addr(&cluster, 0));
    let refused = transport_counter(&after, "refused_connections") - refused_before;
    eprintln!("node 0 refused {refused} connections from 2 misconfigured processes in {window:?}");
    assert!(refused >= 2, "both were refused: {refused}");
    assert!(
        refused <= 30,
        "{refused} refused connections in {window:?}: no backoff"
    );
    let victim: Vec<String> = log(&dir, "node-0.log")
        .lines()
        .skip(log_before)
        .filter(|l| l.contains("refused"))
        .map(str::to_owned)
        .collect();
    assert!(
        !victim.is_empty() && victim.iter().all(|l| l.contains("WARN")),
        "refusals are WARN lines: {victim:#?}"
    );
    assert!(
        victim.len() <= 4,
        "each refusal once per interval: {victim:#?}"
    );
    for name in ["wrong-ca", "client-cert"] {
        let text = log(&dir, &format!("{name}.log"));
        let warned: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.contains("WARN")
                    && (l.contains("cannot connect to peer") || l.contains("peer link refused"))
            })
            .collect();
        assert!(
            !warned.is_empty(),
            "{name} says why it has no peers, at WARN:\n{text}"
        );
        assert!(
            warned.len() <= 6,
            "{name}: once per interval per peer: {warned:#?}"
        );
    }
    assert!(
        log(&dir, "client-cert.log").contains("refused this node's certificate"),
        "{}",
        log(&dir, "client-cert.log")
    );
    // The cluster never noticed.
    let tls = cluster.client_tls().unwrap();
    let c0 = client(&cluster, &tls, 0).await;
    put(&c0, "dynamo", "after").await.expect("cluster healthy");
    c0.close().await;
}

fn http(cluster: &LocalCluster, id: u16, path: &str) -> String {
    meridian_server::metrics::get(metrics_addr(cluster, id), path)
        .unwrap_or_else(|e| format!("GET {path}: {e}"))
}

/// `/health` answers 200 only while the node serves every keyspace, 503 naming what is
/// missing otherwise; `/metrics` carries the readiness, leader and peer gauges; any other
/// path is 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_200_only_while_every_keyspace_is_served() {
    let _turn = ONE_CLUSTER_AT_A_TIME.lock().await;
    let dir = TempDir::new("health");
    let mut cluster = start(&dir, &["multipaxos", "epaxos", "dynamo"]).await;
    for id in 0..3 {
        let health = http(&cluster, id, "/health");
        assert!(health.starts_with("HTTP/1.1 200"), "node {id}: {health}");
        let page = http(&cluster, id, "/metrics");
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        for needle in [
            format!("meridian_peers_connected{{node=\"{id}\"}} 2"),
            format!("meridian_keyspace_ready{{node=\"{id}\",keyspace=\"epaxos\"}} 1"),
            format!("meridian_keyspace_ready{{node=\"{id}\",keyspace=\"multipaxos\"}} 1"),
        ] {
            assert!(page.contains(&needle), "node {id}: no {needle} in\n{page}");
        }
        let leader = page
            .lines()
            .find(|l| l.starts_with("meridian_multipaxos_leader{"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<i64>().ok());
        assert!(
            matches!(leader, Some(0..=2)),
            "node {id} knows the leader: {leader:?}"
        );
        assert!(http(&cluster, id, "/").starts_with("HTTP/1.1 404"));
        assert!(http(&cluster, id, "/x").starts_with("HTTP/1.1 404"));
    }
    // Nodes 1 and 2 die: node 0 alone cannot serve (its links time out within ~10 s).
    cluster.kill(1).unwrap();
    cluster.kill(2).unwrap();
    let killed = Instant::now();
    let health = loop {
        let health = http(&cluster, 0, "/health");
        if health.starts_with("HTTP/1.1 503") {
            break health;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "still healthy alone: {health}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("503 after {:?}", killed.elapsed());
    assert!(health.contains("1 of 3 replicas reachable"), "{health}");
    let page = http(&cluster, 0, "/metrics");
    assert!(
        page.contains("meridian_peers_connected{node=\"0\"} 0"),
        "{page}"
    );
    assert!(
        page.contains("meridian_keyspace_ready{node=\"0\",keyspace=\"dynamo\"} 0"),
        "{page}"
    );
    // One comes back: a majority again, healthy again.
    cluster.restart(1).unwrap();
    let restarted = Instant::now();
    loop {
        let health = http(&cluster, 0, "/health");
        if health.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(30),
            "not healthy again: {health}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("200 again {:?} after the restart", restarted.elapsed());
}
