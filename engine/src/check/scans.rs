//! Range reads in histories: each scan projected onto the keys it covers, so the per-key
//! linearizability check judges what the scan said about each of them.
//!
//! ```text
//!  Scan{prefix, after, limit} ──Ok(Entries{entries, more})──▶ for every key the history
//!    writes with that prefix, after `after`, and (when `more`) not past the last entry:
//!    a Get of that key with the scan's call and return, reading the entry's value or
//!    absent
//! ```
//!
//! A scan that missed a write completed before it began, or saw one that began after it
//! returned, fails as the projected `Get` of that key does. What this does not check:
//! that the scan read every key at one point (atomicity across keys), and counts
//! (`Count` results are not projected); scans whose outcome is not `Ok` are dropped like
//! unknown reads.

use super::history::{History, Outcome};
use crate::command::{Command, CommandResult, Key};
use std::collections::BTreeSet;

/// `history` with every completed scan's projected reads appended (original operations
/// keep their ids), or `None` when it holds no completed scan.
pub fn project_scans(history: &History) -> Option<History> {
    let ops = history.ops();
    let scans = ops.iter().any(|op| {
        matches!(op.command, Command::Scan { .. })
            && matches!(op.outcome, Outcome::Ok(CommandResult::Entries { .. }))
    });
    if !scans {
        return None;
    }
    let written: BTreeSet<&Key> = ops
        .iter()
        .filter(|op| op.command.prefix().is_none() && !op.command.is_read())
        .map(|op| op.command.key())
        .collect();
    let mut projected = History::new();
    for op in ops {
        let id = projected.invoke(op.client, op.command.clone(), op.call);
        let at = op.ret.unwrap_or(op.call);
        match &op.outcome {
            Outcome::Pending => {}
            Outcome::Ok(result) => projected.complete(id, at, result.clone()),
            Outcome::Fail(reason) => projected.fail(id, at, reason.clone()),
            Outcome::Unknown => projected.unknown(id, at),
        }
    }
    for op in ops {
        let (
            Command::Scan { prefix, after, .. },
            Outcome::Ok(CommandResult::Entries { entries, more }),
            Some(ret),
        ) = (&op.command, &op.outcome, op.ret)
        else {
            continue;
        };
        let last = entries.last().map(|(key, _)| key);
        let covered = written.iter().filter(|key| {
            key.starts_with(prefix)
                && after
                    .as_ref()
                    .is_none_or(|after| key.as_slice() > after.as_slice())
                && (!more || last.is_some_and(|last| key.as_slice() <= last.as_slice()))
        });
        for key in covered {
            let value = entries
                .binary_search_by(|(k, _)| k.cmp(key))
                .ok()
                .map(|i| entries[i].1.clone());
            let id = projected.invoke(
                op.client,
                Command::Get {
                    key: (*key).clone(),
                },
                op.call,
            );
            projected.complete(id, ret, CommandResult::Value(value));
        }
    }
    Some(projected)
}

#[cfg(test)]
#[path = "scans_test.rs"]
mod tests;
