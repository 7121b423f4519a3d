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
        let mut draw = Draw::new(seed, profile, nodes);
        let link_faults = draw.link_faults();
        let span = heal_at.as_micros().saturating_sub(start.as_micros()).max(1);
        for offset in draw.event_offsets(span) {
            if !draw.event(Time::from_micros(start.as_micros() + offset)) {
                break;
            }
        }
        draw.repair_everything(heal_at);
        Self {
            link_faults,
            actions: draw.actions,
            heal_at,
        }
    }
}

/// A kind of scheduled fault a profile can draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Partition,
    Heal,
    Crash,
    Restart,
    Slow,
}

/// The state of drawing one random plan: every choice comes from one seeded RNG, in a
/// fixed order, so a seed always draws the same plan.
struct Draw<'a> {
    rng: ChaCha8Rng,
    profile: FaultProfile,
    nodes: &'a [NodeId],
    /// The kinds this profile draws from, in a fixed order.
    kinds: Vec<Kind>,
    /// Crashed and not restarted yet.
    down: Vec<NodeId>,
    max_down: usize,
    actions: Vec<(Time, FaultAction)>,
}

impl<'a> Draw<'a> {
    fn new(seed: u64, profile: FaultProfile, nodes: &'a [NodeId]) -> Self {
        let kinds = match profile {
            FaultProfile::None => Vec::new(),
            FaultProfile::Partitions => vec![Kind::Partition, Kind::Heal],
            FaultProfile::Crashes => vec![Kind::Crash, Kind::Restart],
            FaultProfile::Chaos => vec![
                Kind::Partition,
                Kind::Heal,
                Kind::Crash,
                Kind::Restart,
                Kind::Slow,
            ],
        };
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x0fa0_17fa_u64),
            profile,
            nodes,
            kinds,
            down: Vec::new(),
            max_down: nodes.len().saturating_sub(1) / 2,
            actions: Vec::new(),
        }
    }

    fn chaos(&self) -> bool {
        self.profile == FaultProfile::Chaos
    }

    /// Lossy, duplicating, reordering links under chaos; reliable links otherwise.
    fn link_faults(&mut self) -> FaultConfig {
        if !self.chaos() {
            return FaultConfig::none();
        }
        FaultConfig::lossy(
            self.rng.gen_range(0.0..0.1),
            self.rng.gen_range(0.0..0.05),
            self.rng.gen_range(0.0..0.2),
        )
    }

    /// When the scheduled faults happen, as offsets into a span of `span` microseconds.
    fn event_offsets(&mut self, span: u64) -> Vec<u64> {
        let events = if self.profile == FaultProfile::None {
            0
        } else {
            self.rng.gen_range(3..10)
        };
        let mut offsets: Vec<u64> = (0..events).map(|_| self.rng.gen_range(0..span)).collect();
        offsets.sort_unstable();
        offsets
    }

    /// Draw one fault at `at`; false when the profile draws none.
    fn event(&mut self, at: Time) -> bool {
        let Some(&kind) = self.kinds.choose(&mut self.rng) else {
            return false;
        };
        match kind {
            Kind::Partition if self.nodes.len() > 1 => self.partition(at),
            Kind::Heal => self.actions.push((at, FaultAction::Heal)),
            Kind::Crash if self.down.len() < self.max_down => self.crash(at),
            Kind::Restart if !self.down.is_empty() => {
                let node = self.down.remove(self.rng.gen_range(0..self.down.len()));
                self.actions.push((at, FaultAction::Restart(node)));
            }
            Kind::Slow => {
                if let Some(&node) = self.nodes.choose(&mut self.rng) {
                    let factor = self.rng.gen_range(2..6);
                    self.actions.push((at, FaultAction::Slow { node, factor }));
                }
            }
            _ => {}
        }
        true
    }

    /// Split the nodes in two random groups, fully or one way.
    fn partition(&mut self, at: Time) {
        let mut shuffled = self.nodes.to_vec();
        shuffled.shuffle(&mut self.rng);
        let cut = self.rng.gen_range(1..shuffled.len());
        let (a, b) = shuffled.split_at(cut);
        let mode = if self.rng.gen_bool(0.3) {
            PartitionMode::OneWay
        } else {
            PartitionMode::Full
        };
        let (a, b) = (a.to_vec(), b.to_vec());
        self.actions
            .push((at, FaultAction::Partition { a, b, mode }));
    }

    /// Crash a node that is up (keeping a majority up).
    fn crash(&mut self, at: Time) {
        let up: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|n| !self.down.contains(n))
            .copied()
            .collect();
        if let Some(&node) = up.choose(&mut self.rng) {
            self.down.push(node);
            self.actions.push((at, FaultAction::Crash(node)));
        }
    }

    /// Repair everything at `heal_at`: heal partitions, make links reliable, restart
    /// whoever is down, restore normal speed.
    fn repair_everything(&mut self, heal_at: Time) {
        self.actions.push((heal_at, FaultAction::Heal));
        self.actions
            .push((heal_at, FaultAction::SetLinkFaults(FaultConfig::none())));
        for node in std::mem::take(&mut self.down) {
            self.actions.push((heal_at, FaultAction::Restart(node)));
        }
        if self.chaos() {
            for &node in self.nodes {
                self.actions
                    .push((heal_at, FaultAction::Slow { node, factor: 1 }));
            }
        }
    }
}

#[cfg(test)]
#[path = "fault_test.rs"]
mod tests;
