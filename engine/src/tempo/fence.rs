//! The rejoin fence (docs/design.md#tempo-rejoin-rule): what a replica that lost its
//! disk may vote on, its own epoch, and the epochs of peers that rejoined. A value
//! type: it imports nothing of the folder but `dots.rs`.

use super::dots::{epoch_base, Dot};
use crate::id::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How far a replica got in rejoining after a lost disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Stage {
    /// Never lost its disk (or the rule is switched off): votes and proposes.
    #[default]
    Voter,
    /// Lost its disk: asks every peer for the epochs it knows of; votes on nothing.
    Querying,
    /// Chose its epoch: every peer fences the former selves and answers with its
    /// state; votes on nothing, proposes nothing.
    Fetching,
    /// Every peer answered: votes per the bounds, proposes in its epoch.
    Rejoined,
    /// Fetching the members' state with its own records intact (removed and added
    /// again, or left behind by their collection): asks for epochs as `Querying` does,
    /// and votes as it did before (it knows every vote it gave).
    QueryingWithRecords,
    /// `Fetching`, with its own records intact (see `QueryingWithRecords`).
    FetchingWithRecords,
}

impl Stage {
    /// The first phase of a rejoin; `with_records`: this replica holds the record of
    /// every vote it gave since its last lost disk.
    pub fn querying(with_records: bool) -> Self {
        if with_records {
            Self::QueryingWithRecords
        } else {
            Self::Querying
        }
    }

    /// The same rejoin, past its first phase.
    pub fn fetching(self) -> Self {
        match self {
            Self::QueryingWithRecords => Self::FetchingWithRecords,
            _ => Self::Fetching,
        }
    }

    /// Asking peers for the epochs they know of.
    pub fn is_querying(self) -> bool {
        matches!(self, Self::Querying | Self::QueryingWithRecords)
    }

    /// Fetching every peer's answer.
    pub fn is_fetching(self) -> bool {
        matches!(self, Self::Fetching | Self::FetchingWithRecords)
    }

    /// Whether this replica holds the record of every vote it gave since its last lost
    /// disk (a rejoin after a lost disk does not, until it is over).
    pub fn keeps_records(self) -> bool {
        !matches!(self, Self::Querying | Self::Fetching)
    }
}

/// The durable fence of a replica (see the module doc).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fence {
    /// Where this replica is in rejoining.
    pub stage: Stage,
    /// This replica's epoch (0 if it never rejoined): its commands are numbered above
    /// `epoch << EPOCH_BITS`, and peers ignore promises and reports of earlier epochs.
    pub epoch: u64,
    /// Whether the executor lacks a complete state (from a lost disk until a peer's
    /// state is installed; commits are recorded, not executed, meanwhile).
    pub lost_state: bool,
    /// Per coordinator, the first sequence number this replica votes on, set when a
    /// rejoin after a lost disk ends (empty until then: it votes on everything). A
    /// rejoin with its records intact leaves them as they were.
    pub bounds: BTreeMap<NodeId, u64>,
    /// Per peer that rejoined, the epoch fenced here: its promises and reports of
    /// earlier epochs are ignored.
    pub starts: BTreeMap<NodeId, u64>,
    /// While rejoining, who must answer: the members of the newest configuration a peer
    /// named, with that configuration's epoch (`None`: every replica of the cluster).
    pub answerers: Option<(u64, Vec<NodeId>)>,
}

impl Fence {
    /// Whether this replica may vote on `dot` (propose for it, accept, promise a
    /// ballot), its own answers as coordinator or recoverer included.
    pub fn may_vote(&self, dot: Dot) -> bool {
        if self.votes_on_everything() {
            return true;
        }
        match self.stage {
            Stage::Querying | Stage::Fetching => false,
            _ => self.within_bounds(dot),
        }
    }

    /// A voter that never lost its disk, or one rejoining with those records intact (it
    /// never took bounds): no bound holds its votes back.
    pub fn votes_on_everything(&self) -> bool {
        match self.stage {
            Stage::Voter => true,
            Stage::QueryingWithRecords | Stage::FetchingWithRecords => self.bounds.is_empty(),
            Stage::Querying | Stage::Fetching | Stage::Rejoined => false,
        }
    }

    fn within_bounds(&self, dot: Dot) -> bool {
        self.bounds
            .get(&dot.node)
            .is_some_and(|&bound| dot.seq >= bound)
    }

    /// A peer fenced here rejoins in `epoch` (a spare joining included): its commands of
    /// that epoch come after every former self of this replica was gone. A replica that
    /// votes per bounds and has none for the peer (it joined the cluster after this
    /// replica's own rejoin) votes on them from now on; without a bound it never would.
    pub fn admit_votes_from(&mut self, peer: NodeId, epoch: u64) {
        if !self.votes_on_everything() {
            self.bounds
                .entry(peer)
                .or_insert(epoch_base(epoch).saturating_add(1));
        }
    }

    /// Whether this replica may take new commands and announce promises.
    pub fn may_propose(&self) -> bool {
        matches!(self.stage, Stage::Voter | Stage::Rejoined)
    }

    /// Whether the executor holds a complete state (commits execute).
    pub fn executes(&self) -> bool {
        !self.lost_state
    }

    /// Whether promises or reports of `node` in `epoch` count here.
    pub fn current(&self, node: NodeId, epoch: u64) -> bool {
        epoch >= self.starts.get(&node).copied().unwrap_or(0)
    }

    /// The first own sequence number of this epoch.
    pub fn own_start(&self) -> u64 {
        epoch_base(self.epoch).saturating_add(1)
    }
}
