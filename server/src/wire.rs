//! Messages on the wire between nodes and between clients and nodes (postcard, inside
//! [`frame`](crate::transport::frame)s).
//!
//! ```text
//!  node ──uni stream──▶ node     PeerFrame* (keyspace + postcard of that keyspace's Message)
//!  client ──bidi stream──▶ node  TaggedRequest*, answered by ◀── TaggedReply* in the
//!                                order they complete (client protocol 4): a stream
//!                                carries any number of requests
//!  client ──bidi stream──▶ node  ClientFrame::Request, then ◀── ReplyFrame (client protocol 3)
//!                                                     or ◀── ClientReply (client protocol 2)
//!                                one stream per request
//!                                ClientFrame::Admin,   then ◀── AdminReplyFrame (crate::admin)
//! ```
//!
//! Protocol 4 exists for throughput: a QUIC stream per request costs both ends a stream's
//! set-up, flow-control credit and end (docs/design.md#server).

use crate::admin::{AdminFrame, AdminReplyFrame};
use meridian_engine::{ClientReply, ClientRequest, CommitPath};
use serde::{Deserialize, Serialize};

/// One protocol message between two nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerFrame {
    /// The keyspace whose core sent it and whose core receives it.
    pub keyspace: String,
    /// The keyspace protocol's `Message`, postcard-encoded: decoded by that keyspace's
    /// host, so one malformed message is dropped and counted there.
    pub payload: Vec<u8>,
}

/// What a client sends on a request stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// A key-value request, answered by a `ClientReply`.
    Request(RequestFrame),
    /// An operator request ([`crate::admin`]), answered by an
    /// [`AdminReplyFrame`](crate::admin::AdminReplyFrame).
    Admin(AdminFrame),
}

/// A request on a client protocol 4 stream. The tag is the client's own, echoed in the
/// answer; a client keeps tags unique among its requests in flight on the stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaggedRequest {
    /// Names the answer.
    pub tag: u64,
    /// The request.
    pub frame: ClientFrame,
}

/// A replica's answer on a client protocol 4 stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaggedReply {
    /// The tag of the request answered.
    pub tag: u64,
    /// The answer.
    pub answer: Answer,
}

/// What answers a [`TaggedRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// The answer to a [`ClientFrame::Request`].
    Reply(ReplyFrame),
    /// The answer to a [`ClientFrame::Admin`].
    Admin(AdminReplyFrame),
    /// The replica let go of the request without an answer (it is shutting down): the
    /// outcome is unknown.
    Dropped,
}

/// One key-value request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFrame {
    /// The keyspace the request is for.
    pub keyspace: String,
    /// The request.
    pub request: ClientRequest,
    /// Replace `request.consistency` by the keyspace's configured default (the client
    /// did not choose one).
    pub default_consistency: bool,
}

/// A replica's answer to a [`ClientFrame::Request`] (client protocol 3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyFrame {
    /// The outcome.
    pub reply: ClientReply,
    /// How the request committed at this replica, if it did here; `None` for requests
    /// another replica decided (a forwarded Multi-Paxos request) and for protocols
    /// without a commit (Dynamo).
    pub commit: Option<CommitNote>,
}

/// When a replica saw a request commit, relative to its reply: the client learns its
/// commit latency (reply latency minus `before_reply_us`) apart from the wait for
/// execution, as the simulator reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitNote {
    /// Fast path, slow path, the leader's phase 2, or recovery.
    pub path: CommitPath,
    /// Microseconds between the commit (its record synced) and the reply leaving the
    /// core: the wait for execution.
    pub before_reply_us: u64,
}

impl From<ClientReply> for ReplyFrame {
    fn from(reply: ClientReply) -> Self {
        Self {
            reply,
            commit: None,
        }
    }
}
