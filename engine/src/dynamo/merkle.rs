//! Merkle trees over each range's keys, for anti-entropy.
//!
//! ```text
//!  level 0            root                       hash(children)
//!  level 1   h0   h1  ...  h15                   hash(children)
//!  level 2   leaves: fanout^depth buckets        XOR of entry(key, digest(object))
//! ```
//! A key falls in the leaf `hash(key) mod leaves` of its range. Leaves are sets hashed
//! by XOR of per-key entry hashes, so a write updates its leaf in O(1) (XOR the old entry
//! out, the new one in); inner levels are recomputed from the leaves on demand (256
//! leaves by default: cheap). Two replicas of a range compare top-down and exchange only
//! the keys of leaves that differ (see `anti_entropy`).

use crate::dynamo::hash::{hash_bytes, mix2, Hasher64};
use crate::dynamo::ring::RangeId;
use std::collections::BTreeMap;

const LEAF_SALT: u64 = 0x6d65_726b_6c65_2121;
const MAX_LEAVES: u64 = 1 << 16;

/// Incrementally maintained leaves of every range's tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerkleIndex {
    fanout: u32,
    depth: u8,
    leaves: BTreeMap<RangeId, Vec<u64>>,
}

impl MerkleIndex {
    /// Trees with `fanout` children per node and `depth` levels below the root (clamped
    /// to at most 65,536 leaves).
    pub fn new(fanout: u32, depth: u8) -> Self {
        let fanout = fanout.clamp(2, 256);
        let mut depth = depth.max(1);
        while u64::from(fanout).pow(u32::from(depth)) > MAX_LEAVES {
            depth -= 1;
        }
        Self {
            fanout,
            depth,
            leaves: BTreeMap::new(),
        }
    }

    /// Levels below the root; leaves are at this level.
    pub fn depth(&self) -> u8 {
        self.depth
    }

    /// Nodes at `level` (0 = the root alone).
    pub fn width(&self, level: u8) -> u32 {
        self.fanout.pow(u32::from(level.min(self.depth)))
    }

    /// The leaf holding `key`.
    pub fn leaf_of(&self, key: &[u8]) -> u32 {
        (mix2(hash_bytes(key), LEAF_SALT) % u64::from(self.width(self.depth))) as u32
    }

    /// A key's object digest changed from `old` to `new` (`None` = absent).
    pub fn update(&mut self, range: RangeId, key: &[u8], old: Option<u64>, new: Option<u64>) {
        if old == new {
            return;
        }
        let width = self.width(self.depth) as usize;
        let leaf = self.leaf_of(key) as usize;
        let key_hash = hash_bytes(key);
        let leaves = self.leaves.entry(range).or_insert_with(|| vec![0; width]);
        for digest in [old, new].into_iter().flatten() {
            leaves[leaf] ^= mix2(key_hash, digest);
        }
    }

    /// Every hash at `level` of `range`'s tree.
    pub fn level(&self, range: RangeId, level: u8) -> Vec<u64> {
        let width = self.width(self.depth) as usize;
        let mut current = self
            .leaves
            .get(&range)
            .cloned()
            .unwrap_or_else(|| vec![0; width]);
        let mut at = self.depth;
        while at > level.min(self.depth) {
            current = current
                .chunks(self.fanout as usize)
                .map(|children| {
                    let mut h = Hasher64::default();
                    for c in children {
                        h.u64(*c);
                    }
                    h.finish()
                })
                .collect();
            at -= 1;
        }
        current
    }

    /// This tree's hashes of `indices` at `level` (unknown indices are skipped).
    pub fn hashes(&self, range: RangeId, level: u8, indices: &[u32]) -> Vec<(u32, u64)> {
        let all = self.level(range, level);
        indices
            .iter()
            .filter_map(|&i| all.get(i as usize).map(|&h| (i, h)))
            .collect()
    }

    /// Indices of `theirs` whose hash differs from this tree's at `level`.
    pub fn differing(&self, range: RangeId, level: u8, theirs: &[(u32, u64)]) -> Vec<u32> {
        let all = self.level(range, level);
        theirs
            .iter()
            .filter(|(i, h)| all.get(*i as usize).is_some_and(|ours| ours != h))
            .map(|(i, _)| *i)
            .collect()
    }

    /// Children of node `index` (at some level), as indices one level down.
    pub fn children(&self, index: u32) -> impl Iterator<Item = u32> {
        let first = index.saturating_mul(self.fanout);
        first..first.saturating_add(self.fanout)
    }
}

#[cfg(test)]
#[path = "merkle_test.rs"]
mod tests;
