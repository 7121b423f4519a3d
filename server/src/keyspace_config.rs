//! Keyspace configuration: the `[[keyspaces]]` tables of a node config, one per protocol,
//! and how each becomes its engine's config. Checked against the whole node config in
//! [`crate::config`].

use meridian_engine::dynamo::DynamoConfig;
use meridian_engine::epaxos::EpaxosConfig;
use meridian_engine::multipaxos::MultiPaxosConfig;
use meridian_engine::quorum::PaxosQuorums;
use meridian_engine::tempo::TempoConfig;
use meridian_engine::{Consistency, Level, NodeId};
use serde::{Deserialize, Serialize};
use std::time::Duration;

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
    /// Most commands per slot (default 256: requests waiting together share a slot; 1 =
    /// no batching).
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
    /// The replicas of the configuration of epoch 0, all voters (default: every node the
    /// config names). A replica added later by `member add` names the cluster's first
    /// members here, without itself: it starts outside the configuration and votes only
    /// once it was added and promoted (docs/design.md#membership).
    #[serde(default)]
    pub initial_members: Option<Vec<NodeId>>,
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
    /// Ordered delivery: process each first PreAccept at its release time (from the
    /// topology's RTTs; docs/design.md#epaxos, "Ordered delivery").
    #[serde(default)]
    pub ordered_delivery: Option<bool>,
    /// Command-leader retry timeout.
    #[serde(default)]
    pub retry_timeout_ms: Option<u64>,
    /// Timer check period.
    #[serde(default)]
    pub tick_ms: Option<u64>,
    /// Executed-prefix exchange period (garbage collection).
    #[serde(default)]
    pub gc_interval_ms: Option<u64>,
    /// Most commands per instance (default 256: requests waiting together share an
    /// instance; 1 = no batching).
    #[serde(default)]
    pub max_batch: Option<usize>,
    /// Uncommitted own instances per replica before requests queue (and batch).
    #[serde(default)]
    pub max_in_flight: Option<usize>,
    /// The replicas of the configuration of epoch 0, all voters (default: every node the
    /// config names). A replica added later by `member add` names the cluster's first
    /// members here, without itself: it starts as a spare, fetches its peers' state once
    /// added, and votes only once promoted (docs/design.md, "EPaxos epochs").
    #[serde(default)]
    pub initial_members: Option<Vec<NodeId>>,
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
    /// The replicas of the configuration of epoch 0, all voters (default: every node the
    /// config names). A replica added later by `member add` names the cluster's first
    /// members here, without itself: it starts as a spare, fetches its peers' state once
    /// added, and votes only once promoted (docs/design.md, "Tempo epochs").
    #[serde(default)]
    pub initial_members: Option<Vec<NodeId>>,
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
        let config = match &self.initial_members {
            Some(members) if members.is_empty() => {
                return Err("initial_members must name at least one replica".into());
            }
            Some(members) => {
                config.check(members.len())?;
                config.with_initial_members(members.clone())
            }
            None => {
                config.check(n)?;
                config
            }
        };
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
    /// The ring's members at epoch 0 (default: every node the config names). A replica
    /// added later by `member add` names the cluster's first members here, without
    /// itself: it starts outside the ring and owns ranges only once it was added and has
    /// streamed them (docs/design.md#dynamo-ring-ownership-with-streaming).
    #[serde(default)]
    pub initial_members: Option<Vec<NodeId>>,
}

impl KeyspaceConfig {
    /// What a node added after the cluster started serves of `keyspaces`: every keyspace
    /// (each protocol changes membership), each naming
    /// `initial` as its initial members unless it already names some
    /// (docs/design.md#membership).
    pub fn for_joining_node(keyspaces: &[Self], initial: &[NodeId]) -> Vec<Self> {
        keyspaces
            .iter()
            .map(|keyspace| {
                let mut keyspace = keyspace.clone();
                keyspace
                    .initial_members_mut()
                    .get_or_insert_with(|| initial.to_vec());
                keyspace
            })
            .collect()
    }

    fn initial_members_mut(&mut self) -> &mut Option<Vec<NodeId>> {
        match self {
            Self::Multipaxos(k) => &mut k.initial_members,
            Self::Epaxos(k) => &mut k.initial_members,
            Self::Tempo(k) => &mut k.initial_members,
            Self::Dynamo(k) => &mut k.initial_members,
        }
    }

    /// The initial members a keyspace names, if any.
    pub fn initial_members(&self) -> Option<&[NodeId]> {
        match self {
            Self::Multipaxos(k) => k.initial_members.as_deref(),
            Self::Epaxos(k) => k.initial_members.as_deref(),
            Self::Tempo(k) => k.initial_members.as_deref(),
            Self::Dynamo(k) => k.initial_members.as_deref(),
        }
    }

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

    /// Whether this keyspace's core implements a rejoin rule for a replica that lost its
    /// disk (docs/design.md#rejoin-rule; Tempo: docs/design.md#tempo-rejoin-rule). Every
    /// protocol does.
    pub fn can_rejoin(&self) -> bool {
        match self {
            Self::Multipaxos(_) | Self::Epaxos(_) | Self::Dynamo(_) | Self::Tempo(_) => true,
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
        if let Some(members) = &self.initial_members {
            if members.is_empty() {
                return Err("initial_members must name at least one replica".into());
            }
            config = config.with_initial_members(members.clone());
        }
        Ok(config)
    }
}

impl EpaxosKeyspace {
    /// The engine configuration, or why the engine cannot run it. A server keeps no
    /// execution log (it would grow without bound).
    pub fn engine_config(&self) -> Result<EpaxosConfig, String> {
        if self.initial_members.as_ref().is_some_and(Vec::is_empty) {
            return Err("initial_members must name at least one replica".into());
        }
        let defaults = EpaxosConfig::default();
        let config = EpaxosConfig {
            thrifty: self.thrifty.unwrap_or(defaults.thrifty),
            ordered_delivery: self.ordered_delivery.unwrap_or(defaults.ordered_delivery),
            retry_timeout: ms(self.retry_timeout_ms, defaults.retry_timeout),
            tick: ms(self.tick_ms, defaults.tick),
            gc_interval: ms(self.gc_interval_ms, defaults.gc_interval),
            initial_members: self.initial_members.clone(),
            ..defaults.clone()
        }
        .with_batching(
            self.max_batch.unwrap_or(defaults.max_batch),
            self.max_in_flight.unwrap_or(defaults.max_in_flight),
        )
        .with_record_execution(false);
        Ok(config)
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
        if let Some(members) = &self.initial_members {
            config = config.with_initial_members(members.clone());
        }
        config
    }
}
