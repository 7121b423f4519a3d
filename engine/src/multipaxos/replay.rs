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
//! every accepted ballot. Commit knowledge and the state machine are not persisted: they
//! are re-learnt from the leader (catch-up), because only the acceptor facts are needed
//! for safety.

use super::log::ReplicaLog;
use super::messages::{Ballot, Record};

/// A replica's durable state folded from its records.
#[derive(Debug, Default)]
pub(super) struct Recovered {
    /// Highest ballot promised.
    pub(super) promised: Ballot,
    /// Accepted values per slot (none committed yet).
    pub(super) log: ReplicaLog,
    /// No record at all: first boot (or a crash before the first sync).
    pub(super) fresh: bool,
}

/// Replay `records` in order.
pub(super) fn recover(records: Vec<Record>) -> Recovered {
    let mut recovered = Recovered {
        fresh: records.is_empty(),
        ..Recovered::default()
    };
    for record in records {
        match record {
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
