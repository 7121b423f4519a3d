//! Read-your-writes for versioned (Dynamo) histories.
//!
//! A successful read by client `c` of key `k` must reflect every write of `c` to `k`
//! that was acknowledged before the read was invoked: the written value is one of the
//! read's siblings, or the read's causal context dominates the write's (the value was
//! seen and superseded by a later write that carried a context covering it). Writes
//! with unknown or failed outcomes promise nothing and are not checked; neither are
//! other clients' writes (that would be a stronger guarantee than Dynamo's levels give).

use crate::check::history::OpRecord;
use crate::command::{Command, Key, Value};
use crate::dynamo::VersionVector;
use crate::id::ClientId;
use crate::request::Response;
use crate::time::Time;
use std::collections::BTreeMap;

/// What a successful versioned request did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// A put (`Some`) or delete (`None`) acknowledged with the written object's context.
    Write {
        /// The value written.
        value: Option<Value>,
        /// Causal context of the reply (covers the write's own dot).
        context: VersionVector,
    },
    /// A read with the sibling set and context it returned.
    Read {
        /// Values returned.
        siblings: Vec<Option<Value>>,
        /// Causal context of the reply.
        context: VersionVector,
    },
}

/// One successful versioned request as its client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionedOp {
    /// Who issued it.
    pub client: ClientId,
    /// The key.
    pub key: Key,
    /// When the client issued it.
    pub call: Time,
    /// When the reply reached the client.
    pub ret: Time,
    /// What it did.
    pub access: Access,
}

/// A read that missed one of its client's acknowledged writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The client.
    pub client: ClientId,
    /// The key.
    pub key: Key,
    /// When the read was issued.
    pub read_call: Time,
    /// When the missed write was acknowledged.
    pub write_ret: Time,
    /// What the read should have reflected and what it returned.
    pub explanation: String,
}

/// What [`check_read_your_writes`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RywReport {
    /// Reads that followed at least one acknowledged write of their client to the key.
    pub reads_checked: usize,
    /// Every read that missed one of them (one entry per read).
    pub violations: Vec<Violation>,
}

/// The successful Dynamo requests among `records` (errors, timeouts and non-Dynamo
/// replies are left out: they promise nothing). Panics on an undecodable context, which
/// only a broken coordinator produces.
pub fn versioned_ops(records: &[OpRecord]) -> Vec<VersionedOp> {
    records
        .iter()
        .filter_map(|record| {
            let Some(Ok(Response::Versioned(reply))) = record.reply.as_ref().map(|r| &r.outcome)
            else {
                return None;
            };
            let context = VersionVector::decode(&reply.context).unwrap_or_else(|e| {
                panic!("reply to {} has a bad context: {e}", record.request.id)
            });
            let access = match &record.request.command {
                Command::Get { .. } => Access::Read {
                    siblings: reply.siblings.clone(),
                    context,
                },
                Command::Put { value, .. } => Access::Write {
                    value: Some(value.clone()),
                    context,
                },
                Command::Delete { .. } => Access::Write {
                    value: None,
                    context,
                },
                Command::Cas { .. } | Command::Scan { .. } | Command::Count { .. } => return None,
            };
            Some(VersionedOp {
                client: record.client,
                key: record.request.command.key().clone(),
                call: record.call,
                ret: record.ret?,
                access,
            })
        })
        .collect()
}

fn show(value: &Option<Value>) -> String {
    match value {
        Some(v) => format!("{:?}", String::from_utf8_lossy(v)),
        None => "<delete>".to_owned(),
    }
}

/// Check that every read reflects its client's earlier acknowledged writes to the key.
pub fn check_read_your_writes(ops: &[VersionedOp]) -> RywReport {
    // Each client's acknowledged writes, per key.
    let mut writes: BTreeMap<(ClientId, &Key), Vec<&VersionedOp>> = BTreeMap::new();
    for op in ops {
        if matches!(op.access, Access::Write { .. }) {
            writes.entry((op.client, &op.key)).or_default().push(op);
        }
    }
    let mut report = RywReport::default();
    for op in ops {
        let Access::Read { siblings, context } = &op.access else {
            continue;
        };
        let Some(own) = writes.get(&(op.client, &op.key)) else {
            continue;
        };
        let earlier: Vec<(Time, &Option<Value>, &VersionVector)> = own
            .iter()
            .filter(|w| w.ret < op.call)
            .filter_map(|w| match &w.access {
                Access::Write { value, context } => Some((w.ret, value, context)),
                Access::Read { .. } => None,
            })
            .collect();
        if earlier.is_empty() {
            continue;
        }
        report.reads_checked += 1;
        let missed = earlier
            .iter()
            .find(|(_, value, written)| !siblings.contains(value) && !context.dominates(written));
        if let Some((write_ret, value, _)) = missed {
            let returned: Vec<String> = siblings.iter().map(show).collect();
            report.violations.push(Violation {
                client: op.client,
                key: op.key.clone(),
                read_call: op.call,
                write_ret: *write_ret,
                explanation: format!(
                    "{} read {:?} at {} and got [{}], missing its write {} acknowledged at {} \
                     (neither a sibling nor covered by the read's context)",
                    op.client,
                    String::from_utf8_lossy(&op.key),
                    op.call,
                    returned.join(", "),
                    show(value),
                    write_ret
                ),
            });
        }
    }
    report
}

#[cfg(test)]
#[path = "read_your_writes_test.rs"]
mod tests;
