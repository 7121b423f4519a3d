//! Messages on the wire between nodes and between clients and nodes (postcard, inside
//! [`frame`](crate::transport::frame)s).
//!
//! ```text
//!  node ──uni stream──▶ node     PeerFrame* (keyspace + postcard of that keyspace's Message)
//!  client ──bidi stream──▶ node  ClientFrame::Request, then ◀── ClientReply; one stream per request
//!                                ClientFrame::Admin,   then ◀── AdminReplyFrame (crate::admin)
//! ```

use crate::admin::AdminFrame;
use meridian_engine::ClientRequest;
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
