//! The data directory's identity on real replica processes (issue 12): a replica whose
//! data directory is gone refuses to start and says why (and does not create it); one
//! started on another node's data directory refuses and leaves it untouched; `--init` on
//! an initialised directory is refused; with `--rejoin` the replica recovers from its
//! peers, starts a new incarnation and votes again (the cluster commits through it with
//! another replica down), and every write acknowledged before is still there.

mod common;

use common::{free_addrs, meridian, put_until_written, TempDir};
use meridian_engine::topology::Topology;
use meridian_engine::{CommandResult, Response};
use meridian_server::client::{Client, ClientOptions};
use meridian_server::identity;
use meridian_server::launcher::LocalCluster;
use meridian_server::local_cluster::{default_keyspaces, ClusterSpec};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const KEYSPACE: &str = "multipaxos";

fn spec() -> ClusterSpec {
    let topology = Topology::builtin("lan-3").expect("builtin topology");
    ClusterSpec {
        topology_ref: topology.name().to_owned(),
        topology,
        addresses: free_addrs(3),
        metrics: None,
        keyspaces: default_keyspaces(&[KEYSPACE.to_owned()], 3).expect("keyspaces"),
        wan: false,
    }
}

/// Wait until node `id`'s process has exited; returns its log.
fn wait_exit(cluster: &mut LocalCluster, id: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    while cluster.is_running(id) {
        assert!(
            Instant::now() < deadline,
            "node {id} still runs: {}",
            cluster.log_tail(id, 20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The whole log: a backtrace (RUST_BACKTRACE) may follow the error line.
    cluster.log_tail(id, usize::MAX)
}

/// Every file under `dir` with its bytes.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push((path.clone(), std::fs::read(&path).expect("read")));
            }
        }
    }
    found.sort();
    found
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

async fn put(client: &Client, key: &str) {
    let reply = client
        .put(KEYSPACE, key.as_bytes(), b"v", None)
        .await
        .expect("put");
    assert!(
        matches!(reply.outcome, Ok(Response::Kv(CommandResult::Written))),
        "{reply:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_without_its_data_dir_refuses_to_start_until_told_to_rejoin() {
    let dir = TempDir::new("identity");
    let mut cluster = LocalCluster::start(dir.path(), &spec(), meridian()).expect("start");
    if let Err(e) = cluster.wait_all_ready(Duration::from_secs(60)).await {
        panic!("{e}\n{}", cluster.log_tail(0, 30));
    }
    let tls = cluster.client_tls().unwrap();
    let options = ClientOptions {
        timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    };
    let addresses: Vec<_> = cluster.manifest().nodes.iter().map(|n| n.address).collect();
    let address = |id: usize| addresses[id];
    let client0 = Client::connect_with(address(0), &tls, options.clone())
        .await
        .expect("connect");
    for i in 0..20 {
        put(&client0, &format!("before-{i}")).await;
    }
    let data = |id: u16| {
        dir.path()
            .canonicalize()
            .unwrap()
            .join(format!("data/n{id}"))
    };
    let old = identity::read(&data(2))
        .unwrap()
        .expect("cluster up wrote an identity");
    assert_eq!(old.node_id, 2);
    assert!(old.cluster_id.is_some());

    // The disk is lost: a plain start refuses, naming the cause, and creates nothing.
    cluster.kill(2).unwrap();
    std::fs::remove_dir_all(data(2)).unwrap();
    cluster.restart(2).unwrap();
    let log = wait_exit(&mut cluster, 2);
    assert!(
        log.contains("does not exist") && log.contains("--rejoin") && log.contains("--init"),
        "{log}"
    );
    assert!(!data(2).exists(), "the missing data directory was created");

    // Another node's data directory: refused, left as it was.
    copy_dir(&data(1), &data(2));
    let before = files(&data(2));
    cluster.restart(2).unwrap();
    let log = wait_exit(&mut cluster, 2);
    assert!(
        log.contains("belongs to node 1") && log.contains("config says node 2"),
        "{log}"
    );
    assert_eq!(
        files(&data(2)),
        before,
        "a foreign data directory was touched"
    );
    std::fs::remove_dir_all(data(2)).unwrap();

    // --rejoin: a new incarnation that recovers before it votes.
    cluster.restart_with(2, &["--rejoin"]).unwrap();
    if let Err(e) = cluster.wait_ready([2], Duration::from_secs(60)).await {
        panic!("{e}\n{}", cluster.log_tail(2, 30));
    }
    let new = identity::read(&data(2)).unwrap().expect("identity");
    assert!(new.incarnation > old.incarnation, "{new:?} after {old:?}");
    assert_eq!(new.cluster_id, old.cluster_id);
    let log = std::fs::read_to_string(dir.path().join("node-2.log")).unwrap();
    assert!(log.contains("rejoining"), "{log}");

    // It votes again: with node 0 down, every commit needs node 2.
    cluster.kill(0).unwrap();
    let client1 = Client::connect_with(address(1), &tls, options.clone())
        .await
        .expect("connect");
    let keys = (0..20).map(|i| format!("after-{i}"));
    let patience = Duration::from_secs(60);
    put_until_written(&client1, KEYSPACE, keys, patience, &cluster, &[1, 2]).await;
    // Nothing acknowledged before the loss is gone: read through the rejoined replica.
    let client2 = Client::connect_with(address(2), &tls, options)
        .await
        .expect("connect");
    for i in 0..20 {
        let key = format!("before-{i}");
        let reply = client2.get(KEYSPACE, key.as_bytes(), None).await.unwrap();
        assert!(
            matches!(&reply.outcome, Ok(Response::Kv(CommandResult::Value(Some(v)))) if v == b"v"),
            "{key}: {reply:?}"
        );
    }

    // --init on an initialised data directory is refused.
    cluster.restart_with(0, &["--init"]).unwrap();
    let log = wait_exit(&mut cluster, 0);
    assert!(log.contains("already initialised"), "{log}");
}
