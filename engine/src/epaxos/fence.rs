//! The rejoin fence (docs/design.md#epaxos-rejoin-rule): what a replica that lost its
//! disk may vote on, and where its own new instances start. A value type: nothing here
//! imports another file of the folder but `instance.rs`.

use super::instance::InstanceId;
use crate::id::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How far a replica got in rejoining after a lost disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Stage {
    /// Never lost its disk (or the rule is switched off), or rejoined with nothing to
    /// fence (a spare that never voted, or its records intact): votes on everything.
    #[default]
    Voter,
    /// Lost its disk: asks every peer for its bound and state; votes on nothing.
    Querying,
    /// Every peer answered: votes per the bounds; tells the peers its own start and
    /// proposes nothing until every one has recorded it.
    Announcing,
    /// Rejoined: votes per the bounds, proposes from its own start.
    Rejoined,
    /// As `Announcing`, for a replica with nothing to fence (a spare that never voted):
    /// once every peer recorded its start it votes on everything (`Voter`). Durable, so
    /// that a restart before that finishes the same announcement instead of fetching
    /// anew, by when the peers may know it as a member and ask for a margin (t18 seed
    /// 6145). Last, so that logs written before it decode unchanged.
    AnnouncingUnfenced,
}

impl Stage {
    /// Whether a rejoin is under way: fetching the peers' state or announcing the start.
    pub fn rejoining(self) -> bool {
        matches!(
            self,
            Stage::Querying | Stage::Announcing | Stage::AnnouncingUnfenced
        )
    }
}

/// The durable fence of a replica (see the module doc), and the starts of peers that
/// rejoined (kept so that their next rejoin starts above this one).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fence {
    /// Where this replica is in rejoining.
    pub stage: Stage,
    /// Whether the executor holds a complete state: false from a lost disk until a
    /// peer's snapshot is installed (commits are recorded, not executed, meanwhile).
    pub lost_state: bool,
    /// Per command leader (this replica included: its own start), the first slot this
    /// replica votes on; it votes on no instance of a leader missing here.
    pub bounds: BTreeMap<NodeId, u64>,
    /// Per peer that rejoined, the start of its own instances it announced.
    pub starts: BTreeMap<NodeId, u64>,
}

impl Fence {
    /// Whether this replica may vote on (PreAccept, Accept, promise, TryPreAccept) `id`,
    /// its own reply as leader or recoverer included.
    pub fn may_vote(&self, id: InstanceId) -> bool {
        match self.stage {
            Stage::Voter => true,
            Stage::Querying => false,
            Stage::Announcing | Stage::AnnouncingUnfenced | Stage::Rejoined => self
                .bounds
                .get(&id.leader)
                .is_some_and(|&bound| id.slot >= bound),
        }
    }

    /// Whether this replica may propose new own instances.
    pub fn may_propose(&self) -> bool {
        matches!(self.stage, Stage::Voter | Stage::Rejoined)
    }

    /// Whether the executor holds a complete state (commits execute).
    pub fn executes(&self) -> bool {
        !self.lost_state
    }

    /// The first slot of `me`'s own instances in this incarnation (0 for a replica that
    /// never lost its disk).
    pub fn own_start(&self, me: NodeId) -> u64 {
        match self.stage {
            Stage::Voter => 0,
            _ => self.bounds.get(&me).copied().unwrap_or(0),
        }
    }
}
