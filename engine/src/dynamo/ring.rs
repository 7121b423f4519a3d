//! Consistent-hash ring with virtual nodes and region-aware preference lists.
//!
//! ```text
//!   token(node, v) = hash("node/v")          key position = hash(key)
//!   ──●──────●────────●──────●─────●──▶ (wraps)   a key belongs to the segment ending at
//!     n2     n0  key→ n1     n2    n0             the first token at or after its position
//! ```
//! Each member owns `vnodes` tokens. A segment's preference list is the first `N` distinct
//! nodes met walking clockwise from its token, taking first only nodes of regions not yet
//! represented (so `N` replicas spread over `min(N, regions)` regions), then any distinct
//! node. Segments with the same preference list form one *range*: the unit of Merkle
//! anti-entropy and of dropped-hint bookkeeping. The nodes after the preference list, in
//! walk order, are the range's fallback candidates for sloppy quorums.
//!
//! Hashing is FNV-1a + splitmix (see `hash`), so every node builds the same ring.

use crate::dynamo::hash::{hash_bytes, mix2};
use crate::id::NodeId;
use crate::protocol::Membership;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A set of ring segments sharing one preference list.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct RangeId(pub u32);

impl fmt::Display for RangeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct RangeInfo {
    /// The `N` owners, in placement order.
    preference: Vec<NodeId>,
    /// Every other node, in ring-walk order from the range's first segment.
    fallbacks: Vec<NodeId>,
}

/// The ring: tokens, ranges and member regions. Immutable once built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ring {
    replicas: usize,
    /// `(token, owner)` sorted by token.
    tokens: Vec<(u64, NodeId)>,
    /// Range of the segment ending at `tokens[i]`.
    segment_range: Vec<RangeId>,
    ranges: Vec<RangeInfo>,
    regions: BTreeMap<NodeId, String>,
}

/// Where a key sits on the ring.
pub fn key_position(key: &[u8]) -> u64 {
    hash_bytes(key)
}

impl Ring {
    /// Build the ring of `cluster` with `vnodes` tokens per member and `replicas` owners per
    /// key (capped at the cluster size, at least 1).
    pub fn new(cluster: &Membership, vnodes: usize, replicas: usize) -> Self {
        let replicas = replicas.clamp(1, cluster.len().max(1));
        let regions: BTreeMap<NodeId, String> = cluster
            .members
            .iter()
            .map(|m| (m.id, m.region.clone()))
            .collect();
        let mut tokens: Vec<(u64, NodeId)> = cluster
            .ids()
            .flat_map(|id| {
                (0..vnodes.max(1) as u64).map(move |v| {
                    (
                        mix2(hash_bytes(b"meridian-ring"), (u64::from(id.0) << 32) | v),
                        id,
                    )
                })
            })
            .collect();
        tokens.sort();
        tokens.dedup_by_key(|(t, _)| *t);
        let region_count = regions.values().collect::<BTreeSet<_>>().len();
        let mut by_preference: BTreeMap<Vec<NodeId>, RangeId> = BTreeMap::new();
        let mut ranges = Vec::new();
        let mut segment_range = Vec::with_capacity(tokens.len());
        for start in 0..tokens.len() {
            let walk = walk_from(&tokens, start);
            let preference = place(&walk, &regions, region_count, replicas);
            let id = *by_preference.entry(preference.clone()).or_insert_with(|| {
                let fallbacks = walk
                    .iter()
                    .copied()
                    .filter(|n| !preference.contains(n))
                    .collect();
                ranges.push(RangeInfo {
                    preference,
                    fallbacks,
                });
                RangeId((ranges.len() - 1) as u32)
            });
            segment_range.push(id);
        }
        Self {
            replicas,
            tokens,
            segment_range,
            ranges,
            regions,
        }
    }

    /// Owners per key (`N`).
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    /// Number of ranges.
    pub fn range_count(&self) -> usize {
        self.ranges.len()
    }

    /// Every range id.
    pub fn ranges(&self) -> impl Iterator<Item = RangeId> {
        (0..self.ranges.len() as u32).map(RangeId)
    }

    /// The range a key belongs to.
    pub fn range_of(&self, key: &[u8]) -> RangeId {
        let position = key_position(key);
        let index = self.tokens.partition_point(|(t, _)| *t < position);
        let index = if index == self.tokens.len() { 0 } else { index };
        self.segment_range.get(index).copied().unwrap_or_default()
    }

    /// The `N` owners of a range, in placement order (empty for an unknown range).
    pub fn preference(&self, range: RangeId) -> &[NodeId] {
        self.ranges
            .get(range.0 as usize)
            .map_or(&[], |r| r.preference.as_slice())
    }

    /// The owners of `key`.
    pub fn preference_for(&self, key: &[u8]) -> &[NodeId] {
        self.preference(self.range_of(key))
    }

    /// Non-owners of a range in ring-walk order: where sloppy writes go.
    pub fn fallbacks(&self, range: RangeId) -> &[NodeId] {
        self.ranges
            .get(range.0 as usize)
            .map_or(&[], |r| r.fallbacks.as_slice())
    }

    /// Whether `node` owns `range`.
    pub fn is_primary(&self, node: NodeId, range: RangeId) -> bool {
        self.preference(range).contains(&node)
    }

    /// The ranges `node` owns.
    pub fn ranges_of(&self, node: NodeId) -> Vec<RangeId> {
        self.ranges()
            .filter(|&r| self.is_primary(node, r))
            .collect()
    }

    /// Every member of the ring, in id order.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.regions.keys().copied()
    }

    /// A member's region ("" for a non-member).
    pub fn region_of(&self, node: NodeId) -> &str {
        self.regions.get(&node).map_or("", String::as_str)
    }

    /// The fallback that stands in for `owner` of `range`: the first candidate in walk
    /// order that `usable` accepts and that is not in `taken`, preferring the owner's
    /// region.
    pub fn fallback_for(
        &self,
        range: RangeId,
        owner: NodeId,
        taken: &BTreeSet<NodeId>,
        usable: impl Fn(NodeId) -> bool,
    ) -> Option<NodeId> {
        let region = self.region_of(owner);
        let candidates = || {
            self.fallbacks(range)
                .iter()
                .copied()
                .filter(|n| !taken.contains(n) && usable(*n))
        };
        let same_region = candidates().find(|&n| self.region_of(n) == region);
        same_region.or_else(|| candidates().next())
    }
}

/// Distinct nodes in clockwise order starting at segment `start`.
fn walk_from(tokens: &[(u64, NodeId)], start: usize) -> Vec<NodeId> {
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    for i in 0..tokens.len() {
        let node = tokens[(start + i) % tokens.len()].1;
        if seen.insert(node) {
            order.push(node);
        }
    }
    order
}

/// Region-aware placement: new regions first, then any distinct node.
fn place(
    walk: &[NodeId],
    regions: &BTreeMap<NodeId, String>,
    region_count: usize,
    replicas: usize,
) -> Vec<NodeId> {
    let region = |n: &NodeId| regions.get(n).map_or("", String::as_str);
    let mut chosen: Vec<NodeId> = Vec::with_capacity(replicas);
    let mut used_regions: BTreeSet<&str> = BTreeSet::new();
    for node in walk {
        if chosen.len() == replicas || used_regions.len() == region_count {
            break;
        }
        if used_regions.insert(region(node)) {
            chosen.push(*node);
        }
    }
    for node in walk {
        if chosen.len() == replicas {
            break;
        }
        if !chosen.contains(node) {
            chosen.push(*node);
        }
    }
    chosen
}
