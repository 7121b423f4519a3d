//! Dynamo peer messages and durable records.

use crate::command::Key;
use crate::dynamo::dvv::{Object, VersionVector};
use crate::dynamo::ring::RangeId;
use crate::dynamo::ring_state::RingState;
use crate::id::NodeId;
use crate::request::{ClientReply, ClientRequest};
use serde::{Deserialize, Serialize};

/// One coordinated request (or forward) at the node that started it. `boot` is drawn at
/// construction, so a reply to a previous incarnation's operation never matches.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct OpId {
    /// Per-incarnation nonce of the coordinator.
    pub boot: u32,
    /// Per-incarnation sequence.
    pub seq: u64,
}

/// One Merkle exchange, named by the node that started it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct ExchangeId {
    /// The initiator.
    pub initiator: NodeId,
    /// Initiator-local number (an [`OpId`]-style nonce in the high bits).
    pub id: u64,
}

/// Peer messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Failure-detector heartbeat (any message counts as a sign of life).
    Ping,
    /// A write reached a node that does not own its key: the owner coordinates it.
    Forward {
        /// The forwarder's operation (echoed in the reply).
        op: OpId,
        /// The client's request.
        request: ClientRequest,
        /// The region LOCAL_* levels refer to (the forwarder's).
        region: String,
        /// Time left before the forwarder gives up, in µs.
        budget_us: u64,
    },
    /// The owner's answer to a [`Message::Forward`].
    ForwardReply {
        /// The forwarder's operation.
        op: OpId,
        /// The reply for the client.
        reply: ClientReply,
    },
    /// Store this object (the coordinator's whole object for the key). `hint_for` names
    /// the owner a fallback stands in for.
    Store {
        /// Coordinator operation.
        op: OpId,
        /// Key.
        key: Key,
        /// Whole object after the write.
        object: Object,
        /// `Some(owner)` when the receiver is a sloppy-quorum fallback.
        hint_for: Option<NodeId>,
    },
    /// The object (or hint) is durable at the sender.
    Stored {
        /// Coordinator operation.
        op: OpId,
        /// Key.
        key: Key,
        /// As in the `Store`.
        hint_for: Option<NodeId>,
    },
    /// A fallback refused a hint (hint store full).
    Refused {
        /// Coordinator operation.
        op: OpId,
        /// Why.
        reason: String,
    },
    /// Read a key (from the hint store when `hint_for` is set).
    Read {
        /// Coordinator operation.
        op: OpId,
        /// Key.
        key: Key,
        /// `Some(owner)` when the receiver is asked as a fallback.
        hint_for: Option<NodeId>,
    },
    /// A replica's object for a key (`None` = it has nothing).
    ReadReply {
        /// Coordinator operation.
        op: OpId,
        /// Key.
        key: Key,
        /// What it holds.
        object: Option<Object>,
    },
    /// Read repair: merge this newer object.
    Repair {
        /// Coordinator operation.
        op: OpId,
        /// Key.
        key: Key,
        /// The merged object.
        object: Object,
    },
    /// The repair is durable.
    Repaired {
        /// Coordinator operation.
        op: OpId,
        /// Key.
        key: Key,
    },
    /// A fallback hands a hinted object to its owner.
    HintDelivery {
        /// Key.
        key: Key,
        /// The hinted object.
        object: Object,
        /// The fallback's hint sequence (echoed in the ack).
        seq: u64,
    },
    /// The owner stored the hinted object durably.
    HintAck {
        /// Key.
        key: Key,
        /// As delivered.
        seq: u64,
    },
    /// Hints for this range were dropped: exchange it with priority.
    PriorityRange {
        /// The ring epoch `range` belongs to (range ids are per ring).
        ring: u64,
        /// The range.
        range: RangeId,
    },
    /// Merkle exchange: the sender's hashes of these nodes at `level` (0 = root).
    AeCompare {
        /// The ring epoch `range` belongs to (range ids are per ring).
        ring: u64,
        /// Exchange.
        exchange: ExchangeId,
        /// Range compared.
        range: RangeId,
        /// Tree level of `nodes`.
        level: u8,
        /// `(index in level, hash)`.
        nodes: Vec<(u32, u64)>,
    },
    /// Merkle exchange: the sender's objects in the differing leaves.
    AeObjects {
        /// The ring epoch `range` belongs to (range ids are per ring).
        ring: u64,
        /// Exchange.
        exchange: ExchangeId,
        /// Range.
        range: RangeId,
        /// Leaves whose keys are sent.
        leaves: Vec<u32>,
        /// The sender's objects in those leaves.
        objects: Vec<(Key, Object)>,
        /// Whether the receiver should answer with its own objects for those leaves.
        reply: bool,
    },
    /// The range's first owner collected a tombstone: drop yours if it is no newer.
    Forget {
        /// Key.
        key: Key,
        /// Context of the collected tombstone.
        context: VersionVector,
    },
    /// Merkle exchange finished (sent to the initiator when it is not the last receiver).
    AeDone {
        /// The ring epoch `range` belongs to (range ids are per ring).
        ring: u64,
        /// Exchange.
        exchange: ExchangeId,
        /// Range.
        range: RangeId,
    },
    /// The sender's ring state (the heartbeat once the ring has changed).
    Ring {
        /// The state.
        state: RingState,
    },
    /// A joining node asks a member for the keys it will own, after `after`.
    StreamRequest {
        /// The ring epoch of the bootstrap.
        ring: u64,
        /// Resume after this key (`None`: from the start).
        after: Option<Key>,
    },
    /// One page of a bootstrap stream.
    StreamPage {
        /// As requested.
        ring: u64,
        /// As requested.
        after: Option<Key>,
        /// The sender's objects of keys the joining node will own.
        objects: Vec<(Key, Object)>,
        /// Ask again after this key; `None`: the stream is complete.
        next: Option<Key>,
    },
    /// A stream page is durable (sent by a node to itself).
    StreamSynced {
        /// The ring epoch of the bootstrap.
        ring: u64,
        /// The member that sent the page.
        source: NodeId,
        /// The page's `after`.
        after: Option<Key>,
        /// The page's `next`.
        next: Option<Key>,
    },
    /// A key the sender holds but does not own after the move, for one of its owners.
    Handoff {
        /// Key.
        key: Key,
        /// The sender's object.
        object: Object,
    },
    /// The handed-off object (of this digest) is durable at the sender.
    HandoffAck {
        /// Key.
        key: Key,
        /// Digest of the object handed off.
        digest: u64,
    },
}

/// What a Dynamo node makes durable; replayed in order at restart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// The epoch of a boot (written at every start). Kept only to derive the next one.
    Epoch {
        /// Random per boot.
        epoch: u64,
    },
    /// The key's whole local object (the latest record of a key wins).
    Object {
        /// Key.
        key: Key,
        /// Object.
        object: Object,
    },
    /// A tombstone was garbage-collected.
    ObjectRemoved {
        /// Key.
        key: Key,
    },
    /// A hinted object kept for `owner` (the latest record of `(owner, key)` wins).
    Hint {
        /// Hint-store sequence of this version of the hint.
        seq: u64,
        /// Intended owner.
        owner: NodeId,
        /// Key.
        key: Key,
        /// Merged hinted object.
        object: Object,
    },
    /// The hint was delivered (or dropped).
    HintRemoved {
        /// Intended owner.
        owner: NodeId,
        /// Key.
        key: Key,
        /// Sequence removed (a newer version of the hint stays).
        seq: u64,
    },
    /// The ring state this node adopted (the latest record wins).
    Ring {
        /// The state.
        state: RingState,
    },
}
