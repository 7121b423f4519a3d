//! End to end, in one process: three replicas over real QUIC with mutual TLS and file
//! storage, driven by the client library.

use meridian_engine::topology::Topology;
use meridian_engine::{CommandResult, Consistency, Level, RequestError, Response};
use meridian_server::client::Client;
use meridian_server::config::NodeConfig;
use meridian_server::local_cluster::{default_keyspaces, generate, ClusterSpec, PROTOCOLS};
use meridian_server::node::Node;
use meridian_server::tls::{TlsIdentity, TlsPaths};
use std::time::{Duration, Instant};

mod common;

use common::{free_addrs, TempDir};

async fn start_cluster(dir: &TempDir, topology: &str, wan: bool) -> Vec<Node> {
    let topology = Topology::builtin(topology).expect("builtin topology");
    let n = topology.replicas().len();
    let protocols: Vec<String> = PROTOCOLS.iter().map(|p| p.to_string()).collect();
    let spec = ClusterSpec {
        topology_ref: topology.name().to_owned(),
        topology,
        addresses: free_addrs(n),
        metrics: None,
        keyspaces: default_keyspaces(&protocols, n).expect("keyspaces"),
        wan,
    };
    let manifest = generate(dir.path(), &spec).expect("generate cluster");
    let mut nodes = Vec::new();
    for node in &manifest.nodes {
        let config = NodeConfig::load(&node.config).expect("load config");
        nodes.push(Node::start(config).await.expect("start node"));
    }
    nodes
}

fn client_tls(dir: &TempDir) -> TlsIdentity {
    TlsIdentity::load(&TlsPaths::client(&dir.path().join("certs"))).expect("client certs")
}

fn value(reply: &Result<Response, RequestError>) -> Option<Vec<u8>> {
    match reply {
        Ok(Response::Kv(CommandResult::Value(v))) => v.clone(),
        other => panic!("expected a value, got {other:?}"),
    }
}

/// Wait until the keyspace serves (leader elected, peers connected), then write once: a
/// blind Dynamo write retried after an ambiguous failure would become a second sibling.
async fn put_eventually(client: &Client, keyspace: &str, key: &[u8], val: &[u8]) {
    client
        .wait_serving(keyspace, Duration::from_secs(20))
        .await
        .expect("keyspace serves");
    let reply = client
        .put(keyspace, key, val, None)
        .await
        .expect("transport");
    assert!(reply.outcome.is_ok(), "{keyspace}: put failed: {reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consensus_keyspaces_serve_put_get_cas_delete_over_quic() {
    let dir = TempDir::new("consensus");
    let nodes = start_cluster(&dir, "lan-3", false).await;
    let tls = client_tls(&dir);
    for keyspace in ["multipaxos", "epaxos", "tempo"] {
        // Talk to a replica that is not the Multi-Paxos initial leader: forwarding works.
        let client = Client::connect(nodes[1].local_addr().unwrap(), &tls)
            .await
            .unwrap();
        put_eventually(&client, keyspace, b"k", b"v1").await;
        let reply = client.get(keyspace, b"k", None).await.unwrap();
        assert_eq!(value(&reply.outcome), Some(b"v1".to_vec()), "{keyspace}");
        let reply = client
            .cas(keyspace, b"k", Some(b"v1".to_vec()), b"v2", None)
            .await
            .unwrap();
        assert_eq!(
            reply.outcome,
            Ok(Response::Kv(CommandResult::Cas {
                applied: true,
                previous: Some(b"v1".to_vec())
            })),
            "{keyspace}"
        );
        let reply = client.cas(keyspace, b"k", None, b"v3", None).await.unwrap();
        assert!(
            matches!(
                reply.outcome,
                Ok(Response::Kv(CommandResult::Cas { applied: false, .. }))
            ),
            "{keyspace}: {reply:?}"
        );
        // Another replica sees the committed value with a linearizable read.
        let other = Client::connect(nodes[2].local_addr().unwrap(), &tls)
            .await
            .unwrap();
        let reply = other
            .get(keyspace, b"k", Some(Consistency::Linearizable))
            .await
            .unwrap();
        assert_eq!(value(&reply.outcome), Some(b"v2".to_vec()), "{keyspace}");
        let reply = other.delete(keyspace, b"k", None).await.unwrap();
        assert!(reply.outcome.is_ok(), "{keyspace}: {reply:?}");
        let reply = client.get(keyspace, b"k", None).await.unwrap();
        assert_eq!(value(&reply.outcome), None, "{keyspace}");
    }
    // An unknown keyspace is answered, not dropped.
    let client = Client::connect(nodes[0].local_addr().unwrap(), &tls)
        .await
        .unwrap();
    let reply = client.get("nope", b"k", None).await.unwrap();
    assert!(
        matches!(reply.outcome, Err(RequestError::Invalid(_))),
        "{reply:?}"
    );
    // The metrics page carries request counts and fsync latencies.
    let text = nodes[1].metrics_text().await;
    assert!(
        text.contains("meridian_requests_total{node=\"1\",keyspace=\"multipaxos\",op=\"put\"}"),
        "{text}"
    );
    assert!(
        text.contains("meridian_fsync_latency_seconds_count{node=\"1\",keyspace=\"multipaxos\"}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamo_session_reads_see_the_clients_own_writes() {
    let dir = TempDir::new("dynamo");
    let nodes = start_cluster(&dir, "lan-3", false).await;
    let tls = client_tls(&dir);
    let client = Client::connect(nodes[0].local_addr().unwrap(), &tls)
        .await
        .unwrap();
    put_eventually(&client, "dynamo", b"cart", b"apple").await;
    assert!(
        client.context("dynamo", b"cart").is_some(),
        "write context kept"
    );
    let reply = client
        .get("dynamo", b"cart", Some(Consistency::Dynamo(Level::Session)))
        .await
        .unwrap();
    match reply.outcome {
        Ok(Response::Versioned(v)) => {
            assert_eq!(v.siblings, vec![Some(b"apple".to_vec())]);
            assert!(v.receipt.met, "{:?}", v.receipt);
        }
        other => panic!("{other:?}"),
    }
    // A write with the read's context supersedes the version the client saw.
    let reply = client
        .put(
            "dynamo",
            b"cart",
            b"pear",
            Some(Consistency::Dynamo(Level::All)),
        )
        .await
        .unwrap();
    assert!(reply.outcome.is_ok(), "{reply:?}");
    let reply = client
        .get("dynamo", b"cart", Some(Consistency::Dynamo(Level::All)))
        .await
        .unwrap();
    match reply.outcome {
        Ok(Response::Versioned(v)) => assert_eq!(v.siblings, vec![Some(b"pear".to_vec())]),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_restart_of_every_node() {
    let dir = TempDir::new("restart");
    let nodes = start_cluster(&dir, "lan-3", false).await;
    let tls = client_tls(&dir);
    let client = Client::connect(nodes[0].local_addr().unwrap(), &tls)
        .await
        .unwrap();
    put_eventually(&client, "multipaxos", b"durable", b"yes").await;
    client.close().await;
    drop(nodes);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut restarted = Vec::new();
    for i in 0..3 {
        let config = NodeConfig::load(&dir.path().join(format!("node-{i}.toml"))).unwrap();
        // The old endpoints close asynchronously, and a parallel test's ephemeral client
        // socket can take a freed port for a moment: retry a bind that finds it in use.
        let started = Instant::now();
        let node = loop {
            match Node::start(config.clone()).await {
                Ok(node) => break node,
                Err(e) if started.elapsed() < Duration::from_secs(10) => {
                    eprintln!("restart of node {i} not yet possible: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("restart: {e}"),
            }
        };
        restarted.push(node);
    }
    let client = Client::connect(restarted[2].local_addr().unwrap(), &tls)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = client.get("multipaxos", b"durable", None).await.unwrap();
        match &reply.outcome {
            Ok(_) => {
                assert_eq!(value(&reply.outcome), Some(b"yes".to_vec()));
                break;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "no read after restart: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
