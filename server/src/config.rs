//! Node configuration: TOML → typed config, checked once at load.
//!
//! ```toml
//! id = 0
//! cluster_id = "prod-eu"            # optional; recorded in the data dir's identity
//! region = "us-east-1"
//! listen = "127.0.0.1:7000"
//! data_dir = "data/n0"              # relative paths are relative to this file
//! metrics = "127.0.0.1:9100"        # optional Prometheus endpoint
//! worker_threads = 1                # optional; default one per core
//!
//! [tls]
//! ca = "certs/ca.pem"
//! cert = "certs/node-0.pem"
//! key = "certs/node-0.key"
//!
//! [[peers]]
//! id = 1
//! region = "us-west-1"
//! address = "127.0.0.1:7001"
//!
//! [[keyspaces]]
//! name = "kv"
//! protocol = "multipaxos"           # or "epaxos", "tempo", "dynamo"
//! initial_leader = 0                # protocol options; unknown ones are errors
//! default_consistency = "linearizable"
//!
//! [wan]                             # optional WAN emulation (testing only)
//! topology = "epaxos-5"             # builtin name or topology file
//! ```
//!
//! Addresses (`listen`, `metrics`, `peers[].address`) are `host:port`, the host an IP
//! address or a DNS name; names are resolved when the file is loaded (IPv4 preferred),
//! so a node whose peers' names do not resolve yet fails to start with the field named
//! and its service manager retries.
//!
//! Every table refuses unknown fields, so a typo is an error that names the field rather
//! than a silently ignored setting. Node ids must be `0..n` (they index arrays).

pub use crate::keyspace_config::{
    parse_consistency, DynamoKeyspace, EpaxosKeyspace, KeyspaceConfig, MultiPaxosKeyspace,
    TempoKeyspace,
};
use crate::tls::TlsPaths;
use meridian_engine::topology::Topology;
use meridian_engine::{Consistency, Member, Membership, NodeId};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// What is wrong with a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TOML is malformed, a field has the wrong type, or a field is unknown.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the field and the line).
        message: String,
    },
    /// A field has a value the node cannot run with.
    #[error("{path}: `{field}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The offending field, as a TOML path (e.g. `keyspaces[1].initial_leader`).
        field: String,
        /// Why.
        message: String,
    },
}

/// A node's whole configuration.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's id.
    pub id: NodeId,
    /// The cluster's name: recorded in the data directory's identity, so a node started
    /// on another cluster's data directory refuses to start (optional).
    #[serde(default)]
    pub cluster_id: Option<String>,
    /// The region it runs in (a topology region name or alias when WAN emulation is on).
    pub region: String,
    /// UDP address for peers and clients.
    #[serde(deserialize_with = "host_port")]
    pub listen: SocketAddr,
    /// Where the keyspace logs live (one subdirectory per keyspace).
    pub data_dir: PathBuf,
    /// Certificate files.
    pub tls: TlsConfig,
    /// Address of the Prometheus text endpoint, if any.
    #[serde(default, deserialize_with = "optional_host_port")]
    pub metrics: Option<SocketAddr>,
    /// Every other node.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// The keyspaces this cluster serves.
    pub keyspaces: Vec<KeyspaceConfig>,
    /// WAN emulation (testing only).
    #[serde(default)]
    pub wan: Option<WanEmulationConfig>,
    /// Largest frame accepted from a peer or client, in bytes (default 16 MiB, at least
    /// 128 KiB). Dynamo objects are limited to [`dynamo_object_limit`] of it.
    #[serde(default)]
    pub max_frame_bytes: Option<usize>,
    /// Threads of the replica's async runtime (network, protocol, client requests; the
    /// log's fsyncs have their own thread). 1 runs all of it on one thread, which is what
    /// replicas sharing a few cores want: the replies and messages one pass writes leave
    /// in shared packets. Absent: one per core.
    #[serde(default)]
    pub worker_threads: Option<usize>,
}

/// Certificate file paths.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The cluster CA certificate.
    pub ca: PathBuf,
    /// This node's certificate.
    pub cert: PathBuf,
    /// This node's private key.
    pub key: PathBuf,
}

impl TlsConfig {
    /// As [`TlsPaths`].
    pub fn paths(&self) -> TlsPaths {
        TlsPaths {
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
        }
    }
}

/// Another node of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// Its id.
    pub id: NodeId,
    /// Its region.
    pub region: String,
    /// Its UDP address.
    #[serde(deserialize_with = "host_port")]
    pub address: SocketAddr,
}

/// Resolve `host:port` (an IP address or a DNS name, IPv6 literals in brackets) to one
/// socket address, IPv4 preferred.
pub fn resolve_host_port(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("{text:?}: expected host:port"));
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!(
            "{text:?}: expected host:port with a port in 0..65535"
        ));
    }
    let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(text)
        .map_err(|e| format!("cannot resolve {host:?}: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{host:?} resolves to no address"))
}

fn host_port<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    resolve_host_port(&text).map_err(serde::de::Error::custom)
}

fn optional_host_port<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SocketAddr>, D::Error> {
    host_port(deserializer).map(Some)
}

/// WAN emulation settings.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WanEmulationConfig {
    /// Builtin topology name or topology file: one-way delay = RTT / 2 between the
    /// regions of this node and each peer.
    pub topology: String,
    /// Add the topology's jitter (default true).
    #[serde(default = "yes")]
    pub jitter: bool,
    /// Seed of the jitter draws (default: the node id).
    #[serde(default)]
    pub seed: Option<u64>,
}

fn yes() -> bool {
    true
}

impl NodeConfig {
    /// Read, parse and check a config file. Relative paths inside it are taken relative
    /// to the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::parse(&text, path)?;
        if let Some(base) = path.parent() {
            config.resolve_paths(base);
        }
        Ok(config)
    }

    /// Parse and check TOML text; `path` only labels errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config
            .check()
            .map_err(|(field, message)| ConfigError::Invalid {
                path: path.to_owned(),
                field,
                message,
            })?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut self.data_dir);
        resolve(&mut self.tls.ca);
        resolve(&mut self.tls.cert);
        resolve(&mut self.tls.key);
        if let Some(wan) = &mut self.wan {
            // A builtin name stays a name; anything that looks like a file is resolved.
            if Topology::builtin(&wan.topology).is_none() && Path::new(&wan.topology).is_relative()
            {
                wan.topology = base.join(&wan.topology).to_string_lossy().into_owned();
            }
        }
    }

    /// Semantic checks: `Err((field, message))`.
    fn check(&self) -> Result<(), (String, String)> {
        let n = self.peers.len() + 1;
        let mut ids = BTreeSet::from([self.id]);
        let mut addresses = BTreeSet::from([self.listen]);
        for (i, peer) in self.peers.iter().enumerate() {
            if !ids.insert(peer.id) {
                return Err((
                    format!("peers[{i}].id"),
                    format!("node id {} appears twice", peer.id.0),
                ));
            }
            if !addresses.insert(peer.address) {
                return Err((
                    format!("peers[{i}].address"),
                    format!("address {} is used by another node", peer.address),
                ));
            }
        }
        if let Some(missing) = (0..n)
            .map(|i| NodeId(i as u16))
            .find(|id| !ids.contains(id))
        {
            return Err((
                "peers".into(),
                format!(
                    "node ids must be 0..{n} (this node and its peers); {} is missing",
                    missing.0
                ),
            ));
        }
        if self.keyspaces.is_empty() {
            return Err((
                "keyspaces".into(),
                "at least one keyspace is required".into(),
            ));
        }
        let mut names = BTreeSet::new();
        for (i, keyspace) in self.keyspaces.iter().enumerate() {
            let field = |name: &str| format!("keyspaces[{i}].{name}");
            let name = keyspace.name();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err((
                    field("name"),
                    format!("{name:?}: use letters, digits, '-' and '_' only"),
                ));
            }
            if !names.insert(name) {
                return Err((field("name"), format!("keyspace {name:?} appears twice")));
            }
            self.check_keyspace(keyspace, n)
                .map_err(|(f, m)| (field(&f), m))?;
        }
        if let Some(wan) = &self.wan {
            let topology = Topology::resolve(&wan.topology)
                .map_err(|e| ("wan.topology".to_owned(), e.to_string()))?;
            if topology.region_index(&self.region).is_none() {
                return Err((
                    "region".into(),
                    format!(
                        "{:?} is not a region of topology {}",
                        self.region,
                        topology.name()
                    ),
                ));
            }
            for (i, peer) in self.peers.iter().enumerate() {
                if topology.region_index(&peer.region).is_none() {
                    return Err((
                        format!("peers[{i}].region"),
                        format!(
                            "{:?} is not a region of topology {}",
                            peer.region,
                            topology.name()
                        ),
                    ));
                }
            }
        }
        if let Some(cluster) = &self.cluster_id {
            if cluster.is_empty() || cluster.chars().any(char::is_control) {
                return Err((
                    "cluster_id".into(),
                    "must be a non-empty name without control characters".into(),
                ));
            }
        }
        if self
            .max_frame_bytes
            .is_some_and(|b| b < 2 * FRAME_OVERHEAD_BYTES)
        {
            return Err((
                "max_frame_bytes".into(),
                format!(
                    "must be at least {} (128 KiB): a frame keeps {} bytes for framing",
                    2 * FRAME_OVERHEAD_BYTES,
                    FRAME_OVERHEAD_BYTES
                ),
            ));
        }
        if self.worker_threads == Some(0) {
            return Err((
                "worker_threads".into(),
                "must be at least 1 (leave it out for one per core)".into(),
            ));
        }
        Ok(())
    }

    fn check_keyspace(&self, keyspace: &KeyspaceConfig, n: usize) -> Result<(), (String, String)> {
        let consistency = match keyspace {
            KeyspaceConfig::Multipaxos(k) => &k.default_consistency,
            KeyspaceConfig::Epaxos(k) => &k.default_consistency,
            KeyspaceConfig::Tempo(k) => &k.default_consistency,
            KeyspaceConfig::Dynamo(k) => &k.default_consistency,
        };
        if let Some(text) = consistency {
            let parsed =
                parse_consistency(text).map_err(|e| ("default_consistency".to_owned(), e))?;
            let dynamo = matches!(keyspace, KeyspaceConfig::Dynamo(_));
            let epaxos = matches!(
                keyspace,
                KeyspaceConfig::Epaxos(_) | KeyspaceConfig::Tempo(_)
            );
            let leader_level = !matches!(
                parsed,
                Consistency::Dynamo(_) | Consistency::Linearizable | Consistency::LocalRead
            );
            if dynamo != matches!(parsed, Consistency::Dynamo(_)) || (epaxos && leader_level) {
                let expected = if dynamo {
                    "a Dynamo level (ONE, QUORUM, ...)"
                } else if epaxos {
                    "`linearizable` or `local`"
                } else {
                    "`linearizable`, `local`, `lease`, `read-index`, `follower` or `stale:DUR`"
                };
                return Err((
                    "default_consistency".into(),
                    format!(
                        "{text:?} does not apply to a {} keyspace; expected {expected}",
                        keyspace.protocol()
                    ),
                ));
            }
        }
        match keyspace {
            KeyspaceConfig::Multipaxos(k) => {
                if let Some(leader) = k.initial_leader {
                    if leader.index() >= n {
                        return Err((
                            "initial_leader".into(),
                            format!("node {} is not in the cluster (ids 0..{n})", leader.0),
                        ));
                    }
                }
                let field = if k.lease_ms.is_some() || !k.quorum_lease_holders.is_empty() {
                    "lease_ms"
                } else {
                    "phase1_quorum"
                };
                k.engine_config(n).map_err(|e| (field.to_owned(), e))?;
            }
            KeyspaceConfig::Epaxos(_) => {}
            KeyspaceConfig::Tempo(k) => {
                k.engine_config(n).map_err(|e| ("f".to_owned(), e))?;
            }
            KeyspaceConfig::Dynamo(k) => {
                if let Some(replicas) = k.replicas {
                    if replicas == 0 || replicas > n {
                        return Err((
                            "replicas".into(),
                            format!("{replicas} owners per key in a cluster of {n}"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The cluster every keyspace runs on: this node and its peers, with RTT estimates
    /// from the WAN topology when there is one.
    pub fn cluster(&self) -> Membership {
        let mut members: Vec<Member> = std::iter::once(Member {
            id: self.id,
            region: self.region.clone(),
        })
        .chain(self.peers.iter().map(|p| Member {
            id: p.id,
            region: p.region.clone(),
        }))
        .collect();
        members.sort_by_key(|m| m.id);
        let rtt_us = match self
            .wan
            .as_ref()
            .and_then(|w| Topology::resolve(&w.topology).ok())
        {
            Some(topology) => {
                let regions: Vec<Option<usize>> = members
                    .iter()
                    .map(|m| topology.region_index(&m.region))
                    .collect();
                regions
                    .iter()
                    .map(|&a| {
                        regions
                            .iter()
                            .map(|&b| match (a, b) {
                                (Some(a), Some(b)) => topology.one_way_us(a, b) * 2,
                                _ => 0,
                            })
                            .collect()
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        // Members are 0..n (checked at load), so the matrix is indexed by id.
        let mut cluster = Membership { members, rtt_us };
        for (i, row) in cluster.rtt_us.iter_mut().enumerate() {
            row[i] = 0;
        }
        cluster
    }

    /// Largest frame accepted.
    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
            .unwrap_or(crate::transport::frame::DEFAULT_MAX_FRAME_BYTES)
    }
}

/// Room in a peer frame for what surrounds one Dynamo object: the keyspace name, the
/// message's other fields and postcard's lengths and tags.
pub const FRAME_OVERHEAD_BYTES: usize = 64 * 1024;

/// The Dynamo object size limit for a peer frame limit of `max_frame_bytes`: a quarter of
/// what a frame holds after [`FRAME_OVERHEAD_BYTES`] (4 MiB less 16 KiB at the default
/// 16 MiB). A coordinator refuses a write whose object would exceed it, so every object a
/// write produces, and every message carrying one, fits one frame, with room for the
/// merge of up to four concurrent writes made at different coordinators
/// (docs/design.md#object-size).
pub fn dynamo_object_limit(max_frame_bytes: usize) -> usize {
    (max_frame_bytes.saturating_sub(FRAME_OVERHEAD_BYTES) / 4).max(1)
}

pub use crate::config_check::check_cluster;

#[cfg(test)]
#[path = "config_test.rs"]
mod tests;
