//! One QUIC endpoint per node: a connection per peer pair, and client request streams.
//!
//! ```text
//!                       ┌─ dialer (any peer not connected) ─┐
//!  Transport::send ─▶ per-peer queue ─▶ writer ─▶ uni stream ─▶ [peer] reader ─▶ Inbound::Peer
//!                       └─ accept loop (peers dialing us) ──┘   (both sides, any connection)
//!  client: bidi stream ─▶ ClientFrame::Request ─▶ Inbound::Client{reply} ─▶ ReplyFrame ─▶ same stream
//!                         ClientFrame::Admin   ─▶ Inbound::Admin{reply}  ─▶ AdminReplyFrame
//!          protocol 4: TaggedRequest* ─▶ the same ─▶ TaggedReply* (transport::tagged)
//! ```
//!
//! Peer links (dialing, the hello handshake that tells instances of a node apart,
//! reading) live in [`link`](crate::transport::link); this file holds the endpoint, the
//! accept loop, per-peer send queues and client request streams. The peer is identified
//! by its certificate (see [`tls::peer_node_id`]), never by what it says. Outgoing
//! queues are bounded: a full queue drops the frame (protocols retransmit) and counts
//! it. A malformed frame closes the connection it came on, with a logged reason; other
//! connections are untouched. Refused connections are logged at WARN, each kind at most
//! once per [`LOG_INTERVAL`](crate::transport::throttle::LOG_INTERVAL).

use crate::tls::{
    self, TlsError, TlsIdentity, ALPN_CLIENT, ALPN_CLIENT_V2, ALPN_CLIENT_V4, ALPN_PEER,
};
use crate::transport::frame::{self, FrameError, DEFAULT_MAX_FRAME_BYTES};
use crate::transport::hello::{Hello, WIRE_VERSION};
use crate::transport::link::{self, bump, live, Shared};
pub use crate::transport::link::{
    Inbound, InboundSink, TransportStats, CLOSE_DUPLICATE, CLOSE_MALFORMED, CLOSE_NOT_A_PEER,
    CLOSE_REMOVED, CLOSE_SHUTDOWN, CLOSE_SUPERSEDED, CLOSE_UNKNOWN_ALPN, CLOSE_VERSION,
};
use crate::transport::peers::Dialing;
use crate::transport::tagged;
use crate::transport::wan::{WanConfig, WanSocket, WanStats};
use crate::wire::{ClientFrame, PeerFrame, ReplyFrame};
use meridian_engine::NodeId;
use quinn::{Connection, Endpoint, VarInt};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

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
    /// The instance announced in every hello: drawn at random by [`TransportConfig::new`]
    /// so two processes with one node id tell themselves apart.
    pub instance: u64,
}

/// A random instance number (not a persistent incarnation: see the hello module).
pub fn fresh_instance(id: NodeId) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u16(id.0);
    hasher.write_u32(std::process::id());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    hasher.write_u128(now.map_or(0, |d| d.as_nanos()));
    hasher.finish()
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
            instance: fresh_instance(id),
        }
    }
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

/// One peer's link as [`Transport::peer_states`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerLinkState {
    /// The address the transport dials.
    pub address: Option<SocketAddr>,
    /// A link is up now.
    pub connected: bool,
    /// How long ago the link came up (connected) or last went down (not connected);
    /// `None` if it never did.
    pub since: Option<Duration>,
    /// How long ago the last frame from the peer arrived; `None` if none ever did.
    pub last_heard: Option<Duration>,
    /// The connection's RTT estimate, when connected.
    pub rtt: Option<Duration>,
}

/// A running node transport. Dropping it stops its tasks; [`Transport::shutdown`] also
/// closes every connection at once.
pub struct Transport {
    endpoint: Endpoint,
    dialing: Arc<Dialing>,
    stats: Arc<TransportStats>,
    wan: Option<Arc<WanStats>>,
    tasks: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
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
        let peers: BTreeMap<NodeId, SocketAddr> = config
            .peers
            .iter()
            .filter(|(&id, _)| id != config.id)
            .map(|(&id, &addr)| (id, addr))
            .collect();
        let hello = Hello {
            version: config.wire_version,
            instance: config.instance,
            started_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        };
        let shared = Arc::new(Shared::new(
            config.id,
            peers.clone(),
            inbound_tx,
            config.max_frame_bytes,
            hello,
        ));
        let stats = shared.stats.clone();

        let dialing = Arc::new(Dialing {
            endpoint: endpoint.clone(),
            client: peer_client,
            queue_max: config.peer_queue_frames_max,
        });
        for (&peer, &addr) in &peers {
            shared.start_peer(&dialing, peer, addr);
        }
        let tasks = vec![tokio::spawn(accept_loop(
            shared.clone(),
            dialing.clone(),
            endpoint.clone(),
        ))];
        tracing::info!(node = %config.id, %addr, peers = peers.len(), wan = wan.is_some(), "transport listening");
        Ok((
            Self {
                endpoint,
                dialing,
                stats,
                wan,
                tasks,
                shared,
            },
            inbound_rx,
        ))
    }

    /// Queue a frame for `to`. Never waits: a full queue drops the frame (counted).
    pub fn send(&self, to: NodeId, frame: PeerFrame) {
        let Some(queue) = self.shared.queue(to) else {
            bump(&self.stats.frames_dropped_unknown_peer);
            return;
        };
        if queue.try_send(frame).is_err() {
            bump(&self.stats.frames_dropped_queue_full);
        }
    }

    /// From now on, hand inbound messages to `sink` in the task that read them (what it
    /// gives back still goes to the inbound channel). Only the first sink set counts.
    pub fn set_sink(&self, sink: Arc<dyn InboundSink>) {
        let _ = self.shared.sink.set(sink);
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

    /// Every peer and whether it has a live link now.
    pub fn peer_links(&self) -> BTreeMap<NodeId, bool> {
        self.shared
            .peer_ids()
            .into_iter()
            .map(|peer| (peer, self.shared.connected(peer)))
            .collect()
    }

    /// Start talking to `peer` at `addr` (a member a membership change adds). A running
    /// peer keeps its address.
    pub fn add_peer(&self, peer: NodeId, addr: SocketAddr) {
        self.shared.start_peer(&self.dialing, peer, addr);
    }

    /// Stop talking to `peer` (a member a membership change removed): its link is
    /// closed and its dials are refused until it is added again. `false` if it was not
    /// a peer.
    pub fn remove_peer(&self, peer: NodeId) -> bool {
        self.shared.stop_peer(peer)
    }

    /// Let a removed peer's dials in again (it became a member again).
    pub fn allow_peer(&self, peer: NodeId) {
        self.shared.allow(peer);
    }

    /// Every peer's link: up or not, since when, when last heard from, its RTT.
    pub fn peer_states(&self) -> BTreeMap<NodeId, PeerLinkState> {
        let now = link::unix_ms();
        let ago = |ms: u64| (ms != 0).then(|| Duration::from_millis(now.saturating_sub(ms)));
        self.shared
            .links()
            .into_iter()
            .map(|(peer, link)| {
                let conn = live(&link.current.borrow());
                let times = &link.times;
                let since = if conn.is_some() {
                    times.up_ms.load(Ordering::Relaxed)
                } else {
                    times.down_ms.load(Ordering::Relaxed)
                };
                let state = PeerLinkState {
                    address: self.shared.address(peer),
                    connected: conn.is_some(),
                    since: ago(since),
                    last_heard: ago(times.heard_ms.load(Ordering::Relaxed)),
                    rtt: conn.map(|c| c.rtt()),
                };
                (peer, state)
            })
            .collect()
    }

    /// The random instance this transport announces in its hellos.
    pub fn instance(&self) -> u64 {
        self.shared.hello.instance
    }

    /// Close every connection and stop every task.
    pub fn shutdown(&self) {
        for task in &self.tasks {
            task.abort();
        }
        self.shared.stop_all();
        self.endpoint
            .close(VarInt::from_u32(CLOSE_SHUTDOWN), b"shutdown");
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn accept_loop(shared: Arc<Shared>, dialing: Arc<Dialing>, endpoint: Endpoint) {
    while let Some(incoming) = endpoint.accept().await {
        tokio::spawn(handle_incoming(shared.clone(), dialing.clone(), incoming));
    }
}

/// The peer a node certificate names: a configured peer, or another node of the cluster
/// let in as a new peer (`transport/peers.rs`).
fn incoming_peer(shared: &Arc<Shared>, dialing: &Dialing, conn: &Connection) -> Option<NodeId> {
    let chain = tls::peer_chain(conn)?;
    if let Some(peer) = tls::peer_node_id(&chain, shared.peer_ids()) {
        return Some(peer);
    }
    let peer = tls::named_node(&chain)?;
    shared
        .admit_peer(dialing, peer, conn.remote_address())
        .then_some(peer)
}

async fn handle_incoming(shared: Arc<Shared>, dialing: Arc<Dialing>, incoming: quinn::Incoming) {
    let remote = incoming.remote_address();
    let conn = match incoming.await {
        Ok(conn) => conn,
        Err(e) => {
            bump(&shared.stats.refused_connections);
            let reason = e.to_string();
            if let Some(suppressed) = shared.admit(&format!("incoming {remote} {reason}")) {
                tracing::warn!(node = %shared.id, %remote, suppressed, "refused an incoming connection: {reason}");
            }
            return;
        }
    };
    match tls::negotiated_alpn(&conn).as_deref() {
        Some(ALPN_PEER) => match incoming_peer(&shared, &dialing, &conn) {
            Some(peer) => link::serve_incoming(shared, peer, conn).await,
            None => {
                bump(&shared.stats.refused_connections);
                if let Some(suppressed) = shared.admit(&format!("not a peer {remote}")) {
                    tracing::warn!(node = %shared.id, %remote, suppressed, "refused a peer connection whose certificate names no peer of this node");
                }
                conn.close(
                    VarInt::from_u32(CLOSE_NOT_A_PEER),
                    b"certificate names no peer",
                );
            }
        },
        Some(ALPN_CLIENT_V4) => serve_client(shared, conn, ClientVersion::Tagged).await,
        Some(ALPN_CLIENT) => serve_client(shared, conn, ClientVersion::Notes).await,
        Some(ALPN_CLIENT_V2) => serve_client(shared, conn, ClientVersion::BareReplies).await,
        _ => {
            bump(&shared.stats.refused_connections);
            conn.close(VarInt::from_u32(CLOSE_UNKNOWN_ALPN), b"unknown protocol");
        }
    }
}

/// The client protocol a connection speaks (its ALPN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientVersion {
    /// `meridian-client/4`: tagged requests and answers, any number per stream
    /// ([`tagged`](crate::transport::tagged)).
    Tagged,
    /// `meridian-client/3`: a [`ReplyFrame`], with the commit note.
    Notes,
    /// `meridian-client/2`: the bare `ClientReply`.
    BareReplies,
}

/// Serve a client connection: a task per bidirectional stream, which carries one request
/// (protocols 2 and 3) or any number (protocol 4).
async fn serve_client(shared: Arc<Shared>, conn: Connection, version: ClientVersion) {
    bump(&shared.stats.client_connections);
    tracing::debug!(remote = %conn.remote_address(), ?version, "client connected");
    while let Ok((send, recv)) = conn.accept_bi().await {
        if version == ClientVersion::Tagged {
            tokio::spawn(tagged::serve(shared.clone(), conn.clone(), send, recv));
            continue;
        }
        tokio::spawn(serve_request(
            shared.clone(),
            conn.clone(),
            version,
            send,
            recv,
        ));
    }
}

async fn serve_request(
    shared: Arc<Shared>,
    conn: Connection,
    version: ClientVersion,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let frame = match frame::read_sole::<ClientFrame>(&mut recv, shared.max_frame_bytes).await {
        Ok(Some(frame)) => frame,
        Ok(None) => return,
        Err(e) => return client_read_failed(&shared, &conn, e),
    };
    bump(&shared.stats.client_requests);
    let bytes = match frame {
        ClientFrame::Request(frame) => ask_node(&shared, |reply| Inbound::Client { frame, reply })
            .await
            .and_then(|reply| encode_reply(reply, version, shared.max_frame_bytes).ok()),
        ClientFrame::Admin(frame) => {
            let operator = tls::peer_chain(&conn).is_some_and(|chain| tls::is_operator(&chain));
            ask_node(&shared, |reply| Inbound::Admin {
                frame,
                operator,
                reply,
            })
            .await
            .and_then(|reply| frame::encode(&reply, shared.max_frame_bytes).ok())
        }
    };
    let Some(bytes) = bytes else {
        let _ = send.reset(VarInt::from_u32(0));
        return;
    };
    if send.write_all(&bytes).await.is_ok() {
        let _ = send.finish();
    }
}

/// A client stream could not be read: it ended (logged), or it carried a malformed frame,
/// which closes the client's connection.
pub(super) fn client_read_failed(shared: &Shared, conn: &Connection, error: FrameError) {
    if let FrameError::Io(e) = error {
        tracing::debug!(error = %e, "client stream ended");
        return;
    }
    bump(&shared.stats.malformed_frames);
    tracing::warn!(client = %conn.remote_address(), error = %error, "malformed frame from client; closing the connection");
    conn.close(VarInt::from_u32(CLOSE_MALFORMED), b"malformed frame");
}

/// Hand `make(reply)` to the node and wait for the answer (`None`: the node is gone or
/// dropped the reply).
async fn ask_node<T>(
    shared: &Shared,
    make: impl FnOnce(oneshot::Sender<T>) -> Inbound,
) -> Option<T> {
    let (reply, answer) = oneshot::channel();
    if !shared.hand_in(make(reply)).await {
        return None;
    }
    answer.await.ok()
}

/// `reply` as a frame of the connection's client protocol; a reply over the frame limit
/// (a scan's entries, with a small `max_frame_bytes`) becomes a `Rejected` reply saying
/// so, so the client learns why instead of seeing its stream closed.
fn encode_reply(
    reply: ReplyFrame,
    version: ClientVersion,
    max_bytes: usize,
) -> Result<Vec<u8>, FrameError> {
    let encode = |reply: &ReplyFrame| match version {
        ClientVersion::BareReplies => frame::encode(&reply.reply, max_bytes),
        ClientVersion::Notes | ClientVersion::Tagged => frame::encode(reply, max_bytes),
    };
    match encode(&reply) {
        Err(FrameError::Oversized { len, max }) => encode(&oversized_refusal(&reply, len, max)),
        other => other,
    }
}

/// The `Rejected` reply that stands for `reply`, `len` bytes encoded, over the limit.
pub(super) fn oversized_refusal(reply: &ReplyFrame, len: usize, max: usize) -> ReplyFrame {
    ReplyFrame {
        reply: meridian_engine::ClientReply {
            id: reply.reply.id,
            outcome: Err(meridian_engine::RequestError::Rejected(format!(
                "the reply is {len} bytes, over this replica's max_frame_bytes of {max}; \
                 ask for less (e.g. scan --limit)"
            ))),
        },
        commit: reply.commit,
    }
}

#[cfg(test)]
#[path = "endpoint_test.rs"]
mod tests;
