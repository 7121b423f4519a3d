//! Snapshots and log compaction (docs/design.md#tempo-compaction).
//!
//! ```text
//!  GC timer: report, collect ─▶ once snapshot_interval commands executed and the log
//!  written since the last compaction is as long as its snapshot, in encoded bytes (or
//!  once everything executed since is collected):
//!    Compact[Fence?, Snapshot{executed, kv, sessions, collected, clocks, attached
//!            promises, last own seq}, one record set per live command]
//! ```
//! The records rebuild the replica as of the output: the snapshot holds what every
//! command collected so far did, every clock and attached promise, and the records after
//! it are the live command table. Execution follows commit records into the outbox, and
//! a compaction is ordered after every earlier `Persist`, so the state it holds never
//! runs ahead of the records on disk. A crash before the swap leaves the old log, which
//! rebuilds an older but consistent replica.

use super::messages::{Record, Snapshot};
use super::replica::Replica;

/// What the last compaction left (when the next one is due).
#[derive(Clone, Copy, Debug, Default, Hash)]
pub(super) struct LastCompaction {
    /// Commands executed by this incarnation then.
    executed: u64,
    /// Whether its log kept live commands.
    held_commands: bool,
    /// Encoded bytes of its records.
    snapshot_bytes: u64,
    /// Encoded bytes persisted by this incarnation then.
    log_bytes: u64,
}

/// On the GC timer: compact once `snapshot_interval` commands executed since the last
/// compaction and the records persisted since are at least as many encoded bytes as its
/// snapshot (the cost per executed command stays constant, the log within about twice
/// the snapshot), or once everything executed since was collected; zero: never.
pub(super) fn maybe_compact(r: &mut Replica, last: &mut LastCompaction, last_seq: u64) {
    if !r.fence.executes() {
        // A lost disk: nothing to snapshot until a peer's state is installed.
        return;
    }
    let interval = r.config.snapshot_interval;
    let since = r.executor.ran - last.executed;
    let logged = r.outbox.persisted_bytes() - last.log_bytes;
    let due = since >= interval && logged >= last.snapshot_bytes;
    let all_collected = r.cmds.is_empty() && (since > 0 || last.held_commands);
    if interval > 0 && (due || all_collected) {
        compact(r, last, last_seq);
    }
}

/// Replace the durable log with a snapshot and the live command table.
pub(super) fn compact(r: &mut Replica, last: &mut LastCompaction, last_seq: u64) {
    let records = snapshot_records(r, last_seq);
    *last = LastCompaction {
        executed: r.executor.ran,
        held_commands: !r.cmds.is_empty(),
        snapshot_bytes: 0,
        log_bytes: r.outbox.persisted_bytes(),
    };
    r.metrics.incr("compactions");
    r.metrics.set("snapshot_records", records.len() as u64);
    r.outbox.compact(records);
}

/// The host wrote the last compaction's records in `bytes` encoded bytes
/// ([`Protocol::compacted`](crate::protocol::Protocol::compacted)).
pub(super) fn note_compacted(r: &mut Replica, last: &mut LastCompaction, bytes: u64) {
    last.snapshot_bytes = bytes;
    r.metrics.set("snapshot_bytes", bytes);
}

/// The records that alone rebuild this replica as of now.
fn snapshot_records(r: &Replica, last_seq: u64) -> Vec<Record> {
    let (kv, sessions) = r.executor.state();
    let snapshot = Snapshot {
        executed: r.executor.executed.clone(),
        kv: kv.clone(),
        sessions: sessions.clone(),
        collected: r.collected.clone(),
        epochs: r.executor.epochs().clone(),
        clocks: r.clocks.clocks(),
        attached: r.clocks.attached(),
        last_seq,
        floor: r.clocks.floor(),
    };
    let mut records = Vec::new();
    if r.fence != Default::default() {
        records.push(Record::Fence(Box::new(r.fence.clone())));
    }
    records.push(Record::Snapshot(Box::new(snapshot)));
    for (&dot, cmd) in &r.cmds {
        let Some(payload) = cmd.payload.clone() else {
            continue;
        };
        if let Some(ts) = cmd.decided {
            records.push(Record::Committed { dot, payload, ts });
            continue;
        }
        if let Some(ts) = cmd.proposal {
            let in_recovery = cmd.in_recovery;
            let payload = payload.clone();
            records.push(Record::Proposed {
                dot,
                payload,
                ts,
                in_recovery,
            });
        }
        if cmd.ballot.is_set() {
            let ballot = cmd.ballot;
            records.push(Record::Promised { dot, ballot });
        }
        if cmd.accepted.is_set() {
            let (ballot, ts) = (cmd.accepted, cmd.accepted_ts);
            records.push(Record::Accepted {
                dot,
                ballot,
                ts,
                payload,
            });
        }
    }
    records
}
