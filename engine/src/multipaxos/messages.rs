//! Multi-Paxos messages and durable records.

use crate::command::Command;
use crate::configuration::{Configuration, ProposedChange};
use crate::id::{NodeId, RequestId};
use crate::session::SessionTable;
use crate::state_machine::KvStore;
use crate::time::Time;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// Log position.
pub type Slot = u64;

/// A leadership term: ordered by round, then node (so two candidates never share one).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Ballot {
    /// Increases with every election.
    pub round: u64,
    /// The candidate that owns it.
    pub node: NodeId,
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b{}.{}", self.round, self.node.0)
    }
}

/// A client command and the replica holding the client's connection (which answers it).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Proposal {
    /// The client request.
    pub request: RequestId,
    /// Replica that received it from the client.
    pub origin: NodeId,
    /// What to execute.
    pub command: Command,
    /// A membership change instead of a command (docs/design.md#membership): when set,
    /// `command` is not executed, the change is applied to the configuration, and it
    /// governs the slots after this one. A change always has a slot of its own.
    pub change: Option<ProposedChange>,
}

impl Proposal {
    /// A client command.
    pub fn command(request: RequestId, origin: NodeId, command: Command) -> Self {
        Self {
            request,
            origin,
            command,
            change: None,
        }
    }

    /// A membership change; its `command` is an inert placeholder (an empty-prefix
    /// count, never executed).
    pub fn change(request: RequestId, origin: NodeId, change: ProposedChange) -> Self {
        Self {
            request,
            origin,
            command: Command::Count { prefix: Vec::new() },
            change: Some(change),
        }
    }

    /// Whether this proposal is a membership change.
    pub fn is_change(&self) -> bool {
        self.change.is_some()
    }
}

/// What a slot holds: a batch of proposals (empty = no-op filling a gap). Immutable and
/// shared, so the leader's Accept to each follower, its Commit and each log's copy are
/// one allocation; encoded as a plain sequence.
pub type Batch = Arc<[Proposal]>;

/// An accepted value as reported in a promise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedEntry {
    /// Position.
    pub slot: Slot,
    /// Ballot it was accepted in.
    pub ballot: Ballot,
    /// The value.
    pub value: Batch,
    /// Whether the sender knows it is chosen.
    pub committed: bool,
}

/// Peer messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Phase 1a: promise not to accept lower ballots; report what you accepted from
    /// `from_slot` on.
    Prepare {
        /// The candidate's ballot.
        ballot: Ballot,
        /// First slot the candidate does not know to be committed.
        from_slot: Slot,
    },
    /// Phase 1b.
    Promise {
        /// The ballot promised.
        ballot: Ballot,
        /// Accepted entries at or after the prepare's `from_slot`.
        accepted: Vec<AcceptedEntry>,
        /// How long (microseconds, on the promiser's clock) a lease the promiser granted
        /// may still be held: the candidate waits it out, stretched by the drift bound,
        /// before it leads (docs/design.md#leases).
        lease_remaining_us: u64,
        /// The promiser's own fence: the ballot it rejoined with after losing its disk
        /// (`Ballot::default()` if never). A candidate counts a promise only from the
        /// promiser's latest incarnation (docs/design.md#rejoin-rule).
        fence: Ballot,
        /// The fences of other replicas the promiser knows of.
        fences: Vec<(NodeId, Ballot)>,
    },
    /// Phase 2a.
    Accept {
        /// Leader's ballot.
        ballot: Ballot,
        /// Position.
        slot: Slot,
        /// Value.
        value: Batch,
    },
    /// Phase 2b.
    Accepted {
        /// Ballot accepted.
        ballot: Ballot,
        /// Position.
        slot: Slot,
    },
    /// A prepare or accept was refused: the sender promised a higher ballot.
    Nack {
        /// The higher ballot.
        promised: Ballot,
    },
    /// The value of `slot` is chosen.
    Commit {
        /// Position.
        slot: Slot,
        /// Chosen value.
        value: Batch,
    },
    /// Leader liveness, with its commit point (every slot below is chosen); also a lease
    /// and read-index round: the receiver grants a lease and answers
    /// [`Message::HeartbeatAck`].
    Heartbeat {
        /// Leader's ballot.
        ballot: Ballot,
        /// First slot not known committed by the leader.
        commit_point: Slot,
        /// The leader's round number, echoed by the ack.
        round: u64,
        /// A freshness proof for bounded-staleness reads, if the leader has one for the
        /// receiver: `(index, at)` says every write completed before the receiver's own
        /// time `at` lies below slot `index` (docs/design.md#bounded-staleness).
        fresh: Option<(Slot, Time)>,
    },
    /// A follower grants the leader of `ballot` a lease for `round` (and confirms it has
    /// promised nothing higher).
    HeartbeatAck {
        /// The leader's ballot.
        ballot: Ballot,
        /// The round acknowledged.
        round: u64,
        /// The acknowledger's clock when it acknowledged.
        at: Time,
        /// The acknowledger's executed frontier (how far a learner has caught up: a
        /// learner is promoted only once it is close behind the leader).
        executed: Slot,
    },
    /// A replica serving a follower read asks the leader for its read index.
    ReadIndexRequest {
        /// The client request waiting for it.
        request: RequestId,
    },
    /// The leader's read index for a follower read: every write completed before the
    /// request arrived lies below `index`.
    ReadIndexReply {
        /// The client request.
        request: RequestId,
        /// Slots below are enough.
        index: Slot,
        /// Answered from the leader's lease (no heartbeat round).
        leased: bool,
    },
    /// A quorum-lease holder asks for grants under `ballot` (docs/design.md#quorum-leases).
    LeaseRequest {
        /// The ballot the holder follows.
        ballot: Ballot,
        /// The holder's round.
        round: u64,
    },
    /// A grant for a quorum-lease round.
    LeaseGrant {
        /// The ballot granted under.
        ballot: Ballot,
        /// The holder's round.
        round: u64,
        /// From the leader of `ballot` only: its next free slot (the holder serves once it
        /// executed every slot below; later slots need its vote to commit).
        log_end: Option<Slot>,
    },
    /// The leader of `ballot` is stopping (a graceful shutdown): stand for election now
    /// instead of after the failure detector's timeout.
    TakeOver {
        /// The retiring leader's ballot.
        ballot: Ballot,
    },
    /// A follower is missing committed slots from `from_slot` on.
    CatchUpRequest {
        /// First slot the follower has not executed.
        from_slot: Slot,
    },
    /// Committed slots for a lagging follower.
    CatchUp {
        /// `(slot, value)` pairs, increasing.
        entries: Vec<(Slot, Batch)>,
    },
    /// A non-leader passes a client's proposal to the leader.
    Forward {
        /// The proposal.
        proposal: Proposal,
        /// Forwarding hops so far (bounded to avoid loops during elections).
        hops: u8,
    },
    /// The sender compacted every slot below `floor` into a snapshot: what the receiver
    /// asked for (a phase 1 or a catch-up from below it) is only there. The receiver
    /// fetches the snapshot (state transfer) and asks again.
    Compacted {
        /// The sender's first slot still held one by one.
        floor: Slot,
    },
    /// State transfer: send the chunk at `offset` of your snapshot taken at `at` (`at ==
    /// 0`: of a snapshot of your current state).
    SnapshotRequest {
        /// The snapshot's executed frontier, or 0 for a new one.
        at: Slot,
        /// Byte offset of the chunk wanted.
        offset: u64,
    },
    /// State transfer: one chunk of an encoded [`Snapshot`].
    SnapshotChunk {
        /// The snapshot's executed frontier.
        at: Slot,
        /// Where the chunk starts.
        offset: u64,
        /// The whole encoding's length.
        total: u64,
        /// The chunk.
        bytes: Vec<u8>,
    },
    /// Phase 1a from a replica that lost its disk: promise `ballot` and remember that the
    /// sender's votes from before it are void (docs/design.md#rejoin-rule).
    RejoinPrepare {
        /// The rejoining replica's ballot, above every ballot its phase-1 quorum promised.
        ballot: Ballot,
        /// First slot the rejoining replica does not hold.
        from_slot: Slot,
    },
    /// The leader refused a membership change forwarded to it (e.g. promoting a learner
    /// that has not caught up): the origin answers its operator with `reason`.
    ChangeRefused {
        /// The operator's request.
        request: RequestId,
        /// Why, for the operator.
        reason: String,
    },
    /// Self-addressed after a sync: this replica's own promise is durable.
    OwnPromiseDurable {
        /// The ballot.
        ballot: Ballot,
    },
}

impl Message {
    /// Whether the message is a vote counted toward a quorum (a promise, an accept, a
    /// heartbeat or lease acknowledgement): counted only from a voter of the
    /// configuration (docs/design.md#membership).
    pub fn is_vote(&self) -> bool {
        matches!(
            self,
            Self::Promise { .. }
                | Self::Accepted { .. }
                | Self::HeartbeatAck { .. }
                | Self::LeaseGrant { .. }
        )
    }
}

/// The replicated state at an executed frontier: the state machine and the session table
/// after every slot below `executed`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Every slot below is applied.
    pub executed: Slot,
    /// The key-value map.
    pub kv: KvStore,
    /// The exactly-once table.
    pub sessions: SessionTable,
    /// The configuration that governs the slots from `executed` on.
    pub configuration: Configuration,
}

/// What an acceptor must not forget across a crash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// Promised not to accept ballots below this one.
    Promised(Ballot),
    /// Accepted `value` for `slot` in `ballot`.
    Accepted {
        /// Position.
        slot: Slot,
        /// Ballot.
        ballot: Ballot,
        /// Value.
        value: Batch,
    },
    /// The state as of a compaction or a state transfer: slots below its frontier are
    /// only here (docs/design.md#multi-paxos-compaction).
    Snapshot(Box<Snapshot>),
    /// `node` lost its disk and rejoined with `ballot`: its promises and votes from
    /// before are void.
    Fence {
        /// The replica.
        node: NodeId,
        /// Its rejoin ballot.
        ballot: Ballot,
    },
    /// This replica lost its disk and has not finished rejoining: a restart resumes the
    /// rejoin instead of voting.
    Rejoining,
}
