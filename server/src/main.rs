//! `meridian`: replica server, client CLI and local cluster launcher.
//!
//! ```text
//!  meridian serve --config node.toml [--init | --rejoin] [--log-file PATH] [--log-format text|json]
//!  meridian certs init --out DIR --nodes N | issue --ca DIR --node ID|--client NAME | show PATH
//!  meridian config check node-0.toml node-1.toml ...
//!  meridian get|put|delete|cas --addr HOST:PORT --keyspace K --key KEY [--consistency C] --certs DIR
//!      [--output text|json] [--encoding utf8|hex|base64] [--value-file F|-] [--blind|--context T]
//!  meridian scan [--prefix P] [--after K] [--limit N] | keys [--prefix P]  (same options)
//!  meridian status --addr HOST:PORT --certs DIR [--json]
//!  meridian member list --addr HOST:PORT --certs DIR [--json]
//!  meridian cluster up --topology NAME|FILE --dir DIR [--wan] [--protocol P]...
//!  meridian cluster restart --dir DIR --id N
//!  meridian cluster down --dir DIR
//! ```

#[path = "cli/admin.rs"]
mod admin;
#[path = "cli/cluster_change.rs"]
mod cluster_change;
#[path = "cli/cluster.rs"]
mod cluster_cmd;
#[path = "cli/encoding.rs"]
mod encoding;
#[path = "cli/kv.rs"]
mod kv;
#[path = "cli/member.rs"]
mod member;
#[path = "cli/scan.rs"]
mod scan;
#[path = "cli/status.rs"]
mod status;

use admin::{CertsCommand, ConfigCommand, LogOptions};
use anyhow::Context;
use clap::{Parser, Subcommand};
use cluster_cmd::ClusterCommand;
use meridian_server::identity::StartMode;
use std::path::PathBuf;

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
    #[command(flatten)]
    Range(scan::RangeCommand),
    /// A replica's view: per keyspace its members, links to peers, the Multi-Paxos
    /// leader, execution lag and last snapshot.
    Status {
        #[command(flatten)]
        target: status::AdminTarget,
    },
    /// Cluster membership as a replica sees it.
    Member {
        #[command(subcommand)]
        command: status::MemberCommand,
    },
    /// Start or stop a local cluster.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
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
        Command::Cluster { command } => cluster_cmd::run(command),
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
            // On the threads the config asks for.
            let served = meridian_server::serve::run(&config, mode);
            if let Err(e) = &served {
                // Also into the log file, where an operator watching it looks.
                tracing::error!("{e}");
            }
            Ok(served?)
        }
        command => meridian_server::serve::runtime(None)
            .context("starting the async runtime")?
            .block_on(run(command)),
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Kv(command) => exit(kv::run(command).await),
        Command::Range(command) => exit(scan::run(command).await),
        Command::Status { target } => exit(status::run(target, status::View::Status).await),
        Command::Member {
            command: status::MemberCommand::List { target },
        } => exit(status::run(target, status::View::Members).await),
        Command::Member {
            command: status::MemberCommand::Add { target, change },
        } => exit(member::add(target, change).await),
        Command::Member {
            command: status::MemberCommand::Remove { target, change },
        } => exit(member::remove(target, change).await),
        Command::Serve { .. }
        | Command::Certs { .. }
        | Command::Config { .. }
        | Command::Cluster { .. } => {
            unreachable!("handled by main, on its own runtime or none")
        }
    }
}

/// Exit with a client command's code once its output is out.
fn exit(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}
