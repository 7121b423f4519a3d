//! Configurations with epochs: who votes, who learns, and which configuration a
//! Multi-Paxos slot belongs to (docs/design.md#membership).
//!
//! A [`Configuration`] is one epoch's members, each a [`Role::Voter`] or a
//! [`Role::Learner`]. Quorum sizes come from its voters only. A [`ProposedChange`] names the
//! epoch it starts from and moves the voter set by at most one, so majorities of
//! consecutive configurations intersect; [`Configuration::apply`] refuses anything else.
//! [`ConfigSchedule`] records the rule "a change chosen in slot `i` governs slots `> i`".
//!
//! Multi-Paxos runs them (`multipaxos/membership.rs`); Dynamo reports its versioned ring
//! as one (`dynamo/ring_state.rs`); EPaxos keeps them in its executor and counts quorums by
//! epoch (`epaxos/epochs.rs`),
//! and Tempo still runs the static
//! [`Membership`](crate::protocol::Membership).

use crate::id::{NodeId, RequestId};
use crate::protocol::{Member, Membership};
use crate::quorum;
use serde::{Deserialize, Serialize};

/// What a member does in a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Votes: counted in every quorum of its configuration.
    Voter,
    /// Receives commits and snapshots and executes, but is counted in no quorum.
    Learner,
}

impl Role {
    /// `voter` or `learner`, as operators see it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Voter => "voter",
            Self::Learner => "learner",
        }
    }
}

/// One member of a configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConfigMember {
    /// Its id.
    pub id: NodeId,
    /// The region it runs in.
    pub region: String,
    /// Voter or learner.
    pub role: Role,
}

/// One change of membership; each yields the configuration of the next epoch.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Change {
    /// A new replica joins as a learner (no vote yet).
    AddLearner(Member),
    /// A learner that has caught up becomes a voter.
    Promote(NodeId),
    /// A voter or learner leaves.
    Remove(NodeId),
}

/// A change and the epoch it was proposed against.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProposedChange {
    /// The epoch of the configuration the change starts from.
    pub from_epoch: u64,
    /// The change.
    pub change: Change,
}

/// Why a change cannot be applied to a configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ChangeError {
    /// The change was proposed against another epoch (a concurrent change won).
    #[error("change proposed against epoch {proposed}, but the configuration is at epoch {current}: one change at a time")]
    StaleEpoch {
        /// The epoch the change named.
        proposed: u64,
        /// The epoch of the configuration it was applied to.
        current: u64,
    },
    /// The id is already a member.
    #[error("node {0} is already a member")]
    AlreadyMember(NodeId),
    /// The id is not a member.
    #[error("node {0} is not a member")]
    NotMember(NodeId),
    /// Only a learner can be promoted.
    #[error("node {0} is not a learner, so it cannot be promoted")]
    NotLearner(NodeId),
    /// A configuration keeps at least one voter.
    #[error("node {0} is the last voter")]
    LastVoter(NodeId),
}

/// One epoch's members, in id order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Configuration {
    epoch: u64,
    members: Vec<ConfigMember>,
}

impl Configuration {
    /// Epoch 0: every member of a static membership is a voter.
    pub fn initial(membership: &Membership) -> Self {
        let mut members: Vec<ConfigMember> = membership
            .members
            .iter()
            .map(|m| ConfigMember {
                id: m.id,
                region: m.region.clone(),
                role: Role::Voter,
            })
            .collect();
        members.sort_by_key(|m| m.id);
        members.dedup_by_key(|m| m.id);
        Self { epoch: 0, members }
    }

    /// Epoch 0 of the replicas of `cluster` that `initial` names (all of them when
    /// `None`), every one a voter; the rest of the cluster are spares a change can add.
    pub fn initial_of(cluster: &Membership, initial: Option<&[NodeId]>) -> Self {
        let mut members = cluster.clone();
        if let Some(initial) = initial {
            members.members.retain(|m| initial.contains(&m.id));
        }
        Self::initial(&members)
    }

    /// A configuration with these members (sorted by id; later duplicates dropped), for
    /// cores that version membership their own way (Dynamo's ring).
    pub fn from_parts(epoch: u64, mut members: Vec<ConfigMember>) -> Self {
        members.sort_by_key(|m| m.id);
        members.dedup_by_key(|m| m.id);
        Self { epoch, members }
    }

    /// This configuration's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Every member, voters and learners, in id order.
    pub fn members(&self) -> &[ConfigMember] {
        &self.members
    }

    /// The voters in id order.
    pub fn voters(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members
            .iter()
            .filter(|m| m.role == Role::Voter)
            .map(|m| m.id)
    }

    /// Number of voters.
    pub fn voter_count(&self) -> usize {
        self.voters().count()
    }

    /// The role of `id`, if it is a member.
    pub fn role_of(&self, id: NodeId) -> Option<Role> {
        self.member(id).map(|m| m.role)
    }

    /// Whether a vote from `id` counts in this configuration's quorums.
    pub fn counts_vote(&self, id: NodeId) -> bool {
        self.role_of(id) == Some(Role::Voter)
    }

    /// Majority of the voters.
    pub fn majority(&self) -> usize {
        quorum::majority(self.voter_count())
    }

    /// EPaxos fast quorum of the voters.
    pub fn epaxos_fast_quorum(&self) -> usize {
        quorum::epaxos_fast_quorum(self.voter_count())
    }

    /// The configuration of the next epoch, or why `proposed` does not apply to this one.
    pub fn apply(&self, proposed: &ProposedChange) -> Result<Self, ChangeError> {
        if proposed.from_epoch != self.epoch {
            return Err(ChangeError::StaleEpoch {
                proposed: proposed.from_epoch,
                current: self.epoch,
            });
        }
        let mut members = self.members.clone();
        match &proposed.change {
            Change::AddLearner(member) => {
                if self.member(member.id).is_some() {
                    return Err(ChangeError::AlreadyMember(member.id));
                }
                members.push(ConfigMember {
                    id: member.id,
                    region: member.region.clone(),
                    role: Role::Learner,
                });
                members.sort_by_key(|m| m.id);
            }
            Change::Promote(id) => match members.iter_mut().find(|m| m.id == *id) {
                None => return Err(ChangeError::NotMember(*id)),
                Some(m) if m.role != Role::Learner => return Err(ChangeError::NotLearner(*id)),
                Some(m) => m.role = Role::Voter,
            },
            Change::Remove(id) => {
                let Some(role) = self.role_of(*id) else {
                    return Err(ChangeError::NotMember(*id));
                };
                if role == Role::Voter && self.voter_count() == 1 {
                    return Err(ChangeError::LastVoter(*id));
                }
                members.retain(|m| m.id != *id);
            }
        }
        Ok(Self {
            epoch: self.epoch + 1,
            members,
        })
    }

    fn member(&self, id: NodeId) -> Option<&ConfigMember> {
        self.members.iter().find(|m| m.id == id)
    }
}

/// How an operator's membership change ended, from the replica it was given to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChangeOutcome {
    /// The operator's request.
    pub request: RequestId,
    /// The configuration the change made (committed and executed), or why not.
    pub result: Result<Configuration, ChangeFailure>,
}

/// Why a membership change did not take effect (or may not have).
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ChangeFailure {
    /// Refused before anything was ordered: it does not apply to this replica's
    /// configuration, or this keyspace cannot change membership.
    #[error("refused: {0}")]
    Refused(String),
    /// Ordered in the log, but it did not apply to the configuration of its slot (for
    /// example another change was ordered first: one change at a time).
    #[error("ordered but not applied: {0}")]
    NotApplied(#[from] ScheduleError),
    /// The leader would not propose it (e.g. the learner has not caught up yet).
    #[error("refused by the leader: {0}")]
    RefusedByLeader(String),
    /// No outcome in time: the change may or may not take effect; read the configuration
    /// (its epoch) to know.
    #[error("timed out; the change may or may not take effect (check the configuration epoch)")]
    Timeout,
}

impl From<ChangeError> for ChangeFailure {
    fn from(error: ChangeError) -> Self {
        Self::Refused(error.to_string())
    }
}

/// Why a chosen change cannot enter a [`ConfigSchedule`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ScheduleError {
    /// A change in a slot at or below the slot of the change already in effect.
    #[error(
        "a change in slot {slot} is not after the change in effect from slot {in_effect_from}"
    )]
    NotAfter {
        /// The slot of the new change.
        slot: u64,
        /// The first slot the current configuration governs.
        in_effect_from: u64,
    },
    /// The change does not apply to the current configuration.
    #[error(transparent)]
    Change(#[from] ChangeError),
}

/// Which configuration governs each Multi-Paxos slot: the initial one from slot 0, and each
/// executed change from the slot after its own (docs/design.md#membership).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigSchedule {
    /// `(first slot governed, configuration)`, in slot and epoch order.
    entries: Vec<(u64, Configuration)>,
}

impl ConfigSchedule {
    /// Only `initial`, from slot 0.
    pub fn new(initial: Configuration) -> Self {
        Self {
            entries: vec![(0, initial)],
        }
    }

    /// The newest configuration.
    pub fn current(&self) -> &Configuration {
        &self.last().1
    }

    /// The configuration that governs `slot`.
    pub fn at_slot(&self, slot: u64) -> &Configuration {
        let after = self.entries.partition_point(|(first, _)| *first <= slot);
        // entries[0] starts at slot 0, so `after >= 1`.
        &self.entries[after.saturating_sub(1)].1
    }

    /// A change was chosen and executed in `slot`: it governs slots from `slot + 1`.
    pub fn record(
        &mut self,
        slot: u64,
        proposed: &ProposedChange,
    ) -> Result<&Configuration, ScheduleError> {
        let in_effect_from = self.last().0;
        if slot.saturating_add(1) <= in_effect_from {
            return Err(ScheduleError::NotAfter {
                slot,
                in_effect_from,
            });
        }
        let next = self.current().apply(proposed)?;
        self.entries.push((slot + 1, next));
        Ok(self.current())
    }

    /// Forget configurations that govern only slots below `floor` (compaction), keeping the
    /// one that governs `floor`.
    pub fn forget_below(&mut self, floor: u64) {
        let keep_from = self
            .entries
            .partition_point(|(first, _)| *first <= floor)
            .saturating_sub(1);
        self.entries.drain(..keep_from);
    }

    /// The stall rule: a leader may propose in `slot` only if no change proposed in an
    /// earlier slot is still unchosen (`unchosen_change` is the slot of such a change).
    pub fn may_propose(slot: u64, unchosen_change: Option<u64>) -> bool {
        unchosen_change.is_none_or(|change| slot <= change)
    }

    fn last(&self) -> &(u64, Configuration) {
        // Never empty: `new` puts one entry and `forget_below` keeps one.
        &self.entries[self.entries.len() - 1]
    }
}

#[cfg(test)]
#[path = "configuration_test.rs"]
mod tests;
