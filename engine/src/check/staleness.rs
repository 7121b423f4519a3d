//! Bounded staleness as linearizability with widened reads.
//!
//! A read at `stale:B` promises a state that was current at some moment no earlier than
//! `B` before it was called. That is exactly linearizability of a history in which the
//! read's call is moved `B` earlier: its linearization point may then fall anywhere in
//! `[call - B, return]`. So the staleness checker is the linearizability checker on that
//! history; every other consensus operation keeps its interval (writes at any level are
//! ordered, and linearizable reads keep their promise).

use super::history::{History, OpRecord};
use crate::request::Consistency;
use std::time::Duration;

/// The history of `records` for the staleness check: linearizable-level operations and
/// every write as they are, bounded-staleness reads widened by their bound; local reads
/// (no promise) are left out. Outcomes as in `sim::linearizable_history_of`.
pub fn bounded_staleness_history_of<'a>(
    records: impl IntoIterator<Item = &'a OpRecord>,
    timeout: Duration,
) -> History {
    let mut history = History::new();
    for record in records {
        let level = record.request.consistency;
        let read = record.request.command.is_read();
        let widen = match level {
            Consistency::Stale { bound_us } if read => Duration::from_micros(bound_us),
            _ if level.is_linearizable_read() => Duration::ZERO,
            Consistency::Stale { .. } => Duration::ZERO,
            _ => continue,
        };
        let call = record.call - widen;
        let op = history.invoke(record.client, record.request.command.clone(), call);
        match (&record.reply, record.ret) {
            (Some(reply), Some(ret)) => match &reply.outcome {
                Ok(response) => match response.kv() {
                    Some(result) => history.complete(op, ret, result.clone()),
                    None => history.unknown(op, ret),
                },
                Err(error) if error.is_definite() => history.fail(op, ret, error.to_string()),
                Err(_) => history.unknown(op, ret),
            },
            _ if record.timed_out => history.unknown(op, record.call + timeout),
            _ => {}
        }
    }
    history
}

#[cfg(test)]
#[path = "staleness_test.rs"]
mod tests;
