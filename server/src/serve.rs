//! Running one replica until it fails or is told to stop (SIGTERM, Ctrl-C): what
//! `meridian serve` does, as a library function so other binaries (the benchmark's
//! cluster backend) can run replicas from their own executable.

use crate::config::{ConfigError, NodeConfig};
use crate::identity::{self, IdentityError, StartMode};
use crate::node::{Node, NodeError, StartOptions};
use std::path::Path;
use std::time::Duration;

/// Why a replica stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The config file is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The node failed to start or stopped on an error.
    #[error("node of {config}: {source}")]
    Node {
        /// The config file.
        config: String,
        /// What failed.
        source: NodeError,
    },
    /// The data directory is not this node's (or holds no state and the operator did not
    /// say `--init` or `--rejoin`).
    #[error("{config}: {source}")]
    Identity {
        /// The config file.
        config: String,
        /// What is wrong.
        source: IdentityError,
    },
    /// Signal handlers could not be installed.
    #[error("installing signal handlers: {0}")]
    Signal(std::io::Error),
    /// The async runtime could not be started.
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// How long a SIGTERM drain waits for requests in flight before answering them
/// `Timeout` (`meridian cluster down` and the systemd unit wait longer than this).
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// A runtime of `worker_threads` threads (1: the current-thread scheduler, where a task
/// woken by another runs after it, so the writes of one pass leave together), or one per
/// core.
pub fn runtime(worker_threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = match worker_threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n.max(1));
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all().build()
}

/// Load `config_path`, start the async runtime its `worker_threads` asks for, check the
/// data directory's identity for a start in `mode` ([`identity::prepare`]: a directory
/// without state needs `--init` or `--rejoin`), start the node and serve until it fails or
/// a SIGTERM/SIGINT arrives. A signal drains the node first ([`Node::drain`]: refuse new requests, hand
/// off leadership, finish requests in flight, at most [`DRAIN_DEADLINE`]; a second
/// signal cuts the drain short); then shut down, letting storage threads finish the
/// syncs they hold.
pub fn run(config_path: &Path, mode: StartMode) -> Result<(), ServeError> {
    let config = NodeConfig::load(config_path)?;
    runtime(config.worker_threads)
        .map_err(ServeError::Runtime)?
        .block_on(serve(config, config_path, mode))
}

async fn serve(config: NodeConfig, config_path: &Path, mode: StartMode) -> Result<(), ServeError> {
    let prepared = identity::prepare(&config, mode).map_err(|source| ServeError::Identity {
        config: config_path.display().to_string(),
        source,
    })?;
    tracing::info!(
        node = %config.id,
        cluster_id = prepared.identity.cluster_id.as_deref().unwrap_or(""),
        incarnation = prepared.identity.incarnation,
        data_dir = %config.data_dir.display(),
        "data directory {}", prepared.action
    );
    let node_error = |source| ServeError::Node {
        config: config_path.display().to_string(),
        source,
    };
    let options = StartOptions {
        rejoin: prepared.rejoin,
        incarnation: Some(prepared.identity.incarnation),
    };
    let mut node = Node::start_with(config, options)
        .await
        .map_err(node_error)?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(ServeError::Signal)?;
    let outcome = tokio::select! {
        result = node.wait() => result.map(|()| false).map_err(node_error),
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("interrupted; draining");
            Ok(true)
        }
        _ = terminate.recv() => {
            tracing::info!("terminated; draining");
            Ok(true)
        }
    };
    if let Ok(true) = outcome {
        tokio::select! {
            _ = node.drain(DRAIN_DEADLINE) => {}
            _ = terminate.recv() => tracing::warn!("terminated again; stopping without finishing the drain"),
            _ = tokio::signal::ctrl_c() => tracing::warn!("interrupted again; stopping without finishing the drain"),
        }
    }
    node.shutdown();
    // Let storage threads finish the syncs already handed to them.
    tokio::time::sleep(Duration::from_millis(100)).await;
    outcome.map(|_| ())
}
