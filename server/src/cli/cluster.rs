//! `meridian cluster up|down`: a local cluster of replica processes in one directory.
//!
//! ```text
//!  up:   every QUIC (UDP) and metrics (TCP) port free? ── no ─▶ fail at once naming the port
//!          │ yes
//!        generate certs/configs ─▶ start replicas (dir/node-<i>.pid, .log)
//!          ─▶ wait until every replica serves every keyspace, watching for exits
//!               ├─ a replica exits or the wait times out ─▶ kill what was started,
//!               │    remove its pid files, report that replica's last log lines
//!               └─ ready ─▶ print the addresses (a closed stdout is not an error)
//!  restart --id N: a cluster dir (cluster.toml)? node N in it? not running (its pid file
//!          names no live replica, its ports are free)? ── no ─▶ refuse, saying which
//!        start it from its config and data directory (its identity: no --init; --rejoin
//!          if told, for a replica that lost its data directory),
//!          write its pid file, wait until it serves every keyspace as `up` does
//!  add --region R, remove --id N: see cli/cluster_change.rs
//!  down: SIGTERM each replica of the pid files (SIGKILL after 20 s), remove the files
//! ```

use anyhow::{bail, Context};
use clap::Subcommand;
use meridian_engine::topology::Topology;
use meridian_server::launcher::{self, ServerCommand};
use meridian_server::local_cluster::{
    self as cluster, ClusterSpec, Manifest, ManifestNode, PROTOCOLS,
};
use meridian_server::process;
use meridian_server::tls::{TlsIdentity, TlsPaths};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

/// How long `cluster up` waits for every replica to serve.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// `meridian cluster ...`
#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Generate certificates and configs in DIR and start one process per replica.
    Up {
        /// Builtin topology name (e.g. lan-3, epaxos-5) or topology file.
        #[arg(long)]
        topology: String,
        /// Directory for certificates, configs, data, logs and pid files.
        #[arg(long)]
        dir: PathBuf,
        /// Emulate the topology's WAN latency between replicas.
        #[arg(long)]
        wan: bool,
        /// Protocols to serve, one keyspace each (default: all of multipaxos, epaxos,
        /// dynamo).
        #[arg(long = "protocol", value_delimiter = ',')]
        protocols: Vec<String>,
        /// First QUIC port (replica i listens on base + i).
        #[arg(long, default_value_t = 7_000)]
        base_port: u16,
        /// First metrics port (replica i serves metrics on base + i).
        #[arg(long, default_value_t = 9_100)]
        metrics_base_port: u16,
    },
    /// Start one replica of a cluster made by `cluster up` again (after it crashed or
    /// was killed), from its config and data directory; refused while it runs.
    Restart {
        /// The directory given to `cluster up`.
        #[arg(long)]
        dir: PathBuf,
        /// The replica's node id.
        #[arg(long)]
        id: u16,
        /// The replica lost its data directory: start it with `serve --rejoin` (a new
        /// incarnation that recovers from its peers before it votes).
        #[arg(long)]
        rejoin: bool,
    },
    /// Start one more replica (next free id and ports, a certificate from the cluster
    /// CA in DIR) and add it to every Multi-Paxos keyspace (`member add`): it joins as a
    /// learner, catches up and is promoted to voter.
    Add {
        /// The directory given to `cluster up`.
        #[arg(long)]
        dir: PathBuf,
        /// The new replica's region (one of the topology's).
        #[arg(long)]
        region: String,
    },
    /// Remove a replica from every Multi-Paxos keyspace (`member remove`), then stop it.
    Remove {
        /// The directory given to `cluster up`.
        #[arg(long)]
        dir: PathBuf,
        /// The replica's node id.
        #[arg(long)]
        id: u16,
    },
    /// Stop the processes of a cluster started with `cluster up`.
    Down {
        /// The directory given to `cluster up`.
        #[arg(long)]
        dir: PathBuf,
    },
}

/// Run a `cluster` command.
pub fn run(command: ClusterCommand) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Down { dir } => down(&dir),
        ClusterCommand::Add { dir, region } => {
            let lines = runtime()?.block_on(crate::cluster_change::add(&dir, &region))?;
            print_lines(&lines);
            Ok(())
        }
        ClusterCommand::Remove { dir, id } => {
            let lines = runtime()?.block_on(crate::cluster_change::remove(&dir, id))?;
            print_lines(&lines);
            Ok(())
        }
        ClusterCommand::Restart { dir, id, rejoin } => {
            let lines = runtime()?.block_on(restart(&dir, id, rejoin))?;
            print_lines(&lines);
            Ok(())
        }
        ClusterCommand::Up {
            topology,
            dir,
            wan,
            protocols,
            base_port,
            metrics_base_port,
        } => {
            let lines = runtime()?.block_on(up(
                &topology,
                &dir,
                wan,
                protocols,
                base_port,
                metrics_base_port,
            ))?;
            print_lines(&lines);
            Ok(())
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Print to stdout; a reader that went away (`cluster up | head -1`) is not an error:
/// the cluster is up either way.
pub(crate) fn print_lines(lines: &[String]) {
    let mut out = std::io::stdout().lock();
    for line in lines {
        if writeln!(out, "{line}").is_err() {
            return;
        }
    }
    let _ = out.flush();
}

pub(crate) fn pid_path(dir: &Path, id: u16) -> PathBuf {
    dir.join(format!("node-{id}.pid"))
}

/// Why `addr` cannot be used, if it cannot: bound by another process, or not bindable.
pub(crate) fn port_problem(addr: SocketAddr, udp: bool) -> Option<String> {
    let bound = if udp {
        std::net::UdpSocket::bind(addr).map(drop)
    } else {
        std::net::TcpListener::bind(addr).map(drop)
    };
    match bound {
        Ok(()) => None,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Some("port in use".to_owned()),
        Err(e) => Some(e.to_string()),
    }
}

/// Every address the cluster needs, checked before anything is written or started.
fn check_ports(spec: &ClusterSpec) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for (i, &addr) in spec.addresses.iter().enumerate() {
        if let Some(problem) = port_problem(addr, true) {
            problems.push(format!("{addr} (UDP, QUIC of replica {i}): {problem}"));
        }
    }
    for (i, &addr) in spec.metrics.iter().flatten().enumerate() {
        if let Some(problem) = port_problem(addr, false) {
            problems.push(format!("{addr} (TCP, metrics of replica {i}): {problem}"));
        }
    }
    if !problems.is_empty() {
        bail!(
            "cannot start the cluster: {} (another cluster or program holds them; stop it, \
             or pick other ports with --base-port and --metrics-base-port)",
            problems.join("; ")
        );
    }
    Ok(())
}

/// Replicas started by `up`, killed and their pid files removed unless `up` succeeds.
pub(crate) struct Started<'a> {
    pub(crate) dir: &'a Path,
    pub(crate) children: Vec<(u16, Child)>,
    pub(crate) keep: bool,
}

impl Started<'_> {
    /// The first replica that has exited, with its status.
    pub(crate) fn exited(&mut self) -> Option<(u16, String)> {
        self.children
            .iter_mut()
            .find_map(|(id, child)| match child.try_wait() {
                Ok(Some(status)) => Some((*id, status.to_string())),
                _ => None,
            })
    }
}

impl Started<'_> {
    /// Start `node` detached from this terminal and write its pid file.
    pub(crate) fn spawn(
        &mut self,
        command: &ServerCommand,
        node: &ManifestNode,
    ) -> anyhow::Result<u32> {
        let log = launcher::log_path(self.dir, node.id);
        let child = launcher::spawn_replica(command, &node.config, &log, true)
            .with_context(|| format!("starting replica {}", node.id))?;
        let pid = child.id();
        self.children.push((node.id, child));
        let path = pid_path(self.dir, node.id);
        std::fs::write(&path, format!("{pid}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(pid)
    }
}

/// Wait until every replica of `started` accepts clients and serves every keyspace; a
/// replica that exits meanwhile (a port taken since the check, a bad config, a data
/// directory it refuses) fails at once, named with its log.
pub(crate) async fn wait_started(
    manifest: &Manifest,
    keyspaces: &[String],
    started: &mut Started<'_>,
) -> anyhow::Result<()> {
    let dir = started.dir;
    let tls = TlsIdentity::load(&TlsPaths::client(&dir.join("certs")))?;
    let ready = launcher::wait_ready(
        dir,
        manifest,
        started
            .children
            .iter()
            .map(|(id, _)| *id)
            .collect::<Vec<_>>(),
        keyspaces,
        &tls,
        READY_TIMEOUT,
    );
    tokio::pin!(ready);
    let deadline = Instant::now() + READY_TIMEOUT + Duration::from_secs(5);
    loop {
        tokio::select! {
            result = &mut ready => {
                if let Err(e) = result {
                    // Name the replica that actually failed if one exited meanwhile.
                    if let Some((id, status)) = started.exited() {
                        bail!("replica {id} exited ({status}); {}", log_excerpt(dir, id));
                    }
                    let log = match &e {
                        launcher::LaunchError::NotReady { node, .. } => log_excerpt(dir, *node),
                        _ => String::new(),
                    };
                    bail!("{e}; stopped the replicas this command started. {log}");
                }
                return Ok(());
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if let Some((id, status)) = started.exited() {
                    bail!(
                        "replica {id} exited ({status}); stopped the replicas this command \
                         started. {}",
                        log_excerpt(dir, id)
                    );
                }
                if Instant::now() > deadline {
                    bail!(
                        "the replicas did not become ready in {READY_TIMEOUT:?}; stopped the \
                         replicas this command started"
                    );
                }
            }
        }
    }
}

impl Drop for Started<'_> {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        for (id, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(pid_path(self.dir, *id));
        }
    }
}

/// The last lines of replica `id`'s log that say what went wrong, for an error message.
pub(crate) fn log_excerpt(dir: &Path, id: u16) -> String {
    let path = launcher::log_path(dir, id);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    // With RUST_BACKTRACE set, the error is followed by its backtrace: show the error.
    let text = text
        .rfind("\nStack backtrace:")
        .map_or(text.as_str(), |end| &text[..end]);
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(5)..].join("\n    ");
    format!("{}:\n    {tail}", path.display())
}

/// `cluster up`; returns what to print.
async fn up(
    topology_name: &str,
    dir: &Path,
    wan: bool,
    protocols: Vec<String>,
    base_port: u16,
    metrics_base_port: u16,
) -> anyhow::Result<Vec<String>> {
    let topology = Topology::resolve(topology_name)?;
    let topology_ref = cluster::topology_ref(topology_name)?;
    let n = topology.replicas().len();
    let port = |base: u16, i: usize| -> anyhow::Result<SocketAddr> {
        let port = u16::try_from(usize::from(base) + i).context("port out of range")?;
        Ok(SocketAddr::from(([127, 0, 0, 1], port)))
    };
    for i in 0..n {
        if pid_path(dir, i as u16).exists() {
            bail!(
                "{} exists: a cluster may already run in {}; run `meridian cluster down --dir {}` first",
                pid_path(dir, i as u16).display(),
                dir.display(),
                dir.display()
            );
        }
    }
    let protocols = if protocols.is_empty() {
        PROTOCOLS.iter().map(|p| p.to_string()).collect()
    } else {
        protocols
    };
    let keyspaces = cluster::default_keyspaces(&protocols, n)?;
    let spec = ClusterSpec {
        topology,
        topology_ref,
        addresses: (0..n)
            .map(|i| port(base_port, i))
            .collect::<anyhow::Result<_>>()?,
        metrics: Some(
            (0..n)
                .map(|i| port(metrics_base_port, i))
                .collect::<anyhow::Result<_>>()?,
        ),
        keyspaces,
        wan,
    };
    check_ports(&spec)?;
    let manifest = cluster::generate(dir, &spec)?;
    let exe = std::env::current_exe().context("locating the meridian binary")?;
    let command = ServerCommand::meridian(exe);
    let mut started = Started {
        dir,
        children: Vec::new(),
        keep: false,
    };
    for node in &manifest.nodes {
        started.spawn(&command, node)?;
    }
    wait_started(&manifest, &manifest.keyspaces, &mut started).await?;
    started.keep = true;
    let mut lines = vec![format!(
        "cluster up: {} replicas of {}{} serving {} in {}",
        manifest.nodes.len(),
        manifest.topology,
        if wan { " (WAN emulated)" } else { "" },
        manifest.keyspaces.join(", "),
        dir.display()
    )];
    for node in &manifest.nodes {
        lines.push(format!(
            "  node {} {:<16} quic {}  metrics http://{}/metrics",
            node.id,
            node.region,
            node.address,
            node.metrics.map_or("-".to_owned(), |m| m.to_string())
        ));
    }
    lines.push(format!(
        "try: meridian put --addr {} --keyspace {} --key k --value v --certs {}",
        manifest.nodes[0].address,
        manifest.keyspaces[0],
        dir.join("certs").display()
    ));
    Ok(lines)
}

/// The keyspaces `node` serves: its config's (a replica added by `cluster add` serves
/// only those whose membership changes), the cluster's for the others.
pub(crate) fn served_keyspaces(
    manifest: &Manifest,
    node: &ManifestNode,
) -> anyhow::Result<Vec<String>> {
    if !node.joined {
        return Ok(manifest.keyspaces.clone());
    }
    let config = meridian_server::config::NodeConfig::load(&node.config)?;
    Ok(config
        .keyspaces
        .iter()
        .map(|k| k.name().to_owned())
        .collect())
}

/// Whether `pid` is a running `meridian serve` (guards against a recycled pid).
fn is_our_replica(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        args.iter().any(|a| a.ends_with(b"meridian")) && args.contains(&&b"serve"[..])
    })
}

/// The pid in replica `id`'s pid file, if it has one.
fn pid_in_file(dir: &Path, id: u16) -> anyhow::Result<Option<u32>> {
    let path = pid_path(dir, id);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let pid = text
        .trim()
        .parse()
        .with_context(|| format!("{}: not a pid", path.display()))?;
    Ok(Some(pid))
}

/// The pid in replica `id`'s pid file if that process is still a running replica.
pub(crate) fn running_pid(dir: &Path, id: u16) -> anyhow::Result<Option<u32>> {
    Ok(pid_in_file(dir, id)?.filter(|&pid| is_our_replica(pid)))
}

/// How long a replica killed moments ago may take to close its files.
const EXIT_WAIT: Duration = Duration::from_secs(10);

/// Wait until replica `id`'s process `pid`, stopped or killed, has closed its files.
fn wait_until_exited(pid: u32, id: u16) -> anyhow::Result<()> {
    // The name guards against a pid that another program has since taken.
    let ours = process::command_name(pid).is_some_and(|name| name.starts_with("meridian"));
    if ours && !process::wait_until_exited(pid, EXIT_WAIT) {
        bail!(
            "replica {id} (pid {pid}) is still exiting after {} s; try again once it is gone",
            EXIT_WAIT.as_secs()
        );
    }
    Ok(())
}

/// `cluster restart`; returns what to print.
async fn restart(dir: &Path, id: u16, rejoin: bool) -> anyhow::Result<Vec<String>> {
    if !cluster::manifest_path(dir).is_file() {
        bail!(
            "{} is not a cluster directory (it has no cluster.toml); give the --dir that \
             `meridian cluster up` was run with",
            dir.display()
        );
    }
    let manifest = Manifest::load(dir)?;
    let Some(node) = manifest.nodes.iter().find(|n| n.id == id && !n.removed) else {
        let ids: Vec<String> = manifest.nodes.iter().map(|n| n.id.to_string()).collect();
        bail!(
            "no replica {id} in the cluster in {} (its replicas: {})",
            dir.display(),
            ids.join(", ")
        );
    };
    if let Some(pid) = pid_in_file(dir, id)? {
        if is_our_replica(pid) {
            bail!(
                "replica {id} is still running (pid {pid}, {}); stop it first (e.g. kill \
                 {pid}) or leave it be",
                pid_path(dir, id).display()
            );
        }
        // Killed moments ago, it may still hold its ports though its command line
        // reads empty: `kill -9` then `cluster restart` waits for it to close them.
        wait_until_exited(pid, id)?;
    }
    // Not ours by the pid file, but something may hold its ports (a replica started by
    // hand, another program).
    let mut problems = Vec::new();
    if let Some(problem) = port_problem(node.address, true) {
        problems.push(format!("{} (UDP, QUIC): {problem}", node.address));
    }
    if let Some(metrics) = node.metrics {
        if let Some(problem) = port_problem(metrics, false) {
            problems.push(format!("{metrics} (TCP, metrics): {problem}"));
        }
    }
    if !problems.is_empty() {
        bail!(
            "cannot restart replica {id}: {} (is it running without a pid file?)",
            problems.join("; ")
        );
    }
    let _ = std::fs::remove_file(pid_path(dir, id)); // stale: its process is gone
    let exe = std::env::current_exe().context("locating the meridian binary")?;
    let mut started = Started {
        dir,
        children: Vec::new(),
        keep: false,
    };
    let mut command = ServerCommand::meridian(exe);
    if rejoin {
        command.args.push("--rejoin".into());
    }
    let pid = started.spawn(&command, node)?;
    let keyspaces = served_keyspaces(&manifest, node)?;
    wait_started(&manifest, &keyspaces, &mut started).await?;
    started.keep = true;
    Ok(vec![format!(
        "cluster restart: replica {id} (pid {pid}) serving {} at {}",
        manifest.keyspaces.join(", "),
        node.address
    )])
}

pub(crate) fn signal(pid: u32, name: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("kill -{name} {pid} failed");
    }
    Ok(())
}

/// SIGTERM replica `id` (pid `pid`), SIGKILL after 20 s; returns once it is gone.
pub(crate) fn stop(pid: u32, id: u16) -> anyhow::Result<()> {
    signal(pid, "TERM")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while is_our_replica(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if is_our_replica(pid) {
        eprintln!("replica {id} (pid {pid}) ignored SIGTERM; killing it");
        signal(pid, "KILL")?;
    }
    // Its command line is gone before its sockets: return once its ports are free.
    wait_until_exited(pid, id)
}

fn down(dir: &Path) -> anyhow::Result<()> {
    let manifest = Manifest::load(dir)?;
    let mut stopped = 0;
    for node in &manifest.nodes {
        let path = pid_path(dir, node.id);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let pid: u32 = text
            .trim()
            .parse()
            .with_context(|| format!("{}", path.display()))?;
        if is_our_replica(pid) {
            stop(pid, node.id)?;
            stopped += 1;
        }
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    print_lines(&[format!(
        "cluster down: stopped {stopped} replicas in {}",
        dir.display()
    )]);
    Ok(())
}
