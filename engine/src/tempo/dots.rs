//! Sets of commands by coordinator: a contiguous prefix per coordinator plus what lies
//! above it.

use super::messages::Dot;
use crate::id::NodeId;
use std::collections::{BTreeMap, BTreeSet};

/// A set of [`Dot`]s kept as per-coordinator prefixes and the dots above them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DotSet {
    prefix: BTreeMap<NodeId, u64>,
    above: BTreeSet<Dot>,
}

impl DotSet {
    /// Whether `dot` is in the set.
    pub fn contains(&self, dot: Dot) -> bool {
        dot.seq <= self.prefix(dot.node) || self.above.contains(&dot)
    }

    /// Every seq of `node` up to this one is in the set.
    pub fn prefix(&self, node: NodeId) -> u64 {
        self.prefix.get(&node).copied().unwrap_or(0)
    }

    /// Every coordinator's prefix.
    pub fn prefixes(&self) -> Vec<(NodeId, u64)> {
        self.prefix.iter().map(|(&n, &s)| (n, s)).collect()
    }

    /// Add `dot`; false if it was there.
    pub fn insert(&mut self, dot: Dot) -> bool {
        if self.contains(dot) {
            return false;
        }
        self.above.insert(dot);
        let mut next = Dot {
            node: dot.node,
            seq: self.prefix(dot.node) + 1,
        };
        while self.above.remove(&next) {
            self.prefix.insert(dot.node, next.seq);
            next.seq += 1;
        }
        true
    }

    /// Add every seq of `node` up to `seq`.
    pub fn extend_prefix(&mut self, node: NodeId, seq: u64) {
        if seq <= self.prefix(node) {
            return;
        }
        self.prefix.insert(node, seq);
        self.above.retain(|d| d.node != node || d.seq > seq);
        let mut next = Dot { node, seq: seq + 1 };
        while self.above.remove(&next) {
            self.prefix.insert(node, next.seq);
            next.seq += 1;
        }
    }
}
