//! `meridian cluster up` when things go wrong: a port already taken fails at once naming
//! it and leaves nothing running (no replica, no pid file); a closed stdout (as with
//! `cluster up | head -1`) does not make it panic, and the cluster it started serves.

mod common;

use common::TempDir;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The tests here pick free ports the same way: one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn meridian() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meridian"))
}

/// A base port with `n` free UDP and `n` free TCP ports from it.
fn free_base(n: u16) -> u16 {
    for base in (20_000u16..60_000).step_by(37) {
        let free = (0..n).all(|i| {
            std::net::UdpSocket::bind(("127.0.0.1", base + i)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()
        });
        if free {
            return base;
        }
    }
    panic!("no free port range");
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
