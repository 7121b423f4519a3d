//! The versioned ring: who is a member, in which region, and whether it is joining,
//! leaving or a normal owner (docs/design.md#dynamo-membership).
//!
//! ```text
//!  epoch e   Normal{a,b,c}                       read ring = write ring = {a,b,c}
//!  AddLearner(j) ─▶ e+1  Normal{a,b,c} Joining{j}   read {a,b,c}   write {a,b,c,j}
//!  j bootstrapped ─▶ e+2  Normal{a,b,c,j}           (j promotes itself)
//!  Remove(a)     ─▶ e+3  Leaving{a} Normal{b,c,j}  read {a,b,c,j} write {b,c,j}
//!  a drained     ─▶ e+4  Normal{b,c,j}              (a removes itself)
//! ```
//! Reads use the read ring (the owners before the move); writes go to the owners of both
//! rings and must meet their level in each (see `write`). At most one member is joining or
//! leaving at a time: a change is refused while another moves ranges.
//!
//! States spread by gossip (the heartbeat carries the state once it has ever changed); a
//! node adopts a state that is newer: higher epoch, ties broken by digest, so two changes
//! made concurrently at different replicas from the same epoch converge on one of them
//! everywhere (the other is lost and its operator times out: one change at a time).

use crate::configuration::{Change, ChangeError, ChangeFailure, ConfigMember, Configuration, Role};
use crate::dynamo::hash::Hasher64;
use crate::id::NodeId;
use crate::protocol::{Member, Membership};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// Where a member stands in a range movement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MemberStatus {
    /// Owns its ranges.
    Normal,
    /// Bootstrapping: receives writes for the ranges it will own, serves no read yet.
    Joining,
    /// Streaming its ranges away: still serves reads, no longer owns in the next ring.
    Leaving,
}

impl MemberStatus {
    /// `normal`, `joining` or `leaving`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Joining => "joining",
            Self::Leaving => "leaving",
        }
    }
}

/// One member of the ring.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RingMember {
    /// Its id.
    pub id: NodeId,
    /// Its region.
    pub region: String,
    /// Normal, joining or leaving.
    pub status: MemberStatus,
}

/// One epoch of the ring's membership, members in id order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingState {
    epoch: u64,
    members: Vec<RingMember>,
}

impl RingState {
    /// Epoch 0: the members of `cluster` named in `initial` (all when empty), all normal.
    pub fn initial(cluster: &Membership, initial: &[NodeId]) -> Self {
        let mut members: Vec<RingMember> = cluster
            .members
            .iter()
            .filter(|m| initial.is_empty() || initial.contains(&m.id))
            .map(|m| RingMember {
                id: m.id,
                region: m.region.clone(),
                status: MemberStatus::Normal,
            })
            .collect();
        members.sort();
        members.dedup_by_key(|m| m.id);
        Self { epoch: 0, members }
    }

    /// This state's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Every member in id order.
    pub fn members(&self) -> &[RingMember] {
        &self.members
    }

    /// The status of `id`, if it is a member.
    pub fn status_of(&self, id: NodeId) -> Option<MemberStatus> {
        self.member(id).map(|m| m.status)
    }

    /// Whether `id` is a member (in any status).
    pub fn contains(&self, id: NodeId) -> bool {
        self.member(id).is_some()
    }

    /// The region of a member.
    pub fn region_of(&self, id: NodeId) -> Option<&str> {
        self.member(id).map(|m| m.region.as_str())
    }

    /// Whether a member is joining or leaving (ranges are moving).
    pub fn in_transition(&self) -> bool {
        self.members
            .iter()
            .any(|m| m.status != MemberStatus::Normal)
    }

    /// The owners that serve reads: normal and leaving members.
    pub fn read_membership(&self) -> Membership {
        self.membership(|s| s != MemberStatus::Joining)
    }

    /// The owners after the move: normal and joining members.
    pub fn write_membership(&self) -> Membership {
        self.membership(|s| s != MemberStatus::Leaving)
    }

    /// A digest of the whole state (the tie-break between states of one epoch).
    pub fn digest(&self) -> u64 {
        let mut hasher = Hasher64::default();
        hasher.u64(self.epoch);
        for m in &self.members {
            hasher
                .u64(u64::from(m.id.0))
                .field(m.region.as_bytes())
                .u64(m.status as u64);
        }
        hasher.finish()
    }

    /// Whether this state supersedes `other`: a higher epoch, or the same epoch and a
    /// higher digest.
    pub fn is_newer_than(&self, other: &Self) -> bool {
        match self.epoch.cmp(&other.epoch) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => self.digest() > other.digest() && self != other,
        }
    }

    /// The state after an operator's change. `Promote` is not an operator's to make: a
    /// joining member promotes itself once bootstrapped ([`RingState::finish_join`]).
    pub fn apply(&self, change: &Change) -> Result<Self, ChangeFailure> {
        let mut next = self.clone();
        match change {
            Change::AddLearner(member) => {
                if self.contains(member.id) {
                    return Err(ChangeError::AlreadyMember(member.id).into());
                }
                self.check_idle()?;
                next.members.push(RingMember {
                    id: member.id,
                    region: member.region.clone(),
                    status: MemberStatus::Joining,
                });
                next.members.sort();
            }
            Change::Remove(id) => match self.status_of(*id) {
                None => return Err(ChangeError::NotMember(*id).into()),
                Some(MemberStatus::Leaving) => return Ok(next),
                Some(MemberStatus::Joining) => next.members.retain(|m| m.id != *id),
                Some(MemberStatus::Normal) => {
                    self.check_idle()?;
                    let normal = self
                        .members
                        .iter()
                        .filter(|m| m.status == MemberStatus::Normal)
                        .count();
                    if normal <= 1 {
                        return Err(ChangeError::LastVoter(*id).into());
                    }
                    next.set_status(*id, MemberStatus::Leaving);
                }
            },
            Change::Promote(id) => match self.status_of(*id) {
                None => return Err(ChangeError::NotMember(*id).into()),
                Some(_) => return Err(ChangeError::NotLearner(*id).into()),
            },
        }
        next.epoch += 1;
        Ok(next)
    }

    /// `id` finished bootstrapping: it becomes a normal owner (no change if it is not
    /// joining).
    pub fn finish_join(&self, id: NodeId) -> Option<Self> {
        (self.status_of(id) == Some(MemberStatus::Joining)).then(|| {
            let mut next = self.clone();
            next.set_status(id, MemberStatus::Normal);
            next.epoch += 1;
            next
        })
    }

    /// `id` streamed everything it held to the next owners: it leaves the ring (no change
    /// if it is not leaving).
    pub fn finish_leave(&self, id: NodeId) -> Option<Self> {
        (self.status_of(id) == Some(MemberStatus::Leaving)).then(|| {
            let mut next = self.clone();
            next.members.retain(|m| m.id != id);
            next.epoch += 1;
            next
        })
    }

    /// The operator's view: normal and leaving members vote (own ranges for reads),
    /// joining ones are learners.
    pub fn to_configuration(&self) -> Configuration {
        let members = self
            .members
            .iter()
            .map(|m| ConfigMember {
                id: m.id,
                region: m.region.clone(),
                role: if m.status == MemberStatus::Joining {
                    Role::Learner
                } else {
                    Role::Voter
                },
            })
            .collect();
        Configuration::from_parts(self.epoch, members)
    }

    /// A change must wait while another one moves ranges.
    fn check_idle(&self) -> Result<(), ChangeFailure> {
        match self
            .members
            .iter()
            .find(|m| m.status != MemberStatus::Normal)
        {
            None => Ok(()),
            Some(m) => Err(ChangeFailure::Refused(format!(
                "node {} is {} (ring epoch {}): one range movement at a time; retry once it \
                 finished",
                m.id.0,
                m.status.as_str(),
                self.epoch
            ))),
        }
    }

    fn membership(&self, keep: impl Fn(MemberStatus) -> bool) -> Membership {
        Membership {
            members: self
                .members
                .iter()
                .filter(|m| keep(m.status))
                .map(|m| Member {
                    id: m.id,
                    region: m.region.clone(),
                })
                .collect(),
            rtt_us: Vec::new(),
        }
    }

    fn set_status(&mut self, id: NodeId, status: MemberStatus) {
        if let Some(m) = self.members.iter_mut().find(|m| m.id == id) {
            m.status = status;
        }
    }

    fn member(&self, id: NodeId) -> Option<&RingMember> {
        self.members.iter().find(|m| m.id == id)
    }
}

#[cfg(test)]
#[path = "ring_state_test.rs"]
mod tests;
