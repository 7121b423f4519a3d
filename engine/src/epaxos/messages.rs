//! EPaxos wire messages and durable records (nothing else: the values they carry are in
//! `instance.rs`).

use super::execution::ExecutedState;
use super::fence::Fence;
use super::instance::{Attributes, Ballot, Batch, InstanceId, Status};
use super::key_index::{KeyIndex, RanEverywhere};
use crate::id::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

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
    /// The attributes are the command leader's initial-ballot ones: pre-accepted from it
    /// unchanged, or set by a recovery's TryPreAccept (docs/design.md#epaxos, rule 2).
    pub witness: bool,
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
        /// What the leader knows ran on every replica: the acceptor leaves it out of
        /// its attributes as the leader did (`KeyIndex::attributes_for`). Shared by every
        /// PreAccept sent until it changes (a map per peer per instance was cloned).
        ran_everywhere: Arc<RanEverywhere>,
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
    /// A PreAccept was refused because the replica executed the switch that ends the
    /// instance's epoch: it computes no new attributes for it (docs/design.md, "EPaxos
    /// epochs", rule 3).
    EpochMoved {
        /// Instance.
        instance: InstanceId,
        /// The epoch the replica is in.
        epoch: u64,
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
        /// The last membership switch the sender executed that applied (in this
        /// incarnation): a replica that does not know it asks for it, so one that missed
        /// a switch's commit catches up even when no prefix ever names the switch (it
        /// executed above a gap in its leader's slots) and no PreAccept of the new epoch
        /// comes (docs/design.md, "EPaxos epochs", rule 3).
        last_switch: Option<InstanceId>,
    },
    /// A replica waiting on `instance` asks its leader for the outcome.
    Inquire {
        /// Instance.
        instance: InstanceId,
    },
    /// Answer to an [`Inquire`](Message::Inquire) for an instance the sender forgot
    /// because every member executed it: the asker fell behind its peers' collection (it
    /// was removed and stopped reporting, then added again) and needs their state.
    Collected {
        /// Instance.
        instance: InstanceId,
    },
    /// Rejoin (docs/design.md#epaxos-rejoin-rule): a replica that lost its disk asks for
    /// the chunk at `offset` of the sender's answer ([`RejoinState`]) encoded as `at`
    /// (`at == 0`: encode a new answer now).
    RejoinQuery {
        /// Names this rejoin attempt (drawn from the core's seed): an answer encoded
        /// for another attempt is never served to it.
        nonce: u64,
        /// Encoding asked for (0: a new one).
        at: u64,
        /// Byte offset.
        offset: u64,
    },
    /// One chunk of an encoded [`RejoinState`].
    RejoinChunk {
        /// The attempt it answers.
        nonce: u64,
        /// Encoding.
        at: u64,
        /// Byte offset.
        offset: u64,
        /// Encoded size.
        total: u64,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// A rejoining replica's own instances start at `start`: record it durably.
    RejoinStart {
        /// First own slot of the rejoined replica.
        start: u64,
    },
    /// `start` is durable here.
    RejoinStarted {
        /// The start recorded.
        start: u64,
    },
    /// A rejoined replica holds no bound on the receiver's instances (it became a member
    /// after the rejoin): it asks for the receiver's next own slot.
    AskNextSlot {
        /// The asker's attempt (answers to an earlier boot's asks are dropped).
        nonce: u64,
        /// The asker's own start: names its rejoin, so every ask of one rejoin is told
        /// the same slot (`vote_bounds.rs`).
        start: u64,
    },
    /// The sender's next own slot: every instance of it a replica voted on lies below.
    NextSlot {
        /// The ask it answers.
        nonce: u64,
        /// The slot.
        slot: u64,
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
    /// The rejoin fence and the starts of peers that rejoined (the last one wins).
    Fence(Box<Fence>),
    /// A promise for an instance this replica has not seen (recovery of another's).
    Promise {
        /// Instance.
        instance: InstanceId,
        /// Ballot promised.
        ballot: Ballot,
    },
    /// The next own slot told to a rejoined peer asking for a vote bound, for its
    /// rejoin's start: told again to every later ask for that start (`vote_bounds.rs`).
    /// Last, so that logs written before it decode unchanged.
    BoundTold {
        /// The peer that asked.
        asker: NodeId,
        /// Its own start when it asked.
        start: u64,
        /// The slot told.
        slot: u64,
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
    pub index: Arc<KeyIndex>,
    /// The slot of this replica's next own instance (its collected instances leave no
    /// record that would say so).
    pub next_slot: u64,
}

/// A peer's answer to a replica that lost its disk (docs/design.md#epaxos-rejoin-rule),
/// taken when the peer handles the first query: its own next slot (every instance of
/// its that the asker's former self could have voted on lies below), a bound on the asker's own
/// slots, and its state (for the asker to execute from).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RejoinState {
    /// The slot of the peer's next own instance.
    pub next_slot: u64,
    /// Above every slot of the asker's own instances the peer knows of (in its table,
    /// executed, or a start the asker announced after an earlier rejoin).
    pub own_bound: u64,
    /// Whether the asker may have led instances this peer has not seen: it is a voter of
    /// a configuration the peer knows, a switch the peer holds promotes it, or the peer
    /// knows instances of its. Without it (a spare that was never a voter) the asker's
    /// start needs no margin and leaves no gap to recover.
    pub may_have_led: bool,
    /// Starts of replicas that rejoined, as the peer recorded them.
    pub starts: BTreeMap<NodeId, u64>,
    /// The executed set, the state machine and the exactly-once table.
    pub executed: ExecutedState,
    /// The peer's key index (every instance it knows, by key).
    pub index: KeyIndex,
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
    /// See [`InstanceReport::witness`].
    pub witness: bool,
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

    /// The instance a message asks this replica to vote on (PreAccept, Accept, promise,
    /// TryPreAccept): a replica rejoining after a lost disk withholds some votes.
    pub(super) fn vote_asked(&self) -> Option<InstanceId> {
        match self {
            Message::PreAccept { instance, .. }
            | Message::Accept { instance, .. }
            | Message::Prepare { instance, .. }
            | Message::TryPreAccept { instance, .. } => Some(*instance),
            _ => None,
        }
    }
}
