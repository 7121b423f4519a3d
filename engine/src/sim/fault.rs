//! Faults: probabilistic link faults and scheduled actions (partitions, crashes, slow
//! nodes). [`FaultPlan::random`] derives a whole schedule from one seed (swarm testing):
//! a chaos phase with faults, then a heal after which the network is reliable so liveness
//! can be checked.

use crate::id::NodeId;
use crate::time::Time;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// Probabilistic link faults, applied to every peer message independently.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FaultConfig {
    /// Probability a message is lost.
    pub drop: f64,
    /// Probability a message is delivered twice.
    pub duplicate: f64,
    /// Probability a message gets an extra random delay (overtaking later ones).
    pub reorder: f64,
    /// Largest extra delay a reordered message gets.
    pub reorder_delay: Duration,
}

impl FaultConfig {
    /// No link faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// Lossy, duplicating, reordering links.
    pub fn lossy(drop: f64, duplicate: f64, reorder: f64) -> Self {
        Self {
            drop,
            duplicate,
            reorder,
            reorder_delay: Duration::from_millis(50),
        }
    }
}

/// How a partition blocks traffic between two groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionMode {
    /// Neither side hears the other.
    Full,
    /// Messages from the first group to the second are lost; the reverse direction works.
    OneWay,
}

/// A scheduled fault or repair.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultAction {
    /// Block traffic between `a` and `b` (added to any existing partition).
    Partition {
        /// One side.
        a: Vec<NodeId>,
        /// The other side.
        b: Vec<NodeId>,
        /// Direction(s) blocked.
        mode: PartitionMode,
    },
    /// Remove every partition.
    Heal,
    /// Stop a node: unsynced records and unreleased effects are lost.
    Crash(NodeId),
    /// Rebuild a crashed node from its synced records.
    Restart(NodeId),
    /// Multiply a node's link delays and fsync time by `factor` (1 = normal speed).
    Slow {
        /// The node.
        node: NodeId,
        /// Delay multiplier.
        factor: u32,
    },
    /// Replace the link fault probabilities (e.g. make links reliable after the chaos
    /// phase).
    SetLinkFaults(FaultConfig),
}

/// A fault profile: which kinds of faults a random plan draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultProfile {
    /// Nothing.
    None,
    /// Partitions only (full and one-way, random groups), healed at the end.
    Partitions,
    /// Crashes and restarts (losing unsynced records) only.
    Crashes,
    /// Everything: drops, duplicates, reordering, partitions, crashes, slow nodes.
    Chaos,
}

impl std::str::FromStr for FaultProfile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            "partitions" => Ok(Self::Partitions),
            "crashes" => Ok(Self::Crashes),
            "chaos" => Ok(Self::Chaos),
            other => Err(format!(
                "unknown fault profile {other:?}: expected none, partitions, crashes or chaos"
            )),
        }
    }
}

/// A fault schedule: link faults for the chaos phase plus timed actions.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultPlan {
    /// Link faults during the chaos phase.
    pub link_faults: FaultConfig,
    /// Timed actions, in time order.
    pub actions: Vec<(Time, FaultAction)>,
    /// When every fault is repaired: partitions healed, crashed nodes restarted, links
    /// reliable.
    pub heal_at: Time,
}

impl FaultPlan {
    /// No faults at all.
    pub fn none() -> Self {
        Self {
            link_faults: FaultConfig::none(),
            actions: Vec::new(),
            heal_at: Time::ZERO,
        }
    }

    /// Draw a schedule for `nodes` over `[start, heal_at)` from `seed`.
    ///
    /// At most a minority of nodes is down (crashed) at once, so a majority can always
    /// make progress once partitions heal; partitions may cut any groups.
    pub fn random(
        seed: u64,
        profile: FaultProfile,
        nodes: &[NodeId],
        start: Time,
        heal_at: Time,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0fa0_17fa_u64);
        let mut actions = Vec::new();
        let (partitions, crashes, chaos) = match profile {
            FaultProfile::None => (false, false, false),
            FaultProfile::Partitions => (true, false, false),
            FaultProfile::Crashes => (false, true, false),
            FaultProfile::Chaos => (true, true, true),
        };
        let link_faults = if chaos {
            FaultConfig::lossy(
                rng.gen_range(0.0..0.1),
                rng.gen_range(0.0..0.05),
                rng.gen_range(0.0..0.2),
            )
        } else {
            FaultConfig::none()
        };
        let span = heal_at.as_micros().saturating_sub(start.as_micros()).max(1);
        let max_down = nodes.len().saturating_sub(1) / 2;
        let mut down: Vec<NodeId> = Vec::new();
        let events = if profile == FaultProfile::None {
            0
        } else {
            rng.gen_range(3..10)
        };
        let mut times: Vec<u64> = (0..events).map(|_| rng.gen_range(0..span)).collect();
        times.sort_unstable();
        for offset in times {
            let at = Time::from_micros(start.as_micros() + offset);
            let mut kinds = Vec::new();
            if partitions {
                kinds.extend(["partition", "heal"]);
            }
            if crashes {
                kinds.extend(["crash", "restart"]);
            }
            if chaos {
                kinds.push("slow");
            }
            let Some(&kind) = kinds.choose(&mut rng) else {
                break;
            };
            match kind {
                "partition" if nodes.len() > 1 => {
                    let mut shuffled = nodes.to_vec();
                    shuffled.shuffle(&mut rng);
                    let cut = rng.gen_range(1..shuffled.len());
                    let (a, b) = shuffled.split_at(cut);
                    let mode = if rng.gen_bool(0.3) {
                        PartitionMode::OneWay
                    } else {
                        PartitionMode::Full
                    };
                    actions.push((
                        at,
                        FaultAction::Partition {
                            a: a.to_vec(),
                            b: b.to_vec(),
                            mode,
                        },
                    ));
                }
                "heal" => actions.push((at, FaultAction::Heal)),
                "crash" if down.len() < max_down => {
                    let up: Vec<NodeId> = nodes
                        .iter()
                        .filter(|n| !down.contains(n))
                        .copied()
                        .collect();
                    if let Some(&node) = up.choose(&mut rng) {
                        down.push(node);
                        actions.push((at, FaultAction::Crash(node)));
                    }
                }
                "restart" if !down.is_empty() => {
                    let node = down.remove(rng.gen_range(0..down.len()));
                    actions.push((at, FaultAction::Restart(node)));
                }
                "slow" => {
                    if let Some(&node) = nodes.choose(&mut rng) {
                        let factor = rng.gen_range(2..6);
                        actions.push((at, FaultAction::Slow { node, factor }));
                    }
                }
                _ => {}
            }
        }
        // Repair everything at heal time.
        actions.push((heal_at, FaultAction::Heal));
        actions.push((heal_at, FaultAction::SetLinkFaults(FaultConfig::none())));
        for node in down {
            actions.push((heal_at, FaultAction::Restart(node)));
        }
        for &node in nodes {
            if chaos {
                actions.push((heal_at, FaultAction::Slow { node, factor: 1 }));
            }
        }
        Self {
            link_faults,
            actions,
            heal_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: u16) -> Vec<NodeId> {
        (0..n).map(NodeId).collect()
    }

    #[test]
    fn random_plans_are_reproducible_from_the_seed() {
        let a = FaultPlan::random(
            7,
            FaultProfile::Chaos,
            &nodes(5),
            Time::ZERO,
            Time::from_millis(5_000),
        );
        let b = FaultPlan::random(
            7,
            FaultProfile::Chaos,
            &nodes(5),
            Time::ZERO,
            Time::from_millis(5_000),
        );
        assert_eq!(a, b);
    }

    #[test]
    fn never_more_than_a_minority_is_down_and_all_restart_at_heal() {
        for seed in 0..200 {
            let plan = FaultPlan::random(
                seed,
                FaultProfile::Crashes,
                &nodes(5),
                Time::ZERO,
                Time::from_millis(1_000),
            );
            let mut down = std::collections::BTreeSet::new();
            for (_, action) in &plan.actions {
                match action {
                    FaultAction::Crash(n) => {
                        assert!(down.insert(*n), "seed {seed}: double crash");
                        assert!(down.len() <= 2, "seed {seed}: majority down");
                    }
                    FaultAction::Restart(n) => {
                        assert!(down.remove(n), "seed {seed}: restart of a live node")
                    }
                    _ => {}
                }
            }
            assert!(down.is_empty(), "seed {seed}: node left down after heal");
        }
    }
}
