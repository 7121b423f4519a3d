//! A simulated node's disk: durable records, a queue of writes waiting for the next sync
//! (group commit), and the effects each write gates.

use crate::protocol::Effect;
use std::collections::VecDeque;

/// One queued disk operation.
#[derive(Clone, Debug)]
pub(crate) enum DiskOp<R> {
    Append(Vec<R>),
    Replace(Vec<R>),
}

/// A batch of disk operations with the effects released once they are durable.
pub(crate) struct PendingWrite<M, R> {
    pub(crate) op: DiskOp<R>,
    pub(crate) then: Vec<Effect<M>>,
}

pub(crate) struct SimDisk<M, R> {
    /// What survives a crash.
    pub(crate) synced: Vec<R>,
    /// Writes not yet part of a sync.
    pub(crate) queued: VecDeque<PendingWrite<M, R>>,
    /// Writes in the sync currently running.
    pub(crate) syncing: Vec<PendingWrite<M, R>>,
    pub(crate) sync_running: bool,
    pub(crate) syncs: u64,
}

impl<M, R> SimDisk<M, R> {
    pub(crate) fn new() -> Self {
        Self {
            synced: Vec::new(),
            queued: VecDeque::new(),
            syncing: Vec::new(),
            sync_running: false,
            syncs: 0,
        }
    }

    /// Queue a write; returns true if a sync must be started.
    pub(crate) fn enqueue(&mut self, write: PendingWrite<M, R>) -> bool {
        self.queued.push_back(write);
        !self.sync_running
    }

    /// Start a sync covering everything queued.
    pub(crate) fn start_sync(&mut self) {
        debug_assert!(!self.sync_running);
        self.syncing = self.queued.drain(..).collect();
        self.sync_running = true;
    }

    /// The running sync finished: make its writes durable and return their effects in
    /// order. Returns whether another sync must start.
    pub(crate) fn finish_sync(&mut self) -> (Vec<Effect<M>>, bool) {
        let mut released = Vec::new();
        for write in self.syncing.drain(..) {
            match write.op {
                DiskOp::Append(records) => self.synced.extend(records),
                DiskOp::Replace(records) => self.synced = records,
            }
            released.extend(write.then);
        }
        self.sync_running = false;
        self.syncs += 1;
        (released, !self.queued.is_empty())
    }

    /// Lose everything not yet durable.
    pub(crate) fn crash(&mut self) {
        self.queued.clear();
        self.syncing.clear();
        self.sync_running = false;
    }
}
