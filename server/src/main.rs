//! `meridian`: replica server, client CLI and local cluster launcher.
//!
//! ```text
//!  meridian serve --config node.toml [--log-file PATH] [--log-format text|json]
//!  meridian certs init --out DIR --nodes N | issue --ca DIR --node ID|--client NAME | show PATH
//!  meridian config check node-0.toml node-1.toml ...
//!  meridian get|put|delete|cas --addr A --keyspace K --key KEY [--consistency C] --certs DIR
//!  meridian cluster up --topology NAME|FILE --dir DIR [--wan] [--protocol P]...
//!  meridian cluster down --dir DIR
//! ```

#[path = "cli/admin.rs"]
mod admin;
#[path = "cli/cluster.rs"]
mod cluster_cmd;

use admin::{CertsCommand, ConfigCommand, LogOptions};
use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use cluster_cmd::ClusterCommand;
use meridian_engine::{ClientReply, CommandResult, Response};
use meridian_server::client::{Client, ClientOptions};
use meridian_server::config::parse_consistency;
use meridian_server::tls::{TlsIdentity, TlsPaths};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
    /// Read a key.
    Get {
        #[command(flatten)]
        target: Target,
        /// The key.
        #[arg(long)]
        key: String,
    },
    /// Write a key.
    Put {
        #[command(flatten)]
        target: Target,
        /// The key.
        #[arg(long)]
        key: String,
        /// The value.
        #[arg(long)]
        value: String,
    },
    /// Delete a key.
    Delete {
        #[command(flatten)]
        target: Target,
        /// The key.
        #[arg(long)]
        key: String,
    },
    /// Compare and set (consensus keyspaces).
    Cas {
        #[command(flatten)]
        target: Target,
        /// The key.
        #[arg(long)]
        key: String,
        /// Value the key must hold; omit to require that it is absent.
        #[arg(long)]
        expected: Option<String>,
        /// Value written if the comparison holds.
        #[arg(long)]
        new: String,
    },
    /// Start or stop a local cluster.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

/// Where a client request goes.
#[derive(Args)]
struct Target {
    /// Replica address (host:port).
    #[arg(long)]
    addr: SocketAddr,
    /// Keyspace name.
    #[arg(long)]
    keyspace: String,
    /// `linearizable`, `local`, or a Dynamo level (ONE, QUORUM, LOCAL_QUORUM, SESSION,
    /// R=2,W=2, ...). Default: the keyspace's configured default.
    #[arg(long)]
    consistency: Option<String>,
    /// Directory with ca.pem, client.pem and client.key (as written by `meridian certs`;
    /// `cluster up` puts them in DIR/certs).
    #[arg(long)]
    certs: PathBuf,
    /// Reply timeout in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    timeout_ms: u64,
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
        Command::Serve { config, .. } => Ok(meridian_server::serve::serve(&config).await?),
        Command::Get { target, key } => {
            let client = connect(&target).await?;
            let consistency = consistency(&target)?;
            report(
                client
                    .get(&target.keyspace, key.as_bytes(), consistency)
                    .await?,
            )
        }
        Command::Put { target, key, value } => {
            let client = connect(&target).await?;
            let consistency = consistency(&target)?;
            report(
                client
                    .put(
                        &target.keyspace,
                        key.as_bytes(),
                        value.as_bytes(),
                        consistency,
                    )
                    .await?,
            )
        }
        Command::Delete { target, key } => {
            let client = connect(&target).await?;
            let consistency = consistency(&target)?;
            report(
                client
                    .delete(&target.keyspace, key.as_bytes(), consistency)
                    .await?,
            )
        }
        Command::Cas {
            target,
            key,
            expected,
            new,
        } => {
            let client = connect(&target).await?;
            let consistency = consistency(&target)?;
            let expected = expected.map(String::into_bytes);
            report(
                client
                    .cas(
                        &target.keyspace,
                        key.as_bytes(),
                        expected,
                        new.as_bytes(),
                        consistency,
                    )
                    .await?,
            )
        }
        Command::Certs { .. } | Command::Config { .. } | Command::Cluster { .. } => {
            unreachable!("handled without a runtime")
        }
    }
}

async fn connect(target: &Target) -> anyhow::Result<Client> {
    let tls = TlsIdentity::load(&TlsPaths::client(&target.certs)).with_context(|| {
        format!(
            "loading client certificates from {}",
            target.certs.display()
        )
    })?;
    let options = ClientOptions {
        timeout: Duration::from_millis(target.timeout_ms),
        ..ClientOptions::default()
    };
    Ok(Client::connect_with(target.addr, &tls, options).await?)
}

fn consistency(target: &Target) -> anyhow::Result<Option<meridian_engine::Consistency>> {
    target
        .consistency
        .as_deref()
        .map(parse_consistency)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--consistency: {e}"))
}

fn show(bytes: &Option<Vec<u8>>) -> String {
    match bytes {
        Some(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        None => "(absent)".to_owned(),
    }
}

/// Print a reply; an error outcome is an error exit.
fn report(reply: ClientReply) -> anyhow::Result<()> {
    match reply.outcome {
        Ok(Response::Kv(CommandResult::Value(value))) => println!("{}", show(&value)),
        Ok(Response::Kv(CommandResult::Written)) => println!("OK"),
        Ok(Response::Kv(CommandResult::Cas { applied, previous })) => {
            println!(
                "{} (previous: {})",
                if applied { "APPLIED" } else { "NOT APPLIED" },
                show(&previous)
            );
        }
        Ok(Response::Read {
            result: CommandResult::Value(value),
            receipt,
        }) => println!("{}\t(served by: {receipt})", show(&value)),
        Ok(Response::Read { result, receipt }) => println!("{result:?}\t(served by: {receipt})"),
        Ok(Response::Versioned(versioned)) => {
            match versioned.siblings.as_slice() {
                [] => println!("(absent)"),
                [one] => println!("{}", show(one)),
                many => {
                    println!("{} siblings:", many.len());
                    for sibling in many {
                        println!("  {}", show(sibling));
                    }
                }
            }
            let receipt = &versioned.receipt;
            let answered: Vec<String> = receipt
                .answered
                .iter()
                .map(|r| {
                    format!(
                        "{}@{}{}",
                        r.node,
                        r.region,
                        if r.fallback { "(fallback)" } else { "" }
                    )
                })
                .collect();
            eprintln!(
                "receipt: level {} {}; answered by {}; hints {}; read repair {:?}",
                receipt.requested,
                if receipt.met { "met" } else { "NOT met" },
                answered.join(", "),
                receipt.hints_written,
                receipt.read_repair
            );
        }
        Err(e) => bail!("{}: {e}", reply.id),
    }
    Ok(())
}
