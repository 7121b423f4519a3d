//! What an acceptor must not forget, and how a replica is rebuilt from it.
//!
//! Two facts survive a crash, kept apart:
//! - the highest ballot promised ([`Record::Promised`]): a promise is a vow not to accept
//!   lower ballots, and it is durable before the Promise (or anything sent under that
//!   ballot) leaves;
//! - per slot, the ballot and value last accepted ([`Record::Accepted`]): durable before
//!   the Accepted vote leaves, including the leader's own vote (a self-send released after
//!   the sync).
//!
//! Accepting in ballot `b` implies having promised `b`, so replay raises the promise to
//! every accepted ballot. Commit knowledge is not persisted: it is re-learnt from the
//! leader (catch-up), because only the acceptor facts are needed for safety.
//!
//! A compaction replaces the log with `Promised`, the fences known, a
//! [`Record::Snapshot`] of the state at the executed frontier, and `Accepted` for every
//! slot above it (docs/design.md#multi-paxos-compaction): restart is the snapshot plus
//! that tail plus whatever was appended after. Slots below the snapshot's frontier are
//! executed, so later `Accepted` records for them are skipped.
//!
//! A replica that lost its disk writes [`Record::Rejoining`] first; until its own
//! [`Record::Fence`] follows, a restart resumes the rejoin (docs/design.md#rejoin-rule).

use super::log::ReplicaLog;
use super::messages::{Ballot, Record};
use crate::configuration::Configuration;
use crate::id::NodeId;
use crate::session::SessionLimits;
use std::collections::BTreeMap;

/// A replica's durable state folded from its records.
#[derive(Debug)]
pub(super) struct Recovered {
    /// Highest ballot promised.
    pub(super) promised: Ballot,
    /// The snapshot's state, and accepted values per slot above it (none committed yet).
    pub(super) log: ReplicaLog,
    /// Rejoin ballots of replicas that lost their disk (this one included).
    pub(super) fences: BTreeMap<NodeId, Ballot>,
    /// Lost its disk and has not finished rejoining.
    pub(super) rejoining: bool,
    /// No record at all: first boot (or a crash before the first sync).
    pub(super) fresh: bool,
}

/// Replay `records` of replica `id` in order; `initial` is the configuration of epoch 0
/// (a snapshot among the records brings its own).
pub(super) fn recover(
    id: NodeId,
    records: Vec<Record>,
    limits: SessionLimits,
    initial: Configuration,
) -> Recovered {
    let mut recovered = Recovered {
        promised: Ballot::default(),
        fresh: records.is_empty(),
        log: ReplicaLog::new(limits, initial),
        fences: BTreeMap::new(),
        rejoining: false,
    };
    for record in records {
        match record {
            Record::Snapshot(snapshot) => {
                recovered.log.install(*snapshot);
            }
            Record::Fence { node, ballot } => {
                let fence = recovered.fences.entry(node).or_default();
                *fence = (*fence).max(ballot);
                if node == id {
                    recovered.rejoining = false;
                    recovered.promised = recovered.promised.max(ballot);
                }
            }
            Record::Rejoining => recovered.rejoining = true,
            Record::Promised(ballot) => {
                recovered.promised = recovered.promised.max(ballot);
            }
            Record::Accepted {
                slot,
                ballot,
                value,
            } => {
                recovered.promised = recovered.promised.max(ballot);
                recovered.log.accept(slot, ballot, value);
            }
        }
    }
    recovered
}
