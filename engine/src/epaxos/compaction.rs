//! Snapshots and log compaction (docs/design.md#epaxos-compaction).
//!
//! ```text
//!  GC timer: report, collect ─▶ once snapshot_interval instances executed and the log
//!  written since the last compaction is as long as its snapshot, in encoded bytes (or
//!  once everything executed since the last compaction is collected):
//!    prune the key index below what every replica executed and collected
//!    Compact[Snapshot{execution, key index, next own slot}, Instance*, Promise*]
//! ```
//! The records rebuild the replica as of the output: the snapshot holds what every
//! instance collected so far did (their records are gone), and the instance and promise
//! records after it are the live table. Execution follows commit records into the
//! outbox, and a compaction is ordered after every earlier `Persist`, so the execution it
//! holds never runs ahead of the commits on disk. A crash before the swap leaves the old
//! log, which rebuilds an older but consistent replica.

use super::messages::{Record, Snapshot};
use super::Epaxos;
use std::sync::Arc;

/// What the last compaction left (when the next one is due).
#[derive(Clone, Copy, Debug, Default, Hash)]
pub(super) struct LastCompaction {
    /// Instances executed by this incarnation then.
    executed: u64,
    /// Whether its log kept live instances (one more compaction once they are collected
    /// leaves the snapshot alone).
    held_instances: bool,
    /// Encoded bytes of its records.
    snapshot_bytes: u64,
    /// Encoded bytes persisted by this incarnation then.
    log_bytes: u64,
}

impl Epaxos {
    /// On the GC timer: compact once `snapshot_interval` instances executed since the
    /// last compaction and the records persisted since are at least as many encoded
    /// bytes as its snapshot, or once everything executed since was collected (an idle
    /// cluster ends with a log of one snapshot); zero: never. A snapshot costs in
    /// proportion to the state, so waiting for as many bytes of log keeps the cost per
    /// executed command constant however long the history (a fixed interval made it
    /// grow with the keys written), and the durable log within twice the snapshot.
    pub(super) fn maybe_compact(&mut self) {
        if !self.replica.fence.executes() {
            // A lost disk: nothing to snapshot until a peer's state is installed.
            return;
        }
        let interval = self.replica.config.snapshot_interval;
        let since = self.replica.executor.executed_count() - self.last_compaction.executed;
        let logged = self.replica.outbox.persisted_bytes() - self.last_compaction.log_bytes;
        let due = since >= interval && logged >= self.last_compaction.snapshot_bytes;
        let all_collected = self.replica.table.instances.is_empty()
            && (since > 0 || self.last_compaction.held_instances);
        if interval > 0 && (due || all_collected) {
            self.compact();
        }
    }

    /// Replace the durable log with a snapshot and the live table.
    pub(super) fn compact(&mut self) {
        let floor = self.gc.floor(&self.replica);
        let pruned = Arc::make_mut(&mut self.replica.table.index).prune(&floor);
        let records = self.snapshot_records();
        self.last_compaction = LastCompaction {
            executed: self.replica.executor.executed_count(),
            held_instances: !self.replica.table.instances.is_empty(),
            snapshot_bytes: 0,
            log_bytes: self.replica.outbox.persisted_bytes(),
        };
        let replica = &mut self.replica;
        replica.metrics.add("index_keys_pruned", pruned as u64);
        replica.metrics.incr("compactions");
        replica
            .metrics
            .set("snapshot_records", records.len() as u64);
        replica.outbox.compact(records);
    }

    /// The host wrote the last compaction's records in `bytes` encoded bytes
    /// ([`Protocol::compacted`](crate::protocol::Protocol::compacted)).
    pub(super) fn note_compacted(&mut self, bytes: u64) {
        self.last_compaction.snapshot_bytes = bytes;
        self.replica.metrics.set("snapshot_bytes", bytes);
    }

    /// The records that alone rebuild this replica as of now.
    fn snapshot_records(&self) -> Vec<Record> {
        let replica = &self.replica;
        let snapshot = Snapshot {
            executed: replica.executor.executed_state(),
            index: Arc::clone(&replica.table.index),
            next_slot: self.leader.next_slot(),
        };
        let mut records = Vec::new();
        if replica.fence != Default::default() {
            records.push(Record::Fence(Box::new(replica.fence.clone())));
        }
        records.push(Record::Snapshot(Box::new(snapshot)));
        records.extend(self.bounds_told.records());
        records.extend(replica.table.records());
        records
    }
}
