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
    /// The client may have sent this request before (a retry of the same id). A client
    /// sends a request id once with `false`; every later send of it must say `true`:
    /// EPaxos and Tempo never run a resend whose original their key no longer remembers,
    /// they answer it `SessionExpired` (docs/design.md#sessions).
    pub resend: bool,
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
            resend: false,
        }
    }

    /// The same request marked as a resend (a retry of its id).
    pub fn resent(mut self) -> Self {
        self.resend = true;
        self
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
    /// Multi-Paxos: a linearizable read served without the log from a lease: the leader's
    /// lease, or a quorum lease the contacted replica holds; without one it falls back to
    /// a read index (the receipt says which served it). Writes are ordered as usual.
    Lease,
    /// Multi-Paxos: a linearizable read that costs the leader one round of heartbeats
    /// (its read index) instead of a log write. Writes are ordered as usual.
    ReadIndex,
    /// Multi-Paxos: a linearizable read served by the contacted replica once it has
    /// applied the read index it asked the leader for. Writes are ordered as usual.
    Follower,
    /// Multi-Paxos: a read served by the contacted replica if it can prove its state was
    /// up to date at most `bound_us` microseconds ago; refused
    /// ([`RequestError::TooStale`]) otherwise. Writes are ordered as usual.
    Stale {
        /// The staleness bound in microseconds.
        bound_us: u64,
    },
    /// Dynamo keyspaces: wait for this many acknowledgements.
    Dynamo(Level),
}

impl Consistency {
    /// Whether a read at this level promises linearizability.
    pub fn is_linearizable_read(&self) -> bool {
        matches!(
            self,
            Self::Linearizable | Self::Lease | Self::ReadIndex | Self::Follower
        )
    }

    /// The read levels consensus keyspaces take besides `linearizable` and `local`.
    pub const READ_LEVELS: &'static str =
        "linearizable, local, lease, read-index, follower or stale:<duration> (e.g. stale:5s, stale:200ms)";
}

impl fmt::Display for Consistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Linearizable => f.write_str("linearizable"),
            Self::LocalRead => f.write_str("local"),
            Self::Lease => f.write_str("lease"),
            Self::ReadIndex => f.write_str("read-index"),
            Self::Follower => f.write_str("follower"),
            Self::Stale { bound_us } => {
                if bound_us % 1_000_000 == 0 {
                    write!(f, "stale:{}s", bound_us / 1_000_000)
                } else if bound_us % 1_000 == 0 {
                    write!(f, "stale:{}ms", bound_us / 1_000)
                } else {
                    write!(f, "stale:{bound_us}us")
                }
            }
            Self::Dynamo(level) => write!(f, "{level}"),
        }
    }
}

/// Parses a consensus read level: `linearizable`, `local`, `lease`, `read-index`,
/// `follower`, `stale:DUR` (DUR = a number with `us`, `ms`, `s` or `m`). Dynamo levels
/// are parsed by [`Level`].
impl std::str::FromStr for Consistency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        Ok(match lower.as_str() {
            "linearizable" => Self::Linearizable,
            "local" | "local_read" | "localread" => Self::LocalRead,
            "lease" => Self::Lease,
            "read-index" | "read_index" | "readindex" => Self::ReadIndex,
            "follower" => Self::Follower,
            other => match other.strip_prefix("stale:") {
                Some(duration) => Self::Stale {
                    bound_us: parse_duration_us(duration)?,
                },
                None => {
                    return Err(format!(
                        "unknown read level {s:?}: expected {}",
                        Self::READ_LEVELS
                    ))
                }
            },
        })
    }
}

/// `5s`, `200ms`, `750us`, `2m` as microseconds (a positive bound).
fn parse_duration_us(text: &str) -> Result<u64, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("staleness bound {text:?} needs a unit (us, ms, s or m)"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("staleness bound {text:?} is not a number with a unit"))?;
    let scale = match unit {
        "us" => 1,
        "ms" => 1_000,
        "s" => 1_000_000,
        "m" => 60_000_000,
        _ => {
            return Err(format!(
                "staleness bound {text:?}: unit must be us, ms, s or m"
            ))
        }
    };
    match number.checked_mul(scale) {
        Some(0) => Err("a staleness bound must be positive".to_owned()),
        Some(us) => Ok(us),
        None => Err(format!("staleness bound {text:?} is too large")),
    }
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
    /// Consensus keyspaces: a read served outside the log, with the mechanism that served
    /// it (reads through the log answer [`Response::Kv`]).
    Read {
        /// The value read (a [`CommandResult::Value`]).
        result: CommandResult,
        /// How the read was served.
        receipt: ReadReceipt,
    },
}

impl Response {
    /// The state machine's result, for consensus keyspaces (logged or not).
    pub fn kv(&self) -> Option<&CommandResult> {
        match self {
            Self::Kv(result) | Self::Read { result, .. } => Some(result),
            Self::Versioned(_) => None,
        }
    }
}

/// Which mechanism served a consensus read outside the log.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReadReceipt {
    /// The contacted replica's applied state, no promise.
    Local,
    /// The leader, under its lease (no message sent).
    LeaderLease,
    /// The contacted replica, under a quorum lease it holds.
    QuorumLease,
    /// The leader, after one heartbeat round confirmed its leadership.
    ReadIndex,
    /// The contacted replica, after applying the read index `index` the leader gave it.
    Follower {
        /// The leader asked.
        leader: NodeId,
        /// The read index it answered.
        index: u64,
        /// Whether the leader answered from its lease (no heartbeat round).
        leased: bool,
    },
    /// The contacted replica's state, proven up to date `age_us` microseconds ago (on its
    /// clock) within the bound asked for.
    Stale {
        /// How old the state was proven to be at most.
        age_us: u64,
    },
}

impl fmt::Display for ReadReceipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local => f.write_str("local state (no promise)"),
            Self::LeaderLease => f.write_str("leader lease"),
            Self::QuorumLease => f.write_str("quorum lease"),
            Self::ReadIndex => f.write_str("read index (one heartbeat round)"),
            Self::Follower {
                leader,
                index,
                leased,
            } => write!(
                f,
                "follower read at index {index} from leader {leader}{}",
                if *leased { " (leased)" } else { "" }
            ),
            Self::Stale { age_us } => {
                write!(f, "stale read, state at most {}ms old", age_us / 1_000)
            }
        }
    }
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
    /// A bounded-staleness read the contacted replica cannot serve: it cannot prove its
    /// state was up to date within the bound (it read nothing).
    #[error(
        "too stale: this replica cannot prove its state is at most {}ms old ({detail}); \
         retry at another replica or a stronger level", bound_us / 1_000
    )]
    TooStale {
        /// The bound asked for, in microseconds.
        bound_us: u64,
        /// What the replica knows.
        detail: String,
    },
}

impl RequestError {
    /// Why a keyspace of `protocol` (EPaxos, Tempo), which orders only commands that
    /// share a key, refuses a linearizable range read (docs/design.md#range-reads).
    pub fn range_read_unordered(protocol: &str) -> Self {
        Self::Invalid(format!(
            "scan and keys are linearizable only on Multi-Paxos keyspaces: {protocol} orders \
             commands only against commands on the same key, so a range read would not be \
             ordered against writes to the keys under its prefix; use a Multi-Paxos keyspace, \
             or --consistency local for a possibly stale range read of this replica"
        ))
    }

    /// Whether the command certainly did not take effect. A timed-out request may still
    /// apply, and so may a write that reached fewer replicas than its level needed: both are
    /// *unknown* outcomes in a history, never failures.
    pub fn is_definite(&self) -> bool {
        matches!(
            self,
            Self::Invalid(_) | Self::Rejected(_) | Self::TooStale { .. }
        )
    }
}
