//! Node configuration: TOML → typed config, checked once at load.
//!
//! ```toml
//! id = 0
//! cluster_id = "prod-eu"            # optional; recorded in the data dir's identity
//! region = "us-east-1"
//! listen = "127.0.0.1:7000"
//! data_dir = "data/n0"              # relative paths are relative to this file
//! metrics = "127.0.0.1:9100"        # optional Prometheus endpoint
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

use crate::tls::TlsPaths;
use meridian_engine::dynamo::DynamoConfig;
use meridian_engine::epaxos::EpaxosConfig;
use meridian_engine::multipaxos::MultiPaxosConfig;
use meridian_engine::quorum::PaxosQuorums;
use meridian_engine::tempo::TempoConfig;
use meridian_engine::topology::Topology;
use meridian_engine::{Consistency, Level, Member, Membership, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// One keyspace: its name, protocol and protocol options.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(tag = "protocol", rename_all = "lowercase")]
pub enum KeyspaceConfig {
    /// A Multi-Paxos keyspace.
    Multipaxos(MultiPaxosKeyspace),
    /// An EPaxos keyspace.
    Epaxos(EpaxosKeyspace),
    /// A Tempo keyspace.
    Tempo(TempoKeyspace),
    /// A Dynamo keyspace.
    Dynamo(DynamoKeyspace),
}

/// Multi-Paxos keyspace options (defaults: the engine's [`MultiPaxosConfig`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MultiPaxosKeyspace {
    /// Keyspace name.
    pub name: String,
    /// Used when a client does not name a consistency: `linearizable` (default) or `local`.
    #[serde(default)]
    pub default_consistency: Option<String>,
    /// The replica that leads first.
    #[serde(default)]
    pub initial_leader: Option<NodeId>,
    /// Flexible quorums: phase-1 size (with `phase2_quorum`).
    #[serde(default)]
    pub phase1_quorum: Option<usize>,
    /// Flexible quorums: phase-2 size (with `phase1_quorum`).
    #[serde(default)]
    pub phase2_quorum: Option<usize>,
    /// Commands per slot.
    #[serde(default)]
    pub max_batch: Option<usize>,
    /// Uncommitted slots in flight.
    #[serde(default)]
    pub max_in_flight: Option<usize>,
    /// Leader heartbeat period.
    #[serde(default)]
    pub heartbeat_ms: Option<u64>,
    /// Leader silence before an election.
    #[serde(default)]
    pub election_timeout_ms: Option<u64>,
    /// Lease length in milliseconds (default: no leases); below the election timeout
    /// (docs/design.md#leases).
    #[serde(default)]
    pub lease_ms: Option<u64>,
    /// The clock drift bound leases assume, in parts per million (default 1,000).
    #[serde(default)]
    pub clock_drift_ppm: Option<u32>,
    /// Replicas holding quorum leases on the keyspace (needs `lease_ms`).
    #[serde(default)]
    pub quorum_lease_holders: Vec<NodeId>,
}

/// EPaxos keyspace options (defaults: the engine's [`EpaxosConfig`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EpaxosKeyspace {
    /// Keyspace name.
    pub name: String,
    /// Used when a client does not name a consistency: `linearizable` (default) or `local`.
    #[serde(default)]
    pub default_consistency: Option<String>,
    /// PreAccept only the nearest fast quorum.
    #[serde(default)]
    pub thrifty: Option<bool>,
    /// Command-leader retry timeout.
    #[serde(default)]
    pub retry_timeout_ms: Option<u64>,
    /// Timer check period.
    #[serde(default)]
    pub tick_ms: Option<u64>,
    /// Executed-prefix exchange period (garbage collection).
    #[serde(default)]
    pub gc_interval_ms: Option<u64>,
    /// Commands per instance (1 = no batching).
    #[serde(default)]
    pub max_batch: Option<usize>,
    /// Uncommitted own instances per replica before requests queue (and batch).
    #[serde(default)]
    pub max_in_flight: Option<usize>,
}

/// Tempo keyspace options (defaults: the engine's [`TempoConfig`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TempoKeyspace {
    /// Keyspace name.
    pub name: String,
    /// Used when a client does not name a consistency: `linearizable` (default) or `local`.
    #[serde(default)]
    pub default_consistency: Option<String>,
    /// Failures tolerated, `1 <= f < n/2` (default 1); the fast quorum is
    /// `floor(n/2) + f`.
    #[serde(default)]
    pub f: Option<usize>,
    /// Promise announcement period.
    #[serde(default)]
    pub promise_interval_ms: Option<u64>,
    /// Coordinator retry timeout.
    #[serde(default)]
    pub retry_timeout_ms: Option<u64>,
    /// Patience before recovering a quiet command.
    #[serde(default)]
    pub recovery_timeout_ms: Option<u64>,
    /// Executed-prefix exchange period (garbage collection).
    #[serde(default)]
    pub gc_interval_ms: Option<u64>,
}

impl TempoKeyspace {
    /// The engine configuration for a cluster of `n` replicas. A server keeps no
    /// execution log.
    pub fn engine_config(&self, n: usize) -> Result<TempoConfig, String> {
        let defaults = TempoConfig::default();
        let config = TempoConfig {
            f: self.f.unwrap_or(defaults.f),
            promise_interval: ms(self.promise_interval_ms, defaults.promise_interval),
            retry_timeout: ms(self.retry_timeout_ms, defaults.retry_timeout),
            recovery_timeout: ms(self.recovery_timeout_ms, defaults.recovery_timeout),
            gc_interval: ms(self.gc_interval_ms, defaults.gc_interval),
            ..defaults
        }
        .with_record_execution(false);
        config.check(n)?;
        if config.promise_interval.is_zero() {
            return Err("promise_interval_ms must be positive".into());
        }
        Ok(config)
    }
}

/// Dynamo keyspace options (defaults: the engine's [`DynamoConfig`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DynamoKeyspace {
    /// Keyspace name.
    pub name: String,
    /// Level used when a client does not name one (default `QUORUM`).
    #[serde(default)]
    pub default_consistency: Option<String>,
    /// Owners per key (`N`).
    #[serde(default)]
    pub replicas: Option<usize>,
    /// Ring tokens per node.
    #[serde(default)]
    pub vnodes: Option<usize>,
    /// Sloppy quorum by default.
    #[serde(default)]
    pub sloppy: Option<bool>,
    /// Last-write-wins (lossy; off by default).
    #[serde(default)]
    pub lww: Option<bool>,
    /// Coordinator deadline per request.
    #[serde(default)]
    pub request_timeout_ms: Option<u64>,
    /// Failure-detector heartbeat period.
    #[serde(default)]
    pub heartbeat_ms: Option<u64>,
    /// Silence before a peer is considered down.
    #[serde(default)]
    pub failure_timeout_ms: Option<u64>,
    /// Merkle anti-entropy period.
    #[serde(default)]
    pub anti_entropy_interval_ms: Option<u64>,
}

impl KeyspaceConfig {
    /// The keyspace name.
    pub fn name(&self) -> &str {
        match self {
            Self::Multipaxos(k) => &k.name,
            Self::Epaxos(k) => &k.name,
            Self::Tempo(k) => &k.name,
            Self::Dynamo(k) => &k.name,
        }
    }

    /// The protocol name as written in the file.
    pub fn protocol(&self) -> &'static str {
        match self {
            Self::Multipaxos(_) => "multipaxos",
            Self::Epaxos(_) => "epaxos",
            Self::Tempo(_) => "tempo",
            Self::Dynamo(_) => "dynamo",
        }
    }

    /// The consistency used for requests that do not name one.
    pub fn default_consistency(&self) -> Consistency {
        let (text, fallback) = match self {
            Self::Multipaxos(k) => (&k.default_consistency, Consistency::Linearizable),
            Self::Epaxos(k) => (&k.default_consistency, Consistency::Linearizable),
            Self::Tempo(k) => (&k.default_consistency, Consistency::Linearizable),
            Self::Dynamo(k) => (&k.default_consistency, Consistency::Dynamo(Level::Quorum)),
        };
        // Validated at load: a configured value always parses.
        text.as_deref()
            .and_then(|t| parse_consistency(t).ok())
            .unwrap_or(fallback)
    }
}

/// Parse a consistency name: a consensus read level (`linearizable`, `local`, `lease`,
/// `read-index`, `follower`, `stale:5s`) or a Dynamo level (`ONE`, `QUORUM`,
/// `LOCAL_QUORUM`, `SESSION`, `R=2,W=2`, ...).
pub fn parse_consistency(text: &str) -> Result<Consistency, String> {
    match text.parse::<Consistency>() {
        Ok(level) => Ok(level),
        Err(consensus) => text
            .parse::<Level>()
            .map(Consistency::Dynamo)
            .map_err(|e| format!("{e}; or, for consensus keyspaces: {consensus}")),
    }
}

fn ms(value: Option<u64>, default: Duration) -> Duration {
    value.map_or(default, Duration::from_millis)
}

impl MultiPaxosKeyspace {
    /// The engine configuration for a cluster of `n` replicas.
    pub fn engine_config(&self, n: usize) -> Result<MultiPaxosConfig, String> {
        let mut config = MultiPaxosConfig::default();
        if let Some(leader) = self.initial_leader {
            config = config.with_initial_leader(leader);
        }
        match (self.phase1_quorum, self.phase2_quorum) {
            (Some(p1), Some(p2)) => {
                let quorums = PaxosQuorums::flexible(n, p1, p2).map_err(|e| e.to_string())?;
                config = config.with_quorums(quorums);
            }
            (None, None) => {}
            _ => return Err("set both phase1_quorum and phase2_quorum, or neither".into()),
        }
        let (max_batch, max_in_flight) = (
            self.max_batch.unwrap_or(config.max_batch),
            self.max_in_flight.unwrap_or(config.max_in_flight),
        );
        let (heartbeat, election) = (
            ms(self.heartbeat_ms, config.heartbeat_interval),
            ms(self.election_timeout_ms, config.election_timeout),
        );
        config = config
            .with_batching(max_batch, max_in_flight)
            .with_timeouts(heartbeat, election);
        if let Some(lease_ms) = self.lease_ms {
            let lease = Duration::from_millis(lease_ms);
            if lease_ms == 0 || lease >= election {
                return Err(format!(
                    "lease_ms {lease_ms} must be above 0 and below the election timeout \
                     ({} ms): a new leader waits out the old lease",
                    election.as_millis()
                ));
            }
            let drift = self.clock_drift_ppm.unwrap_or(config.clock_drift_ppm);
            config = config.with_lease(lease, drift);
        }
        if !self.quorum_lease_holders.is_empty() {
            if self.lease_ms.is_none() {
                return Err("quorum_lease_holders needs lease_ms".into());
            }
            if let Some(bad) = self.quorum_lease_holders.iter().find(|h| h.index() >= n) {
                return Err(format!("quorum lease holder {bad} is not a replica"));
            }
            config = config.with_quorum_lease_holders(self.quorum_lease_holders.clone());
        }
        Ok(config)
    }
}

impl EpaxosKeyspace {
    /// The engine configuration. A server keeps no execution log (it would grow without
    /// bound).
    pub fn engine_config(&self) -> EpaxosConfig {
        let defaults = EpaxosConfig::default();
        EpaxosConfig {
            thrifty: self.thrifty.unwrap_or(defaults.thrifty),
            retry_timeout: ms(self.retry_timeout_ms, defaults.retry_timeout),
            tick: ms(self.tick_ms, defaults.tick),
            gc_interval: ms(self.gc_interval_ms, defaults.gc_interval),
            ..defaults.clone()
        }
        .with_batching(
            self.max_batch.unwrap_or(defaults.max_batch),
            self.max_in_flight.unwrap_or(defaults.max_in_flight),
        )
        .with_record_execution(false)
    }
}

impl DynamoKeyspace {
    /// The engine configuration.
    pub fn engine_config(&self) -> DynamoConfig {
        let d = DynamoConfig::default();
        let mut config = d
            .clone()
            .with_replicas(self.replicas.unwrap_or(d.replicas))
            .with_sloppy(self.sloppy.unwrap_or(d.sloppy))
            .with_lww(self.lww.unwrap_or(d.lww))
            .with_request_timeout(ms(self.request_timeout_ms, d.request_timeout))
            .with_failure_detection(
                ms(self.heartbeat_ms, d.heartbeat_interval),
                ms(self.failure_timeout_ms, d.failure_timeout),
            )
            .with_anti_entropy_interval(ms(self.anti_entropy_interval_ms, d.anti_entropy_interval));
        config.vnodes = self.vnodes.unwrap_or(d.vnodes).max(1);
        config
    }
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
