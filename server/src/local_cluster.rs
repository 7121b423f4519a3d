//! A local cluster on loopback: certificates, one config per replica, and a manifest
//! that clients and the benchmark read.
//!
//! ```text
//!  generate(dir, spec) ─▶ dir/certs/{ca,node-<i>,client}.{pem,key}
//!                         dir/node-<i>.toml      (one replica per topology slot)
//!                         dir/cluster.toml       (manifest: cluster id, nodes, regions, addresses, keyspaces)
//!                         dir/data/n<i>/identity.toml  (new cluster only: see `identity`)
//!  `meridian cluster up` then starts one process per replica (dir/node-<i>.pid, .log)
//! ```
//!
//! Replicas sit in the topology's regions (node ids in topology order); with WAN
//! emulation each node delays datagrams to its peers by the topology's one-way delay.
//! Keyspaces are named after their protocol (`multipaxos`, `epaxos`, `dynamo`).

use crate::certs::{self, CertsError};
use crate::config::{
    ConfigError, DynamoKeyspace, EpaxosKeyspace, KeyspaceConfig, MultiPaxosKeyspace, NodeConfig,
    TempoKeyspace,
};
use crate::identity::{self, IdentityError};
use crate::tls::{CA_VALIDITY_DAYS, LEAF_VALIDITY_DAYS};
use meridian_engine::topology::Topology;
use meridian_engine::NodeId;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The protocols a generated cluster can serve, one keyspace each.
pub const PROTOCOLS: &[&str] = &["multipaxos", "epaxos", "tempo", "dynamo"];

/// What to generate.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// Where replicas sit and the RTTs between them.
    pub topology: Topology,
    /// How node configs refer to the topology: a builtin name or an absolute path.
    pub topology_ref: String,
    /// QUIC address of each replica, in node id order (one per topology replica).
    pub addresses: Vec<SocketAddr>,
    /// Metrics address of each replica, if wanted.
    pub metrics: Option<Vec<SocketAddr>>,
    /// Keyspaces every replica serves (see [`default_keyspace`]).
    pub keyspaces: Vec<KeyspaceConfig>,
    /// Emulate the topology's latency between replicas.
    pub wan: bool,
}

/// What clients need to know about a generated cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The cluster's id (every node config's `cluster_id`), kept across `cluster up`
    /// runs in the same directory.
    #[serde(default)]
    pub cluster_id: Option<String>,
    /// The topology (name or path).
    pub topology: String,
    /// Whether replicas emulate WAN latency.
    pub wan: bool,
    /// Keyspace names.
    pub keyspaces: Vec<String>,
    /// Every replica.
    pub nodes: Vec<ManifestNode>,
}

/// One replica in a [`Manifest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestNode {
    /// Its id.
    pub id: u16,
    /// Its region.
    pub region: String,
    /// Its QUIC address.
    pub address: SocketAddr,
    /// Its metrics endpoint.
    #[serde(default)]
    pub metrics: Option<SocketAddr>,
    /// Its config file.
    pub config: PathBuf,
    /// Added by `cluster add` after the cluster started (not a member of epoch 0).
    #[serde(default, skip_serializing_if = "is_false")]
    pub joined: bool,
    /// Removed by `cluster remove`: no longer a member, its process stopped.
    #[serde(default, skip_serializing_if = "is_false")]
    pub removed: bool,
}

fn is_false(value: &bool) -> bool {
    !value
}

/// What can go wrong generating a cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The spec is inconsistent.
    #[error("{0}")]
    Spec(String),
    /// Writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Certificates could not be generated.
    #[error(transparent)]
    Certs(#[from] CertsError),
    /// A generated config does not load (a bug here).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A data directory's identity could not be read or written.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// A new CA with node, client and operator certificates in `dir`; a directory that
/// already holds a CA (a cluster brought up there before) keeps it and gets only the
/// missing files.
fn write_certs(dir: &Path, n: u16) -> Result<(), ClusterError> {
    if !certs::has_ca(dir) {
        certs::init(dir, n, CA_VALIDITY_DAYS, LEAF_VALIDITY_DAYS)?;
        return Ok(());
    }
    for subject in certs::cluster_subjects(n) {
        if !dir.join(format!("{}.pem", subject.file_stem())).exists() {
            certs::issue(dir, None, &subject, LEAF_VALIDITY_DAYS, false)?;
        }
    }
    Ok(())
}

pub(crate) fn write(path: &Path, text: &str) -> Result<(), ClusterError> {
    std::fs::write(path, text).map_err(|source| ClusterError::Io {
        path: path.to_owned(),
        source,
    })
}

/// How a cluster's files name `given` (a `--topology` argument): a builtin by its name,
/// a topology file by its absolute path, so replica configs and `cluster add` resolve it
/// from any working directory.
pub fn topology_ref(given: &str) -> Result<String, ClusterError> {
    if Topology::builtin(given).is_some() {
        return Ok(given.to_owned());
    }
    let path = std::fs::canonicalize(given)
        .map_err(|e| ClusterError::Spec(format!("topology {given:?}: {e}")))?;
    Ok(path.to_string_lossy().into_owned())
}

/// The manifest file of a cluster directory.
pub fn manifest_path(dir: &Path) -> PathBuf {
    dir.join("cluster.toml")
}

/// The config file of node `id`.
pub fn node_config_path(dir: &Path, id: NodeId) -> PathBuf {
    dir.join(format!("node-{}.toml", id.0))
}

/// The keyspace a generated cluster serves for `protocol` (one of [`PROTOCOLS`]), named
/// after it, with default options; Dynamo keeps `N = min(3, replicas)`.
pub fn default_keyspace(protocol: &str, replicas: usize) -> Result<KeyspaceConfig, ClusterError> {
    let name = protocol.to_owned();
    match protocol {
        "multipaxos" => Ok(KeyspaceConfig::Multipaxos(MultiPaxosKeyspace {
            name,
            ..Default::default()
        })),
        "epaxos" => Ok(KeyspaceConfig::Epaxos(EpaxosKeyspace {
            name,
            ..Default::default()
        })),
        "tempo" => Ok(KeyspaceConfig::Tempo(TempoKeyspace {
            name,
            ..Default::default()
        })),
        "dynamo" => Ok(KeyspaceConfig::Dynamo(DynamoKeyspace {
            name,
            replicas: Some(replicas.min(3)),
            ..Default::default()
        })),
        unknown => Err(ClusterError::Spec(format!(
            "unknown protocol {unknown:?}; expected one of {}",
            PROTOCOLS.join(", ")
        ))),
    }
}

/// [`default_keyspace`] for each of `protocols`.
pub fn default_keyspaces(
    protocols: &[String],
    replicas: usize,
) -> Result<Vec<KeyspaceConfig>, ClusterError> {
    protocols
        .iter()
        .map(|p| default_keyspace(p, replicas))
        .collect()
}

/// Write certificates, node configs and the manifest into `dir`; returns the manifest.
/// Every generated config is loaded back as a check.
pub fn generate(dir: &Path, spec: &ClusterSpec) -> Result<Manifest, ClusterError> {
    let replicas = spec.topology.replicas();
    if replicas.len() != spec.addresses.len() {
        return Err(ClusterError::Spec(format!(
            "topology {} has {} replicas but {} addresses were given",
            spec.topology.name(),
            replicas.len(),
            spec.addresses.len()
        )));
    }
    if spec.keyspaces.is_empty() {
        return Err(ClusterError::Spec(
            "at least one keyspace is required".into(),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|source| ClusterError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let dir = dir.canonicalize().map_err(|source| ClusterError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let n = u16::try_from(replicas.len())
        .map_err(|_| ClusterError::Spec("too many replicas".into()))?;
    write_certs(&dir.join("certs"), n)?;
    let cluster_id = Manifest::load(&dir)
        .ok()
        .and_then(|m| m.cluster_id)
        .unwrap_or_else(|| format!("local-{:016x}", unique_u64()));
    let region_name = |index: usize| spec.topology.regions()[index].name.clone();
    let mut nodes = Vec::new();
    let mut configs = Vec::new();
    for &(id, region) in &replicas {
        let text = node_config_text(&NodeText {
            cluster_id: &cluster_id,
            id,
            region: region_name(region),
            listen: spec.addresses[id.index()],
            metrics: spec.metrics.as_ref().map(|m| m[id.index()]),
            peers: replicas
                .iter()
                .map(|&(peer, r)| (peer, region_name(r), spec.addresses[peer.index()]))
                .collect(),
            keyspaces: &spec.keyspaces,
            wan: spec.wan.then_some(spec.topology_ref.as_str()),
        });
        let path = node_config_path(&dir, id);
        write(&path, &text)?;
        configs.push(NodeConfig::load(&path)?);
        nodes.push(ManifestNode {
            id: id.0,
            region: region_name(region),
            address: spec.addresses[id.index()],
            metrics: spec.metrics.as_ref().map(|m| m[id.index()]),
            config: path,
            joined: false,
            removed: false,
        });
    }
    init_identities(&configs)?;
    let manifest = Manifest {
        cluster_id: Some(cluster_id),
        topology: spec.topology_ref.clone(),
        wan: spec.wan,
        keyspaces: spec.keyspaces.iter().map(|k| k.name().to_owned()).collect(),
        nodes,
    };
    manifest.save(&dir)?;
    Ok(manifest)
}

impl Manifest {
    /// Write `dir/cluster.toml`.
    pub fn save(&self, dir: &Path) -> Result<(), ClusterError> {
        let text = toml::to_string(self)
            .map_err(|e| ClusterError::Spec(format!("encoding the manifest: {e}")))?;
        write(&manifest_path(dir), &text)
    }

    /// Read `dir/cluster.toml`.
    pub fn load(dir: &Path) -> Result<Self, ClusterError> {
        let path = manifest_path(dir);
        let text = std::fs::read_to_string(&path).map_err(|source| ClusterError::Io {
            path: path.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ClusterError::Spec(format!("{}: {e}", path.display())))
    }
}

/// A number no other cluster generated here is likely to draw (std's per-process random
/// hash keys, the time and the process id).
fn unique_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// A new cluster's data directories get their identities here, so its replicas start
/// with a plain `serve`. Once any node has an identity the cluster exists, and a node
/// without one (its data directory was lost) is left to refuse to start until it is told
/// `--rejoin`.
fn init_identities(configs: &[NodeConfig]) -> Result<(), ClusterError> {
    // A data directory path taken by something else is left for its replica to refuse.
    let usable = |c: &&NodeConfig| c.data_dir.is_dir() || !c.data_dir.exists();
    let mut existing = false;
    for config in configs.iter().filter(usable) {
        existing |= identity::read(&config.data_dir)?.is_some();
    }
    if !existing {
        for config in configs.iter().filter(usable) {
            identity::init_new(config)?;
        }
    }
    Ok(())
}

/// What one node's config file says.
pub(crate) struct NodeText<'a> {
    pub(crate) cluster_id: &'a str,
    pub(crate) id: NodeId,
    pub(crate) region: String,
    pub(crate) listen: SocketAddr,
    pub(crate) metrics: Option<SocketAddr>,
    /// Every other node: id, region, address.
    pub(crate) peers: Vec<(NodeId, String, SocketAddr)>,
    pub(crate) keyspaces: &'a [KeyspaceConfig],
    /// The topology WAN emulation follows, if on.
    pub(crate) wan: Option<&'a str>,
}

pub(crate) fn node_config_text(node: &NodeText<'_>) -> String {
    let mut text = String::new();
    let id = node.id;
    let _ = writeln!(text, "# Generated by `meridian cluster up`.");
    let _ = writeln!(text, "id = {}", id.0);
    let _ = writeln!(text, "cluster_id = {:?}", node.cluster_id);
    let _ = writeln!(text, "region = {:?}", node.region);
    let _ = writeln!(text, "listen = \"{}\"", node.listen);
    let _ = writeln!(text, "data_dir = \"data/n{}\"", id.0);
    if let Some(metrics) = &node.metrics {
        let _ = writeln!(text, "metrics = \"{metrics}\"");
    }
    // Every replica of a local cluster shares this machine's cores: one thread each.
    let _ = writeln!(text, "worker_threads = 1");
    let _ = writeln!(
        text,
        "\n[tls]\nca = \"certs/ca.pem\"\ncert = \"certs/node-{0}.pem\"\nkey = \"certs/node-{0}.key\"",
        id.0
    );
    for (peer, region, address) in &node.peers {
        if *peer != id {
            let _ = writeln!(
                text,
                "\n[[peers]]\nid = {}\nregion = {region:?}\naddress = \"{address}\"",
                peer.0
            );
        }
    }
    // Keyspaces are written by serde, so every option the config reads can be generated.
    #[derive(serde::Serialize)]
    struct Keyspaces<'a> {
        keyspaces: &'a [KeyspaceConfig],
    }
    match toml::to_string(&Keyspaces {
        keyspaces: node.keyspaces,
    }) {
        Ok(keyspaces) => {
            let _ = writeln!(text, "\n{keyspaces}");
        }
        Err(e) => {
            // Unreachable for these plain structs; the load-back check reports it.
            let _ = writeln!(text, "# keyspaces could not be encoded: {e}");
        }
    }
    if let Some(topology) = node.wan {
        let _ = writeln!(text, "\n[wan]\ntopology = {topology:?}");
    }
    text
}

#[cfg(test)]
#[path = "local_cluster_test.rs"]
mod tests;
