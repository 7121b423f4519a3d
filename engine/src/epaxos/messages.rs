//! EPaxos messages and durable records.

use super::instance::{Attributes, InstanceId, Status};
use crate::command::Command;
use crate::id::{NodeId, RequestId};
use serde::{Deserialize, Serialize};

/// A ballot for one instance: `(round, node)`. The command leader starts at
/// `(0, leader)`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Ballot {
    /// Increases with every new owner of the instance.
    pub round: u32,
    /// The replica running the instance at this ballot.
    pub node: NodeId,
}

/// A client command as replicated: which request it answers and what it does.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Payload {
    /// The client request (for exactly-once execution and the reply).
    pub request: RequestId,
    /// What to execute.
    pub command: Command,
}

/// Peer messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Phase 1: the leader's attributes; replicas add what they know.
    PreAccept {
        /// Ballot.
        ballot: Ballot,
        /// Instance.
        instance: InstanceId,
        /// Command.
        payload: Payload,
        /// Leader's attributes.
        attributes: Attributes,
    },
    /// Phase 1 reply with the replica's (possibly extended) attributes.
    PreAcceptOk {
        /// Ballot replied to.
        ballot: Ballot,
        /// Instance.
        instance: InstanceId,
        /// Attributes at this replica.
        attributes: Attributes,
    },
    /// Phase 2 (slow path): accept these attributes.
    Accept {
        /// Ballot.
        ballot: Ballot,
        /// Instance.
        instance: InstanceId,
        /// Command.
        payload: Payload,
        /// Final attributes.
        attributes: Attributes,
    },
    /// Phase 2 reply.
    AcceptOk {
        /// Ballot replied to.
        ballot: Ballot,
        /// Instance.
        instance: InstanceId,
    },
    /// A request was refused because the replica promised a higher ballot.
    Nack {
        /// Instance.
        instance: InstanceId,
        /// The higher ballot.
        promised: Ballot,
    },
    /// A replica waiting on `instance` asks its leader for the outcome.
    Inquire {
        /// Instance.
        instance: InstanceId,
    },
    /// The instance's attributes are final.
    Commit {
        /// Instance.
        instance: InstanceId,
        /// Command.
        payload: Payload,
        /// Final attributes.
        attributes: Attributes,
    },
}

/// What a replica must not forget across a crash: the latest state of an instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Instance.
    pub instance: InstanceId,
    /// Command.
    pub payload: Payload,
    /// Attributes as last pre-accepted, accepted or committed here.
    pub attributes: Attributes,
    /// How far it got.
    pub status: Status,
    /// Ballot those attributes were recorded in.
    pub ballot: Ballot,
}
