//! Dynamo ring membership on real processes, as an operator would script it (issue 14):
//! `cluster up --topology lan-3 --protocol dynamo`, 300 puts, `cluster add --region rack-2`:
//! `member list` shows 4 ring members (the new one joined by streaming its ranges);
//! `cluster remove --id 0`: node 0 hands its ranges off, leaves the ring and is stopped,
//! `member list` shows 3. Writers keep putting new keys through replicas 1 and 2 during
//! both changes. Then replica 1 is killed with -9: every key put before and every write
//! acknowledged during the changes reads back through each live member, replicas 2 and 3
//! (QUORUM, its only value: each key is written once).

mod common;

use common::{cli, cluster_up_lan_3, free_base, kill_9, stdout, Down, TempDir};
use meridian_engine::Response;
use meridian_server::client::{Client, ClientOptions};
use meridian_server::tls::{TlsIdentity, TlsPaths};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const KEYS: usize = 300;

async fn cluster(args: &[&str], dir: &Path) -> Output {
    let mut command = cli();
    command.arg("cluster").args(args).arg("--dir").arg(dir);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// The Dynamo lines of `member list` asked of the replica on `port`.
fn dynamo_members(port: u16, certs: &Path) -> Vec<Vec<String>> {
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
        .filter(|fields| fields[0] == "dynamo")
        .collect()
}

async fn client(port: u16, tls: &TlsIdentity) -> Client {
    let options = ClientOptions {
        timeout: Duration::from_secs(10),
        ..ClientOptions::default()
    };
    Client::connect_with(SocketAddr::from(([127, 0, 0, 1], port)), tls, options)
        .await
        .unwrap()
}

type Writer = tokio::task::JoinHandle<Vec<(String, String)>>;

/// Writers putting new keys through the replicas on `ports` until told to stop.
fn load(ports: &[u16], tls: &TlsIdentity, stop: &Arc<AtomicBool>) -> Vec<Writer> {
    let mut writers = Vec::new();
    for (w, &port) in ports.iter().enumerate() {
        let (tls, stop) = (tls.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let client = client(port, &tls).await;
            let mut acked = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let (key, value) = (format!("load/{w}/{n}"), format!("l{w}.{n}"));
                n += 1;
                let reply = client.put("dynamo", key.as_bytes(), value.as_bytes(), None);
                if let Ok(Ok(_)) = reply.await.map(|r| r.outcome) {
                    acked.push((key, value));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            client.close().await;
            acked
        }));
    }
    writers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_joins_the_first_leaves_another_is_killed_and_every_key_survives() {
    let dir = TempDir::new("dynamo-membership");
    let base = free_base(7);
    let up = cluster_up_lan_3(dir.path(), base, "dynamo");
    let _down = Down(dir.path());
    stdout(&up);
    let certs = dir.path().join("certs");
    let tls = TlsIdentity::load(&TlsPaths::client(&certs)).unwrap();

    let first = client(base, &tls).await;
    let mut writes = Vec::new();
    for i in 0..KEYS {
        let (key, value) = (format!("ring/{i:04}"), format!("v{i}"));
        let reply = first.put("dynamo", key.as_bytes(), value.as_bytes(), None);
        let outcome = reply.await.map(|r| r.outcome);
        assert!(matches!(outcome, Ok(Ok(_))), "{key}: {outcome:?}");
        writes.push((key, value));
    }
    first.close().await;

    let stop = Arc::new(AtomicBool::new(false));
    let writers = load(&[base + 1, base + 2], &tls, &stop);

    let added = stdout(&cluster(&["add", "--region", "rack-2"], dir.path()).await);
    assert!(added.contains("cluster add: replica 3"), "{added}");
    assert!(added.contains("dynamo changed epoch 2"), "{added}");
    let members = dynamo_members(base + 1, &certs);
    assert_eq!(members.len(), 4, "{members:?}");
    assert!(members.iter().all(|m| m[4] == "voter"), "{members:?}");

    let removed = stdout(&cluster(&["remove", "--id", "0"], dir.path()).await);
    assert!(removed.contains("dynamo changed epoch 4"), "{removed}");
    assert!(removed.contains("stopped replica 0"), "{removed}");
    for port in [base + 1, base + 2, base + 3] {
        let members = dynamo_members(port, &certs);
        let ids: Vec<&str> = members.iter().map(|m| m[1].as_str()).collect();
        assert_eq!(ids, ["1", "2", "3"], "asked {port}: {members:?}");
    }

    stop.store(true, Ordering::SeqCst);
    let mut during = 0;
    for writer in writers {
        let acked = writer.await.unwrap();
        during += acked.len();
        writes.extend(acked);
    }
    assert!(during >= 20, "too few writes during the changes: {during}");

    // kill -9 of another original replica: the two live members still serve every key.
    kill_9(dir.path(), 1);
    for (id, port) in [(2, base + 2), (3, base + 3)] {
        let member = client(port, &tls).await;
        for (key, value) in &writes {
            let reply = member.get("dynamo", key.as_bytes(), None).await;
            match reply.map(|r| r.outcome) {
                Ok(Ok(Response::Versioned(v))) => assert_eq!(
                    v.siblings,
                    vec![Some(value.as_bytes().to_vec())],
                    "{key} at replica {id}"
                ),
                other => panic!("{key} at replica {id}: {other:?}"),
            }
        }
        member.close().await;
    }
    println!(
        "{} keys read back through replicas 2 and 3 after kill -9 of replica 1, {during} written during the changes",
        writes.len()
    );
}
