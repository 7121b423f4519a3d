//! Operator commands of the `meridian` binary that need no running cluster
//! (`certs`, `config check`) and the replica's logging options.

use anyhow::{bail, Context};
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use meridian_engine::NodeId;
use meridian_server::certs::{self, Subject};
use meridian_server::config::{check_cluster, NodeConfig};
use meridian_server::tls::{CA_VALIDITY_DAYS, LEAF_VALIDITY_DAYS};
use std::path::PathBuf;

/// `meridian certs ...`
#[derive(Subcommand)]
pub enum CertsCommand {
    /// Make a new cluster CA, N node certificates, a client and an operator certificate.
    /// Refuses a directory that already holds a CA.
    Init {
        /// Directory to write ca.pem, ca/ca.key, node-<id>.pem/key, client.pem/key and
        /// operator.pem/key into.
        #[arg(long)]
        out: PathBuf,
        /// Number of node certificates (ids 0..N).
        #[arg(long)]
        nodes: u16,
        /// Days the CA is valid.
        #[arg(long, default_value_t = CA_VALIDITY_DAYS)]
        ca_days: u32,
        /// Days node and client certificates are valid.
        #[arg(long, default_value_t = LEAF_VALIDITY_DAYS)]
        days: u32,
    },
    /// Issue one node, client or operator certificate from an existing CA (a node added later, a
    /// new client, or a rotation with --replace).
    #[command(group(ArgGroup::new("subject").required(true).args(["node", "client", "operator"])))]
    Issue {
        /// The directory `certs init` wrote (holds ca.pem and ca/ca.key).
        #[arg(long)]
        ca: PathBuf,
        /// Node id to issue for (node-<id>.pem/key).
        #[arg(long)]
        node: Option<u16>,
        /// Client name to issue for (<name>.pem/key).
        #[arg(long)]
        client: Option<String>,
        /// Operator name to issue for (operator.pem/key, naming NAME): a client
        /// certificate that replicas also accept for `member add` and `member remove`.
        #[arg(long)]
        operator: Option<String>,
        /// Where to write (default: the CA directory); ca.pem is copied there, never the
        /// CA key.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = LEAF_VALIDITY_DAYS)]
        days: u32,
        /// Replace an existing certificate and key of the same subject (rotation).
        #[arg(long)]
        replace: bool,
    },
    /// Print subject, names and validity of certificate files (or every *.pem of a
    /// directory).
    Show {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

/// Run a `certs` subcommand.
pub fn certs(command: CertsCommand) -> anyhow::Result<()> {
    match command {
        CertsCommand::Init {
            out,
            nodes,
            ca_days,
            days,
        } => {
            let written = certs::init(&out, nodes, ca_days, days)?;
            println!(
                "wrote a CA (valid {ca_days} days), {nodes} node certificates, a client and an \
                 operator certificate (valid {days} days) to {}:",
                out.display()
            );
            for path in written {
                println!("  {}", path.display());
            }
            println!(
                "keep {} off the replica hosts; copy ca.pem and node-<id>.pem/.key to host <id>",
                certs::ca_key_path(&out).display()
            );
            Ok(())
        }
        CertsCommand::Issue {
            ca,
            node,
            client,
            operator,
            out,
            days,
            replace,
        } => {
            let subject = match (node, client, operator) {
                (Some(id), None, None) => Subject::Node(NodeId(id)),
                (None, Some(name), None) => Subject::Client(name),
                (None, None, Some(name)) => Subject::Operator(name),
                _ => bail!("give exactly one of --node, --client and --operator"),
            };
            let (cert, key) = certs::issue(&ca, out.as_deref(), &subject, days, replace)?;
            println!(
                "issued {} (valid {days} days) from the CA in {}:\n  {}\n  {}",
                match &subject {
                    Subject::Node(id) => format!("node {}", id.0),
                    Subject::Client(name) => format!("client {name}"),
                    Subject::Operator(name) => format!("operator {name}"),
                },
                ca.display(),
                cert.display(),
                key.display()
            );
            Ok(())
        }
        CertsCommand::Show { paths } => {
            for path in paths {
                for file in certs::certificate_files(&path)? {
                    let text = std::fs::read_to_string(&file)
                        .with_context(|| format!("reading {}", file.display()))?;
                    for summary in
                        certs::describe(&text).with_context(|| format!("{}", file.display()))?
                    {
                        println!("{}: {summary}", file.display());
                    }
                }
            }
            Ok(())
        }
    }
}

/// `meridian config ...`
#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Check a cluster's node configs (one per host) each on its own and against each
    /// other: ids, peer addresses and regions, keyspaces, WAN emulation, certificates.
    Check {
        /// Every node's config file.
        #[arg(required = true)]
        configs: Vec<PathBuf>,
    },
}

/// Run a `config` subcommand; problems are an error exit.
pub fn config(command: ConfigCommand) -> anyhow::Result<()> {
    let ConfigCommand::Check { configs } = command;
    let mut loaded = Vec::new();
    let mut problems = Vec::new();
    for path in configs {
        match NodeConfig::load(&path) {
            Ok(config) => loaded.push((path, config)),
            Err(e) => problems.push(e.to_string()),
        }
    }
    if problems.is_empty() {
        problems = check_cluster(&loaded);
    }
    if problems.is_empty() {
        println!(
            "{} configs agree: nodes {}",
            loaded.len(),
            loaded
                .iter()
                .map(|(_, c)| c.id.0.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(());
    }
    for problem in &problems {
        eprintln!("{problem}");
    }
    bail!("{} problem(s) in the configs", problems.len())
}

/// How a replica logs.
#[derive(Args, Clone, Debug, Default)]
pub struct LogOptions {
    /// Append log lines to this file instead of standard error.
    #[arg(long)]
    pub log_file: Option<PathBuf>,
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Log line formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields).
    Json,
}

/// Install the global subscriber: `default_level` unless RUST_LOG says otherwise.
pub fn init_logging(default_level: &str, options: &LogOptions) -> anyhow::Result<()> {
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let (writer, ansi) = match &options.log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening the log file {}", path.display()))?;
            (BoxMakeWriter::new(std::sync::Mutex::new(file)), false)
        }
        None => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
        ),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match options.log_format {
        LogFormat::Text => builder.with_ansi(ansi).init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
    Ok(())
}
