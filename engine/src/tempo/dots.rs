//! Sets of commands by coordinator: a contiguous prefix per coordinator and epoch plus
//! what lies above it.
//!
//! A coordinator's sequence numbers are split into epochs of `2^EPOCH_BITS`: a replica
//! that never lost its disk numbers its commands from 1 in epoch 0; one that rejoined
//! after a lost disk starts a new epoch above every one its former selves used
//! (docs/design.md#tempo-rejoin-rule), so its new commands never reuse a number its
//! former self may have used. Numbers its former self never used stay missing, so a
//! prefix is kept per epoch: the gap holds back only the old epoch. A leaf: it imports
//! nothing of the folder.

use crate::id::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Bits of a sequence number below its epoch.
pub const EPOCH_BITS: u32 = 40;

/// The epoch of sequence number `seq`.
pub fn epoch_of(seq: u64) -> u64 {
    seq >> EPOCH_BITS
}

/// The last sequence number before epoch `epoch` starts (its commands count from one
/// above).
pub fn epoch_base(epoch: u64) -> u64 {
    epoch.saturating_mul(1 << EPOCH_BITS)
}

/// A command's identity: its coordinator and the coordinator's sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// The replica that coordinates it (received it from a client).
    pub node: NodeId,
    /// The coordinator's sequence number, from 1.
    pub seq: u64,
}

impl Dot {
    /// The lowest dot (a bound for ranges over `(timestamp, dot)`).
    pub const MIN: Self = Self {
        node: NodeId(0),
        seq: 0,
    };
    /// The highest dot (a bound for ranges over `(timestamp, dot)`).
    pub const MAX: Self = Self {
        node: NodeId(u16::MAX),
        seq: u64::MAX,
    };
}

/// A set of [`Dot`]s kept as per-coordinator, per-epoch prefixes and the dots above
/// them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DotSet {
    /// `(coordinator, epoch)` to the highest seq with every seq of the epoch up to it in
    /// the set.
    prefix: BTreeMap<(NodeId, u64), u64>,
    above: BTreeSet<Dot>,
}

impl DotSet {
    /// Whether `dot` is in the set.
    pub fn contains(&self, dot: Dot) -> bool {
        dot.seq <= self.prefix_at(dot.node, epoch_of(dot.seq)) || self.above.contains(&dot)
    }

    /// Every seq of `node`'s epoch `epoch` up to this one is in the set.
    pub fn prefix_at(&self, node: NodeId, epoch: u64) -> u64 {
        self.prefix
            .get(&(node, epoch))
            .copied()
            .unwrap_or_else(|| epoch_base(epoch))
    }

    /// Every coordinator's prefix per epoch, as `(coordinator, seq)` (the epoch is the
    /// seq's).
    pub fn prefixes(&self) -> Vec<(NodeId, u64)> {
        self.prefix.iter().map(|(&(n, _), &s)| (n, s)).collect()
    }

    /// The highest seq of `node` in the set (0 for none).
    pub fn highest(&self, node: NodeId) -> u64 {
        let prefix = self
            .prefix
            .iter()
            .filter(|((n, _), _)| *n == node)
            .map(|(_, &s)| s)
            .max()
            .unwrap_or(0);
        let above = self
            .above
            .iter()
            .filter(|d| d.node == node)
            .map(|d| d.seq)
            .max()
            .unwrap_or(0);
        prefix.max(above)
    }

    /// Add `dot`; false if it was there.
    pub fn insert(&mut self, dot: Dot) -> bool {
        if self.contains(dot) {
            return false;
        }
        self.above.insert(dot);
        self.advance(dot.node, epoch_of(dot.seq));
        true
    }

    /// Add every seq of `node` in the epoch of `seq` up to `seq`.
    pub fn extend_prefix(&mut self, node: NodeId, seq: u64) {
        let epoch = epoch_of(seq);
        if seq <= self.prefix_at(node, epoch) {
            return;
        }
        self.prefix.insert((node, epoch), seq);
        let base = epoch_base(epoch);
        self.above
            .retain(|d| d.node != node || d.seq > seq || d.seq <= base);
        self.advance(node, epoch);
    }

    /// Move the prefix of `(node, epoch)` over the dots above it that follow on.
    fn advance(&mut self, node: NodeId, epoch: u64) {
        let mut next = Dot {
            node,
            seq: self.prefix_at(node, epoch).saturating_add(1),
        };
        while epoch_of(next.seq) == epoch && self.above.remove(&next) {
            self.prefix.insert((node, epoch), next.seq);
            if next.seq == u64::MAX {
                break;
            }
            next.seq += 1;
        }
    }
}
