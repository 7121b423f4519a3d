//! `meridian`: replica server, client CLI and local cluster launcher.
//!
//! ```text
//!  meridian serve --config node.toml [--init | --rejoin] [--log-file PATH] [--log-format text|json]
//!  meridian certs init --out DIR --nodes N | issue --ca DIR --node ID|--client NAME | show PATH
//!  meridian config check node-0.toml node-1.toml ...
//!  meridian get|put|delete|cas --addr HOST:PORT --keyspace K --key KEY [--consistency C] --certs DIR
//!      [--output text|json] [--encoding utf8|hex|base64] [--value-file F|-] [--blind|--context T]
//!  meridian cluster up --topology NAME|FILE --dir DIR [--wan] [--protocol P]...
//!  meridian cluster down --dir DIR
//! ```

#[path = "cli/admin.rs"]
mod admin;
#[path = "cli/encoding.rs"]
mod encoding;
#[path = "cli/kv.rs"]
mod kv;

use admin::{CertsCommand, ConfigCommand, LogOptions};
use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use meridian_engine::topology::Topology;
use meridian_server::identity::StartMode;
use meridian_server::launcher::{self, ServerCommand};
use meridian_server::local_cluster::{self as cluster, ClusterSpec, Manifest, PROTOCOLS};
use meridian_server::tls::{TlsIdentity, TlsPaths};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "meridian",
    version,
    about = "Meridian geo-replicated key-value store: replica server and client"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a replica.
    Serve {
        /// Node config file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// First start of a new cluster's node: create the data directory (its parent
        /// must exist) and its identity. Refused if the data directory has one.
        #[arg(long, conflicts_with = "rejoin")]
        init: bool,
        /// This node lost its data directory: start a new incarnation that recovers from
        /// its peers before it votes (see docs/deployment.md, "Data and logs").
        #[arg(long)]
        rejoin: bool,
        #[command(flatten)]
        log: LogOptions,
    },
    /// Cluster CA and certificates: init, issue, show.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Node configs: check a cluster's set against each other.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    #[command(flatten)]
    Kv(kv::KvCommand),
    /// Start or stop a local cluster.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
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
    /// Stop the processes of a cluster started with `cluster up`.
    Down {
        /// The directory given to `cluster up`.
        #[arg(long)]
        dir: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Replicas log at info; client commands only warn (RUST_LOG overrides both).
    match &cli.command {
        Command::Serve { log, .. } => admin::init_logging("info", log)?,
        _ => admin::init_logging("warn", &LogOptions::default())?,
    }
    match cli.command {
        Command::Certs { command } => admin::certs(command),
        Command::Config { command } => admin::config(command),
        Command::Cluster {
            command: ClusterCommand::Down { dir },
        } => cluster_down(&dir),
        command => runtime()?.block_on(run(command)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve {
            config,
            init,
            rejoin,
            ..
        } => {
            let mode = match (init, rejoin) {
                (true, _) => StartMode::Init,
                (_, true) => StartMode::Rejoin,
                _ => StartMode::Normal,
            };
            let served = meridian_server::serve::serve(&config, mode).await;
            if let Err(e) = &served {
                // Also into the log file, where an operator watching it looks.
                tracing::error!("{e}");
            }
            Ok(served?)
        }
        Command::Kv(command) => {
            let code = kv::run(command).await;
            use std::io::Write;
            let _ = std::io::stdout().flush();
            std::process::exit(code)
        }
        Command::Cluster {
            command:
                ClusterCommand::Up {
                    topology,
                    dir,
                    wan,
                    protocols,
                    base_port,
                    metrics_base_port,
                },
        } => {
            cluster_up(
                &topology,
                &dir,
                wan,
                protocols,
                base_port,
                metrics_base_port,
            )
            .await
        }
        Command::Certs { .. }
        | Command::Config { .. }
        | Command::Cluster {
            command: ClusterCommand::Down { .. },
        } => unreachable!("handled without a runtime"),
    }
}

fn pid_path(dir: &Path, id: u16) -> PathBuf {
    dir.join(format!("node-{id}.pid"))
}

async fn cluster_up(
    topology_name: &str,
    dir: &Path,
    wan: bool,
    protocols: Vec<String>,
    base_port: u16,
    metrics_base_port: u16,
) -> anyhow::Result<()> {
    let topology = Topology::resolve(topology_name)?;
    let topology_ref = if Topology::builtin(topology_name).is_some() {
        topology_name.to_owned()
    } else {
        std::fs::canonicalize(topology_name)?
            .to_string_lossy()
            .into_owned()
    };
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
    let manifest = cluster::generate(dir, &spec)?;
    let exe = std::env::current_exe().context("locating the meridian binary")?;
    let command = ServerCommand::meridian(exe);
    for node in &manifest.nodes {
        let log = launcher::log_path(dir, node.id);
        let child = launcher::spawn_replica(&command, &node.config, &log, true)
            .with_context(|| format!("starting replica {}", node.id))?;
        std::fs::write(pid_path(dir, node.id), format!("{}\n", child.id()))?;
    }
    // Ready when every replica accepts clients and serves every keyspace.
    let tls = TlsIdentity::load(&TlsPaths::client(&dir.join("certs")))?;
    launcher::wait_ready(
        dir,
        &manifest,
        manifest.nodes.iter().map(|n| n.id),
        &manifest.keyspaces,
        &tls,
        Duration::from_secs(30),
    )
    .await?;
    println!(
        "cluster up: {} replicas of {}{} serving {} in {}",
        manifest.nodes.len(),
        manifest.topology,
        if wan { " (WAN emulated)" } else { "" },
        manifest.keyspaces.join(", "),
        dir.display()
    );
    for node in &manifest.nodes {
        println!(
            "  node {} {:<16} quic {}  metrics http://{}/metrics",
            node.id,
            node.region,
            node.address,
            node.metrics.map_or("-".to_owned(), |m| m.to_string())
        );
    }
    println!(
        "try: meridian put --addr {} --keyspace {} --key k --value v --certs {}",
        manifest.nodes[0].address,
        manifest.keyspaces[0],
        dir.join("certs").display()
    );
    Ok(())
}

/// Whether `pid` is a running `meridian serve` (guards against a recycled pid).
fn is_our_replica(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        args.iter().any(|a| a.ends_with(b"meridian")) && args.contains(&&b"serve"[..])
    })
}

fn signal(pid: u32, name: &str) -> anyhow::Result<()> {
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

fn cluster_down(dir: &Path) -> anyhow::Result<()> {
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
            signal(pid, "TERM")?;
            let deadline = Instant::now() + Duration::from_secs(20);
            while is_our_replica(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if is_our_replica(pid) {
                eprintln!(
                    "replica {} (pid {pid}) ignored SIGTERM; killing it",
                    node.id
                );
                signal(pid, "KILL")?;
            }
            stopped += 1;
        }
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    println!(
        "cluster down: stopped {stopped} replicas in {}",
        dir.display()
    );
    Ok(())
}
