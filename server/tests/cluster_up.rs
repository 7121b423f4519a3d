//! `meridian cluster up` when things go wrong: a port already taken fails at once naming
//! it and leaves nothing running (no replica, no pid file); a closed stdout (as with
//! `cluster up | head -1`) does not make it panic, and the cluster it started serves.
//! `meridian cluster restart` brings a killed replica back, and refuses a live one, an
//! unknown id and a directory that holds no cluster.

mod common;

use common::{cluster_up_lan_3, free_base, kill_9, kill_9_now, Down, TempDir};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The tests here pick free ports the same way: one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn meridian() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meridian"))
}

/// `meridian serve` processes whose config lies in `dir`.
fn replicas_of(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(" serve ") && cmdline.contains(&needle) {
                pids.push(pid);
            }
        }
    }
    pids
}

fn pid_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".pid"))
                .collect()
        })
        .unwrap_or_default()
}

/// No pid file and no replica of `dir` left behind.
fn nothing_left(dir: &Path) {
    assert!(pid_files(dir).is_empty(), "{:?}", pid_files(dir));
    assert!(replicas_of(dir).is_empty(), "replicas left running");
}

#[test]
fn a_taken_port_fails_fast_naming_it_and_leaves_nothing_running() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("up-port-taken");
    let base = free_base(6);
    let metrics_base = base + 3;
    let taken = std::net::UdpSocket::bind(("127.0.0.1", base + 1)).unwrap();
    let started = Instant::now();
    let out = meridian()
        .args(["cluster", "up", "--topology", "lan-3", "--dir"])
        .arg(dir.path())
        .args(["--base-port", &base.to_string()])
        .args(["--metrics-base-port", &metrics_base.to_string()])
        .output()
        .unwrap();
    let took = started.elapsed();
    drop(taken);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "cluster up succeeded: {stderr}");
    assert!(took < Duration::from_secs(10), "took {took:?}: {stderr}");
    assert!(stderr.contains("port in use"), "{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{}", base + 1)),
        "names the port: {stderr}"
    );
    assert!(stderr.contains("replica 1"), "names the replica: {stderr}");
    nothing_left(dir.path());
}

/// A replica that exits while the others start (here its data directory is a file) is
/// named with its log, and the replicas already started are stopped, their pid files
/// removed.
#[test]
fn a_replica_that_cannot_start_is_named_and_the_others_are_stopped() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("up-replica-exits");
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/n1"), b"not a directory").unwrap();
    let base = free_base(6);
    let started = Instant::now();
    let out = meridian()
        .args(["cluster", "up", "--topology", "lan-3", "--dir"])
        .arg(dir.path())
        .args(["--base-port", &base.to_string()])
        .args(["--metrics-base-port", &(base + 3).to_string()])
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "cluster up succeeded: {stderr}");
    assert!(took < Duration::from_secs(20), "took {took:?}: {stderr}");
    assert!(stderr.contains("replica 1 exited"), "{stderr}");
    assert!(stderr.contains("node-1.log"), "points at the log: {stderr}");
    nothing_left(dir.path());
}

#[test]
fn a_closed_stdout_does_not_panic_and_the_cluster_serves() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("up-closed-stdout");
    let base = free_base(6);
    let metrics_base = base + 3;
    let mut child = meridian()
        .args(["cluster", "up", "--topology", "lan-3", "--dir"])
        .arg(dir.path())
        .args(["--base-port", &base.to_string()])
        .args(["--metrics-base-port", &metrics_base.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // As `| head -1` would once it has its line: nobody reads stdout any more.
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    let running = replicas_of(dir.path()).len();
    let down = meridian()
        .args(["cluster", "down", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(running, 3, "the cluster came up");
    assert!(down.status.success(), "{down:?}");
    assert!(replicas_of(dir.path()).is_empty());
}

fn restart(dir: &Path, id: &str) -> std::process::Output {
    meridian()
        .args(["cluster", "restart", "--id", id, "--dir"])
        .arg(dir)
        .output()
        .unwrap()
}

fn ok(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn refused(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "succeeded: {stderr}");
    stderr
}

fn pid_of(dir: &Path, id: u16) -> u32 {
    let text = std::fs::read_to_string(dir.join(format!("node-{id}.pid"))).unwrap();
    text.trim().parse().unwrap()
}

/// `cluster up`, writes, kill -9 of replica 1, `cluster restart` of it: the earlier
/// writes read back through it and new writes through it succeed. Restarting it again
/// while it runs is refused; a replica that cannot start (its data directory lost) is
/// reported with its log and left without a pid file, and comes back with `--rejoin`; an
/// unknown id and a directory without a cluster are refused.
#[test]
fn cluster_restart_brings_a_killed_replica_back_and_refuses_a_live_one() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("restart");
    let base = free_base(6);
    let up = cluster_up_lan_3(dir.path(), base, "multipaxos,epaxos");
    let _down = Down(dir.path());
    ok(&up);
    let kv = |port: u16, args: &[&str]| {
        let out = meridian()
            .args(args)
            .args(["--addr", &format!("127.0.0.1:{port}")])
            .arg("--certs")
            .arg(dir.path().join("certs"))
            .output()
            .unwrap();
        ok(&out)
    };
    let put = |port: u16, keyspace: &str, key: &str, value: &str| {
        let args = [
            "put",
            "--keyspace",
            keyspace,
            "--key",
            key,
            "--value",
            value,
        ];
        assert_eq!(kv(port, &args), "OK\n");
    };
    let get = |port: u16, keyspace: &str, key: &str| {
        kv(port, &["get", "--keyspace", keyspace, "--key", key])
    };
    put(base + 1, "multipaxos", "before", "1");
    put(base + 1, "epaxos", "before", "e1");

    // Restarted at once, while the killed process may still hold its ports: the
    // restart waits for it to finish exiting.
    let pid = kill_9_now(dir.path(), 1);
    let said = ok(&restart(dir.path(), "1"));
    assert!(said.contains("replica 1"), "{said}");
    let new_pid = pid_of(dir.path(), 1);
    assert_ne!(new_pid, pid, "the pid file names the new process");
    assert!(replicas_of(dir.path()).contains(&new_pid));

    assert_eq!(get(base + 1, "multipaxos", "before"), "1\n");
    assert_eq!(get(base + 1, "epaxos", "before"), "e1\n");
    put(base + 1, "multipaxos", "after", "2");
    put(base + 1, "epaxos", "after", "e2");
    assert_eq!(get(base + 1, "multipaxos", "after"), "2\n");
    assert_eq!(get(base, "epaxos", "after"), "e2\n");

    let live = refused(&restart(dir.path(), "1"));
    assert!(live.contains("still running"), "{live}");
    assert!(live.contains(&new_pid.to_string()), "names the pid: {live}");
    assert_eq!(replicas_of(dir.path()).len(), 3, "nothing else started");

    // A replica that cannot start (its data directory is gone, so it wants --rejoin) is
    // reported with its log, and no pid file is left for it.
    kill_9(dir.path(), 2);
    std::fs::rename(dir.path().join("data/n2"), dir.path().join("data/n2.lost")).unwrap();
    let failed = refused(&restart(dir.path(), "2"));
    assert!(failed.contains("replica 2 exited"), "{failed}");
    assert!(failed.contains("node-2.log"), "{failed}");
    assert!(
        failed.contains("--rejoin"),
        "the log's reason is shown: {failed}"
    );
    assert!(!dir.path().join("node-2.pid").exists());
    // Told --rejoin, it starts a new incarnation that recovers from its peers.
    let rejoin = meridian()
        .args(["cluster", "restart", "--id", "2", "--rejoin", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    ok(&rejoin);
    assert_eq!(get(base + 2, "multipaxos", "before"), "1\n");
    assert_eq!(get(base + 2, "epaxos", "after"), "e2\n");
    put(base + 2, "multipaxos", "rejoined", "3");
    assert_eq!(get(base, "multipaxos", "rejoined"), "3\n");

    let unknown = refused(&restart(dir.path(), "7"));
    assert!(unknown.contains("no replica 7"), "{unknown}");
    let empty = TempDir::new("restart-not-a-cluster");
    std::fs::create_dir_all(empty.path()).unwrap();
    let not_cluster = refused(&restart(empty.path(), "0"));
    assert!(
        not_cluster.contains("not a cluster directory"),
        "{not_cluster}"
    );
}
