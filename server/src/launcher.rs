//! Replica processes on this machine: start one per node of a generated cluster, kill -9
//! one, restart it, stop them all. `meridian cluster up`, the process tests and the
//! benchmark's cluster backend share it.
//!
//! ```text
//!  LocalCluster::start(dir, spec, command) ─▶ cluster::generate ─▶ one child per node
//!     kill(i)      SIGKILL (a crash: nothing flushed, nothing said)
//!     restart(i)   same config, same data directory
//!     wait_ready() every replica accepts clients and every keyspace serves through it
//!     add_node(r)  one more node in region r (`cluster_join`), started outside every
//!                  configuration until a membership change adds it
//!     drop         SIGKILL whatever still runs (tests never leak replicas)
//! ```
//!
//! Each child's stdout and stderr go to `dir/node-<id>.log` (appended across restarts).

use crate::client::{Client, ClientError, ClientOptions};
use crate::config::NodeConfig;
use crate::identity;
use crate::local_cluster::{self as cluster, ClusterError, ClusterSpec, Manifest, ManifestNode};
use crate::tls::{TlsError, TlsIdentity, TlsPaths};
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// How to run one replica: `program args... --config FILE`.
#[derive(Clone, Debug)]
pub struct ServerCommand {
    /// The executable.
    pub program: PathBuf,
    /// Arguments before `--config FILE`.
    pub args: Vec<OsString>,
}

impl ServerCommand {
    /// `meridian serve` from the given `meridian` binary.
    pub fn meridian(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: vec!["serve".into()],
        }
    }
}

/// What can go wrong running local replicas.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// Generating the cluster failed.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The client certificate could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A replica process could not be started or signalled.
    #[error("replica {node}: {message}")]
    Process {
        /// The node.
        node: u16,
        /// What failed.
        message: String,
    },
    /// A replica did not become ready in time.
    #[error("replica {node} is not ready: {message}; see {log}")]
    NotReady {
        /// The node.
        node: u16,
        /// Why.
        message: String,
        /// Its log file.
        log: PathBuf,
    },
    /// No such node in the cluster.
    #[error("no node {0} in this cluster")]
    UnknownNode(u16),
}

/// `n` free loopback ports of one socket kind, bound then released (a small race:
/// another process may take one before it is used).
fn free_ports<S>(
    n: usize,
    bind: impl Fn() -> std::io::Result<S>,
    addr: impl Fn(&S) -> std::io::Result<SocketAddr>,
) -> std::io::Result<Vec<SocketAddr>> {
    let sockets: Vec<S> = (0..n).map(|_| bind()).collect::<Result<_, _>>()?;
    sockets.iter().map(addr).collect()
}

/// Where replica UDP ports are picked: below the kernel's ephemeral range (Linux:
/// 32768-60999), so a socket bound to port 0 (a client, a readiness probe) cannot be
/// handed a replica's port between this check and the replica's own bind (the likely
/// cause of a 5-replica test cluster whose node stayed unreachable for 60 s).
const REPLICA_UDP_PORTS: std::ops::Range<u16> = 20_000..32_768;

/// Free loopback UDP ports (QUIC addresses for replicas), bound then released, from
/// [`REPLICA_UDP_PORTS`], starting at a point drawn from the process id and the clock
/// so that two callers at once rarely probe the same ports.
pub fn free_udp_addrs(n: usize) -> std::io::Result<Vec<SocketAddr>> {
    let span = u32::from(REPLICA_UDP_PORTS.end - REPLICA_UDP_PORTS.start);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let start = (std::process::id().wrapping_mul(7_919) ^ nanos) % span;
    let mut sockets = Vec::with_capacity(n);
    for step in 0..span {
        if sockets.len() == n {
            break;
        }
        let offset = u16::try_from((start + step) % span).unwrap_or(0);
        if let Ok(socket) =
            std::net::UdpSocket::bind(("127.0.0.1", REPLICA_UDP_PORTS.start + offset))
        {
            sockets.push(socket);
        }
    }
    if sockets.len() < n {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!(
                "fewer than {n} free loopback UDP ports in {}..{}",
                REPLICA_UDP_PORTS.start, REPLICA_UDP_PORTS.end
            ),
        ));
    }
    sockets
        .iter()
        .map(std::net::UdpSocket::local_addr)
        .collect()
}

/// Free loopback TCP ports (metrics endpoints).
pub fn free_tcp_addrs(n: usize) -> std::io::Result<Vec<SocketAddr>> {
    free_ports(
        n,
        || std::net::TcpListener::bind(("127.0.0.1", 0)),
        std::net::TcpListener::local_addr,
    )
}

/// The log file of node `id` in a cluster directory.
pub fn log_path(dir: &Path, id: u16) -> PathBuf {
    dir.join(format!("node-{id}.log"))
}

/// Start one replica with `config`, output appended to `log`. With `detach` it gets its
/// own process group, so it outlives the caller's terminal and Ctrl-C.
pub fn spawn_replica(
    command: &ServerCommand,
    config: &Path,
    log: &Path,
    detach: bool,
) -> std::io::Result<Child> {
    let log = OpenOptions::new().create(true).append(true).open(log)?;
    let mut process = std::process::Command::new(&command.program);
    process
        .args(&command.args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if detach {
        process.process_group(0);
    }
    process.spawn()
}

/// Wait until every node of `manifest` accepts a client connection and serves each of
/// `keyspaces` (leader elected, peers connected).
pub async fn wait_ready(
    dir: &Path,
    manifest: &Manifest,
    nodes: impl IntoIterator<Item = u16>,
    keyspaces: &[String],
    tls: &TlsIdentity,
    timeout: Duration,
) -> Result<(), LaunchError> {
    let deadline = Instant::now() + timeout;
    for id in nodes {
        let node = manifest
            .nodes
            .iter()
            .find(|n| n.id == id)
            .ok_or(LaunchError::UnknownNode(id))?;
        let not_ready = |message: String| LaunchError::NotReady {
            node: id,
            message,
            log: log_path(dir, id),
        };
        let client = loop {
            let options = ClientOptions {
                timeout: Duration::from_secs(1),
                ..ClientOptions::default()
            };
            let attempt = Client::connect_with(node.address, tls, options);
            let error = match tokio::time::timeout(Duration::from_secs(2), attempt).await {
                Ok(Ok(client)) => break client,
                Ok(Err(e)) => e,
                Err(_) => ClientError::Connect {
                    addr: node.address,
                    message: "handshake timed out".into(),
                },
            };
            if Instant::now() >= deadline {
                return Err(not_ready(error.to_string()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        for keyspace in keyspaces {
            let left = deadline.saturating_duration_since(Instant::now());
            client
                .wait_serving(keyspace, left)
                .await
                .map_err(not_ready)?;
        }
        client.close().await;
    }
    Ok(())
}

/// Replica processes this value owns (killed when it drops).
pub struct LocalCluster {
    dir: PathBuf,
    manifest: Manifest,
    command: ServerCommand,
    children: Vec<Option<Child>>,
}

impl LocalCluster {
    /// Generate `spec` into `dir` and start every replica (not yet waiting for them).
    pub fn start(
        dir: &Path,
        spec: &ClusterSpec,
        command: ServerCommand,
    ) -> Result<Self, LaunchError> {
        let manifest = cluster::generate(dir, spec)?;
        let mut cluster = Self {
            dir: dir.canonicalize().map_err(|e| LaunchError::Process {
                node: 0,
                message: format!("{}: {e}", dir.display()),
            })?,
            children: manifest.nodes.iter().map(|_| None).collect(),
            manifest,
            command,
        };
        for id in cluster.ids() {
            cluster.restart(id)?;
        }
        Ok(cluster)
    }

    /// The cluster's manifest (addresses, regions, keyspaces).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The cluster directory (certificates, configs, data, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Process ids of the replicas that run (started by this value), in node order.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().flatten().map(Child::id).collect()
    }

    /// Process id of node `id`, if this value started it and has not stopped it.
    pub fn pid(&self, id: u16) -> Option<u32> {
        let slot = self.slot(id).ok()?;
        self.children[slot].as_ref().map(Child::id)
    }

    /// Node ids.
    pub fn ids(&self) -> Vec<u16> {
        self.manifest.nodes.iter().map(|n| n.id).collect()
    }

    /// The client identity generated with the cluster.
    pub fn client_tls(&self) -> Result<TlsIdentity, LaunchError> {
        Ok(TlsIdentity::load(&TlsPaths::client(
            &self.dir.join("certs"),
        ))?)
    }

    fn slot(&self, id: u16) -> Result<usize, LaunchError> {
        self.manifest
            .nodes
            .iter()
            .position(|n| n.id == id)
            .ok_or(LaunchError::UnknownNode(id))
    }

    /// The operator identity generated with the cluster (membership changes need it).
    pub fn operator_tls(&self) -> Result<TlsIdentity, LaunchError> {
        Ok(TlsIdentity::load(&TlsPaths::operator_or_client(
            &self.dir.join("certs"),
        ))?)
    }

    /// Prepare one more node in `region` (next free id and ports, certificate, config:
    /// [`crate::cluster_join::join`]) and start it. It serves no keyspace as a member
    /// until a membership change adds it. Returns its manifest entry.
    pub fn add_node(&mut self, region: &str) -> Result<ManifestNode, LaunchError> {
        let (manifest, node) = crate::cluster_join::join(&self.dir, region)?;
        // The ports are the highest in use plus one, which on loopback another process
        // may hold: say so rather than start a replica that cannot bind.
        if let Err(e) = std::net::UdpSocket::bind(node.address) {
            crate::cluster_join::mark_removed(&self.dir, node.id, true)?;
            return Err(LaunchError::Process {
                node: node.id,
                message: format!("its port {} is taken: {e}", node.address),
            });
        }
        let config = NodeConfig::load(&node.config).map_err(ClusterError::from)?;
        identity::init_new(&config).map_err(ClusterError::from)?;
        self.manifest = manifest;
        self.children.push(None);
        self.restart(node.id)?;
        Ok(node)
    }

    /// Whether node `id`'s process is running.
    pub fn is_running(&mut self, id: u16) -> bool {
        let Ok(slot) = self.slot(id) else {
            return false;
        };
        match &mut self.children[slot] {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// kill -9 node `id` and reap it.
    pub fn kill(&mut self, id: u16) -> Result<(), LaunchError> {
        let slot = self.slot(id)?;
        if let Some(mut child) = self.children[slot].take() {
            let failed = |e: std::io::Error| LaunchError::Process {
                node: id,
                message: format!("kill -9: {e}"),
            };
            // An already-exited child makes kill fail; reaping it is what matters.
            let _ = child.kill();
            child.wait().map_err(failed)?;
        }
        Ok(())
    }

    /// SIGTERM node `id` (it drains, then exits) and reap it; kill -9 it if it has not
    /// exited after `patience`. Returns how long it took to exit.
    pub fn terminate(&mut self, id: u16, patience: Duration) -> Result<Duration, LaunchError> {
        let slot = self.slot(id)?;
        let failed = |message: String| LaunchError::Process { node: id, message };
        let Some(mut child) = self.children[slot].take() else {
            return Ok(Duration::ZERO);
        };
        let started = Instant::now();
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .map_err(|e| failed(format!("kill -TERM: {e}")))?;
        if !status.success() {
            // Already gone: reaping it is what matters.
            child.wait().map_err(|e| failed(format!("wait: {e}")))?;
            return Ok(started.elapsed());
        }
        while started.elapsed() < patience {
            if child
                .try_wait()
                .map_err(|e| failed(format!("wait: {e}")))?
                .is_some()
            {
                return Ok(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child.wait().map_err(|e| failed(format!("wait: {e}")))?;
        Err(failed(format!(
            "still running {patience:?} after SIGTERM; killed it"
        )))
    }

    /// (Re)start node `id` from its config and data directory (killing it first if it
    /// runs).
    pub fn restart(&mut self, id: u16) -> Result<(), LaunchError> {
        self.restart_with(id, &[])
    }

    /// [`LocalCluster::restart`] with extra arguments before `--config` (e.g.
    /// `--rejoin`).
    pub fn restart_with(&mut self, id: u16, extra: &[&str]) -> Result<(), LaunchError> {
        self.kill(id)?;
        let slot = self.slot(id)?;
        let config = self.manifest.nodes[slot].config.clone();
        let mut command = self.command.clone();
        command.args.extend(extra.iter().map(OsString::from));
        let child =
            spawn_replica(&command, &config, &log_path(&self.dir, id), false).map_err(|e| {
                LaunchError::Process {
                    node: id,
                    message: format!("starting {}: {e}", self.command.program.display()),
                }
            })?;
        self.children[slot] = Some(child);
        Ok(())
    }

    /// Wait until `nodes` accept clients and serve every keyspace.
    pub async fn wait_ready(
        &self,
        nodes: impl IntoIterator<Item = u16>,
        timeout: Duration,
    ) -> Result<(), LaunchError> {
        let tls = self.client_tls()?;
        wait_ready(
            &self.dir,
            &self.manifest,
            nodes,
            &self.manifest.keyspaces,
            &tls,
            timeout,
        )
        .await
    }

    /// Wait until every node is ready.
    pub async fn wait_all_ready(&self, timeout: Duration) -> Result<(), LaunchError> {
        self.wait_ready(self.ids(), timeout).await
    }

    /// The tail of node `id`'s log (for failure messages).
    pub fn log_tail(&self, id: u16, lines: usize) -> String {
        let text = std::fs::read_to_string(log_path(&self.dir, id)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
