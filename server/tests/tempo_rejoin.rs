//! A Tempo replica process that lost its data directory rejoins with `--rejoin` (issues
//! 12, 15; docs/design.md#tempo-rejoin-rule): it recovers from its peers, the cluster
//! commits through it with another replica down, and every write acknowledged before the
//! loss reads back through it.

mod common;

use common::{free_addrs, meridian, put_until_written, TempDir};
use meridian_engine::topology::Topology;
use meridian_engine::{CommandResult, Response};
use meridian_server::client::{Client, ClientOptions};
use meridian_server::launcher::LocalCluster;
use meridian_server::local_cluster::{default_keyspaces, ClusterSpec};
use std::time::{Duration, Instant};

const KEYSPACE: &str = "tempo";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tempo_replica_that_lost_its_disk_rejoins_and_loses_no_acknowledged_write() {
    let dir = TempDir::new("tempo-rejoin");
    let topology = Topology::builtin("lan-3").expect("builtin topology");
    let spec = ClusterSpec {
        topology_ref: topology.name().to_owned(),
        topology,
        addresses: free_addrs(3),
        metrics: None,
        keyspaces: default_keyspaces(&[KEYSPACE.to_owned()], 3).expect("keyspaces"),
        wan: false,
    };
    let mut cluster = LocalCluster::start(dir.path(), &spec, meridian()).expect("start");
    if let Err(e) = cluster.wait_all_ready(Duration::from_secs(60)).await {
        panic!("{e}\n{}", cluster.log_tail(0, 30));
    }
    let tls = cluster.client_tls().unwrap();
    let options = ClientOptions {
        timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    };
    let addresses: Vec<_> = cluster.manifest().nodes.iter().map(|n| n.address).collect();
    let connect = |id: usize| Client::connect_with(addresses[id], &tls, options.clone());
    let client0 = connect(0).await.expect("connect");
    for i in 0..20 {
        let key = format!("before-{i}");
        let reply = client0.put(KEYSPACE, key.as_bytes(), b"v", None).await;
        let written = matches!(
            reply.as_ref().map(|r| &r.outcome),
            Ok(Ok(Response::Kv(CommandResult::Written)))
        );
        assert!(written, "{key}: {reply:?}");
    }
    let data = dir.path().canonicalize().unwrap().join("data/n2");
    cluster.kill(2).unwrap();
    std::fs::remove_dir_all(&data).unwrap();
    cluster.restart_with(2, &["--rejoin"]).unwrap();
    if let Err(e) = cluster.wait_ready([2], Duration::from_secs(60)).await {
        panic!("{e}\n{}", cluster.log_tail(2, 30));
    }

    // With node 0 down, every command needs node 2's vote: it votes again.
    cluster.kill(0).unwrap();
    let client1 = connect(1).await.expect("connect");
    let keys = (0..20).map(|i| format!("after-{i}"));
    let patience = Duration::from_secs(60);
    put_until_written(&client1, KEYSPACE, keys, patience, &cluster, &[1, 2]).await;
    // Nothing acknowledged before the loss is gone: read through the rejoined replica.
    let client2 = connect(2).await.expect("connect");
    for key in (0..20)
        .map(|i| format!("before-{i}"))
        .chain((0..20).map(|i| format!("after-{i}")))
    {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let reply = client2.get(KEYSPACE, key.as_bytes(), None).await;
            // An answer is final (a missing or other value is a lost write); only an
            // error (a timeout while the cluster settles) is asked again.
            if let Ok(Ok(Response::Kv(result))) = reply.as_ref().map(|r| &r.outcome) {
                assert_eq!(result, &CommandResult::Value(Some(b"v".to_vec())), "{key}");
                break;
            }
            assert!(Instant::now() < deadline, "{key}: {reply:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
