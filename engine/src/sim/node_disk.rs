//! A node's disk in a running simulation: group-commit syncs, the idle sync of writes
//! nothing waits for, and the effects a sync releases.

use super::disk::{DiskOp, PendingWrite, SyncOutcome};
use super::{Event, Sim};
use crate::id::NodeId;
use crate::protocol::{Effect, Protocol};

impl<P: Protocol> Sim<P> {
    /// Queue a write of `node`; start a sync if an effect waits for it and none runs.
    pub(super) fn persist(
        &mut self,
        node: NodeId,
        op: DiskOp<P::Record>,
        then: Vec<Effect<P::Message>>,
    ) {
        if self.nodes[node.index()]
            .disk
            .enqueue(PendingWrite { op, then })
        {
            self.start_sync(node);
        } else {
            self.arm_idle_sync(node);
        }
    }

    /// Writes nothing waits for, queued with no sync to take them: sync them after
    /// `idle_sync_after` unless an awaited write's sync takes them first.
    fn arm_idle_sync(&mut self, node: NodeId) {
        let Some(after) = self.config.idle_sync_after else {
            return;
        };
        let state = &mut self.nodes[node.index()];
        if !state.disk.needs_idle_sync() {
            return;
        }
        let at = self.now + after;
        state.disk.idle_sync_at = Some(at);
        let incarnation = state.incarnation;
        self.queue.push(at, Event::IdleSync { node, incarnation });
    }

    fn start_sync(&mut self, node: NodeId) {
        let factor = self.network.slow_factor_of(node);
        let state = &mut self.nodes[node.index()];
        state.disk.start_sync();
        let at = self.now + self.config.disk.fsync * factor;
        let incarnation = state.incarnation;
        self.queue.push(at, Event::SyncDone { node, incarnation });
    }

    /// The idle deadline armed by `arm_idle_sync` passed.
    pub(super) fn idle_sync(&mut self, node: NodeId, incarnation: u32) {
        let state = &mut self.nodes[node.index()];
        if state.incarnation != incarnation || state.disk.idle_sync_at != Some(self.now) {
            // The node crashed since, or a sync took the writes first (a crash and
            // `start_sync` disarm the deadline, so an armed one still has writes waiting
            // and no sync running).
            return;
        }
        self.note(9, u64::from(node.0), 0);
        self.start_sync(node);
    }

    /// A sync finished: release its effects, start the next one if an effect waits.
    pub(super) fn sync_done(&mut self, node: NodeId, incarnation: u32) {
        if self.nodes[node.index()].incarnation != incarnation {
            return;
        }
        self.note(5, u64::from(node.0), 0);
        self.stats.syncs += 1;
        let state = &mut self.nodes[node.index()];
        match state.disk.finish_sync(state.crash_in_compaction) {
            SyncOutcome::Done { effects, again } => {
                for effect in effects {
                    self.perform(node, effect);
                }
                if again {
                    self.start_sync(node);
                } else {
                    self.arm_idle_sync(node);
                }
                self.drain(node);
            }
            SyncOutcome::CrashedInCompaction => {
                self.trace_line(|| format!("{node} crashed in a compaction"));
                self.stats.compaction_crashes += 1;
                self.crash(node);
            }
        }
    }
}
