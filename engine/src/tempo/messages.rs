//! Tempo's wire messages and durable records, and the values they carry.

use crate::command::{Command, Key};
use crate::id::{NodeId, RequestId};
use serde::{Deserialize, Serialize};

/// A command's identity: its coordinator and the coordinator's sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// The replica that coordinates it (received it from a client).
    pub node: NodeId,
    /// The coordinator's sequence number, from 1.
    pub seq: u64,
}

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

/// What a command is: the client's request and the fast quorum its coordinator chose.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Payload {
    /// The client's request id (sessions).
    pub request: RequestId,
    /// The client may have sent it before (`ClientRequest::resend`; sessions).
    pub resend: bool,
    /// The command.
    pub command: Command,
    /// The coordinator's fast quorum (the coordinator included).
    pub quorum: Vec<NodeId>,
}

impl Payload {
    /// The key the command touches.
    pub fn key(&self) -> &Key {
        self.command.key()
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
    /// Its proposals on the key not yet executed everywhere, by timestamp.
    pub attached: Vec<(u64, Dot)>,
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
    /// key.
    ProposeAck {
        /// The command.
        dot: Dot,
        /// The member's proposal.
        ts: u64,
        /// The member's promises on the command's key.
        promise: KeyPromise,
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
    /// Periodic announcement of promises (detached and attached) per key.
    Promises {
        /// Per key.
        keys: Vec<KeyPromise>,
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
        /// `(coordinator, highest seq with every lower one executed)`.
        prefix: Vec<(NodeId, u64)>,
    },
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
}
