//! Tempo's wire messages and durable records, and the values they carry.

pub use super::dots::Dot;
use super::dots::DotSet;
use super::epochs::Epochs;
use super::fence::Fence;
use crate::command::{Command, Key};
use crate::configuration::ProposedChange;
use crate::id::{NodeId, RequestId};
use crate::session::KeySessions;
use crate::state_machine::KvStore;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A consensus ballot for one command: round first, then the node that owns it. Round 0
/// is "none"; round 1 is the coordinator's slow path; recoveries take rounds from 2.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Ballot {
    /// Round.
    pub round: u32,
    /// Owner.
    pub node: NodeId,
}

impl Ballot {
    /// No ballot yet.
    pub const ZERO: Self = Self {
        round: 0,
        node: NodeId(0),
    };

    /// Whether any ballot was taken.
    pub fn is_set(self) -> bool {
        self.round > 0
    }
}

/// What a command is: the client's request, the configuration epoch it was started in
/// and the fast quorum its coordinator chose there.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Payload {
    /// The client's request id (sessions), or the operator's for a switch.
    pub request: RequestId,
    /// The client may have sent it before (`ClientRequest::resend`; sessions).
    pub resend: bool,
    /// The command (a switch's is a read of [`SWITCH_LANE`]).
    pub command: Command,
    /// The coordinator's fast quorum (the coordinator included), voters of
    /// `config_epoch`.
    pub quorum: Vec<NodeId>,
    /// The configuration epoch the command was started in: its quorums are that epoch's,
    /// and it runs only if its timestamp falls in that epoch's range
    /// (docs/design.md#tempo-epochs-the-rule-and-why-it-is-safe).
    pub config_epoch: u64,
    /// A membership switch: executing it (in its epoch's range) makes the next
    /// configuration.
    pub change: Option<ProposedChange>,
}

/// The key switches are ordered on: a lane of their own, which no client command may use
/// (Tempo refuses the empty key).
pub const SWITCH_LANE: &[u8] = b"";

impl Payload {
    /// The key the command touches.
    pub fn key(&self) -> &Key {
        self.command.key()
    }

    /// The switch that applies `change`, proposed for the operator's `request` to the
    /// fast quorum `quorum`.
    pub fn switch(request: RequestId, change: ProposedChange, quorum: Vec<NodeId>) -> Self {
        Self {
            request,
            resend: false,
            command: Command::Get {
                key: SWITCH_LANE.to_vec(),
            },
            quorum,
            config_epoch: change.from_epoch,
            change: Some(change),
        }
    }
}

/// A replica's promises on one key: every timestamp up to `clock` is promised; those in
/// `attached` are attached to the command the replica proposed them for, the rest are
/// detached. A receiver counts the promises up to a timestamp only if every attached one
/// up to it is for a command it knows committed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyPromise {
    /// The key.
    pub key: Key,
    /// The replica's clock on the key.
    pub clock: u64,
    /// Its proposals on the key not yet executed everywhere, by timestamp; with `since`,
    /// only those above it.
    pub attached: Vec<(u64, Dot)>,
    /// `Some(c)`: `attached` leaves out every proposal at or below `c`, the clock of the
    /// announcer's last announcement of the key to every member (a `ProposeAck`, sent
    /// per command, lists only what is new since); a receiver takes it only on top of an
    /// announcement of the same lineage with a clock of at least `c`.
    pub since: Option<u64>,
    /// The announcer's lineage (of one epoch): while it stays the same, every proposal the announcer
    /// attaches is above the clock it announced before, so a receiver checks only those
    /// above the clock it already holds (docs/design.md#tempo, "Announcements";
    /// `clocks.rs`).
    pub lineage: u64,
    /// The announcer's epoch (docs/design.md#tempo-rejoin-rule): a replica that
    /// rejoined after a lost disk ignores nothing, its peers ignore what its former
    /// selves announced once they fenced it.
    pub epoch: u64,
}

/// A replica's promise on every key up to its floor: its clock on every key is at least
/// `floor`, and `attached` lists each of its proposals at or below `floor`, on any key,
/// not yet executed everywhere. A switch runs only once a majority of the closing
/// epoch's voters promised this up to its timestamp, so the range it closes is stable on
/// every key, idle ones included, whoever leaves later
/// (docs/design.md#tempo-epochs-the-rule-and-why-it-is-safe, rule 4). Self-contained, so
/// any replica may relay it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FloorPromise {
    /// The replica that promised.
    pub node: NodeId,
    /// Its floor.
    pub floor: u64,
    /// Its proposals at or below the floor not yet executed everywhere, by timestamp.
    pub attached: Vec<(u64, Dot)>,
    /// What it collected (see [`Message::Promises`]): the promise counts only at a
    /// replica that executed all of it.
    pub collected: Vec<(NodeId, u64)>,
    /// Its epoch (`fence.rs`): a former self's promise is ignored once fenced.
    pub epoch: u64,
}

/// A replica's answer to a recovery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RecReport {
    /// Its proposal for the command.
    pub proposal: u64,
    /// Whether it made the proposal for a recovery (it never answered the coordinator's
    /// proposal, so the fast path cannot have been taken).
    pub in_recovery: bool,
    /// The ballot it last accepted a timestamp in (`ZERO`: none).
    pub accepted: Ballot,
    /// The timestamp accepted in it.
    pub accepted_ts: u64,
}

/// Peer-to-peer messages.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Message {
    /// Coordinator → everyone: the command and the coordinator's proposal; fast-quorum
    /// members propose, the others only keep the payload.
    Propose {
        /// The command.
        dot: Dot,
        /// What it is.
        payload: Payload,
        /// The coordinator's proposal.
        ts: u64,
    },
    /// Fast-quorum member → coordinator: its (durable) proposal and its promises on the
    /// key and on the switch lane.
    ProposeAck {
        /// The command.
        dot: Dot,
        /// The member's proposal.
        ts: u64,
        /// The member's promises on the command's key.
        promise: KeyPromise,
        /// The member's promises on the switch lane (a put or delete is answered before
        /// it runs only once no switch can end its epoch below it).
        lane: KeyPromise,
        /// What the member collected (see [`Message::Promises`]).
        collected: Vec<(NodeId, u64)>,
    },
    /// Slow path or recovery: accept `ts` for the command in `ballot`.
    Consensus {
        /// The command.
        dot: Dot,
        /// The ballot.
        ballot: Ballot,
        /// The timestamp.
        ts: u64,
        /// What it is.
        payload: Payload,
    },
    /// Acceptor → proposer: accepted (durably).
    ConsensusAck {
        /// The command.
        dot: Dot,
        /// The ballot accepted.
        ballot: Ballot,
    },
    /// The command's final timestamp.
    Commit {
        /// The command.
        dot: Dot,
        /// What it is.
        payload: Payload,
        /// Its timestamp.
        ts: u64,
    },
    /// Announcement of promises (detached and attached) per key: of the keys whose
    /// clock moved, or of the keys an `AskPromises` named.
    Promises {
        /// Per key (shared by the copies sent to each member).
        keys: Arc<[KeyPromise]>,
        /// The sender's collected commands, as per-coordinator prefixes: its promises
        /// leave them out, so they count only at a replica that executed them all.
        collected: Vec<(NodeId, u64)>,
    },
    /// The sender's commands on these keys have waited a `promise_resend` for promises
    /// it has not heard from the receiver (a lost announcement): announce them again.
    AskPromises {
        /// The keys.
        keys: Vec<Key>,
    },
    /// Floor promises, the sender's own and those it holds of others (relayed): sent
    /// when a switch's commit is durable here, and in answer to `AskFloors`.
    Floors {
        /// The promises.
        promises: Vec<FloorPromise>,
    },
    /// A switch committed at `ts` waits here for floor promises up to it from a majority
    /// of its epoch's voters: send those you have.
    AskFloors {
        /// The switch's timestamp.
        ts: u64,
    },
    /// Recoverer → everyone: take ballot `ballot` for the command.
    Rec {
        /// The command.
        dot: Dot,
        /// The recovery ballot.
        ballot: Ballot,
        /// What it is.
        payload: Payload,
    },
    /// Answer to `Rec`.
    RecAck {
        /// The command.
        dot: Dot,
        /// The ballot promised.
        ballot: Ballot,
        /// What the answerer knows.
        report: RecReport,
    },
    /// Refusal: a higher ballot is promised for the command.
    Nack {
        /// The command.
        dot: Dot,
        /// The ballot promised.
        promised: Ballot,
    },
    /// The sender's own commit of `dot` is durable (a self-send after the sync).
    Durable {
        /// The command.
        dot: Dot,
    },
    /// Garbage collection: per coordinator, the prefix of its commands the sender
    /// executed (durably).
    Executed {
        /// `(coordinator, highest seq with every lower one of its epoch executed)`.
        prefix: Vec<(NodeId, u64)>,
        /// The sender's epoch (a former self's report is ignored once fenced).
        epoch: u64,
        /// The sender's configuration epoch: reports go to its members, so a removed
        /// replica that hears from a configuration newer than its own was added again.
        config_epoch: u64,
    },
    /// A replica that lost its disk asks for a peer's bound on its epochs (phase 1 of
    /// the rejoin rule).
    RejoinQuery {
        /// The attempt.
        nonce: u64,
    },
    /// Answer to `RejoinQuery`: the highest epoch of the asker the peer knows of, and
    /// who must answer the asker (the members of the peer's configuration).
    RejoinBound {
        /// The attempt.
        nonce: u64,
        /// The highest epoch (fenced, or of a command of the asker's it knows).
        epoch: u64,
        /// The peer's configuration epoch.
        config_epoch: u64,
        /// The members of that configuration.
        members: Vec<NodeId>,
    },
    /// Phase 2: fence my former selves (`epoch` is mine from now on) and send me the
    /// chunk at `offset` of your answer `at` (`at == 0`: a new answer).
    RejoinFetch {
        /// The attempt.
        nonce: u64,
        /// The asker's new epoch.
        epoch: u64,
        /// The answer's id.
        at: u64,
        /// Byte offset.
        offset: u64,
    },
    /// A chunk of a [`RejoinState`], sent behind the durable fence.
    RejoinChunk {
        /// The attempt.
        nonce: u64,
        /// The answer's id.
        at: u64,
        /// Byte offset.
        offset: u64,
        /// The answer's encoded length.
        total: u64,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Answer to `Inquire` for commands the sender executed and forgot because every
    /// member of its configuration executed them: the receiver, which has not, was left
    /// behind (removed and added again) and fetches the members' state.
    Collected {
        /// The commands.
        dots: Vec<Dot>,
    },
    /// Catch-up: the sender lacks the commits of `dots`, which the receiver reported
    /// executed (their coordinators' seqs are contiguous, so the sender knows which it
    /// lacks); the receiver answers with a `Commit` for each it knows committed.
    Inquire {
        /// The commands.
        dots: Vec<Dot>,
    },
}

/// What a replica keeps of everything it executed and collected
/// (docs/design.md#tempo-compaction): with the records of its live commands after it,
/// it rebuilds the replica.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Snapshot {
    /// Commands executed here.
    pub executed: DotSet,
    /// The state machine.
    pub kv: KvStore,
    /// The exactly-once table.
    pub sessions: KeySessions,
    /// Commands executed everywhere (forgotten).
    pub collected: DotSet,
    /// The configurations and the timestamp range of each.
    pub epochs: Epochs,
    /// Per key, the clock (every timestamp up to it promised).
    pub clocks: Vec<(Key, u64)>,
    /// Attached promises `(key, timestamp, command)`.
    pub attached: Vec<(Key, u64, Dot)>,
    /// The highest own sequence number used (collected commands leave no record).
    pub last_seq: u64,
    /// Every key's clock is at least this (the clocks of keys forgotten when idle).
    pub floor: u64,
}

/// A peer's answer to a replica that lost its disk, taken once the peer fenced the
/// asker's former selves (docs/design.md#tempo-rejoin-rule).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RejoinState {
    /// The peer's highest own sequence number: the asker's former self voted on none of
    /// its commands above. A peer rejoining itself gives the base of the epoch it
    /// fetches for (it proposed nothing there yet).
    pub last_seq: u64,
    /// Per key, the highest clock the peer has or heard announced (its former self's
    /// included).
    pub clocks: Vec<(Key, u64)>,
    /// Every other key's clock, at most this (the peer's floor and the clocks announced
    /// on keys it forgot).
    pub floor: u64,
    /// Per key, the commands the peer holds that are not executed everywhere: the asker
    /// attaches a promise to each (its former self may have proposed for it).
    pub pending: Vec<(Key, Dot)>,
    /// The peer's executed state, unless the peer lost its own (it rejoins too): the
    /// asker installs the first it gets.
    pub state: Option<PeerState>,
    /// The epochs of rejoined replicas the peer fenced.
    pub starts: Vec<(NodeId, u64)>,
}

/// A peer's executed state, as a rejoining replica installs it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PeerState {
    /// The peer's executed set.
    pub executed: DotSet,
    /// The state machine.
    pub kv: KvStore,
    /// The exactly-once table.
    pub sessions: KeySessions,
    /// The configurations and the timestamp range of each.
    pub epochs: Epochs,
    /// Commands executed everywhere.
    pub collected: DotSet,
}

/// What survives a crash, replayed in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Record {
    /// This replica proposed `ts` for the command (its clock on the key is at least `ts`;
    /// an attached promise).
    Proposed {
        /// The command.
        dot: Dot,
        /// What it is.
        payload: Payload,
        /// The proposal.
        ts: u64,
        /// Made for a recovery.
        in_recovery: bool,
    },
    /// Promised `ballot` for the command.
    Promised {
        /// The command.
        dot: Dot,
        /// The ballot.
        ballot: Ballot,
    },
    /// Accepted `ts` in `ballot`.
    Accepted {
        /// The command.
        dot: Dot,
        /// The ballot.
        ballot: Ballot,
        /// The timestamp.
        ts: u64,
        /// What it is.
        payload: Payload,
    },
    /// The command committed with `ts`.
    Committed {
        /// The command.
        dot: Dot,
        /// What it is.
        payload: Payload,
        /// Its timestamp.
        ts: u64,
    },
    /// Clocks announced (detached promises): each key's clock is at least this.
    Clocks {
        /// `(key, clock)`.
        keys: Vec<(Key, u64)>,
    },
    /// Commands executed here since the last such record.
    Executed {
        /// The commands.
        dots: Vec<Dot>,
    },
    /// Everything executed and collected (the first record of a compacted log).
    Snapshot(Box<Snapshot>),
    /// The rejoin fence (docs/design.md#tempo-rejoin-rule).
    Fence(Box<Fence>),
    /// Clocks of idle keys forgotten: every key's clock is at least this.
    Floor {
        /// The floor.
        clock: u64,
    },
}
