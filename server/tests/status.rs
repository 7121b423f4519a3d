//! `meridian status` and `meridian member list` against a real `cluster up --topology
//! lan-3`: three voters per keyspace with the regions and addresses `cluster up` printed,
//! every link up, one Multi-Paxos leader all replicas agree on (and the metrics endpoint
//! names), a killed replica shown disconnected; an unreachable address, another cluster's
//! certificates and a missing certificate directory are clear non-zero exits.

mod common;

use common::{cli, cluster_up_lan_3, free_base, scrape, stdout, Down, TempDir};
use serde_json::Value as Json;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// `meridian ARGS --addr 127.0.0.1:PORT --certs CERTS`.
fn ask(args: &[&str], port: u16, certs: &Path) -> Output {
    cli()
        .args(args)
        .args(["--addr", &format!("127.0.0.1:{port}"), "--certs"])
        .arg(certs)
        .args(["--timeout-ms", "3000"])
        .output()
        .unwrap()
}

fn json_of(args: &[&str], port: u16, certs: &Path) -> Json {
    let mut with_json = args.to_vec();
    with_json.push("--json");
    serde_json::from_str(&stdout(&ask(&with_json, port, certs))).expect("one JSON object")
}

/// Poll `node`'s status until `done` holds (`within` at most); returns the last status.
fn wait_for(
    port: u16,
    certs: &Path,
    within: Duration,
    what: &str,
    done: impl Fn(&Json) -> bool,
) -> Json {
    let deadline = Instant::now() + within;
    loop {
        let status = json_of(&["status"], port, certs);
        if done(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{what}: {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const SECS_10: Duration = Duration::from_secs(10);

fn keyspace<'a>(status: &'a Json, name: &str) -> &'a Json {
    status["keyspaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == name)
        .unwrap_or_else(|| panic!("no keyspace {name} in {status}"))
}

fn all_connected(status: &Json) -> bool {
    status["peers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["connected"] == true)
}

#[test]
fn status_and_member_list_match_a_real_lan_3_cluster() {
    let dir = TempDir::new("status-lan3");
    let base = free_base(6);
    let up = cluster_up_lan_3(dir.path(), base, "multipaxos,epaxos");
    let _down = Down(dir.path());
    let printed = stdout(&up);
    let certs = dir.path().join("certs");
    // `cluster up` prints "  node ID REGION quic ADDR ...": what member list must show.
    let nodes: Vec<(u16, String, String)> = printed
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                ["node", id, region, "quic", addr, ..] => {
                    Some((id.parse().ok()?, region.to_string(), addr.to_string()))
                }
                _ => None,
            }
        })
        .collect();
    assert_eq!(nodes.len(), 3, "{printed}");
    let put = ask(
        &[
            "put",
            "--keyspace",
            "multipaxos",
            "--key",
            "k",
            "--value",
            "v",
        ],
        base,
        &certs,
    );
    assert_eq!(stdout(&put), "OK\n");

    // Every replica sees both peers connected and the same Multi-Paxos leader.
    let mut leaders = Vec::new();
    for id in 0..3u16 {
        let status = wait_for(base + id, &certs, SECS_10, "links up", all_connected);
        assert_eq!(status["node"], id);
        assert_eq!(status["peers"].as_array().unwrap().len(), 2, "{status}");
        let mp = keyspace(&status, "multipaxos");
        assert_eq!(mp["protocol"], "multipaxos");
        assert!(mp["leader"].is_u64(), "{mp}");
        assert_eq!(mp["serving"], true, "{mp}");
        leaders.push(mp["leader"].as_u64().unwrap());
        let ep = keyspace(&status, "epaxos");
        assert_eq!(ep["leader"], Json::Null, "{ep}");
        assert!(ep["omitted"]["leader"].is_string(), "{ep}");
    }
    assert!(leaders.iter().all(|&l| l == leaders[0]), "{leaders:?}");
    assert!(leaders[0] < 3);
    let leader_port = base + 3 + leaders[0] as u16;
    let metrics = scrape(format!("127.0.0.1:{leader_port}").parse().unwrap());
    let gauge = metrics
        .lines()
        .find(|l| l.starts_with("meridian_multipaxos_leader{"))
        .unwrap_or_else(|| panic!("no leader gauge: {metrics}"));
    assert!(
        gauge.ends_with(&format!(" {}", leaders[0])),
        "metrics and status disagree: {gauge}"
    );

    // member list: one line per member: keyspace id region address role state epoch.
    let listed = stdout(&ask(&["member", "list"], base + 1, &certs));
    let mut expected = Vec::new();
    for keyspace in ["epaxos", "multipaxos"] {
        for (id, region, addr) in &nodes {
            let state = if *id == 1 { "local" } else { "connected" };
            expected.push(format!("{keyspace} {id} {region} {addr} voter {state} 0"));
        }
    }
    assert_eq!(listed.lines().collect::<Vec<_>>(), expected, "{listed}");
    let json = json_of(&["member", "list"], base + 1, &certs);
    let members = json["members"].as_array().unwrap();
    assert_eq!(members.len(), 6, "{json}");
    assert!(members
        .iter()
        .all(|m| m["role"] == "voter" && m["epoch"] == 0));

    let text = stdout(&ask(&["status"], base + 2, &certs));
    for expected in [
        "keyspace multipaxos (multipaxos), configuration epoch 0 (core)",
        "keyspace epaxos (epaxos), configuration epoch 0 (core)",
        &format!("  leader: {}", leaders[0]),
        "  leader: n/a (epaxos is leaderless)",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }

    // kill -9 node 2: the others show it disconnected once QUIC's 10 s idle timeout
    // ends the link; until then "last heard" grows.
    let pid = std::fs::read_to_string(dir.path().join("node-2.pid")).unwrap();
    let killed = Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = wait_for(base, &certs, SECS_10 * 3, "node 2 seen down", |s| {
        s["peers"][1]["id"] == 2 && s["peers"][1]["connected"] == false
    });
    let members = &keyspace(&status, "multipaxos")["members"];
    assert_eq!(members[2]["state"], "disconnected", "{status}");
    assert_eq!(members[1]["state"], "connected", "{status}");

    // Errors: an address nobody answers at, another cluster's certificates, no
    // certificates at all.
    let nobody = free_base(1);
    let unreachable = ask(&["status"], nobody, &certs);
    assert_eq!(unreachable.status.code(), Some(3), "{unreachable:?}");
    let said = String::from_utf8_lossy(&unreachable.stderr);
    assert!(
        said.contains(&format!("connecting to 127.0.0.1:{nobody}")),
        "{said}"
    );

    let other = TempDir::new("status-other-ca");
    let other_dir = other.path().to_str().unwrap();
    let init = cli()
        .args(["certs", "init", "--out", other_dir, "--nodes", "1"])
        .output()
        .unwrap();
    stdout(&init);
    let foreign = ask(&["member", "list"], base, other.path());
    assert_eq!(foreign.status.code(), Some(3), "{foreign:?}");
    let said = String::from_utf8_lossy(&foreign.stderr);
    assert!(said.starts_with("error: connecting to"), "{said}");
    assert!(foreign.stdout.is_empty());

    let missing = ask(&["status", "--json"], base, &dir.path().join("no-certs"));
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
    let error: Json = serde_json::from_slice(&missing.stdout).unwrap();
    assert_eq!(error["exit_code"], 2);
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("loading client certificates"));
}
