//! Client library: requests to a replica over QUIC with mutual TLS.
//!
//! ```text
//!  Client::put(keyspace, key, value, consistency)
//!     └─▶ ClientRequest{id = (client, seq), context = last context seen for key}
//!         ──bidi stream: TaggedRequest (protocol 4) or ClientFrame (3)──▶ replica
//!         ◀── TaggedReply / ReplyFrame ──▶ caller
//!                                          └─ Dynamo: keep the reply's causal context
//! ```
//!
//! One connection per client. With replicas that speak client protocol 4 every request
//! of the client goes on one stream, tagged, and answers come back in the order they
//! complete ([`tagged`]); with older replicas (protocol 3), one stream per request.
//! Either way requests run concurrently.
//! For Dynamo keyspaces the client remembers the causal context of the latest reply per
//! key and sends it with the next request on that key: SESSION reads then see the
//! client's own writes, and a write supersedes exactly the versions the client has seen.
//! A request that gets no reply within the timeout is returned as
//! [`RequestError::Timeout`]: its outcome is unknown, never a failure.

use crate::admin::{self, AdminDecodeError, AdminError, AdminRequest, AdminResponse};
use crate::tls::{self, TlsError, TlsIdentity, ALPN_CLIENT, ALPN_CLIENT_V4, CLUSTER_SERVER_NAME};
use crate::transport::endpoint::{bind_endpoint, quic_transport_config};
use crate::transport::frame::{self, FrameError, DEFAULT_MAX_FRAME_BYTES};
use crate::transport::wan::WanConfig;
use crate::wire::{Answer, ClientFrame, ReplyFrame, RequestFrame};
use meridian_engine::{
    ClientId, ClientReply, ClientRequest, Command, Consistency, Key, Level, RequestError,
    RequestId, Response, Value,
};
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tagged::{CallError, TaggedStream};

mod tagged;

/// What can go wrong talking to a replica (besides the request's own outcome, which is
/// in the [`ClientReply`]).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Certificates could not be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The local socket could not be bound.
    #[error("binding a local socket: {0}")]
    Bind(std::io::Error),
    /// The connection could not be opened.
    #[error("connecting to {addr}: {message}")]
    Connect {
        /// The replica.
        addr: SocketAddr,
        /// Why.
        message: String,
    },
    /// The connection or stream failed mid-request: the outcome is unknown.
    #[error("connection to {addr} failed: {message}")]
    Connection {
        /// The replica.
        addr: SocketAddr,
        /// Why.
        message: String,
    },
    /// The replica's admin answer could not be read (it speaks another admin version).
    #[error("admin answer from {addr}: {source}")]
    Admin {
        /// The replica.
        addr: SocketAddr,
        /// Why.
        source: AdminDecodeError,
    },
    /// The replica's answer could not be decoded: the outcome is unknown.
    #[error("bad reply from {addr}: {source}")]
    Frame {
        /// The replica.
        addr: SocketAddr,
        /// The decoding error.
        source: FrameError,
    },
}

/// Client settings.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// How long to wait for a reply (default 5 s).
    pub timeout: Duration,
    /// The client's id (default: random). Ids must be unique in a cluster.
    pub client_id: Option<ClientId>,
    /// The name the replica's certificate must carry (default `meridian`, in every
    /// node certificate).
    pub server_name: String,
    /// WAN emulation on the client's outgoing datagrams (benchmarks).
    pub wan: Option<WanConfig>,
    /// Largest reply accepted (default 16 MiB).
    pub max_frame_bytes: usize,
    /// Speak client protocol 3, a stream per request, even with a replica that speaks
    /// protocol 4 (default false; tests and comparisons).
    pub stream_per_request: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            client_id: None,
            server_name: CLUSTER_SERVER_NAME.to_owned(),
            wan: None,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            stream_per_request: false,
        }
    }
}

/// A fresh client id that grows with the time it was made: milliseconds since the Unix
/// epoch in the high 44 bits, 20 random bits below. Replicas rely on the order: a request
/// from an unknown client at or below the highest id whose exactly-once session expired
/// belongs to an expired session (docs/design.md#sessions), so a new client must take an
/// id above every older one.
fn random_client_id() -> ClientId {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.write_u128(since.as_nanos());
    let millis = u64::try_from(since.as_millis()).unwrap_or(u64::MAX);
    ClientId((millis << 20) | (hasher.finish() & 0xF_FFFF))
}

/// A client session with one replica.
pub struct Client {
    addr: SocketAddr,
    endpoint: quinn::Endpoint,
    config: quinn::ClientConfig,
    link: tokio::sync::Mutex<Link>,
    id: ClientId,
    next_seq: AtomicU64,
    /// Latest Dynamo causal context per (keyspace, key).
    contexts: Mutex<HashMap<(String, Key), Vec<u8>>>,
    options: ClientOptions,
}

impl Client {
    /// Connect to the replica at `addr` with default options.
    pub async fn connect(addr: SocketAddr, tls: &TlsIdentity) -> Result<Self, ClientError> {
        Self::connect_with(addr, tls, ClientOptions::default()).await
    }

    /// Connect to the replica at `addr`.
    pub async fn connect_with(
        addr: SocketAddr,
        tls: &TlsIdentity,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        let offered: &[&[u8]] = if options.stream_per_request {
            &[ALPN_CLIENT]
        } else {
            &[ALPN_CLIENT_V4, ALPN_CLIENT]
        };
        let mut config = quinn::ClientConfig::new(tls.quic_client_offering(offered)?);
        config.transport_config(quic_transport_config());
        let local = if addr.is_ipv4() {
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
        } else {
            SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
        };
        let socket = std::net::UdpSocket::bind(local).map_err(ClientError::Bind)?;
        let (endpoint, _) =
            bind_endpoint(socket, None, options.wan.clone()).map_err(ClientError::Bind)?;
        // The timeout covers the handshake too: a dead address fails within it.
        let connection = tokio::time::timeout(
            options.timeout,
            dial(&endpoint, &config, addr, &options.server_name),
        )
        .await
        .map_err(|_| ClientError::Connect {
            addr,
            message: format!("no answer within {:?}", options.timeout),
        })??;
        Ok(Self {
            addr,
            endpoint,
            config,
            link: tokio::sync::Mutex::new(Link::new(connection)),
            id: options.client_id.unwrap_or_else(random_client_id),
            next_seq: AtomicU64::new(1),
            contexts: Mutex::new(HashMap::new()),
            options,
        })
    }

    /// This client's id.
    pub fn id(&self) -> ClientId {
        self.id
    }

    /// The replica this client talks to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Read `key`. `consistency: None` uses the keyspace's default.
    pub async fn get(
        &self,
        keyspace: &str,
        key: &[u8],
        consistency: Option<Consistency>,
    ) -> Result<ClientReply, ClientError> {
        let command = Command::Get { key: key.to_vec() };
        self.execute(keyspace, command, consistency).await
    }

    /// Write `value` to `key`.
    pub async fn put(
        &self,
        keyspace: &str,
        key: &[u8],
        value: &[u8],
        consistency: Option<Consistency>,
    ) -> Result<ClientReply, ClientError> {
        let command = Command::Put {
            key: key.to_vec(),
            value: value.to_vec(),
        };
        self.execute(keyspace, command, consistency).await
    }

    /// Delete `key`.
    pub async fn delete(
        &self,
        keyspace: &str,
        key: &[u8],
        consistency: Option<Consistency>,
    ) -> Result<ClientReply, ClientError> {
        let command = Command::Delete { key: key.to_vec() };
        self.execute(keyspace, command, consistency).await
    }

    /// Set `key` to `new` if it holds `expected` (`None` = absent). Consensus keyspaces
    /// only.
    pub async fn cas(
        &self,
        keyspace: &str,
        key: &[u8],
        expected: Option<Value>,
        new: &[u8],
        consistency: Option<Consistency>,
    ) -> Result<ClientReply, ClientError> {
        let command = Command::Cas {
            key: key.to_vec(),
            expected,
            new: new.to_vec(),
        };
        self.execute(keyspace, command, consistency).await
    }

    /// Run `command` with a fresh request id and the key's remembered context.
    pub async fn execute(
        &self,
        keyspace: &str,
        command: Command,
        consistency: Option<Consistency>,
    ) -> Result<ClientReply, ClientError> {
        Ok(self
            .execute_noted(keyspace, command, consistency)
            .await?
            .reply)
    }

    /// [`execute`](Self::execute), keeping the replica's note of when the request
    /// committed (the bench tells commit latency from execution latency with it).
    pub async fn execute_noted(
        &self,
        keyspace: &str,
        command: Command,
        consistency: Option<Consistency>,
    ) -> Result<ReplyFrame, ClientError> {
        let id = RequestId {
            client: self.id,
            seq: self.next_seq.fetch_add(1, Ordering::Relaxed),
        };
        let mut request = ClientRequest::new(id, command);
        request.context = self
            .context(keyspace, request.command.key())
            .unwrap_or_default();
        if let Some(consistency) = consistency {
            request.consistency = consistency;
        }
        self.send_noted(keyspace, request, consistency.is_none())
            .await
    }

    /// Send a prepared request (retries reuse its id). With `default_consistency` the
    /// replica applies the keyspace's configured consistency.
    pub async fn send(
        &self,
        keyspace: &str,
        request: ClientRequest,
        default_consistency: bool,
    ) -> Result<ClientReply, ClientError> {
        Ok(self
            .send_noted(keyspace, request, default_consistency)
            .await?
            .reply)
    }

    /// [`send`](Self::send), keeping the replica's commit note.
    pub async fn send_noted(
        &self,
        keyspace: &str,
        request: ClientRequest,
        default_consistency: bool,
    ) -> Result<ReplyFrame, ClientError> {
        let key = request.command.key().clone();
        let id = request.id;
        let frame = RequestFrame {
            keyspace: keyspace.to_owned(),
            request,
            default_consistency,
        };
        let answer = match tokio::time::timeout(self.options.timeout, self.round_trip(frame)).await
        {
            Ok(answer) => answer?,
            Err(_) => ReplyFrame::from(ClientReply {
                id,
                outcome: Err(RequestError::Timeout),
            }),
        };
        if let Ok(Response::Versioned(versioned)) = &answer.reply.outcome {
            if !versioned.context.is_empty() {
                self.contexts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert((keyspace.to_owned(), key), versioned.context.clone());
            }
        }
        Ok(answer)
    }

    /// Wait until `keyspace` serves requests through this replica: a read at the
    /// keyspace's default consistency succeeds and, for a Dynamo keyspace, so does a read
    /// at ALL (every owner connected). Start-up needs it: a write issued before peers
    /// are connected can fail yet land later, and its retry would be a second version.
    pub async fn wait_serving(&self, keyspace: &str, timeout: Duration) -> Result<(), String> {
        const PROBE: &[u8] = b"\0meridian-ready";
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = String::from("no attempt");
        while tokio::time::Instant::now() < deadline {
            let outcome = match self.get(keyspace, PROBE, None).await {
                Ok(ClientReply {
                    outcome: Ok(Response::Versioned(_)),
                    ..
                }) => self
                    .get(keyspace, PROBE, Some(Consistency::Dynamo(Level::All)))
                    .await
                    .map(|reply| reply.outcome.map(|_| ())),
                Ok(reply) => Ok(reply.outcome.map(|_| ())),
                Err(e) => Err(e),
            };
            match outcome {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => last = e.to_string(),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "keyspace {keyspace} at {} did not serve within {timeout:?}: {last}",
            self.addr
        ))
    }

    /// The causal context this client holds for `key` (Dynamo keyspaces).
    pub fn context(&self, keyspace: &str, key: &[u8]) -> Option<Vec<u8>> {
        self.contexts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(keyspace.to_owned(), key.to_vec()))
            .cloned()
    }

    /// Use `context` (from an earlier reply) for the next request on `key`; an empty
    /// context makes the next write blind.
    pub fn set_context(&self, keyspace: &str, key: &[u8], context: Vec<u8>) {
        let mut contexts = self.contexts.lock().unwrap_or_else(|e| e.into_inner());
        let entry = (keyspace.to_owned(), key.to_vec());
        if context.is_empty() {
            contexts.remove(&entry);
        } else {
            contexts.insert(entry, context);
        }
    }

    /// Forget every remembered context (start a new session).
    pub fn forget_contexts(&self) {
        self.contexts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Ask the replica an operator question ([`crate::admin`]). The outer error is the
    /// connection's (or an answer this client cannot read); the inner one the replica's.
    pub async fn admin(
        &self,
        request: &AdminRequest,
    ) -> Result<Result<AdminResponse, AdminError>, ClientError> {
        let frame = admin::encode_request(request).map_err(|e| ClientError::Connection {
            addr: self.addr,
            message: format!("encoding the admin request: {e}"),
        })?;
        let asked = self.ask(ClientFrame::Admin(frame));
        let answer = tokio::time::timeout(self.options.timeout, asked)
            .await
            .map_err(|_| ClientError::Connection {
                addr: self.addr,
                message: format!("no answer within {:?}", self.options.timeout),
            })??;
        let Answer::Admin(reply) = answer else {
            return Err(self.broken("a request's reply to an admin request"));
        };
        admin::decode_reply(&reply).map_err(|source| ClientError::Admin {
            addr: self.addr,
            source,
        })
    }

    async fn round_trip(&self, frame: RequestFrame) -> Result<ReplyFrame, ClientError> {
        let id = frame.request.id;
        let Answer::Reply(answer) = self.ask(ClientFrame::Request(frame)).await? else {
            return Err(self.broken("an admin answer to a request"));
        };
        if answer.reply.id == id {
            Ok(answer)
        } else {
            Err(self.broken(format!(
                "reply for {} on the stream of {id}",
                answer.reply.id
            )))
        }
    }

    /// Send `frame` and wait for its answer (a reply or an admin reply; never `Dropped`,
    /// which is an error): on the connection's tagged stream, or on a stream of its own
    /// with a replica that speaks protocol 3.
    async fn ask(&self, frame: ClientFrame) -> Result<Answer, ClientError> {
        let (connection, stream) = self.live_link().await?;
        let Some(stream) = stream else {
            // Protocol 3: the frame's kind says which reply comes back.
            return match frame {
                ClientFrame::Request(_) => {
                    self.exchange(&connection, &frame).await.map(Answer::Reply)
                }
                ClientFrame::Admin(_) => {
                    self.exchange(&connection, &frame).await.map(Answer::Admin)
                }
            };
        };
        match stream.call(frame).await {
            Ok(Answer::Dropped) => {
                Err(self.broken("the replica let the request go without a reply"))
            }
            Ok(answer) => Ok(answer),
            Err(CallError::Encode(e)) => Err(self.broken(e)),
            Err(CallError::Broken(e)) => Err(self.broken(e)),
            Err(CallError::Decode(source)) => Err(ClientError::Frame {
                addr: self.addr,
                source,
            }),
        }
    }

    fn broken(&self, why: impl std::fmt::Display) -> ClientError {
        ClientError::Connection {
            addr: self.addr,
            message: why.to_string(),
        }
    }

    /// Send `frame` on a new stream and read one `T` back (client protocol 3).
    async fn exchange<T: serde::de::DeserializeOwned>(
        &self,
        connection: &quinn::Connection,
        frame: &ClientFrame,
    ) -> Result<T, ClientError> {
        let (mut send, mut recv) = connection.open_bi().await.map_err(|e| self.broken(e))?;
        frame::write(&mut send, frame, self.options.max_frame_bytes)
            .await
            .map_err(|e| self.broken(e))?;
        send.finish().map_err(|e| self.broken(e))?;
        match frame::read_sole::<T>(&mut recv, self.options.max_frame_bytes).await {
            Ok(Some(reply)) => Ok(reply),
            Ok(None) => Err(self.broken("the replica closed the stream without a reply")),
            Err(FrameError::Io(e)) => Err(self.broken(e)),
            Err(source) => Err(ClientError::Frame {
                addr: self.addr,
                source,
            }),
        }
    }

    /// The current connection, re-dialed if it closed, and its tagged stream (protocol
    /// 4), reopened if it failed.
    async fn live_link(
        &self,
    ) -> Result<(quinn::Connection, Option<Arc<TaggedStream>>), ClientError> {
        let mut link = self.link.lock().await;
        if link.connection.close_reason().is_some() {
            let connection = dial(
                &self.endpoint,
                &self.config,
                self.addr,
                &self.options.server_name,
            )
            .await?;
            *link = Link::new(connection);
        }
        if link.tagged && link.stream.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = TaggedStream::open(&link.connection, self.options.max_frame_bytes)
                .await
                .map_err(|e| self.broken(e))?;
            link.stream = Some(Arc::new(stream));
        }
        Ok((link.connection.clone(), link.stream.clone()))
    }

    /// Close the connection politely.
    pub async fn close(&self) {
        self.link.lock().await.connection.close(0u32.into(), b"bye");
        self.endpoint.wait_idle().await;
    }
}

/// A connection and, if it speaks client protocol 4, the stream its requests share.
struct Link {
    connection: quinn::Connection,
    tagged: bool,
    stream: Option<Arc<TaggedStream>>,
}

impl Link {
    fn new(connection: quinn::Connection) -> Self {
        Self {
            tagged: tls::negotiated_alpn(&connection).as_deref() == Some(ALPN_CLIENT_V4),
            connection,
            stream: None,
        }
    }
}

async fn dial(
    endpoint: &quinn::Endpoint,
    config: &quinn::ClientConfig,
    addr: SocketAddr,
    server_name: &str,
) -> Result<quinn::Connection, ClientError> {
    let connect_error = |message: String| ClientError::Connect { addr, message };
    endpoint
        .connect_with(config.clone(), addr, server_name)
        .map_err(|e| connect_error(e.to_string()))?
        .await
        .map_err(|e| connect_error(e.to_string()))
}
