//! Peer links: one live connection per peer pair, dialed and redialed, handshaken with
//! a hello carrying each side's instance, and read.
//!
//! ```text
//!  dialer (one per peer) ──no live link──▶ backoff (jittered) ─▶ dial ─┐
//!  accept loop ──peer certificate──────────────────────────────────────┤
//!                                                                      ▼
//!            establish: exchange hellos (version, instance) ─▶ adopt or refuse
//!              adopt: no live link, the same instance, or the established
//!                     instance's link does not answer a probe  ─▶ current = conn
//!              refuse: another instance of the node while the established
//!                      one answers ─▶ CLOSE_DUPLICATE, counted, WARN
//!  read_streams(conn): uni streams ─▶ frames ─▶ Inbound::Peer;  bi streams ─▶ probes
//!  writer: frames ─▶ a stream of `current`, moving when it changes
//! ```
//!
//! The dialer never serves a connection itself: it watches the current link and dials
//! whenever that link is gone, however it went (the peer's own dial, an impostor's
//! refused dial, a death). Each side dials a peer it has no live link to, the higher id
//! of a pair only after a moment, so a pair normally has the one connection the lower id
//! dialed. A restarted node dials its peers itself: the survivor's link to the dead
//! process does not answer the probe, so the new instance takes over within about a
//! second instead of the 10 s idle timeout. A link that fails its handshake or dies
//! young does not reset the backoff: a misconfigured peer redials at most every few
//! seconds, and each kind of refusal is logged at WARN once per
//! [`LOG_INTERVAL`](crate::transport::throttle::LOG_INTERVAL).

use crate::admin::{AdminFrame, AdminReplyFrame};
use crate::tls;
use crate::transport::frame::{self, FrameError};
use crate::transport::hello::{self, Hello, HelloError};
use crate::transport::throttle::LogThrottle;
use crate::wire::{PeerFrame, ReplyFrame, RequestFrame};
use meridian_engine::NodeId;
use quinn::{Connection, ConnectionError, Endpoint, VarInt};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::timeout;

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
/// Close code: another instance of this node id holds a live link (the reason names
/// both instances).
pub const CLOSE_DUPLICATE: u32 = 5;
/// Close code: a newer instance of the node took the link over.
pub const CLOSE_SUPERSEDED: u32 = 6;
/// Close code: the peer was removed from the membership.
pub const CLOSE_REMOVED: u32 = 7;

/// First redial pause.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest redial pause (before jitter).
pub const BACKOFF_MAX: Duration = Duration::from_secs(3);
/// A link that lived this long resets the backoff when it ends.
const STABLE: Duration = Duration::from_secs(5);
/// Long enough for the lower id's dial to land first when both start together.
const HIGHER_ID_DELAY: Duration = Duration::from_millis(300);
/// The hello exchange must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// An established link must answer a probe within this (plus 4 RTTs, at most
/// [`PROBE_MAX`]) to keep a second instance out.
const PROBE_MIN: Duration = Duration::from_millis(1_000);
const PROBE_MAX: Duration = Duration::from_secs(3);
const PING: [u8; 8] = *b"MRDNPING";
const PONG: [u8; 8] = *b"MRDNPONG";

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
    /// A client request; answer on `reply` (dropping it resets a protocol 3 stream and is
    /// answered `Dropped` on protocol 4).
    Client {
        /// The request.
        frame: RequestFrame,
        /// Where the answer goes.
        reply: oneshot::Sender<ReplyFrame>,
    },
    /// An operator request ([`crate::admin`]); answer on `reply`.
    Admin {
        /// The request's envelope, not yet decoded.
        frame: AdminFrame,
        /// The connection presented an operator certificate (may change the membership).
        operator: bool,
        /// Where the answer goes.
        reply: oneshot::Sender<AdminReplyFrame>,
    },
}

/// Takes inbound messages in the task that read them, saving the hop through the
/// inbound channel and a router task (one task wake-up per message).
pub trait InboundSink: Send + Sync + 'static {
    /// Handle `message` now without waiting; give it back to have it queued on the
    /// inbound channel instead.
    fn offer(&self, message: Inbound) -> Option<Inbound>;
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
    /// Peer connections established (dialed or accepted, hello exchanged, adopted).
    pub peer_connections: AtomicU64,
    /// Client connections accepted.
    pub client_connections: AtomicU64,
    /// Incoming connections refused (TLS failure, not a peer, unknown ALPN).
    pub refused_connections: AtomicU64,
    /// Client requests received.
    pub client_requests: AtomicU64,
    /// Peer connections closed because the peer speaks another wire version.
    pub version_refused: AtomicU64,
    /// Peer connections refused because another instance of that node id holds a live
    /// link.
    pub duplicate_refused: AtomicU64,
    /// Dials that failed or whose connection was refused before it carried a frame.
    pub dial_failures: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The established instance of a peer and its link.
struct Established {
    hello: Hello,
    conn: Connection,
}

/// One peer's link.
pub(crate) struct PeerLink {
    /// The connection the writer sends on.
    pub(crate) current: watch::Sender<Option<Connection>>,
    /// Who holds the link; decisions about it are taken one at a time.
    established: tokio::sync::Mutex<Option<Established>>,
    /// When the link last came up or went down, and when the peer was last heard from.
    pub(crate) times: LinkTimes,
}

impl PeerLink {
    /// A link that never came up.
    pub(crate) fn new() -> Self {
        Self {
            current: watch::channel(None).0,
            established: tokio::sync::Mutex::new(None),
            times: LinkTimes::default(),
        }
    }
}

/// Moments in a link's life, in milliseconds since the Unix epoch (0: never).
#[derive(Debug, Default)]
pub(crate) struct LinkTimes {
    /// The current connection was adopted (the link came up).
    pub(crate) up_ms: AtomicU64,
    /// The link went down.
    pub(crate) down_ms: AtomicU64,
    /// The last frame from the peer arrived.
    pub(crate) heard_ms: AtomicU64,
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// State the transport's tasks share.
pub(crate) struct Shared {
    pub(crate) id: NodeId,
    /// The peer set, which membership changes move (`transport/peers.rs`).
    pub(crate) peers: std::sync::RwLock<super::peers::PeerSet>,
    pub(crate) inbound: mpsc::Sender<Inbound>,
    /// Set once the node can take messages directly ([`InboundSink`]).
    pub(crate) sink: std::sync::OnceLock<Arc<dyn InboundSink>>,
    pub(crate) stats: Arc<TransportStats>,
    pub(crate) max_frame_bytes: usize,
    pub(crate) wire_version: u32,
    /// This transport's hello.
    pub(crate) hello: Hello,
    pub(crate) throttle: LogThrottle,
}

pub(crate) fn live(conn: &Option<Connection>) -> Option<Connection> {
    conn.clone().filter(|c| c.close_reason().is_none())
}

impl Shared {
    pub(crate) fn new(
        id: NodeId,
        peers: BTreeMap<NodeId, SocketAddr>,
        inbound: mpsc::Sender<Inbound>,
        max_frame_bytes: usize,
        hello: Hello,
    ) -> Self {
        Self {
            id,
            peers: std::sync::RwLock::new(super::peers::PeerSet::new(peers)),
            inbound,
            sink: std::sync::OnceLock::new(),
            stats: Arc::new(TransportStats::default()),
            max_frame_bytes,
            wire_version: hello.version,
            hello,
            throttle: LogThrottle::default(),
        }
    }

    /// Whether `peer` has a live link.
    pub(crate) fn connected(&self, peer: NodeId) -> bool {
        self.link(peer)
            .is_some_and(|link| live(&link.current.borrow()).is_some())
    }

    /// Hand `message` to the sink if one is set, else (or if it gives the message back)
    /// to the inbound channel. `false` if the node is gone.
    pub(crate) async fn hand_in(&self, message: Inbound) -> bool {
        let message = match self.sink.get() {
            Some(sink) => match sink.offer(message) {
                None => return true,
                Some(message) => message,
            },
            None => message,
        };
        self.inbound.send(message).await.is_ok()
    }

    /// `Some(left out since the last one)` if an event of `key` is to be logged now.
    pub(crate) fn admit(&self, key: &str) -> Option<u64> {
        self.throttle.admit(key, Instant::now())
    }
}

/// Serve a connection a peer dialed: handshake, then read it until it closes.
pub(crate) async fn serve_incoming(shared: Arc<Shared>, peer: NodeId, conn: Connection) {
    if let Some(first) = establish(&shared, peer, &conn, false).await {
        read_streams(shared, peer, conn, first).await;
    }
}

/// Exchange hellos on `conn` and adopt it as `peer`'s link, or refuse it (closed,
/// logged, counted). The dialing side sends its hello first; the accepting side
/// decides, and answers with its own hello only if it adopts the connection, so a
/// refused dialer never takes the link. Returns the peer's first stream, hello read.
async fn establish(
    shared: &Arc<Shared>,
    peer: NodeId,
    conn: &Connection,
    dialed: bool,
) -> Option<quinn::RecvStream> {
    let remote = conn.remote_address();
    let handshake = async {
        if dialed {
            send_hello(shared, conn).await?;
        }
        receive_hello(shared, peer, conn).await
    };
    let (theirs, first) = match timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(received)) => received,
        Ok(Err(reason)) => {
            if let Some(suppressed) = shared.admit(&format!("handshake {peer} {reason}")) {
                tracing::warn!(node = %shared.id, %peer, %remote, suppressed, "peer link refused: {reason}");
            }
            conn.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"handshake failed");
            return None;
        }
        Err(_) => {
            if let Some(suppressed) = shared.admit(&format!("handshake {peer} timeout")) {
                tracing::warn!(node = %shared.id, %peer, %remote, suppressed, "peer link refused: no hello within {HANDSHAKE_TIMEOUT:?}");
            }
            conn.close(VarInt::from_u32(CLOSE_MALFORMED), b"no hello");
            return None;
        }
    };
    adopt(shared, peer, conn, theirs, !dialed)
        .await
        .then_some(first)
}

/// Send this node's hello on a stream of its own.
async fn send_hello(shared: &Shared, conn: &Connection) -> Result<(), String> {
    let mut stream = conn.open_uni().await.map_err(|e| e.to_string())?;
    stream
        .write_all(&shared.hello.encode())
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.finish();
    Ok(())
}

/// Read the hello of the peer's first stream. The error is the reason, for the log
/// (the connection is closed as needed).
async fn receive_hello(
    shared: &Shared,
    peer: NodeId,
    conn: &Connection,
) -> Result<(Hello, quinn::RecvStream), String> {
    let mut recv = conn
        .accept_uni()
        .await
        .map_err(|e| closed_by_peer(shared, peer, &e))?;
    match hello::read(&mut recv, shared.wire_version).await {
        Ok(theirs) => Ok((theirs, recv)),
        Err(HelloError::Io(e)) => Err(format!("the stream ended inside its hello: {e}")),
        Err(e @ HelloError::NotMeridian) => {
            bump(&shared.stats.malformed_frames);
            conn.close(VarInt::from_u32(CLOSE_MALFORMED), b"no hello");
            Err(e.to_string())
        }
        Err(e @ HelloError::Version { .. }) => {
            bump(&shared.stats.version_refused);
            let reason = format!(
                "wire version mismatch: this node speaks {}",
                shared.wire_version
            );
            conn.close(VarInt::from_u32(CLOSE_VERSION), reason.as_bytes());
            Err(e.to_string())
        }
    }
}

/// Why the peer closed a connection, for the log; counts a version refusal.
fn closed_by_peer(shared: &Shared, peer: NodeId, e: &ConnectionError) -> String {
    match e {
        ConnectionError::ApplicationClosed(close) => {
            let reason = String::from_utf8_lossy(&close.reason);
            match u32::try_from(close.error_code.into_inner()) {
                Ok(CLOSE_VERSION) => {
                    bump(&shared.stats.version_refused);
                    format!(
                        "peer {peer} refused this node's wire version {}: {reason}",
                        shared.wire_version
                    )
                }
                Ok(CLOSE_DUPLICATE) => {
                    format!("peer {peer} refused this node as a duplicate: {reason}")
                }
                Ok(CLOSE_NOT_A_PEER) => {
                    format!("peer {peer} refused this node's certificate: {reason}")
                }
                _ => format!("peer {peer} closed the connection: {reason}"),
            }
        }
        other => other.to_string(),
    }
}

/// Make `conn` (whose peer said `theirs`) the link to `peer`, unless another instance
/// of `peer` holds a link that still answers; `answer` sends this node's hello before
/// the writer may use the connection. Returns whether it was adopted.
async fn adopt(
    shared: &Shared,
    peer: NodeId,
    conn: &Connection,
    theirs: Hello,
    answer: bool,
) -> bool {
    let Some(link) = shared.link(peer) else {
        return false;
    };
    let remote = conn.remote_address();
    let mut established = link.established.lock().await;
    if let Some(held) = established.as_ref() {
        let other = held.hello.instance != theirs.instance;
        if other && held.conn.close_reason().is_none() {
            if probe(&held.conn).await {
                bump(&shared.stats.duplicate_refused);
                let reason = format!(
                    "node {peer} is connected as instance {:016x} (started {} ms) from {}; \
                     a second process with its id and certificate, instance {:016x} \
                     (started {} ms) from {remote}, is refused",
                    held.hello.instance,
                    held.hello.started_ms,
                    held.conn.remote_address(),
                    theirs.instance,
                    theirs.started_ms,
                );
                if let Some(suppressed) = shared.admit(&format!("duplicate {peer} {remote}")) {
                    tracing::warn!(node = %shared.id, %peer, %remote, suppressed, "refused a duplicate node id: {reason}");
                }
                conn.close(VarInt::from_u32(CLOSE_DUPLICATE), reason.as_bytes());
                return false;
            }
            tracing::info!(node = %shared.id, %peer, old = %held.conn.remote_address(), %remote, "the established instance of the peer does not answer; a new instance takes the link");
            held.conn.close(
                VarInt::from_u32(CLOSE_SUPERSEDED),
                b"a newer instance of this node took over",
            );
        }
    }
    if answer {
        if let Err(e) = send_hello(shared, conn).await {
            tracing::debug!(node = %shared.id, %peer, %remote, error = %e, "the connection failed during its handshake");
            return false;
        }
    }
    let was_connected = live(&link.current.borrow()).is_some();
    *established = Some(Established {
        hello: theirs,
        conn: conn.clone(),
    });
    link.current.send_replace(Some(conn.clone()));
    if !was_connected {
        link.times.up_ms.store(unix_ms(), Ordering::Relaxed);
    }
    drop(established);
    bump(&shared.stats.peer_connections);
    if was_connected {
        tracing::debug!(node = %shared.id, %peer, %remote, "another connection to the peer; the writer moves to it");
    } else {
        tracing::info!(node = %shared.id, %peer, %remote, instance = %format!("{:016x}", theirs.instance), "peer connected");
    }
    true
}

/// Whether `conn`'s peer answers a ping in time.
async fn probe(conn: &Connection) -> bool {
    let wait = (PROBE_MIN + conn.rtt() * 4).min(PROBE_MAX);
    let ping = async {
        let (mut send, mut recv) = conn.open_bi().await.ok()?;
        send.write_all(&PING).await.ok()?;
        let _ = send.finish();
        let mut reply = [0u8; 8];
        recv.read_exact(&mut reply).await.ok()?;
        (reply == PONG).then_some(())
    };
    matches!(timeout(wait, ping).await, Ok(Some(())))
}

async fn answer_probe(mut send: quinn::SendStream, mut recv: quinn::RecvStream) {
    let mut ping = [0u8; 8];
    let read = timeout(HANDSHAKE_TIMEOUT, recv.read_exact(&mut ping)).await;
    if matches!(read, Ok(Ok(()))) && ping == PING && send.write_all(&PONG).await.is_ok() {
        let _ = send.finish();
    }
}

/// Read `conn`'s streams until it closes: `first` (hello read) and every later uni
/// stream carry frames; bidirectional streams carry probes.
async fn read_streams(
    shared: Arc<Shared>,
    peer: NodeId,
    conn: Connection,
    first: quinn::RecvStream,
) {
    tokio::spawn(read_frames(shared.clone(), peer, conn.clone(), first));
    let error = loop {
        tokio::select! {
            uni = conn.accept_uni() => match uni {
                Ok(recv) => {
                    tokio::spawn(read_peer_stream(shared.clone(), peer, conn.clone(), recv));
                }
                Err(e) => break e,
            },
            bi = conn.accept_bi() => match bi {
                Ok((send, recv)) => {
                    tokio::spawn(answer_probe(send, recv));
                }
                Err(e) => break e,
            },
        }
    };
    let was_current = shared.link(peer).is_some_and(|link| {
        link.current
            .borrow()
            .as_ref()
            .is_some_and(|c| c.stable_id() == conn.stable_id())
    });
    let reason = closed_by_peer(&shared, peer, &error);
    if was_current {
        if let Some(link) = shared.link(peer) {
            link.times.down_ms.store(unix_ms(), Ordering::Relaxed);
        }
        tracing::info!(node = %shared.id, %peer, %reason, "peer disconnected");
    } else {
        tracing::debug!(node = %shared.id, %peer, %reason, "a superseded peer connection closed");
    }
}

async fn read_peer_stream(
    shared: Arc<Shared>,
    peer: NodeId,
    conn: Connection,
    mut recv: quinn::RecvStream,
) {
    match hello::read(&mut recv, shared.wire_version).await {
        Ok(_) => read_frames(shared, peer, conn, recv).await,
        Err(HelloError::Io(e)) => {
            tracing::debug!(%peer, error = %e, "peer stream ended inside its hello");
        }
        Err(e @ HelloError::NotMeridian) => {
            bump(&shared.stats.malformed_frames);
            tracing::warn!(node = %shared.id, %peer, error = %e, "closing the connection");
            conn.close(VarInt::from_u32(CLOSE_MALFORMED), b"no hello");
        }
        Err(e @ HelloError::Version { .. }) => {
            bump(&shared.stats.version_refused);
            tracing::error!(node = %shared.id, %peer, error = %e, "refusing a peer of another wire version");
            let reason = format!(
                "wire version mismatch: this node speaks {}",
                shared.wire_version
            );
            conn.close(VarInt::from_u32(CLOSE_VERSION), reason.as_bytes());
        }
    }
}

async fn read_frames(
    shared: Arc<Shared>,
    peer: NodeId,
    conn: Connection,
    mut recv: quinn::RecvStream,
) {
    loop {
        match frame::read::<PeerFrame, _>(&mut recv, shared.max_frame_bytes).await {
            Ok(Some(frame)) => {
                bump(&shared.stats.frames_received);
                if let Some(link) = shared.link(peer) {
                    link.times.heard_ms.store(unix_ms(), Ordering::Relaxed);
                }
                let inbound = Inbound::Peer { from: peer, frame };
                if !shared.hand_in(inbound).await {
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

/// Dial `peer` whenever it has no live link, backing off (with jitter) while dials fail
/// or links die young.
pub(crate) async fn dialer(
    shared: Arc<Shared>,
    endpoint: Endpoint,
    config: quinn::ClientConfig,
    peer: NodeId,
    addr: SocketAddr,
) {
    let Some(link) = shared.link(peer) else {
        return;
    };
    let mut current = link.current.subscribe();
    let server_name = tls::node_server_name(peer);
    let mut rng = ChaCha8Rng::seed_from_u64(shared.hello.instance ^ u64::from(peer.0));
    let mut jittered = |pause: Duration| pause.mul_f64(rng.gen_range(0.5..=1.0));
    let higher = shared.id > peer;
    let mut backoff = BACKOFF_MIN;
    let mut pause = higher.then_some(HIGHER_ID_DELAY);
    loop {
        let held = live(&current.borrow_and_update());
        if let Some(conn) = held {
            let up = Instant::now();
            tokio::select! {
                _ = conn.closed() => {}
                changed = current.changed() => if changed.is_err() { return },
            }
            if up.elapsed() >= STABLE {
                backoff = BACKOFF_MIN;
            }
            let delay = if higher {
                HIGHER_ID_DELAY
            } else {
                Duration::ZERO
            };
            pause = Some(delay + jittered(backoff));
            continue;
        }
        if let Some(wait) = pause.take() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                changed = current.changed() => if changed.is_err() { return },
            }
            continue; // the peer may have dialed meanwhile
        }
        let failure = match endpoint.connect_with(config.clone(), addr, &server_name) {
            Ok(connecting) => match connecting.await {
                Ok(conn) => match establish(&shared, peer, &conn, true).await {
                    Some(first) => {
                        tokio::spawn(read_streams(shared.clone(), peer, conn, first));
                        None
                    }
                    None => Some(None), // logged by establish
                },
                Err(e) => Some(Some(e.to_string())),
            },
            Err(e) => Some(Some(e.to_string())),
        };
        if let Some(reason) = failure {
            bump(&shared.stats.dial_failures);
            if let Some(reason) = reason {
                if let Some(suppressed) = shared.admit(&format!("dial {peer} {reason}")) {
                    tracing::warn!(node = %shared.id, %peer, %addr, suppressed, "cannot connect to peer: {reason}");
                }
            }
            pause = Some(jittered(backoff));
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }
}

/// Send `peer`'s queued frames on a stream of its current live connection.
pub(crate) async fn writer(
    shared: Arc<Shared>,
    peer: NodeId,
    mut queue: mpsc::Receiver<PeerFrame>,
) {
    let Some(link) = shared.link(peer) else {
        return;
    };
    let mut current = link.current.subscribe();
    'connection: loop {
        let conn = loop {
            if let Some(conn) = live(&current.borrow_and_update()) {
                break conn;
            }
            if current.changed().await.is_err() {
                return;
            }
        };
        let opened = match conn.open_uni().await {
            Ok(mut send) => {
                let written = send.write_all(&shared.hello.encode()).await;
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
