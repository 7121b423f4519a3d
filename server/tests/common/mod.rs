//! Helpers shared by the server's integration tests.

#![allow(dead_code)] // each test binary uses its own subset

use meridian_server::launcher::ServerCommand;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("meridian-it-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // MERIDIAN_KEEP_TEST_DIRS=1 keeps a failed test's configs, data and node logs.
        if std::thread::panicking() && std::env::var_os("MERIDIAN_KEEP_TEST_DIRS").is_some() {
            eprintln!("kept {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The Prometheus text of a node's metrics endpoint, or the error.
pub fn scrape(addr: SocketAddr) -> String {
    meridian_server::metrics::fetch(addr).unwrap_or_else(|e| format!("scraping {addr}: {e}"))
}

/// Free loopback UDP ports.
pub fn free_addrs(n: usize) -> Vec<SocketAddr> {
    meridian_server::launcher::free_udp_addrs(n).expect("free loopback ports")
}

/// `meridian serve` from this package's binary.
pub fn meridian() -> ServerCommand {
    ServerCommand::meridian(env!("CARGO_BIN_EXE_meridian"))
}

/// The `meridian` binary as a command (CLI invocations).
pub fn cli() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_meridian"))
}

/// The standard output of a command that must have succeeded (else a panic showing both
/// streams).
pub fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A base port with `n` free UDP and `n` free TCP ports from it.
pub fn free_base(n: u16) -> u16 {
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

/// Runs `cluster down` on drop, so a failed test leaves no replica behind.
pub struct Down<'a>(pub &'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new(env!("CARGO_BIN_EXE_meridian"))
            .args(["cluster", "down", "--dir"])
            .arg(self.0)
            .output();
    }
}

/// `meridian cluster up --topology lan-3` of `protocols` in `dir`, QUIC ports from `base`,
/// metrics ports from `base + 3`.
pub fn cluster_up_lan_3(dir: &Path, base: u16, protocols: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["cluster", "up", "--topology", "lan-3", "--dir"])
        .arg(dir)
        .args(["--protocol", protocols])
        .args(["--base-port", &base.to_string()])
        .args(["--metrics-base-port", &(base + 3).to_string()])
        .output()
        .unwrap()
}

/// Put `keys` (value `v`) into `keyspace` through `client`, asking each again until it
/// is written (the cluster may still be settling after a fault); panics after `patience`
/// with the log tails of `nodes`.
pub async fn put_until_written(
    client: &meridian_server::client::Client,
    keyspace: &str,
    keys: impl IntoIterator<Item = String>,
    patience: std::time::Duration,
    cluster: &meridian_server::launcher::LocalCluster,
    nodes: &[u16],
) {
    let deadline = std::time::Instant::now() + patience;
    for key in keys {
        loop {
            match client.put(keyspace, key.as_bytes(), b"v", None).await {
                Ok(reply) if reply.outcome.is_ok() => break,
                other => {
                    let tails: Vec<String> =
                        nodes.iter().map(|&n| cluster.log_tail(n, 20)).collect();
                    assert!(
                        std::time::Instant::now() < deadline,
                        "{key}: {other:?}\n{}",
                        tails.join("\n")
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        }
    }
}

/// `kill -9` replica `id` of the cluster in `dir` (its pid file) and wait until none of
/// its threads is left but zombies (the last thread out closes its files), so its ports
/// are free for a restart; returns its pid.
pub fn kill_9(dir: &Path, id: u16) -> u32 {
    let pid = kill_9_now(dir, id);
    // Not "its command line reads empty": a dying process drops its memory before its
    // files, and CI once saw `cluster restart` refused with "port in use" in between.
    assert!(
        meridian_server::process::wait_until_exited(pid, std::time::Duration::from_secs(10)),
        "replica {id} survived kill -9"
    );
    pid
}

/// `kill -9` replica `id` of the cluster in `dir` (its pid file) and return its pid at
/// once, while it may still be exiting.
pub fn kill_9_now(dir: &Path, id: u16) -> u32 {
    let text = std::fs::read_to_string(dir.join(format!("node-{id}.pid"))).unwrap();
    let pid: u32 = text.trim().parse().unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    assert!(killed.unwrap().success());
    pid
}
