//! A simulated node's disk: durable records, a queue of writes waiting for the next sync
//! (group commit), and the effects each write gates.
//!
//! A compaction is two steps, as on a real disk: write the snapshot beside the log, then
//! swap it in. A crash between the two ([`SimDisk::finish_sync`] with `crash_in_compaction`)
//! leaves the old log whole: the snapshot is dropped with the rest of the unsynced work.
//!
//! A compaction's records are kept encoded (postcard, as [`crate::transfer`] moves
//! snapshots), as a real disk keeps bytes: a snapshot holds the whole state machine, and a
//! decoded copy per replica doubled a long run's memory (every compaction cloned the
//! key-value map, the exactly-once table and the key index into the disk). Appended
//! records are kept as the core wrote them: they are small, their batches are shared with
//! the core (`Arc`), and encoding each one into a fresh allocation was a tenth of a
//! simulated Multi-Paxos run's CPU. A restart passes every record through its encoding,
//! as a real disk would, so a record whose `Serialize`/`Deserialize` pair disagrees still
//! fails there.

use crate::protocol::Effect;
use crate::transfer;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::VecDeque;

/// What a finished sync did.
pub(crate) enum SyncOutcome<M> {
    /// Every write is durable: release these effects, in order; `again` if more writes
    /// queued meanwhile.
    Done {
        effects: Vec<Effect<M>>,
        again: bool,
    },
    /// The node crashed after writing a compaction's snapshot and before swapping it in:
    /// the writes before the compaction are durable, nothing after it is, and no effect
    /// is released.
    CrashedInCompaction,
}

/// One record as the disk holds it.
pub(crate) type Encoded = Box<[u8]>;

/// Encode records for the disk (the bytes of [`transfer::encode`]), each first into
/// `scratch`, which keeps its capacity from call to call: encoding into a fresh vector
/// grew it byte by byte, several reallocations per record and fresh pages for every
/// snapshot (a tenth of a simulated Multi-Paxos run's CPU).
pub(crate) fn encode<R: Serialize>(records: &[R], scratch: &mut Vec<u8>) -> Vec<Encoded> {
    records
        .iter()
        .map(|r| {
            scratch.clear();
            let buffer = std::mem::take(scratch);
            // Serializing plain data into a vector cannot fail (as in `transfer::encode`).
            *scratch = postcard::to_extend(r, buffer).unwrap_or_default();
            Encoded::from(scratch.as_slice())
        })
        .collect()
}

/// One durable record: as appended, or encoded by a compaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Stored<R> {
    Appended(R),
    Encoded(Encoded),
}

/// The records a restart reads back: each one decoded from its encoding (an appended
/// record is encoded first, as a real disk would have written it).
///
/// # Panics
/// If a record does not decode: the simulator wrote it from a `P::Record`, so that is a
/// bug in the record's `Serialize`/`Deserialize` pair, which a restart must not hide.
pub(crate) fn read_back<R: Serialize + DeserializeOwned>(records: &[Stored<R>]) -> Vec<R> {
    records
        .iter()
        .map(|stored| {
            let decoded = match stored {
                Stored::Appended(record) => transfer::decode(&transfer::encode(record)),
                Stored::Encoded(bytes) => transfer::decode(bytes),
            };
            decoded.expect("a record the simulator encoded decodes")
        })
        .collect()
}

/// One queued disk operation.
#[derive(Clone, Debug)]
pub(crate) enum DiskOp<R> {
    Append(Vec<R>),
    Replace(Vec<Encoded>),
}

/// A batch of disk operations with the effects released once they are durable.
pub(crate) struct PendingWrite<M, R> {
    pub(crate) op: DiskOp<R>,
    pub(crate) then: Vec<Effect<M>>,
}

impl<M, R> PendingWrite<M, R> {
    /// Whether this write starts a sync: an effect waits for it, or it is a compaction.
    /// Appends nothing waits for stay queued until such a write's sync covers them, as
    /// on the server (docs/design.md, Durability, "Unawaited records"), or until
    /// [`crate::storage::IDLE_SYNC_AFTER`] of quiet (`Sim::arm_idle_sync`).
    fn awaited(&self) -> bool {
        !self.then.is_empty() || matches!(self.op, DiskOp::Replace(_))
    }
}

pub(crate) struct SimDisk<M, R> {
    /// What survives a crash.
    pub(crate) synced: Vec<Stored<R>>,
    /// Writes not yet part of a sync.
    pub(crate) queued: VecDeque<PendingWrite<M, R>>,
    /// Writes in the sync currently running.
    pub(crate) syncing: Vec<PendingWrite<M, R>>,
    pub(crate) sync_running: bool,
    pub(crate) syncs: u64,
    /// When queued writes nothing waits for get a sync of their own, if armed.
    pub(crate) idle_sync_at: Option<crate::time::Time>,
}

impl<M, R> SimDisk<M, R> {
    pub(crate) fn new() -> Self {
        Self {
            synced: Vec::new(),
            queued: VecDeque::new(),
            syncing: Vec::new(),
            sync_running: false,
            syncs: 0,
            idle_sync_at: None,
        }
    }

    /// Queue a write; returns true if a sync must be started.
    pub(crate) fn enqueue(&mut self, write: PendingWrite<M, R>) -> bool {
        let awaited = write.awaited();
        self.queued.push_back(write);
        awaited && !self.sync_running
    }

    /// Whether queued writes wait, with no sync running to take them and no idle sync
    /// armed: the caller arms one.
    pub(crate) fn needs_idle_sync(&self) -> bool {
        !self.sync_running && self.idle_sync_at.is_none() && !self.queued.is_empty()
    }

    /// Start a sync covering everything queued.
    pub(crate) fn start_sync(&mut self) {
        debug_assert!(!self.sync_running);
        self.idle_sync_at = None;
        self.syncing = self.queued.drain(..).collect();
        self.sync_running = true;
    }

    /// The running sync finished: make its writes durable and return their effects in
    /// order. With `crash_in_compaction`, the node crashes at the first compaction of the
    /// sync, between its two steps (the caller then crashes the node).
    pub(crate) fn finish_sync(&mut self, crash_in_compaction: bool) -> SyncOutcome<M> {
        let mut released = Vec::new();
        for write in std::mem::take(&mut self.syncing) {
            match write.op {
                DiskOp::Append(records) => self
                    .synced
                    .extend(records.into_iter().map(Stored::Appended)),
                DiskOp::Replace(_) if crash_in_compaction => {
                    // Step 1 (the snapshot file) is written; step 2 (the swap) never
                    // happens: the log keeps every record it had.
                    self.crash();
                    return SyncOutcome::CrashedInCompaction;
                }
                DiskOp::Replace(records) => {
                    // Keep the log's allocation: it regrows to the same size before the
                    // next compaction.
                    self.synced.clear();
                    self.synced.extend(records.into_iter().map(Stored::Encoded));
                }
            }
            released.extend(write.then);
        }
        self.sync_running = false;
        self.syncs += 1;
        SyncOutcome::Done {
            effects: released,
            again: self.queued.iter().any(PendingWrite::awaited),
        }
    }

    /// Lose the whole disk, synced records included.
    pub(crate) fn wipe(&mut self) {
        self.crash();
        self.synced.clear();
    }

    /// Lose everything not yet durable.
    pub(crate) fn crash(&mut self) {
        self.queued.clear();
        self.syncing.clear();
        self.sync_running = false;
        self.idle_sync_at = None;
    }
}

#[cfg(test)]
#[path = "disk_test.rs"]
mod tests;
