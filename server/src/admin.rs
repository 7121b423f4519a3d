//! Operator requests on the client wire: what `meridian status` and `meridian member
//! list` ask a replica, and what it answers.
//!
//! ```text
//!  client ──bidi stream: ClientFrame::Admin(AdminFrame{version, body})──▶ replica
//!         ◀──────────── AdminReplyFrame{version, body} ────────────────────┘
//!  body = postcard(AdminRequest)           body = postcard(Result<AdminResponse, AdminError>)
//! ```
//!
//! Two layers, so that each side tells a request (or answer) it does not know from a
//! broken frame: the envelope never changes; the body is decoded on its own. A replica
//! answers a version it does not speak, or a body it cannot decode (a newer client's
//! request), with an [`AdminError`] on the same stream and keeps the connection; a client
//! that cannot decode an answer says which version the replica speaks. New requests and
//! answers are added as new enum variants at the end, under a new [`ADMIN_VERSION`].
//!
//! Who may ask: any client whose certificate the cluster CA signed (mutual TLS), as for
//! key-value requests. `Status` only reads; `MemberAdd` and `MemberRemove` (version 2)
//! change the membership of the keyspaces whose protocol can
//! (docs/design.md#membership).
//!
//! Every value in a [`NodeStatus`] is one the replica tracks; a value it does not track is
//! [`Reported::Omitted`] with the reason, never made up.

use meridian_engine::configuration::Role;
use meridian_engine::NodeId;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// The admin protocol version this build speaks (requests `1..=ADMIN_VERSION`).
pub const ADMIN_VERSION: u32 = 2;

/// An admin request's envelope (inside [`ClientFrame::Admin`](crate::wire::ClientFrame)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminFrame {
    /// The admin protocol version the client speaks.
    pub version: u32,
    /// postcard of an [`AdminRequest`] of that version.
    pub body: Vec<u8>,
}

/// An admin answer's envelope: the reply frame on the request's stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminReplyFrame {
    /// The admin protocol version the replica speaks.
    pub version: u32,
    /// postcard of a `Result<AdminResponse, AdminError>`.
    pub body: Vec<u8>,
}

/// What an operator asks a replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminRequest {
    /// This replica's view of itself, its peers and every keyspace's members.
    Status,
    /// Add node `id` (a learner, promoted to voter once it has caught up) to `keyspace`,
    /// or to every keyspace whose protocol changes membership. (Version 2.)
    MemberAdd {
        /// The new member's id.
        id: NodeId,
        /// Its region.
        region: String,
        /// The address its peers dial.
        address: SocketAddr,
        /// One keyspace, or all.
        keyspace: Option<String>,
        /// How long to wait for the change (the learner's catch-up included).
        timeout_ms: u64,
    },
    /// Remove node `id` from `keyspace`, or from every keyspace whose protocol changes
    /// membership. (Version 2.)
    MemberRemove {
        /// The member's id.
        id: NodeId,
        /// One keyspace, or all.
        keyspace: Option<String>,
        /// How long to wait for the change.
        timeout_ms: u64,
    },
}

/// A replica's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminResponse {
    /// The answer to [`AdminRequest::Status`].
    Status(NodeStatus),
    /// The answer to [`AdminRequest::MemberAdd`] and [`AdminRequest::MemberRemove`]: what
    /// happened in each keyspace, in name order.
    MemberChange(Vec<KeyspaceChange>),
}

/// What a membership change did in one keyspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyspaceChange {
    /// Keyspace name.
    pub keyspace: String,
    /// Protocol name.
    pub protocol: String,
    /// The outcome.
    pub outcome: ChangeReport,
}

/// The outcome of a membership change in one keyspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeReport {
    /// Committed and executed at the replica asked: the configuration's new epoch.
    Changed {
        /// The epoch of the configuration the change made.
        epoch: u64,
    },
    /// Not attempted: the keyspace's protocol does not change membership (the reason).
    Skipped(String),
    /// Attempted and refused or failed: it did not take effect.
    Failed(String),
    /// No outcome in time: it may or may not take effect (`member list` shows which).
    TimedOut(String),
}

/// Why a replica did not carry out an admin request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum AdminError {
    /// The client speaks an admin protocol version the replica does not.
    #[error(
        "admin protocol version {requested} is not served by this replica, which speaks \
         versions 1 to {supported}"
    )]
    UnsupportedVersion {
        /// The client's version.
        requested: u32,
        /// The newest version the replica speaks.
        supported: u32,
    },
    /// The request does not decode as one the replica knows (malformed, or from a newer
    /// client).
    #[error(
        "the replica (admin protocol version {supported}) does not understand the request: \
         {detail}"
    )]
    UnknownRequest {
        /// The newest version the replica speaks.
        supported: u32,
        /// The decoder's message.
        detail: String,
    },
    /// The replica understood the request but could not answer it.
    #[error("the replica could not answer: {0}")]
    Failed(String),
}

/// Why a client could not read a replica's admin answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdminDecodeError {
    /// The body does not decode: the replica speaks another version (or is broken).
    #[error(
        "the replica answered in admin protocol version {replica}, which this client \
         (version {client}) cannot read: {detail}"
    )]
    Unreadable {
        /// The replica's version.
        replica: u32,
        /// This client's version.
        client: u32,
        /// The decoder's message.
        detail: String,
    },
}

/// A value the replica tracks, or why it is left out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reported<T> {
    /// The value.
    Value(T),
    /// Not reported, and why.
    Omitted(String),
}

impl<T> Reported<T> {
    /// The value, if reported.
    pub fn value(&self) -> Option<&T> {
        match self {
            Self::Value(value) => Some(value),
            Self::Omitted(_) => None,
        }
    }

    /// Left out, with `reason`.
    pub fn omitted(reason: impl Into<String>) -> Self {
        Self::Omitted(reason.into())
    }
}

/// One replica's view (the answer to [`AdminRequest::Status`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The replica's id.
    pub node: NodeId,
    /// Its region.
    pub region: String,
    /// The address it listens on (its config's `listen`).
    pub address: SocketAddr,
    /// Its data directory's incarnation.
    pub incarnation: Reported<u64>,
    /// Milliseconds since the process started serving.
    pub uptime_ms: u64,
    /// Whether it is draining (refusing new requests before it stops).
    pub draining: bool,
    /// Every configured peer and its link.
    pub peers: Vec<PeerStatus>,
    /// Every keyspace, in name order.
    pub keyspaces: Vec<KeyspaceStatus>,
}

/// A peer and this replica's link to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// The peer's id.
    pub id: NodeId,
    /// Its region.
    pub region: String,
    /// The address this replica dials.
    pub address: SocketAddr,
    /// Whether a link is up now.
    pub connected: bool,
    /// Milliseconds since the link came up (connected) or went down (not connected).
    pub since_ms: Reported<u64>,
    /// Milliseconds since the last protocol frame from the peer.
    pub last_heard_ms: Reported<u64>,
    /// The link's round-trip time estimate (QUIC), in microseconds.
    pub rtt_us: Reported<u64>,
}

/// Where a keyspace's configuration comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigSource {
    /// The core reports it (it changes membership through its log).
    Core,
    /// The static membership of the node configs: every member a voter, epoch 0.
    Static,
}

impl ConfigSource {
    /// `core` or `static`, as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Core => "core",
            Self::Static => "static",
        }
    }
}

/// How this replica sees a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberState {
    /// The replica answering.
    Local,
    /// The replica answering, recovering lost state from its peers before it votes.
    Rejoining,
    /// A peer with a live link.
    Connected,
    /// A peer without a live link.
    Disconnected,
    /// A member this replica has no peer entry (so no link) for.
    NoLink,
}

impl MemberState {
    /// As printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Rejoining => "rejoining",
            Self::Connected => "connected",
            Self::Disconnected => "disconnected",
            Self::NoLink => "no-link",
        }
    }
}

/// One member of a keyspace's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Its id.
    pub id: NodeId,
    /// Its region.
    pub region: String,
    /// Its address, as this replica knows it.
    pub address: Reported<SocketAddr>,
    /// Voter or learner.
    pub role: Role,
    /// How this replica sees it.
    pub state: MemberState,
}

/// The last compaction of a keyspace's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotStatus {
    /// The log position it covers.
    pub position: Reported<u64>,
    /// Bytes written.
    pub bytes: u64,
    /// Records written.
    pub records: u64,
    /// Seconds since it was written.
    pub age_secs: u64,
}

/// One keyspace as this replica sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyspaceStatus {
    /// Keyspace name.
    pub name: String,
    /// Protocol name.
    pub protocol: String,
    /// The configuration epoch.
    pub epoch: u64,
    /// Where the configuration comes from.
    pub config_source: ConfigSource,
    /// Its members, in id order.
    pub members: Vec<MemberStatus>,
    /// The Multi-Paxos leader this replica knows.
    pub leader: Reported<NodeId>,
    /// The next log position to execute (everything below is executed).
    pub next_to_execute: Reported<u64>,
    /// The newest log position this replica knows of.
    pub newest_known: Reported<u64>,
    /// Committed commands waiting to execute (dependencies or order not yet settled).
    pub waiting_execution: Reported<u64>,
    /// `None` if the keyspace serves through this replica, else why not (what
    /// `GET /health` answers 503 with).
    pub not_serving: Option<String>,
    /// Client requests waiting for replies.
    pub pending_requests: u64,
    /// The log file's size now.
    pub log_bytes: Reported<u64>,
    /// The last compaction.
    pub snapshot: Reported<SnapshotStatus>,
}

/// The envelope of `request`.
pub fn encode_request(request: &AdminRequest) -> Result<AdminFrame, postcard::Error> {
    Ok(AdminFrame {
        version: ADMIN_VERSION,
        body: postcard::to_allocvec(request)?,
    })
}

/// The request inside `frame`, or the error to answer with.
pub fn decode_request(frame: &AdminFrame) -> Result<AdminRequest, AdminError> {
    if frame.version == 0 || frame.version > ADMIN_VERSION {
        return Err(AdminError::UnsupportedVersion {
            requested: frame.version,
            supported: ADMIN_VERSION,
        });
    }
    decode_whole(&frame.body).map_err(|detail| AdminError::UnknownRequest {
        supported: ADMIN_VERSION,
        detail,
    })
}

/// The envelope of an answer. An answer that cannot be encoded becomes
/// [`AdminError::Failed`] saying so.
pub fn encode_reply(outcome: &Result<AdminResponse, AdminError>) -> AdminReplyFrame {
    let body = postcard::to_allocvec(outcome).unwrap_or_else(|e| {
        let failed: Result<AdminResponse, AdminError> =
            Err(AdminError::Failed(format!("encoding the answer: {e}")));
        postcard::to_allocvec(&failed).unwrap_or_default()
    });
    AdminReplyFrame {
        version: ADMIN_VERSION,
        body,
    }
}

/// The answer inside `frame`.
pub fn decode_reply(
    frame: &AdminReplyFrame,
) -> Result<Result<AdminResponse, AdminError>, AdminDecodeError> {
    decode_whole(&frame.body).map_err(|detail| AdminDecodeError::Unreadable {
        replica: frame.version,
        client: ADMIN_VERSION,
        detail,
    })
}

/// `bytes` as one `T` with nothing left over.
fn decode_whole<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(format!("{} bytes left over after the message", rest.len())),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
#[path = "admin_test.rs"]
mod tests;
