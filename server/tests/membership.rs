//! Membership change on real processes, as an operator would script it (issue 14):
//! `cluster up --topology lan-3` (Multi-Paxos and EPaxos keyspaces), 1,000 puts,
//! `cluster add --region rack-2`: `member list` shows 4 Multi-Paxos voters;
//! `cluster remove --id 0` (the first leader): 3 voters, node 0 stopped; every key reads
//! back through the new replica; then replica 1 is killed with -9 and every key still
//! reads back through replicas 2 and 3. EPaxos keyspaces are named as skipped, and a
//! change asked of one fails with exit 4, naming the protocol.

mod common;

use common::{cli, cluster_up_lan_3, free_base, stdout, Down, TempDir};
use meridian_engine::command::CommandResult;
use meridian_engine::Response;
use meridian_server::client::{Client, ClientOptions};
use meridian_server::tls::{TlsIdentity, TlsPaths};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

const KEYS: usize = 1_000;

fn cluster(args: &[&str], dir: &Path) -> Output {
    cli()
        .arg("cluster")
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap()
}

/// The Multi-Paxos lines of `member list` asked of the replica on `port`.
fn multipaxos_members(port: u16, certs: &Path) -> Vec<Vec<String>> {
    let out = cli()
        .args([
            "member",
            "list",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--certs",
        ])
        .arg(certs)
        .output()
        .unwrap();
    stdout(&out)
        .lines()
        .map(|l| l.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .filter(|fields| fields[0] == "multipaxos")
        .collect()
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

async fn client(port: u16, tls: &TlsIdentity) -> Client {
    let options = ClientOptions {
        timeout: Duration::from_secs(10),
        ..ClientOptions::default()
    };
    Client::connect_with(addr(port), tls, options)
        .await
        .unwrap()
}

fn key(i: usize) -> String {
    format!("member/{i:04}")
}

/// Every key reads back through the replica on `port` with the value it was put with.
async fn every_key_reads_back(port: u16, tls: &TlsIdentity) {
    let client = client(port, tls).await;
    for i in 0..KEYS {
        let reply = client.get("multipaxos", key(i).as_bytes(), None).await;
        match reply.map(|r| r.outcome) {
            Ok(Ok(Response::Kv(CommandResult::Value(Some(value))))) => {
                assert_eq!(value, format!("v{i}").into_bytes(), "{} at {port}", key(i))
            }
            other => panic!("{} at {port}: {other:?}", key(i)),
        }
    }
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_adds_a_replica_removes_the_first_and_every_key_survives() {
    let dir = TempDir::new("membership");
    let base = free_base(7);
    let up = cluster_up_lan_3(dir.path(), base, "multipaxos,epaxos");
    let _down = Down(dir.path());
    stdout(&up);
    let certs = dir.path().join("certs");
    let tls = TlsIdentity::load(&TlsPaths::client(&certs)).unwrap();

    // 1,000 puts, ten writers at a time, through replica 0 (the first leader).
    let first = std::sync::Arc::new(client(base, &tls).await);
    let mut writers = Vec::new();
    for w in 0..10 {
        let first = first.clone();
        writers.push(tokio::spawn(async move {
            for i in (w..KEYS).step_by(10) {
                let (key, value) = (key(i), format!("v{i}"));
                let reply = first.put("multipaxos", key.as_bytes(), value.as_bytes(), None);
                let outcome = reply.await.map(|r| r.outcome);
                assert!(matches!(outcome, Ok(Ok(_))), "{key}: {outcome:?}");
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }

    // cluster add: replica 3, a voter of the Multi-Paxos keyspace; EPaxos is skipped.
    let added = stdout(&cluster(&["add", "--region", "rack-2"], dir.path()));
    assert!(added.contains("cluster add: replica 3"), "{added}");
    assert!(added.contains("multipaxos changed epoch 2"), "{added}");
    assert!(
        added.contains(
            "epaxos skipped: membership change is not supported for epaxos keyspaces yet"
        ),
        "{added}"
    );
    let members = multipaxos_members(base + 1, &certs);
    assert_eq!(members.len(), 4, "{members:?}");
    assert!(
        members.iter().all(|m| m[4] == "voter" && m[6] == "2"),
        "{members:?}"
    );
    let new = members.iter().find(|m| m[1] == "3").unwrap();
    assert_eq!(new[2], "rack-2");
    assert_eq!(new[3], format!("127.0.0.1:{}", base + 3));

    // cluster remove --id 0: three voters, replica 0 stopped.
    let removed = stdout(&cluster(&["remove", "--id", "0"], dir.path()));
    assert!(removed.contains("multipaxos changed epoch 3"), "{removed}");
    assert!(removed.contains("stopped replica 0"), "{removed}");
    assert!(!dir.path().join("node-0.pid").exists());
    for port in [base + 1, base + 2, base + 3] {
        let members = multipaxos_members(port, &certs);
        let ids: Vec<&str> = members.iter().map(|m| m[1].as_str()).collect();
        assert_eq!(ids, ["1", "2", "3"], "asked {port}: {members:?}");
        assert!(
            members.iter().all(|m| m[4] == "voter" && m[6] == "3"),
            "{members:?}"
        );
    }
    every_key_reads_back(base + 3, &tls).await;

    // A change asked of an EPaxos keyspace fails, naming the protocol; nothing changes.
    let refused = cli()
        .args([
            "member",
            "add",
            "--addr",
            &format!("127.0.0.1:{}", base + 1),
            "--certs",
        ])
        .arg(&certs)
        .args([
            "--id",
            "9",
            "--region",
            "rack-1",
            "--peer-addr",
            "127.0.0.1:9",
        ])
        .args(["--keyspace", "epaxos"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(4), "{refused:?}");
    let text = String::from_utf8_lossy(&refused.stdout);
    assert!(
        text.contains("epaxos failed: membership change is not supported for epaxos keyspaces yet"),
        "{text}"
    );

    // kill -9 of another original replica: replicas 2 and 3 still have every key.
    let pid = std::fs::read_to_string(dir.path().join("node-1.pid")).unwrap();
    let killed = Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap();
    assert!(killed.success());
    every_key_reads_back(base + 3, &tls).await;
    every_key_reads_back(base + 2, &tls).await;
}
