//! Quorum sizes and vote tracking.

use crate::id::NodeId;
use std::collections::BTreeSet;

/// Majority of `n` replicas: `⌊n/2⌋ + 1`.
pub fn majority(n: usize) -> usize {
    n / 2 + 1
}

/// Failures tolerated by `n = 2F + 1` replicas with majority quorums.
pub fn max_failures(n: usize) -> usize {
    n.saturating_sub(1) / 2
}

/// The `F` EPaxos sizes its fast quorum and recovery from: `⌊n/2⌋`, that of `n = 2F + 1`
/// replicas, and for an even `n` that of `n + 1` (an even cluster runs as the odd one
/// above it with one replica that never answers; majorities of `n` and `n + 1` are equal,
/// so every quorum count, and every safety argument, is that of `n + 1`).
pub fn epaxos_f(n: usize) -> usize {
    n / 2
}

/// EPaxos optimized fast quorum `F + ⌊(F + 1) / 2⌋` with `F = epaxos_f(n)`, command
/// leader included (Moraru et al., SOSP'13, §4.3): 3→2, 5→3, 7→5, 9→6, and for an even
/// count that of the next odd one: 2→2, 4→3, 6→5, 20→15. (The paper's formula is for
/// `n = 2F + 1`; taken with `F = max_failures(n)` it gave 2 of 4 and 0 of 2, disjoint
/// fast quorums: docs/design.md#epaxos, rule 2.)
pub fn epaxos_fast_quorum(n: usize) -> usize {
    let f = epaxos_f(n);
    // ⌊(F + 1) / 2⌋ = ⌈F / 2⌉
    f + f.div_ceil(2)
}

/// Phase-1 and phase-2 quorum sizes for (flexible) Paxos.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaxosQuorums {
    /// Acceptors that must promise in phase 1.
    pub phase1: usize,
    /// Acceptors that must accept in phase 2.
    pub phase2: usize,
}

/// Quorum sizes that do not guarantee intersection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("flexible quorums need phase1 + phase2 > n (got {phase1} + {phase2} with n = {n}), and each in 1..=n")]
pub struct QuorumError {
    /// Requested phase-1 size.
    pub phase1: usize,
    /// Requested phase-2 size.
    pub phase2: usize,
    /// Cluster size.
    pub n: usize,
}

impl PaxosQuorums {
    /// Classic majorities for both phases.
    pub fn majority(n: usize) -> Self {
        Self {
            phase1: majority(n),
            phase2: majority(n),
        }
    }

    /// Flexible quorums (Howard et al., 2016): any sizes with `phase1 + phase2 > n`.
    pub fn flexible(n: usize, phase1: usize, phase2: usize) -> Result<Self, QuorumError> {
        let in_range = |q: usize| (1..=n).contains(&q);
        if in_range(phase1) && in_range(phase2) && phase1 + phase2 > n {
            Ok(Self { phase1, phase2 })
        } else {
            Err(QuorumError { phase1, phase2, n })
        }
    }
}

/// Collects distinct votes until a threshold is reached.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VoteSet {
    needed: usize,
    voters: BTreeSet<NodeId>,
}

impl VoteSet {
    /// A set that is complete once `needed` distinct nodes voted.
    pub fn new(needed: usize) -> Self {
        Self {
            needed,
            voters: BTreeSet::new(),
        }
    }

    /// Record a vote; returns true exactly once, when the threshold is first reached.
    pub fn add(&mut self, voter: NodeId) -> bool {
        let was_complete = self.is_complete();
        self.voters.insert(voter);
        !was_complete && self.is_complete()
    }

    /// Whether enough distinct nodes voted.
    pub fn is_complete(&self) -> bool {
        self.voters.len() >= self.needed
    }

    /// Distinct voters so far.
    pub fn len(&self) -> usize {
        self.voters.len()
    }

    /// Whether nobody voted yet.
    pub fn is_empty(&self) -> bool {
        self.voters.is_empty()
    }

    /// Who voted.
    pub fn voters(&self) -> &BTreeSet<NodeId> {
        &self.voters
    }

    /// The threshold.
    pub fn needed(&self) -> usize {
        self.needed
    }
}

#[cfg(test)]
#[path = "quorum_test.rs"]
mod tests;
