//! Configurations by epoch (docs/design.md, "EPaxos epochs"): an instance's quorums are
//! sized from, and count only the votes of, the voters of the epoch it was started in
//! (its [`Attributes::epoch`](super::instance::Attributes)), for its whole life, recovery
//! included. A vote from anyone else is dropped, and an epoch this replica does not know
//! has quorums nobody can reach (it decides nothing there).
//!
//! The history comes from the executor (`execution.rs`): epoch 0 is the static cluster
//! with every member a voter, and each executed switch adds the next epoch. It is
//! replicated state, so snapshots and state transfers carry it.

use crate::configuration::Configuration;
use crate::id::NodeId;
use std::collections::BTreeMap;

/// The configurations of the epochs that may still have live instances, and the epoch
/// new own instances start in.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Epochs {
    me: NodeId,
    configurations: BTreeMap<u64, Configuration>,
    current: u64,
    /// Every member of a kept configuration, in id order (who hears commits and reports).
    members: Vec<NodeId>,
}

impl Epochs {
    /// Epoch 0 of `cluster`: every member a voter.
    #[cfg(test)]
    pub(super) fn initial(me: NodeId, cluster: &crate::protocol::Membership) -> Self {
        Self::from_history(me, &[Configuration::initial(cluster)])
    }

    /// The configurations the executor holds (oldest first), the newest current.
    pub(super) fn from_history(me: NodeId, history: &[Configuration]) -> Self {
        let mut epochs = Self {
            me,
            current: 0,
            configurations: BTreeMap::new(),
            members: Vec::new(),
        };
        for configuration in history {
            epochs.enter(configuration.clone());
        }
        epochs
    }

    /// The epoch new own instances start in.
    pub(super) fn current(&self) -> u64 {
        self.current
    }

    /// Fast-quorum size of `epoch`'s instances (its leader included); unreachable for an
    /// epoch not known here.
    pub(super) fn fast_quorum(&self, epoch: u64) -> usize {
        self.configurations
            .get(&epoch)
            .map_or(usize::MAX, Configuration::epaxos_fast_quorum)
    }

    /// Slow-path (and recovery) quorum size of `epoch`'s instances; unreachable for an
    /// epoch not known here.
    pub(super) fn slow_quorum(&self, epoch: u64) -> usize {
        self.configurations
            .get(&epoch)
            .map_or(usize::MAX, Configuration::majority)
    }

    /// Voters of `epoch` (none for an epoch not known here).
    pub(super) fn voter_count(&self, epoch: u64) -> usize {
        self.configurations
            .get(&epoch)
            .map_or(0, Configuration::voter_count)
    }

    /// Whether `id` computes attributes for an instance of `epoch`: it is the current
    /// epoch here and `id` votes in it.
    pub(super) fn votes_in_current(&self, epoch: u64, id: NodeId) -> bool {
        epoch == self.current && self.counts_vote(epoch, id)
    }

    /// Whether a vote from `from` counts for an instance of `epoch`.
    pub(super) fn counts_vote(&self, epoch: u64, from: NodeId) -> bool {
        self.configurations
            .get(&epoch)
            .is_some_and(|c| c.counts_vote(from))
    }

    /// Voters of `epoch` other than this replica, in id order.
    pub(super) fn other_voters(&self, epoch: u64) -> Vec<NodeId> {
        self.configurations
            .get(&epoch)
            .map(|c| c.voters().filter(|&v| v != self.me).collect())
            .unwrap_or_default()
    }

    /// Every member of a kept configuration, this replica included, in id order.
    pub(super) fn members(&self) -> &[NodeId] {
        &self.members
    }

    /// Members of the current configuration, voters and learners, in id order: the
    /// replicas that must execute an instance before it is collected (a removed replica
    /// will not execute anything more here that matters).
    pub(super) fn current_members(&self) -> Vec<NodeId> {
        self.configurations
            .get(&self.current)
            .map(|c| c.members().iter().map(|m| m.id).collect())
            .unwrap_or_default()
    }

    /// Whether `id` is a member of a kept configuration (its messages are taken).
    pub(super) fn is_member(&self, id: NodeId) -> bool {
        self.members.binary_search(&id).is_ok()
    }

    /// Take `next`, the configuration a switch made, as the epoch new own instances start
    /// in; earlier epochs stay known until their instances are done.
    pub(super) fn enter(&mut self, next: Configuration) {
        self.current = self.current.max(next.epoch());
        self.configurations.insert(next.epoch(), next);
        self.refresh_members();
    }

    fn refresh_members(&mut self) {
        let mut members: Vec<NodeId> = self
            .configurations
            .values()
            .flat_map(|c| c.members().iter().map(|m| m.id))
            .collect();
        members.sort();
        members.dedup();
        self.members = members;
    }
}
