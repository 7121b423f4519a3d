//! A replica process: the transport, one host task per keyspace, and the router
//! between them.
//!
//! ```text
//!              ┌──────────── Transport (QUIC, mTLS, optional WanSocket) ─────────────┐
//!  Inbound ──▶ Router ──keyspace name──▶ KeyspaceHandle ──▶ host task (owns a core)   │
//!                │ unknown keyspace: Invalid reply          │  ▲ storage thread      │
//!                │ full queue: Rejected reply / drop        └──┴──▶ PeerSender ───────┘
//! ```
//!
//! Start-up: load certificates, bind the transport, then for each keyspace open its log
//! (`<data_dir>/<keyspace>/log`), replay and decode the records, build the core with
//! them, and spawn its host. The node runs until a keyspace fails (a storage error ends
//! that keyspace and the node reports it) or it is shut down.
//!
//! Graceful stop ([`Node::drain`], what SIGTERM does): new client requests are refused
//! with `Rejected` (never started, so retrying them elsewhere is safe); every core is told
//! it is stopping (a Multi-Paxos leader hands its leadership to a peer); requests in
//! flight are finished; any still open at the deadline are answered `Timeout` (unknown
//! outcome: a retry with the same request id runs at most once); after a short grace
//! for the last messages to leave, the node shuts down.

mod host;
mod members;
pub mod peer_watch;
mod status;
mod storage_thread;
#[cfg(test)]
#[path = "node_test.rs"]
mod tests;

pub use host::{spawn_keyspace, ClientCall, HostConfig, KeyspaceHandle, KeyspaceTask, PeerSender};

use crate::config::{KeyspaceConfig, NodeConfig};
use crate::metrics::{self, RenderFn};
use crate::storage::FileStorage;
use crate::tls::{TlsError, TlsIdentity};
use crate::transport::endpoint::{
    Inbound, InboundSink, Transport, TransportConfig, TransportError,
};
use crate::transport::wan::{LinkDelay, WanConfig};
use crate::wire::ReplyFrame;
use meridian_engine::dynamo::Dynamo;
use meridian_engine::epaxos::Epaxos;
use meridian_engine::multipaxos::MultiPaxos;
use meridian_engine::tempo::Tempo;
use meridian_engine::topology::Topology;
use meridian_engine::{ClientReply, Consistency, NodeId, RequestError};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};

/// Why a node could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A keyspace's log failed (open, write, fsync, compaction).
    #[error("keyspace {keyspace}: storage: {message}")]
    Storage {
        /// The keyspace.
        keyspace: String,
        /// What failed.
        message: String,
    },
    /// A durable record does not decode as the keyspace protocol's record.
    #[error("keyspace {keyspace}: record {index} of the log does not decode: {message}")]
    Recovery {
        /// The keyspace.
        keyspace: String,
        /// Position in the log.
        index: usize,
        /// Decoder message.
        message: String,
    },
    /// A keyspace host task panicked.
    #[error("keyspace {keyspace}: host task failed: {message}")]
    Panicked {
        /// The keyspace.
        keyspace: String,
        /// Panic message.
        message: String,
    },
    /// Certificates could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The transport could not start.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The WAN topology could not be loaded.
    #[error("WAN emulation: {0}")]
    Wan(String),
    /// The metrics endpoint could not bind.
    #[error("metrics endpoint {addr}: {source}")]
    Metrics {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A seed for a core's RNG. The host may use ambient randomness; cores may not.
fn fresh_seed(id: NodeId) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u16(id.0);
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    hasher.finish()
}

/// The WAN emulation links of `config`: one-way delay (and jitter) to each peer address.
pub fn wan_links(config: &NodeConfig) -> Result<Option<WanConfig>, NodeError> {
    let Some(wan) = &config.wan else {
        return Ok(None);
    };
    let topology = Topology::resolve(&wan.topology).map_err(|e| NodeError::Wan(e.to_string()))?;
    let region = |name: &str| {
        topology
            .region_index(name)
            .ok_or_else(|| NodeError::Wan(format!("region {name:?} is not in {}", topology.name())))
    };
    let me = region(&config.region)?;
    let mut links = std::collections::HashMap::new();
    for peer in &config.peers {
        let them = region(&peer.region)?;
        let delay = if wan.jitter {
            let draw = topology.one_way_draw(me, them);
            LinkDelay {
                one_way: Duration::from_micros(draw.low_us),
                jitter: Duration::from_micros(draw.spread_us),
            }
        } else {
            LinkDelay::fixed(Duration::from_micros(topology.one_way_us(me, them)))
        };
        links.insert(peer.address, delay);
    }
    Ok(Some(WanConfig {
        links,
        seed: wan.seed.unwrap_or(u64::from(config.id.0)),
        ..WanConfig::default()
    }))
}

/// What the data directory's identity (`crate::identity`) tells a starting node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StartOptions {
    /// Keyspaces whose core is told it lost its state
    /// ([`meridian_engine::Protocol::rejoin`]).
    pub rejoin: Vec<String>,
    /// The data directory's incarnation (reported as `meridian_incarnation`).
    pub incarnation: Option<u64>,
}

/// A running replica.
pub struct Node {
    id: NodeId,
    transport: Arc<Transport>,
    keyspaces: BTreeMap<String, KeyspaceHandle>,
    aborts: Vec<AbortHandle>,
    exits: mpsc::UnboundedReceiver<(String, Result<(), NodeError>)>,
    router: JoinHandle<()>,
    /// Peer messages the router dropped (unknown keyspace or full keyspace queue).
    router_drops: Arc<AtomicU64>,
    /// Set by [`Node::drain`]: the router refuses new client requests.
    draining: Arc<AtomicBool>,
    metrics: Option<(SocketAddr, JoinHandle<()>)>,
    incarnation: Option<u64>,
}

/// How long a drain waits after the last request finished, so the last messages
/// (commits, replies to forwarded requests) leave before connections close.
pub const DRAIN_GRACE: Duration = Duration::from_millis(300);

/// What [`Node::drain`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Requests in flight when the drain began.
    pub in_flight_at_start: u64,
    /// Requests still in flight at the deadline, answered `Timeout`.
    pub given_up: u64,
    /// How long the in-flight requests took to finish (or the deadline).
    pub waited: Duration,
}

impl Node {
    /// Start a replica from its configuration. Must run inside a tokio runtime.
    pub async fn start(config: NodeConfig) -> Result<Self, NodeError> {
        Self::start_with(config, StartOptions::default()).await
    }

    /// [`Node::start`] with what the data directory's identity decided.
    pub async fn start_with(config: NodeConfig, options: StartOptions) -> Result<Self, NodeError> {
        let rejoin = &options.rejoin;
        let tls = TlsIdentity::load(&config.tls.paths())?;
        let peers = config.peers.iter().map(|p| (p.id, p.address)).collect();
        let mut transport_config = TransportConfig::new(config.id, config.listen, peers, tls);
        transport_config.wan = wan_links(&config)?;
        transport_config.max_frame_bytes = config.max_frame_bytes();
        let (transport, inbound) = Transport::start(transport_config)?;
        let transport = Arc::new(transport);
        let net: Arc<dyn PeerSender> = transport.clone();

        let cluster = config.cluster();
        let epoch = Instant::now();
        let router_drops = Arc::new(AtomicU64::new(0));
        let draining = Arc::new(AtomicBool::new(false));
        let (exit_tx, exits) = mpsc::unbounded_channel();
        let mut keyspaces = BTreeMap::new();
        let mut routes = BTreeMap::new();
        let mut aborts = Vec::new();
        for keyspace in &config.keyspaces {
            let name = keyspace.name().to_owned();
            let dir = config.data_dir.join(&name);
            let storage = FileStorage::open(&dir).map_err(|e| NodeError::Storage {
                keyspace: name.clone(),
                message: e.to_string(),
            })?;
            let report = storage.open_report().clone();
            if report.torn_bytes > 0 {
                tracing::warn!(keyspace = %name, torn_bytes = report.torn_bytes, "cut a torn write from the end of the log");
            }
            let host = HostConfig {
                epoch,
                rejoin: rejoin.contains(&name),
                log_path: Some(storage.path().to_owned()),
                ..HostConfig::new(&name, keyspace.protocol(), config.id)
            };
            let id = config.id;
            let seed = fresh_seed(id);
            // A keyspace whose options the engine refuses cannot start.
            let invalid = |message: String| NodeError::Storage {
                keyspace: name.clone(),
                message,
            };
            let spawned = match keyspace {
                KeyspaceConfig::Multipaxos(k) => {
                    let options = k.engine_config(cluster.len()).map_err(invalid)?;
                    spawn_keyspace(
                        host,
                        storage,
                        |records| MultiPaxos::new(id, &cluster, options, seed, records),
                        net.clone(),
                    )?
                }
                KeyspaceConfig::Epaxos(k) => {
                    let options = k.engine_config().map_err(invalid)?;
                    spawn_keyspace(
                        host,
                        storage,
                        |records| Epaxos::new(id, &cluster, options, seed, records),
                        net.clone(),
                    )?
                }
                KeyspaceConfig::Tempo(k) => {
                    let options = k.engine_config(cluster.len()).map_err(invalid)?;
                    spawn_keyspace(
                        host,
                        storage,
                        |records| Tempo::new(id, &cluster, options, seed, records),
                        net.clone(),
                    )?
                }
                KeyspaceConfig::Dynamo(k) => {
                    let limit = crate::config::dynamo_object_limit(config.max_frame_bytes());
                    let options = k.engine_config().with_max_object_bytes(limit);
                    spawn_keyspace(
                        host,
                        storage,
                        |records| Dynamo::new(id, &cluster, options, seed, records),
                        net.clone(),
                    )?
                }
            };
            let (handle, task) = spawned;
            aborts.push(task.abort_handle());
            let exit_tx = exit_tx.clone();
            let task_name = name.clone();
            tokio::spawn(async move {
                let result = match task.await {
                    Ok(result) => result,
                    Err(e) if e.is_cancelled() => Ok(()),
                    Err(e) => Err(NodeError::Panicked {
                        keyspace: task_name.clone(),
                        message: e.to_string(),
                    }),
                };
                let _ = exit_tx.send((task_name, result));
            });
            routes.insert(
                name.clone(),
                (handle.clone(), keyspace.default_consistency()),
            );
            keyspaces.insert(name, handle);
        }
        let watcher = tokio::spawn(peer_watch::watch_peers(peer_watch::Watch {
            me: config.id,
            handles: keyspaces.values().cloned().collect(),
            cluster: cluster.clone(),
            transport: transport.clone(),
            book: config.data_dir.join(peer_watch::ADDRESS_BOOK),
        }));
        aborts.push(watcher.abort_handle());
        let status = Arc::new(status::StatusSource {
            id: config.id,
            region: config.region.clone(),
            address: config.listen,
            peers: config.peers.clone(),
            membership: cluster.clone(),
            incarnation: options.incarnation,
            started: epoch,
            draining: draining.clone(),
            handles: keyspaces.values().cloned().collect(),
            transport: transport.clone(),
        });
        let direct = Arc::new(Router {
            id: config.id,
            keyspaces: routes,
            cluster: cluster.clone(),
            drops: router_drops.clone(),
            draining: draining.clone(),
        });
        transport.set_sink(direct.clone());
        let router = tokio::spawn(route(inbound, direct, status));
        let mut node = Self {
            id: config.id,
            transport,
            keyspaces,
            aborts,
            exits,
            router,
            router_drops,
            draining,
            metrics: None,
            incarnation: options.incarnation,
        };
        if let Some(addr) = config.metrics {
            let render = node.render_fn();
            let (local, task) = metrics::spawn(addr, render)
                .await
                .map_err(|source| NodeError::Metrics { addr, source })?;
            node.metrics = Some((local, task));
        }
        tracing::info!(node = %config.id, listen = %node.local_addr().unwrap_or(config.listen), keyspaces = node.keyspaces.len(), "node started");
        Ok(node)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The QUIC address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.transport.local_addr()
    }

    /// The metrics endpoint, if one is configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(addr, _)| *addr)
    }

    /// The keyspace hosts by name.
    pub fn keyspaces(&self) -> &BTreeMap<String, KeyspaceHandle> {
        &self.keyspaces
    }

    /// The metrics page as the endpoint would serve it.
    pub async fn metrics_text(&self) -> String {
        (self.render_fn())().await.metrics
    }

    /// Each keyspace that cannot serve through this node, with the reason (what
    /// `GET /health` answers 503 with; empty when healthy).
    pub async fn unready(&self) -> Vec<String> {
        (self.render_fn())().await.unready
    }

    fn render_fn(&self) -> RenderFn {
        let id = self.id;
        let handles: Vec<KeyspaceHandle> = self.keyspaces.values().cloned().collect();
        let transport = self.transport.clone();
        let drops = self.router_drops.clone();
        let incarnation = self.incarnation;
        Arc::new(move || {
            let handles = handles.clone();
            let transport = transport.clone();
            let drops = drops.load(Ordering::Relaxed);
            Box::pin(async move {
                let mut snapshots = Vec::new();
                for handle in &handles {
                    if let Some(snapshot) = handle.metrics().await {
                        snapshots.push(snapshot);
                    }
                }
                let links = transport.peer_links();
                let view = metrics::NodeView {
                    node: id,
                    links: &links,
                    transport: Some(transport.stats()),
                    wan: transport.wan_stats(),
                    router_dropped: drops,
                    incarnation,
                };
                metrics::Page {
                    metrics: metrics::render(&view, &snapshots),
                    unready: metrics::unready(&view, &snapshots),
                }
            })
        })
    }

    /// Run until a keyspace stops; returns its error (a keyspace only stops on failure).
    pub async fn wait(&mut self) -> Result<(), NodeError> {
        match self.exits.recv().await {
            Some((keyspace, Ok(()))) => Err(NodeError::Panicked {
                keyspace,
                message: "host task ended".into(),
            }),
            Some((_, Err(e))) => Err(e),
            None => Ok(()),
        }
    }

    /// Requests in flight over every keyspace.
    async fn in_flight(&self) -> u64 {
        let mut total = 0;
        for handle in self.keyspaces.values() {
            if let Some(metrics) = handle.metrics().await {
                total += metrics.pending_requests;
            }
        }
        total
    }

    /// Stop taking work and finish what is in flight (see the module doc); then call
    /// [`Node::shutdown`]. Requests still open after `deadline` are answered `Timeout`.
    pub async fn drain(&self, deadline: Duration) -> DrainReport {
        let started = Instant::now();
        self.draining.store(true, Ordering::SeqCst);
        let in_flight_at_start = self.in_flight().await;
        tracing::info!(node = %self.id, in_flight = in_flight_at_start, "draining: refusing new requests, handing off, finishing requests in flight");
        for handle in self.keyspaces.values() {
            handle.hand_off().await;
        }
        let mut given_up = 0;
        loop {
            let open = self.in_flight().await;
            if open == 0 {
                break;
            }
            if started.elapsed() >= deadline {
                for handle in self.keyspaces.values() {
                    given_up += handle.give_up_pending().await.unwrap_or(0);
                }
                tracing::warn!(node = %self.id, given_up, "drain deadline passed; requests still in flight were answered with a timeout");
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let waited = started.elapsed();
        tokio::time::sleep(DRAIN_GRACE).await;
        tracing::info!(node = %self.id, in_flight = in_flight_at_start, given_up, waited_ms = waited.as_millis() as u64, "drained");
        DrainReport {
            in_flight_at_start,
            given_up,
            waited,
        }
    }

    /// Stop everything: hosts (records handed to storage are still synced), router,
    /// metrics, and every connection.
    pub fn shutdown(&self) {
        for abort in &self.aborts {
            abort.abort();
        }
        self.router.abort();
        if let Some((_, task)) = &self.metrics {
            task.abort();
        }
        self.transport.shutdown();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Where inbound peer messages and client requests go: each keyspace's host, found by
/// name. The transport's readers call it directly ([`InboundSink`]), so a message
/// reaches its host without passing through another task.
struct Router {
    id: NodeId,
    /// Each keyspace's host and default consistency.
    keyspaces: BTreeMap<String, (KeyspaceHandle, Consistency)>,
    /// The static membership of the node config.
    cluster: meridian_engine::Membership,
    /// Peer messages dropped (unknown keyspace or full keyspace queue).
    drops: Arc<AtomicU64>,
    /// Set by [`Node::drain`]: new client requests are refused.
    draining: Arc<AtomicBool>,
}

impl InboundSink for Router {
    /// Peer messages and client requests are handed to their host at once (never
    /// waiting: a full queue drops or rejects); operator requests are given back.
    fn offer(&self, message: Inbound) -> Option<Inbound> {
        match message {
            Inbound::Admin { .. } => return Some(message),
            Inbound::Peer { from, frame } => {
                // A node outside the static membership (one a membership change added)
                // reaches only cores that change membership: they check who it is.
                let delivered = self
                    .keyspaces
                    .get(&frame.keyspace)
                    .is_some_and(|(handle, _)| {
                        (handle.changes_membership() || self.cluster.contains(from))
                            && handle.deliver(from, frame.payload)
                    });
                if !delivered {
                    self.drops.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%from, keyspace = %frame.keyspace, "peer message dropped (unknown keyspace or full queue)");
                }
            }
            Inbound::Client { frame, reply } => {
                let mut request = frame.request;
                if self.draining.load(Ordering::SeqCst) {
                    let _ = reply.send(ReplyFrame::from(ClientReply {
                        id: request.id,
                        outcome: Err(RequestError::Rejected(format!(
                            "replica {} is shutting down; the request was not started: \
                             retry it at another replica",
                            self.id
                        ))),
                    }));
                    return None;
                }
                let Some((handle, default)) = self.keyspaces.get(&frame.keyspace) else {
                    let known: Vec<&str> = self.keyspaces.keys().map(String::as_str).collect();
                    let _ = reply.send(ReplyFrame::from(ClientReply {
                        id: request.id,
                        outcome: Err(RequestError::Invalid(format!(
                            "unknown keyspace {:?}; this cluster serves {}",
                            frame.keyspace,
                            known.join(", ")
                        ))),
                    }));
                    return None;
                };
                if frame.default_consistency {
                    request.consistency = *default;
                }
                handle.submit(ClientCall { request, reply });
            }
        }
        None
    }
}

/// What the inbound channel still carries: operator requests (each answered in its own
/// task: it waits on every keyspace host) and whatever arrived before the router was
/// handed to the transport.
async fn route(
    mut inbound: mpsc::Receiver<Inbound>,
    router: Arc<Router>,
    status: Arc<status::StatusSource>,
) {
    while let Some(message) = inbound.recv().await {
        if let Some(Inbound::Admin {
            frame,
            operator,
            reply,
        }) = router.offer(message)
        {
            let status = status.clone();
            tokio::spawn(async move {
                let _ = reply.send(status.answer(frame, operator).await);
            });
        }
    }
}
