//! Membership change on real processes, as an operator would script it (issue 14):
//! `cluster up --topology lan-3` (Multi-Paxos, EPaxos and Tempo keyspaces), 1,000 puts
//! into each, `cluster add --region rack-2`: `member list` shows 4 voters of each (the
//! new replica fetched the state its peers had collected before it was promoted);
//! `cluster remove --id 0` (the first leader): 3 voters, node 0 stopped; every key reads
//! back through the new replica. Writers keep putting new keys through replicas 1 and 2
//! during the add and the remove; between them replica 2 is killed with -9 and restarted
//! (it dials replica 3 from its address book). Then replica 1 is killed with -9, and every key put
//! before and every write acknowledged during the changes reads back through replicas 2
//! and 3 with its value (each key is written once, so a read that returns the written
//! value is the only linearizable answer for an acknowledged write), in every keyspace.
//! Adding a replica that is already a voter fails with exit 4.

mod common;

use common::{cli, cluster_up_lan_3, free_base, kill_9, stdout, Down, TempDir};
use meridian_engine::command::CommandResult;
use meridian_engine::Response;
use meridian_server::client::{Client, ClientOptions};
use meridian_server::tls::{TlsIdentity, TlsPaths};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEYS: usize = 1_000;

/// `meridian cluster ARGS --dir DIR`, off the async workers (the writers keep running).
async fn cluster(args: &[&str], dir: &Path) -> Output {
    let mut command = cli();
    command.arg("cluster").args(args).arg("--dir").arg(dir);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// The keyspaces whose membership the script changes.
const CHANGED: [&str; 3] = ["multipaxos", "epaxos", "tempo"];

/// The lines of `member list` about `keyspace`, asked of the replica on `port`.
fn members_of(keyspace: &str, port: u16, certs: &Path) -> Vec<Vec<String>> {
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
        .filter(|fields| fields[0] == keyspace)
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

/// The 1,000 keys of the script and their values.
fn script_writes() -> Vec<(String, String)> {
    (0..KEYS).map(|i| (key(i), format!("v{i}"))).collect()
}

/// Every `(key, value)` reads back through the replica on `port` from `keyspace`
/// (linearizable reads, eight at a time).
async fn reads_back(keyspace: &str, port: u16, tls: &TlsIdentity, writes: &[(String, String)]) {
    let client = Arc::new(client(port, tls).await);
    let mut readers = Vec::new();
    for part in writes.chunks(writes.len().div_ceil(8).max(1)) {
        let (client, part, keyspace) = (client.clone(), part.to_vec(), keyspace.to_owned());
        readers.push(tokio::spawn(async move {
            for (key, value) in part {
                let reply = client.get(&keyspace, key.as_bytes(), None).await;
                match reply.map(|r| r.outcome) {
                    Ok(Ok(Response::Kv(CommandResult::Value(Some(read))))) => {
                        assert_eq!(read, value.as_bytes(), "{keyspace} {key} at {port}")
                    }
                    other => panic!("{keyspace} {key} at {port}: {other:?}"),
                }
            }
        }));
    }
    for reader in readers {
        reader.await.unwrap();
    }
    client.close().await;
}

/// A writer of [`load`]: the writes acknowledged per keyspace of [`CHANGED`], and how
/// many had another outcome.
type Writer = tokio::task::JoinHandle<([Vec<(String, String)>; 3], usize)>;

/// Four writers putting new keys through the replicas on `ports` into the keyspaces of
/// [`CHANGED`] in turn, each about every 5 ms, until told to stop.
fn load(ports: &[u16], tls: &TlsIdentity, stop: &Arc<AtomicBool>) -> Vec<Writer> {
    let mut writers = Vec::new();
    for (w, &port) in ports.iter().cycle().take(4).enumerate() {
        let (tls, stop) = (tls.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let client = client(port, &tls).await;
            let (mut acked, mut other) = ([Vec::new(), Vec::new(), Vec::new()], 0);
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let (key, value) = (format!("load/{w}/{n}"), format!("l{w}.{n}"));
                let which = n % CHANGED.len();
                n += 1;
                let reply = client.put(CHANGED[which], key.as_bytes(), value.as_bytes(), None);
                match reply.await.map(|r| r.outcome) {
                    Ok(Ok(_)) => acked[which].push((key, value)),
                    _ => other += 1,
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            client.close().await;
            (acked, other)
        }));
    }
    writers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_adds_a_replica_removes_the_first_and_every_key_survives() {
    let dir = TempDir::new("membership");
    let base = free_base(7);
    let up = cluster_up_lan_3(dir.path(), base, "multipaxos,epaxos,tempo");
    let _down = Down(dir.path());
    stdout(&up);
    let certs = dir.path().join("certs");
    let tls = TlsIdentity::load(&TlsPaths::client(&certs)).unwrap();

    // 1,000 puts into each keyspace, ten writers at a time, through replica 0 (the
    // first Multi-Paxos leader).
    let first = Arc::new(client(base, &tls).await);
    let mut writers = Vec::new();
    for w in 0..10 {
        let first = first.clone();
        writers.push(tokio::spawn(async move {
            for i in (w..KEYS).step_by(10) {
                let (key, value) = (key(i), format!("v{i}"));
                for keyspace in CHANGED {
                    let reply = first.put(keyspace, key.as_bytes(), value.as_bytes(), None);
                    let outcome = reply.await.map(|r| r.outcome);
                    assert!(
                        matches!(outcome, Ok(Ok(_))),
                        "{keyspace} {key}: {outcome:?}"
                    );
                }
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }

    // Load through replicas 1 and 2 during the changes.
    let stop = Arc::new(AtomicBool::new(false));
    let writers = load(&[base + 1, base + 1, base + 2, base + 2], &tls, &stop);

    // A client certificate cannot change the membership: only the operator's can.
    let clients_only = TempDir::new("membership-client-certs");
    std::fs::create_dir_all(clients_only.path()).unwrap();
    for file in ["ca.pem", "client.pem", "client.key"] {
        std::fs::copy(certs.join(file), clients_only.path().join(file)).unwrap();
    }
    let refused = cli()
        .args(["member", "remove", "--id", "2", "--addr"])
        .arg(format!("127.0.0.1:{}", base + 1))
        .arg("--certs")
        .arg(clients_only.path())
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&refused.stdout),
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(!refused.status.success(), "{said}");
    assert!(said.contains("need an operator certificate"), "{said}");
    assert_eq!(members_of("multipaxos", base + 1, &certs).len(), 3);

    // cluster add: replica 3, a voter of every keyspace.
    let added = stdout(&cluster(&["add", "--region", "rack-2"], dir.path()).await);
    assert!(added.contains("cluster add: replica 3"), "{added}");
    for keyspace in CHANGED {
        let line = format!("{keyspace} changed epoch 2");
        assert!(added.lines().any(|l| l.trim() == line), "{added}");
    }
    for keyspace in CHANGED {
        let members = members_of(keyspace, base + 1, &certs);
        assert_eq!(members.len(), 4, "{members:?}");
        assert!(
            members.iter().all(|m| m[4] == "voter" && m[6] == "2"),
            "{members:?}"
        );
        let new = members.iter().find(|m| m[1] == "3").unwrap();
        assert_eq!(new[2], "rack-2");
        assert_eq!(new[3], format!("127.0.0.1:{}", base + 3));
    }

    // Replica 2 remembers replica 3's address (it is in no config file), so after a
    // kill -9 and a restart it dials replica 3 itself.
    let book = dir.path().join("data/n2/peers.toml");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(&book).is_ok_and(|b| b.contains("id = 3")) {
        assert!(
            Instant::now() < deadline,
            "{} never named node 3",
            book.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    kill_9(dir.path(), 2);
    stdout(&cluster(&["restart", "--id", "2"], dir.path()).await);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let members = members_of("multipaxos", base + 2, &certs);
        if members.iter().any(|m| m[1] == "3" && m[5] == "connected") {
            break;
        }
        assert!(Instant::now() < deadline, "{members:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // cluster remove --id 0: three voters, replica 0 stopped.
    let removed = stdout(&cluster(&["remove", "--id", "0"], dir.path()).await);
    for keyspace in CHANGED {
        let line = format!("{keyspace} changed epoch 3");
        assert!(removed.lines().any(|l| l.trim() == line), "{removed}");
    }
    assert!(removed.contains("stopped replica 0"), "{removed}");
    assert!(!dir.path().join("node-0.pid").exists());
    for (keyspace, port) in CHANGED
        .iter()
        .flat_map(|k| [base + 1, base + 2, base + 3].map(|p| (*k, p)))
    {
        let members = members_of(keyspace, port, &certs);
        let ids: Vec<&str> = members.iter().map(|m| m[1].as_str()).collect();
        assert_eq!(ids, ["1", "2", "3"], "{keyspace} asked {port}: {members:?}");
        assert!(
            members.iter().all(|m| m[4] == "voter" && m[6] == "3"),
            "{members:?}"
        );
    }
    for keyspace in CHANGED {
        reads_back(keyspace, base + 3, &tls, &script_writes()).await;
    }
    stop.store(true, Ordering::SeqCst);
    let (mut acked, mut other) = ([Vec::new(), Vec::new(), Vec::new()], 0);
    for writer in writers {
        let (a, o) = writer.await.unwrap();
        for (all, some) in acked.iter_mut().zip(a) {
            all.extend(some);
        }
        other += o;
    }
    for (keyspace, acked) in CHANGED.iter().zip(&acked) {
        assert!(
            acked.len() >= 10,
            "too few {keyspace} writes during the changes: {}",
            acked.len()
        );
    }
    println!(
        "during cluster add and cluster remove: {} Multi-Paxos, {} EPaxos and {} Tempo \
         writes acknowledged, {other} not",
        acked[0].len(),
        acked[1].len(),
        acked[2].len()
    );

    // Adding a replica that is already a voter fails, naming the keyspace.
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
            "3",
            "--region",
            "rack-2",
            "--peer-addr",
            &format!("127.0.0.1:{}", base + 3),
        ])
        .args(["--keyspace", "tempo"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(4), "{refused:?}");
    let text = String::from_utf8_lossy(&refused.stdout);
    assert!(text.contains("tempo failed"), "{text}");

    // kill -9 of another original replica: replicas 2 and 3 still have every key.
    kill_9(dir.path(), 1);
    for port in [base + 3, base + 2] {
        for (keyspace, acked) in CHANGED.iter().zip(&acked) {
            reads_back(keyspace, port, &tls, &script_writes()).await;
            reads_back(keyspace, port, &tls, acked).await;
        }
    }
}
