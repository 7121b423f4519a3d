//! Node faults applied to a running simulation: crashes (also in the middle of a
//! compaction), lost disks, restarts (through the rejoin path after a lost disk),
//! partitions.

use super::fault::{FaultAction, PartitionMode};
use super::Sim;
use crate::id::NodeId;
use crate::protocol::Protocol;

impl<P: Protocol> Sim<P> {
    pub(super) fn fault(&mut self, action: FaultAction) {
        match action {
            FaultAction::Partition { a, b, mode } => self.network.partition(&a, &b, mode),
            FaultAction::Heal => self.network.heal(),
            FaultAction::Crash(node) => self.crash(node),
            FaultAction::Restart(node) => self.restart(node),
            FaultAction::CrashInCompaction(node) => self.crash_in_compaction(node),
            FaultAction::Amnesia(node) => self.lose_disk(node),
            FaultAction::Slow { node, factor } => self.network.set_slow(node, factor),
            FaultAction::SetLinkFaults(faults) => self.network.set_faults(faults),
        }
    }

    /// Stop `node` now: its unsynced records and unreleased effects are lost.
    pub fn crash(&mut self, node: NodeId) {
        let Some(state) = self.nodes.get_mut(node.index()) else {
            return;
        };
        state.crash_in_compaction = false;
        if let Some(core) = state.core.take() {
            state.past_metrics.merge(&core.metrics());
            state.disk.crash();
            state.incarnation += 1;
            state.timer = None;
            self.stats.crashes += 1;
        }
    }

    /// Crash `node` between the snapshot write and the log swap of its next compaction
    /// (including one already waiting for its sync). No-op if it is down.
    pub fn crash_in_compaction(&mut self, node: NodeId) {
        let Some(state) = self.nodes.get_mut(node.index()) else {
            return;
        };
        if state.core.is_some() {
            state.crash_in_compaction = true;
        }
    }

    /// Crash `node` (if up) and lose its whole disk; its next restart rejoins.
    pub fn lose_disk(&mut self, node: NodeId) {
        self.crash(node);
        let Some(state) = self.nodes.get_mut(node.index()) else {
            return;
        };
        state.disk.wipe();
        state.amnesiac = true;
        self.stats.disks_lost += 1;
    }

    /// Stop `node` for good, as an operator stops a replica it removed: it crashes now
    /// and no restart (the fault schedule's or the heal's) brings it back.
    pub fn retire(&mut self, node: NodeId) {
        self.crash(node);
        if let Some(state) = self.nodes.get_mut(node.index()) {
            state.retired = true;
        }
    }

    /// Whether `node` was stopped for good.
    pub fn is_retired(&self, node: NodeId) -> bool {
        self.nodes.get(node.index()).is_some_and(|s| s.retired)
    }

    /// Rebuild a crashed `node` from its synced records, telling it to rejoin if it lost
    /// its disk and nothing has been synced since. On a node that is up it only disarms a
    /// pending crash in compaction. A retired node stays down.
    pub fn restart(&mut self, node: NodeId) {
        let Some(state) = self.nodes.get_mut(node.index()) else {
            return;
        };
        if state.retired {
            return;
        }
        if state.core.is_some() {
            state.crash_in_compaction = false;
            return;
        }
        let records = super::disk::read_back(&state.disk.synced);
        // As the server's identity file keeps a rejoin listed: a node that lost its disk
        // rejoins at every restart until its log holds a record (its rejoining state,
        // once synced, takes over), so a crash before that rejoins again, never votes.
        let rejoin = state.amnesiac && records.is_empty();
        state.amnesiac = rejoin;
        let incarnation = state.incarnation;
        let seed = self.node_seed(node, incarnation);
        let mut core = (self.factory)(node, seed, records);
        if rejoin {
            core.rejoin(self.local_now(node));
        }
        self.nodes[node.index()].core = Some(core);
        self.stats.restarts += 1;
        self.drain(node);
    }

    /// Partition two groups now.
    pub fn partition(&mut self, a: &[NodeId], b: &[NodeId], mode: PartitionMode) {
        self.network.partition(a, b, mode);
    }

    /// Remove every partition now.
    pub fn heal(&mut self) {
        self.network.heal();
    }
}
