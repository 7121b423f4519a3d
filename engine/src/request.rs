//! What clients send and receive, for every protocol.
//!
//! One request/reply shape serves consensus keyspaces (EPaxos, Multi-Paxos) and Dynamo
//! keyspaces, so the server speaks one client wire format and the client library has one
//! API. Protocol-specific parts are optional: consensus keyspaces ignore `context` and
//! `sloppy`, and reply with [`Response::Kv`]; Dynamo keyspaces reply with
//! [`Response::Versioned`].

use crate::command::{Command, CommandResult, Value};
use crate::id::{NodeId, RequestId};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A client's request to one replica.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientRequest {
    /// Unique per client and request; retries of the same command reuse it.
    pub id: RequestId,
    /// What to do.
    pub command: Command,
    /// The guarantee the client asks for.
    pub consistency: Consistency,
    /// Dynamo: the opaque causal context of an earlier read or write (empty if none).
    pub context: Vec<u8>,
    /// Dynamo: allow fallback replicas (sloppy quorum) for this request; `None` = the
    /// keyspace default.
    pub sloppy: Option<bool>,
}

impl ClientRequest {
    /// A request with the default (linearizable) consistency and no context.
    pub fn new(id: RequestId, command: Command) -> Self {
        Self {
            id,
            command,
            consistency: Consistency::Linearizable,
            context: Vec::new(),
            sloppy: None,
        }
    }

    /// The same request at another consistency.
    pub fn with_consistency(mut self, consistency: Consistency) -> Self {
        self.consistency = consistency;
        self
    }
}

/// The guarantee a client asks for, per request.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum Consistency {
    /// Consensus keyspaces: the command is ordered by the protocol (reads included).
    #[default]
    Linearizable,
    /// Consensus keyspaces: reads are answered from the contacted replica's applied state,
    /// which may be stale. Writes are still ordered by the protocol.
    LocalRead,
    /// Dynamo keyspaces: wait for this many acknowledgements.
    Dynamo(Level),
}

/// Dynamo consistency levels: how many of a key's N replicas must answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    /// One replica.
    One,
    /// Two replicas.
    Two,
    /// Three replicas.
    Three,
    /// A majority of all N replicas.
    Quorum,
    /// All N replicas.
    All,
    /// One replica in the coordinator's region.
    LocalOne,
    /// A majority of the replicas in the coordinator's region.
    LocalQuorum,
    /// A majority of the replicas in every region that holds one.
    EachQuorum,
    /// Reads at least as new as the client's causal context (read-your-writes, monotonic
    /// reads); writes behave as `One`.
    Session,
    /// Explicit read and write acknowledgement counts.
    Explicit {
        /// Replicas that must answer a read.
        r: u8,
        /// Replicas that must acknowledge a write.
        w: u8,
    },
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::One => f.write_str("ONE"),
            Self::Two => f.write_str("TWO"),
            Self::Three => f.write_str("THREE"),
            Self::Quorum => f.write_str("QUORUM"),
            Self::All => f.write_str("ALL"),
            Self::LocalOne => f.write_str("LOCAL_ONE"),
            Self::LocalQuorum => f.write_str("LOCAL_QUORUM"),
            Self::EachQuorum => f.write_str("EACH_QUORUM"),
            Self::Session => f.write_str("SESSION"),
            Self::Explicit { r, w } => write!(f, "R={r},W={w}"),
        }
    }
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.to_ascii_uppercase();
        Ok(match upper.as_str() {
            "ONE" => Self::One,
            "TWO" => Self::Two,
            "THREE" => Self::Three,
            "QUORUM" => Self::Quorum,
            "ALL" => Self::All,
            "LOCAL_ONE" => Self::LocalOne,
            "LOCAL_QUORUM" => Self::LocalQuorum,
            "EACH_QUORUM" => Self::EachQuorum,
            "SESSION" => Self::Session,
            other => {
                let parsed = other.strip_prefix("R=").and_then(|rest| {
                    let (r, w) = rest.split_once(",W=")?;
                    Some((r.parse().ok()?, w.parse().ok()?))
                });
                match parsed {
                    Some((r, w)) => Self::Explicit { r, w },
                    None => {
                        return Err(format!(
                            "unknown consistency level {s:?}: expected ONE, TWO, THREE, QUORUM, \
                             ALL, LOCAL_ONE, LOCAL_QUORUM, EACH_QUORUM, SESSION or R=<r>,W=<w>"
                        ))
                    }
                }
            }
        })
    }
}

/// A replica's answer to one request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientReply {
    /// The request answered.
    pub id: RequestId,
    /// What happened.
    pub outcome: Result<Response, RequestError>,
}

/// A successful outcome.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Response {
    /// Consensus keyspaces: the state machine's result.
    Kv(CommandResult),
    /// Dynamo keyspaces: versions and the receipt of what the request achieved.
    Versioned(VersionedResponse),
}

/// A Dynamo read or write result.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VersionedResponse {
    /// Concurrent versions of the key (`None` = a delete). Empty when the key was never
    /// written. A write returns the sibling set it produced on the coordinator.
    pub siblings: Vec<Option<Value>>,
    /// Opaque causal context covering every sibling; pass it to the next write to
    /// supersede exactly these versions.
    pub context: Vec<u8>,
    /// What the request achieved.
    pub receipt: Receipt,
}

/// The consistency receipt every Dynamo response carries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Receipt {
    /// The level the client asked for, as text (e.g. `QUORUM`).
    pub requested: String,
    /// Whether the requested level was met (a reply is only `Ok` if it was).
    pub met: bool,
    /// Replicas whose answer the coordinator counted before replying.
    pub answered: Vec<ReceiptReplica>,
    /// Hints written for unreachable owners.
    pub hints_written: u32,
    /// Read repair outcome for this request.
    pub read_repair: ReadRepair,
}

/// One replica that answered a Dynamo request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReceiptReplica {
    /// The replica.
    pub node: NodeId,
    /// Its region.
    pub region: String,
    /// Whether it is in the key's preference list or stood in for an owner.
    pub fallback: bool,
}

/// Whether a read repaired stale replicas.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReadRepair {
    /// No replica answered with a stale version (or the request was a write).
    #[default]
    NotNeeded,
    /// Stale replicas the read waited on were repaired before the reply.
    Blocking,
    /// Stale replicas are being repaired after the reply.
    Background,
}

/// Why a request failed. A timeout is not a failure of the command: its effect is unknown.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
pub enum RequestError {
    /// Not enough replicas answered to meet the requested level.
    #[error("unavailable: {replied} of {needed} required replicas answered ({detail})")]
    Unavailable {
        /// Replicas that answered.
        replied: u32,
        /// Replicas the level needs.
        needed: u32,
        /// Which part of the level failed.
        detail: String,
    },
    /// The replica could not decide the outcome in time; it may still take effect.
    #[error("timed out; the command may or may not take effect")]
    Timeout,
    /// The request is not valid for this keyspace (e.g. a Dynamo level on a consensus
    /// keyspace, CAS on a Dynamo keyspace).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The replica refused it to protect itself (e.g. sibling limit, queue full).
    #[error("rejected: {0}")]
    Rejected(String),
    /// A retry of a request older than the replica's exactly-once window: the replica no
    /// longer remembers whether (or how) it ran, so it cannot answer it. The command was
    /// ordered at most once; its outcome is unknown to the client.
    #[error(
        "session expired: request {request} is older than this keyspace's exactly-once \
         window; its outcome is unknown (use a new request id)"
    )]
    SessionExpired {
        /// The request.
        request: RequestId,
    },
}

impl RequestError {
    /// Whether the command certainly did not take effect. A timed-out request may still
    /// apply, and so may a write that reached fewer replicas than its level needed: both are
    /// *unknown* outcomes in a history, never failures.
    pub fn is_definite(&self) -> bool {
        matches!(self, Self::Invalid(_) | Self::Rejected(_))
    }
}
