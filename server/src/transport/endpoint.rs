//! One QUIC endpoint per node: a connection per peer pair, and client request streams.
//!
//! ```text
//!                       ┌─ dialer (any peer not connected) ─┐
//!  Transport::send ─▶ per-peer queue ─▶ writer ─▶ uni stream ─▶ [peer] reader ─▶ Inbound::Peer
//!                       └─ accept loop (peers dialing us) ──┘   (both sides, any connection)
//!  client: bidi stream ─▶ ClientFrame ─▶ Inbound::Client{reply} ─▶ ClientReply ─▶ same stream
//! ```
//!
//! Each side dials a peer it has no live connection to, the higher id of a pair only
//! after a moment, so a pair normally has the one connection the lower id dialed. A
//! restarted node dials its peers itself: a survivor still holding the connection to the
//! dead process would otherwise send into it until the idle timeout (CI saw a restarted
//! replica cut off for 15 s that way). The writer moves to the newest connection. Each
//! side sends on one unidirectional stream of its own, so messages between two nodes stay
//! in order. Every stream opens with a hello carrying the wire version
//! ([`hello`](crate::transport::hello)): a peer of another version gets its connection
//! closed with [`CLOSE_VERSION`] and a reason naming both versions. The peer is identified by its certificate (see [`tls::peer_node_id`]), never
//! by what it says. Outgoing queues are bounded: a full queue drops the frame (protocols
//! retransmit) and counts it. A malformed frame closes the connection it came on, with a
//! logged reason; other connections are untouched.

use crate::tls::{self, TlsError, TlsIdentity, ALPN_CLIENT, ALPN_PEER};
use crate::transport::frame::{self, FrameError, DEFAULT_MAX_FRAME_BYTES};
use crate::transport::hello::{self, HelloError, WIRE_VERSION};
use crate::transport::wan::{WanConfig, WanSocket, WanStats};
use crate::wire::{ClientFrame, PeerFrame};
use meridian_engine::{ClientReply, NodeId};
use quinn::crypto::rustls::HandshakeData;
use quinn::{Connection, Endpoint, VarInt};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Close code: orderly shutdown.
pub const CLOSE_SHUTDOWN: u32 = 0;
/// Close code: the peer sent a frame that could not be decoded.
pub const CLOSE_MALFORMED: u32 = 1;
/// Close code: a peer-protocol connection whose certificate names no peer.
pub const CLOSE_NOT_A_PEER: u32 = 2;
/// Close code: an unknown application protocol.
pub const CLOSE_UNKNOWN_ALPN: u32 = 3;
/// Close code: the peer speaks another wire version (the reason names both).
pub const CLOSE_VERSION: u32 = 4;

/// How a node's transport runs.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// This node.
    pub id: NodeId,
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// Every other node and its address.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// Certificates.
    pub tls: TlsIdentity,
    /// WAN emulation on outgoing datagrams (off for real deployments).
    pub wan: Option<WanConfig>,
    /// Largest frame accepted or sent (default 16 MiB).
    pub max_frame_bytes: usize,
    /// Frames queued per peer before new ones are dropped (default 16,384).
    pub peer_queue_frames_max: usize,
    /// Frames queued towards the node before readers wait (default 65,536).
    pub inbound_frames_max: usize,
    /// The wire version announced in every stream's hello and required of peers
    /// (default [`WIRE_VERSION`]; tests play a node of another release with it).
    pub wire_version: u32,
}

impl TransportConfig {
    /// Defaults for everything but identity, address, peers and certificates.
    pub fn new(
        id: NodeId,
        listen: SocketAddr,
        peers: BTreeMap<NodeId, SocketAddr>,
        tls: TlsIdentity,
    ) -> Self {
        Self {
            id,
            listen,
            peers,
            tls,
            wan: None,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            peer_queue_frames_max: 16_384,
            inbound_frames_max: 65_536,
            wire_version: WIRE_VERSION,
        }
    }
}

/// What the transport hands to the node.
#[derive(Debug)]
pub enum Inbound {
    /// A protocol message from a peer.
    Peer {
        /// The peer, as its certificate proves.
        from: NodeId,
        /// The message.
        frame: PeerFrame,
    },
    /// A client request; answer on `reply` (dropping it resets the client's stream).
    Client {
        /// The request.
        frame: ClientFrame,
        /// Where the answer goes.
        reply: oneshot::Sender<ClientReply>,
    },
}

/// What can go wrong starting a transport.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Binding or configuring the socket failed.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Certificates could not be turned into TLS configurations.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Transport counters.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Frames written to peers.
    pub frames_sent: AtomicU64,
    /// Frames received from peers.
    pub frames_received: AtomicU64,
    /// Frames dropped because a peer's queue was full.
    pub frames_dropped_queue_full: AtomicU64,
    /// Frames addressed to a node that is not a peer.
    pub frames_dropped_unknown_peer: AtomicU64,
    /// Frames too large to send.
    pub frames_dropped_oversized: AtomicU64,
    /// Malformed frames received (each closed its connection).
    pub malformed_frames: AtomicU64,
    /// Peer connections established (dialed or accepted).
    pub peer_connections: AtomicU64,
    /// Client connections accepted.
    pub client_connections: AtomicU64,
    /// Incoming connections refused (TLS failure, not a peer, unknown ALPN).
    pub refused_connections: AtomicU64,
    /// Client requests received.
    pub client_requests: AtomicU64,
    /// Peer connections closed because the peer speaks another wire version.
    pub version_refused: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// QUIC transport parameters shared by nodes and clients.
pub fn quic_transport_config() -> Arc<quinn::TransportConfig> {
    let mut config = quinn::TransportConfig::default();
    config
        .keep_alive_interval(Some(Duration::from_secs(1)))
        .max_concurrent_bidi_streams(VarInt::from_u32(4096))
        .max_concurrent_uni_streams(VarInt::from_u32(64));
    // 10 s without any packet (keep-alives included) ends a connection.
    config.max_idle_timeout(Some(VarInt::from_u32(10_000).into()));
    Arc::new(config)
}

/// Bind a quinn endpoint on `socket`, with WAN emulation if asked. Must run inside a
/// tokio runtime.
pub fn bind_endpoint(
    socket: std::net::UdpSocket,
    server: Option<quinn::ServerConfig>,
    wan: Option<WanConfig>,
) -> std::io::Result<(Endpoint, Option<Arc<WanStats>>)> {
    let runtime = Arc::new(quinn::TokioRuntime);
    match wan {
        Some(wan) => {
            let socket = WanSocket::from_std(socket, wan)?;
            let stats = socket.stats();
            let endpoint = Endpoint::new_with_abstract_socket(
                quinn::EndpointConfig::default(),
                server,
                socket,
                runtime,
            )?;
            Ok((endpoint, Some(stats)))
        }
        None => Ok((
            Endpoint::new(quinn::EndpointConfig::default(), server, socket, runtime)?,
            None,
        )),
    }
}

/// State the transport's tasks share.
struct Shared {
    id: NodeId,
    peers: BTreeMap<NodeId, SocketAddr>,
    /// The newest connection to each peer.
    connections: BTreeMap<NodeId, watch::Sender<Option<Connection>>>,
    inbound: mpsc::Sender<Inbound>,
    stats: Arc<TransportStats>,
    max_frame_bytes: usize,
    wire_version: u32,
}

/// A running node transport. Dropping it stops its tasks; [`Transport::shutdown`] also
/// closes every connection at once.
pub struct Transport {
    endpoint: Endpoint,
    queues: BTreeMap<NodeId, mpsc::Sender<PeerFrame>>,
    stats: Arc<TransportStats>,
    wan: Option<Arc<WanStats>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Transport {
    /// Bind `config.listen` and start. Returns the transport and the stream of inbound
    /// messages and requests.
    pub fn start(
        config: TransportConfig,
    ) -> Result<(Self, mpsc::Receiver<Inbound>), TransportError> {
        let socket =
            std::net::UdpSocket::bind(config.listen).map_err(|source| TransportError::Bind {
                addr: config.listen,
                source,
            })?;
        Self::start_with_socket(config, socket)
    }

    /// Start on an already bound UDP socket (`config.listen` is ignored).
    pub fn start_with_socket(
        config: TransportConfig,
        socket: std::net::UdpSocket,
    ) -> Result<(Self, mpsc::Receiver<Inbound>), TransportError> {
        let addr = socket.local_addr().unwrap_or(config.listen);
        let bind_error = |source| TransportError::Bind { addr, source };
        let mut server = quinn::ServerConfig::with_crypto(config.tls.quic_server()?);
        server.transport_config(quic_transport_config());
        let mut peer_client = quinn::ClientConfig::new(config.tls.quic_client(ALPN_PEER)?);
        peer_client.transport_config(quic_transport_config());
        let (endpoint, wan) =
            bind_endpoint(socket, Some(server), config.wan.clone()).map_err(bind_error)?;

        let (inbound_tx, inbound_rx) = mpsc::channel(config.inbound_frames_max.max(1));
        let stats = Arc::new(TransportStats::default());
        let peers: BTreeMap<NodeId, SocketAddr> = config
            .peers
            .iter()
            .filter(|(&id, _)| id != config.id)
            .map(|(&id, &addr)| (id, addr))
            .collect();
        let mut connections = BTreeMap::new();
        let mut watchers = BTreeMap::new();
        for &peer in peers.keys() {
            let (tx, rx) = watch::channel(None);
            connections.insert(peer, tx);
            watchers.insert(peer, rx);
        }
        let shared = Arc::new(Shared {
            id: config.id,
            peers: peers.clone(),
            connections,
            inbound: inbound_tx,
            stats: stats.clone(),
            max_frame_bytes: config.max_frame_bytes,
            wire_version: config.wire_version,
        });

        let mut tasks = vec![tokio::spawn(accept_loop(shared.clone(), endpoint.clone()))];
        let mut queues = BTreeMap::new();
        for (&peer, &addr) in &peers {
            let (tx, rx) = mpsc::channel(config.peer_queue_frames_max.max(1));
            queues.insert(peer, tx);
            if let Some(watcher) = watchers.remove(&peer) {
                tasks.push(tokio::spawn(writer(shared.clone(), peer, watcher, rx)));
            }
            tasks.push(tokio::spawn(dialer(
                shared.clone(),
                endpoint.clone(),
                peer_client.clone(),
                peer,
                addr,
            )));
        }
        tracing::info!(node = %config.id, %addr, peers = peers.len(), wan = wan.is_some(), "transport listening");
        Ok((
            Self {
                endpoint,
                queues,
                stats,
                wan,
                tasks,
            },
            inbound_rx,
        ))
    }

    /// Queue a frame for `to`. Never waits: a full queue drops the frame (counted).
    pub fn send(&self, to: NodeId, frame: PeerFrame) {
        let Some(queue) = self.queues.get(&to) else {
            bump(&self.stats.frames_dropped_unknown_peer);
            return;
        };
        if queue.try_send(frame).is_err() {
            bump(&self.stats.frames_dropped_queue_full);
        }
    }

    /// The address the endpoint listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Counters.
    pub fn stats(&self) -> &TransportStats {
        &self.stats
    }

    /// WAN emulation counters, if emulation is on.
    pub fn wan_stats(&self) -> Option<&WanStats> {
        self.wan.as_deref()
    }

    /// Close every connection and stop every task.
    pub fn shutdown(&self) {
        for task in &self.tasks {
            task.abort();
        }
        self.endpoint
            .close(VarInt::from_u32(CLOSE_SHUTDOWN), b"shutdown");
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn accept_loop(shared: Arc<Shared>, endpoint: Endpoint) {
    while let Some(incoming) = endpoint.accept().await {
        tokio::spawn(handle_incoming(shared.clone(), incoming));
    }
}

async fn handle_incoming(shared: Arc<Shared>, incoming: quinn::Incoming) {
    let remote = incoming.remote_address();
    let conn = match incoming.await {
        Ok(conn) => conn,
        Err(e) => {
            bump(&shared.stats.refused_connections);
            tracing::info!(%remote, error = %e, "refused incoming connection");
            return;
        }
    };
    let alpn = conn
        .handshake_data()
        .and_then(|data| data.downcast::<HandshakeData>().ok())
        .and_then(|data| data.protocol);
    match alpn.as_deref() {
        Some(ALPN_PEER) => {
            let peer = tls::peer_chain(&conn)
                .and_then(|chain| tls::peer_node_id(&chain, shared.peers.keys().copied()));
            match peer {
                Some(peer) => serve_peer(shared, peer, conn).await,
                None => {
                    bump(&shared.stats.refused_connections);
                    tracing::warn!(%remote, "peer connection whose certificate names no peer of this node; closing it");
                    conn.close(
                        VarInt::from_u32(CLOSE_NOT_A_PEER),
                        b"certificate names no peer",
                    );
                }
            }
        }
        Some(ALPN_CLIENT) => serve_client(shared, conn).await,
        _ => {
            bump(&shared.stats.refused_connections);
            conn.close(VarInt::from_u32(CLOSE_UNKNOWN_ALPN), b"unknown protocol");
        }
    }
}

/// Dial `peer` whenever there is no live connection to it; serve each connection this
/// side dialed until it closes.
async fn dialer(
    shared: Arc<Shared>,
    endpoint: Endpoint,
    config: quinn::ClientConfig,
    peer: NodeId,
    addr: SocketAddr,
) {
    const BACKOFF_MIN: Duration = Duration::from_millis(50);
    const BACKOFF_MAX: Duration = Duration::from_secs(1);
    // Long enough for the lower id's dial to land first when both start together.
    const HIGHER_ID_DELAY: Duration = Duration::from_millis(300);
    let Some(mut current) = shared.connections.get(&peer).map(|c| c.subscribe()) else {
        return;
    };
    let server_name = tls::node_server_name(peer);
    let mut backoff = BACKOFF_MIN;
    let mut first = true;
    loop {
        if first && shared.id > peer {
            tokio::time::sleep(HIGHER_ID_DELAY).await;
        }
        first = false;
        let live = current
            .borrow_and_update()
            .clone()
            .filter(|c| c.close_reason().is_none());
        if let Some(conn) = live {
            // Connected (the peer dialed us): wait for that connection to end or change.
            tokio::select! {
                _ = conn.closed() => {}
                changed = current.changed() => if changed.is_err() { return },
            }
            continue;
        }
        match endpoint.connect_with(config.clone(), addr, &server_name) {
            Ok(connecting) => match connecting.await {
                Ok(conn) => {
                    backoff = BACKOFF_MIN;
                    serve_peer(shared.clone(), peer, conn).await;
                    continue;
                }
                Err(e) => {
                    tracing::debug!(node = %shared.id, %peer, %addr, error = %e, "dial failed")
                }
            },
            Err(e) => {
                tracing::warn!(node = %shared.id, %peer, %addr, error = %e, "cannot dial peer")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Make `conn` the current connection to `peer` and read its streams until it closes.
async fn serve_peer(shared: Arc<Shared>, peer: NodeId, conn: Connection) {
    bump(&shared.stats.peer_connections);
    tracing::info!(node = %shared.id, %peer, remote = %conn.remote_address(), "peer connected");
    if let Some(current) = shared.connections.get(&peer) {
        current.send_replace(Some(conn.clone()));
    }
    loop {
        match conn.accept_uni().await {
            Ok(recv) => {
                tokio::spawn(read_peer_stream(shared.clone(), peer, conn.clone(), recv));
            }
            Err(quinn::ConnectionError::ApplicationClosed(close))
                if close.error_code == VarInt::from_u32(CLOSE_VERSION) =>
            {
                bump(&shared.stats.version_refused);
                tracing::warn!(node = %shared.id, %peer, ours = shared.wire_version, reason = %String::from_utf8_lossy(&close.reason), "the peer refused this node's wire version");
                return;
            }
            Err(e) => {
                tracing::info!(node = %shared.id, %peer, reason = %e, "peer connection closed");
                return;
            }
        }
    }
}

async fn read_peer_stream(
    shared: Arc<Shared>,
    peer: NodeId,
    conn: Connection,
    mut recv: quinn::RecvStream,
) {
    match hello::read(&mut recv, shared.wire_version).await {
        Ok(()) => {}
        Err(HelloError::Io(e)) => {
            tracing::debug!(%peer, error = %e, "peer stream ended inside its hello");
            return;
        }
        Err(e @ HelloError::NotMeridian) => {
            bump(&shared.stats.malformed_frames);
            tracing::warn!(node = %shared.id, %peer, error = %e, "closing the connection");
            conn.close(VarInt::from_u32(CLOSE_MALFORMED), b"no hello");
            return;
        }
        Err(e @ HelloError::Version { .. }) => {
            bump(&shared.stats.version_refused);
            tracing::error!(node = %shared.id, %peer, error = %e, "refusing a peer of another wire version");
            let reason = format!(
                "wire version mismatch: this node speaks {}",
                shared.wire_version
            );
            conn.close(VarInt::from_u32(CLOSE_VERSION), reason.as_bytes());
            return;
        }
    }
    loop {
        match frame::read::<PeerFrame, _>(&mut recv, shared.max_frame_bytes).await {
            Ok(Some(frame)) => {
                bump(&shared.stats.frames_received);
                let inbound = Inbound::Peer { from: peer, frame };
                if shared.inbound.send(inbound).await.is_err() {
                    return; // the node is gone
                }
            }
            Ok(None) => return,
            Err(FrameError::Io(e)) => {
                tracing::debug!(%peer, error = %e, "peer stream ended");
                return;
            }
            Err(e) => {
                bump(&shared.stats.malformed_frames);
                tracing::warn!(node = %shared.id, %peer, error = %e, "malformed frame from peer; closing the connection");
                conn.close(VarInt::from_u32(CLOSE_MALFORMED), b"malformed frame");
                return;
            }
        }
    }
}

/// Send `peer`'s queued frames on a stream of its newest live connection.
async fn writer(
    shared: Arc<Shared>,
    peer: NodeId,
    mut current: watch::Receiver<Option<Connection>>,
    mut queue: mpsc::Receiver<PeerFrame>,
) {
    'connection: loop {
        let conn = loop {
            let live = current
                .borrow_and_update()
                .clone()
                .filter(|c| c.close_reason().is_none());
            if let Some(conn) = live {
                break conn;
            }
            if current.changed().await.is_err() {
                return;
            }
        };
        let opened = match conn.open_uni().await {
            Ok(mut send) => {
                let written = send.write_all(&hello::hello(shared.wire_version)).await;
                written.map(|()| send).map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        let mut send = match opened {
            Ok(send) => send,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "cannot open a stream; waiting for a new connection");
                if current.changed().await.is_err() {
                    return;
                }
                continue;
            }
        };
        loop {
            tokio::select! {
                changed = current.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    continue 'connection;
                }
                frame = queue.recv() => {
                    let Some(frame) = frame else { return };
                    match frame::write(&mut send, &frame, shared.max_frame_bytes).await {
                        Ok(()) => bump(&shared.stats.frames_sent),
                        Err(FrameError::Oversized { len, max }) => {
                            bump(&shared.stats.frames_dropped_oversized);
                            tracing::warn!(%peer, len, max, "frame too large to send; dropped");
                        }
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "peer stream failed; waiting for a new connection");
                            continue 'connection;
                        }
                    }
                }
            }
        }
    }
}

/// Serve a client connection: one request per bidirectional stream.
async fn serve_client(shared: Arc<Shared>, conn: Connection) {
    bump(&shared.stats.client_connections);
    tracing::debug!(remote = %conn.remote_address(), "client connected");
    while let Ok((send, recv)) = conn.accept_bi().await {
        tokio::spawn(serve_request(shared.clone(), conn.clone(), send, recv));
    }
}

async fn serve_request(
    shared: Arc<Shared>,
    conn: Connection,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let frame = match frame::read::<ClientFrame, _>(&mut recv, shared.max_frame_bytes).await {
        Ok(Some(frame)) => frame,
        Ok(None) => return,
        Err(FrameError::Io(e)) => {
            tracing::debug!(error = %e, "client stream ended");
            return;
        }
        Err(e) => {
            bump(&shared.stats.malformed_frames);
            tracing::warn!(client = %conn.remote_address(), error = %e, "malformed frame from client; closing the connection");
            conn.close(VarInt::from_u32(CLOSE_MALFORMED), b"malformed frame");
            return;
        }
    };
    bump(&shared.stats.client_requests);
    let (reply_tx, reply_rx) = oneshot::channel();
    let request = Inbound::Client {
        frame,
        reply: reply_tx,
    };
    if shared.inbound.send(request).await.is_err() {
        return;
    }
    let Ok(reply) = reply_rx.await else {
        let _ = send.reset(VarInt::from_u32(0));
        return;
    };
    if frame::write(&mut send, &reply, shared.max_frame_bytes)
        .await
        .is_ok()
    {
        let _ = send.finish();
    }
}

#[cfg(test)]
#[path = "endpoint_test.rs"]
mod tests;
