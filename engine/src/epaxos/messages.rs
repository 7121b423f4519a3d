//! EPaxos wire messages and durable records (nothing else: the values they carry are in
//! `instance.rs`).

use super::execution::ExecutedState;
use super::instance::{Attributes, Ballot, Batch, InstanceId, Status};
use super::key_index::KeyIndex;
use crate::id::NodeId;
use serde::{Deserialize, Serialize};

/// What a replica knows of an instance, reported to a recovering replica.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InstanceReport {
    /// Commands.
    pub payload: Batch,
    /// Attributes recorded.
    pub attributes: Attributes,
    /// How far it got here.
    pub status: Status,
    /// Ballot the attributes were recorded in.
    pub accepted_in: Ballot,
}

/// Peer messages.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Message {
    /// Phase 1: the leader's attributes; replicas add what they know.
    PreAccept {
        /// Ballot.
        ballot: Ballot,
        /// Instance.
        instance: InstanceId,
        /// Commands.
        payload: Batch,
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
        /// Commands.
        payload: Batch,
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
    /// Recovery phase 1: promise `ballot` for `instance` and report what you know.
    Prepare {
        /// The recovering replica's ballot.
        ballot: Ballot,
        /// Instance.
        instance: InstanceId,
    },
    /// Reply to Prepare (persisted promise first).
    PrepareOk {
        /// Ballot promised.
        ballot: Ballot,
        /// Instance.
        instance: InstanceId,
        /// What this replica recorded, if anything.
        report: Option<InstanceReport>,
    },
    /// Recovery of a possible fast-path commit: would these attributes conflict with
    /// anything you know? If not, pre-accept them.
    TryPreAccept {
        /// Ballot.
        ballot: Ballot,
        /// Instance.
        instance: InstanceId,
        /// Commands.
        payload: Batch,
        /// Attributes reported by the fast-quorum members seen.
        attributes: Attributes,
    },
    /// TryPreAccept reply: `conflict` names an interfering instance that neither is a
    /// dependency nor depends on the recovered one (and whether it is committed here).
    TryPreAcceptReply {
        /// Ballot replied to.
        ballot: Ballot,
        /// Instance.
        instance: InstanceId,
        /// `None` = pre-accepted; otherwise the conflict and whether it is committed.
        conflict: Option<(InstanceId, bool)>,
    },
    /// Garbage-collection chatter: per command leader, the first slot not executed by the
    /// sender (every slot below is).
    Executed {
        /// `(leader, first unexecuted slot)` pairs.
        prefix: Vec<(NodeId, u64)>,
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
        /// Commands.
        payload: Batch,
        /// Final attributes.
        attributes: Attributes,
    },
}

/// What a replica must not forget across a crash.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Record {
    /// The state as of a compaction (the first record of a compacted log): the instance
    /// and promise records after it complete it (`compaction.rs`).
    Snapshot(Box<Snapshot>),
    /// The latest state of an instance.
    Instance(InstanceRecord),
    /// A promise for an instance this replica has not seen (recovery of another's).
    Promise {
        /// Instance.
        instance: InstanceId,
        /// Ballot promised.
        ballot: Ballot,
    },
}

/// What a replica keeps of everything it executed and collected
/// (docs/design.md#epaxos-compaction).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Snapshot {
    /// The executed set, the state machine and the exactly-once table.
    pub executed: ExecutedState,
    /// Per key, the latest instances not yet executed and collected everywhere: the
    /// dependencies of new commands.
    pub index: KeyIndex,
    /// The slot of this replica's next own instance (its collected instances leave no
    /// record that would say so).
    pub next_slot: u64,
}

/// The latest state of an instance at this replica.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// Instance.
    pub instance: InstanceId,
    /// Commands.
    pub payload: Batch,
    /// Attributes as last pre-accepted, accepted or committed here.
    pub attributes: Attributes,
    /// How far it got.
    pub status: Status,
    /// Ballot those attributes were recorded in.
    pub ballot: Ballot,
    /// Highest ballot promised for the instance (kept apart from `ballot`:
    /// docs/design.md#epaxos, rule 1).
    pub promised: Ballot,
}

impl Message {
    /// The instance a message that would record or decide something about an instance
    /// concerns: such a message about an instance collected here is stale. `None` for
    /// replies, inquiries and executed-prefix reports.
    pub(super) fn recorded_instance(&self) -> Option<InstanceId> {
        match self {
            Message::PreAccept { instance, .. }
            | Message::Accept { instance, .. }
            | Message::Commit { instance, .. }
            | Message::Prepare { instance, .. }
            | Message::TryPreAccept { instance, .. } => Some(*instance),
            _ => None,
        }
    }
}
