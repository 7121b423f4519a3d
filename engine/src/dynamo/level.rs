//! Consistency-level arithmetic: what a level needs from a key's owners, and whether the
//! answers so far meet it.
//!
//! A level becomes a [`Requirement`]: a count of distinct owners from anywhere
//! (`ONE`..`ALL`, explicit R/W, `SESSION`) and/or a count per region (`LOCAL_*` for the
//! coordinator's region, `EACH_QUORUM` for every region holding an owner). Answers are
//! counted per *owner*: a primary counts for itself; in a sloppy request a fallback
//! counts for the owner its hint names, never in a strict one. A level that the key's
//! placement can never satisfy (e.g. `THREE` with `N = 2`, `LOCAL_ONE` in a region with no
//! owner) fails at once with `Unavailable`: levels are never silently downgraded.

use crate::id::NodeId;
use crate::quorum::majority;
use crate::request::{Level, RequestError};
use std::collections::{BTreeMap, BTreeSet};

/// Whether a request reads or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Get.
    Read,
    /// Put or delete.
    Write,
}

/// What a level needs from one key's owners.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    level: Level,
    /// Distinct owners needed from any region.
    pub total: usize,
    /// Distinct owners needed per region.
    pub per_region: BTreeMap<String, usize>,
    /// The key's owners and their regions.
    owners: BTreeMap<NodeId, String>,
}

impl Requirement {
    /// Translate `level` for `op` on a key owned by `preference`, coordinated from
    /// `local_region`.
    pub fn new(
        level: Level,
        op: Op,
        preference: &[NodeId],
        region_of: impl Fn(NodeId) -> String,
        local_region: &str,
    ) -> Result<Self, RequestError> {
        let owners: BTreeMap<NodeId, String> =
            preference.iter().map(|&n| (n, region_of(n))).collect();
        let n = owners.len();
        let in_region = |region: &str| owners.values().filter(|r| *r == region).count();
        let mut per_region = BTreeMap::new();
        let total = match level {
            Level::One | Level::Session => 1,
            Level::Two => 2,
            Level::Three => 3,
            Level::Quorum => majority(n),
            Level::All => n,
            Level::Explicit { r, w } => {
                let (count, name) = match op {
                    Op::Read => (r, "R"),
                    Op::Write => (w, "W"),
                };
                if count == 0 {
                    return Err(RequestError::Invalid(format!(
                        "level {level}: {name} must be at least 1"
                    )));
                }
                usize::from(count)
            }
            Level::LocalOne | Level::LocalQuorum => {
                let local = in_region(local_region);
                if local == 0 {
                    return Err(RequestError::Unavailable {
                        replied: 0,
                        needed: 1,
                        detail: format!(
                            "{level}: no replica of this key is in region {local_region:?} \
                             (owners: {})",
                            describe_owners(&owners)
                        ),
                    });
                }
                let need = if level == Level::LocalOne {
                    1
                } else {
                    majority(local)
                };
                per_region.insert(local_region.to_owned(), need);
                0
            }
            Level::EachQuorum => {
                let regions: BTreeSet<&String> = owners.values().collect();
                for region in regions {
                    per_region.insert(region.clone(), majority(in_region(region)));
                }
                0
            }
        };
        if total > n {
            return Err(RequestError::Unavailable {
                replied: 0,
                needed: total as u32,
                detail: format!(
                    "{level} needs {total} replicas but this keyspace keeps N = {n} per key"
                ),
            });
        }
        Ok(Self {
            level,
            total,
            per_region,
            owners,
        })
    }

    /// The level as asked.
    pub fn level(&self) -> Level {
        self.level
    }

    /// Whether the owners counted so far meet the level.
    pub fn is_met(&self, counted: &BTreeSet<NodeId>) -> bool {
        let counted = self.owned(counted);
        counted.len() >= self.total
            && self
                .per_region
                .iter()
                .all(|(region, &need)| self.count_in(&counted, region) >= need)
    }

    /// `(answers that count toward the level, answers the level needs)`, for errors.
    pub fn progress(&self, counted: &BTreeSet<NodeId>) -> (u32, u32) {
        let counted = self.owned(counted);
        let mut replied = counted.len().min(self.total);
        let mut needed = self.total;
        for (region, &need) in &self.per_region {
            replied += self.count_in(&counted, region).min(need);
            needed += need;
        }
        (replied as u32, needed as u32)
    }

    /// Whether the level could be met if every owner in `reachable` answered.
    pub fn is_reachable(&self, reachable: &BTreeSet<NodeId>) -> bool {
        self.is_met(reachable)
    }

    /// A sentence naming what is missing: "QUORUM needs 2 of n0 n1 n2 (us-east: n0 ...)".
    pub fn shortfall(&self, counted: &BTreeSet<NodeId>) -> String {
        let counted = self.owned(counted);
        let names = |set: &BTreeSet<NodeId>| {
            if set.is_empty() {
                "none".to_owned()
            } else {
                set.iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        };
        let mut parts = Vec::new();
        if self.total > 0 {
            parts.push(format!(
                "{} needs {} of the owners {}",
                self.level,
                self.total,
                describe_owners(&self.owners)
            ));
        }
        for (region, need) in &self.per_region {
            parts.push(format!("{} needs {need} in region {region:?}", self.level));
        }
        format!("{}; counted: {}", parts.join(", "), names(&counted))
    }

    fn owned(&self, counted: &BTreeSet<NodeId>) -> BTreeSet<NodeId> {
        counted
            .iter()
            .copied()
            .filter(|n| self.owners.contains_key(n))
            .collect()
    }

    fn count_in(&self, counted: &BTreeSet<NodeId>, region: &str) -> usize {
        counted
            .iter()
            .filter(|n| self.owners.get(n).is_some_and(|r| r == region))
            .count()
    }
}

fn describe_owners(owners: &BTreeMap<NodeId, String>) -> String {
    owners
        .iter()
        .map(|(n, r)| format!("{n} ({r})"))
        .collect::<Vec<_>>()
        .join(", ")
}
