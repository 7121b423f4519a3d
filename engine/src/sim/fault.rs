//! Faults: probabilistic link faults and scheduled actions (partitions, crashes, slow
//! nodes, crashes in the middle of a compaction, lost disks). [`FaultPlan::random`]
//! derives a whole schedule from one seed (swarm testing): a chaos phase with faults, then
//! a heal after which the network is reliable so liveness can be checked.

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
    /// Rebuild a crashed node from its synced records (a node that lost its disk is then
    /// told to rejoin). On a node that is up, it disarms a pending
    /// [`CrashInCompaction`](Self::CrashInCompaction).
    Restart(NodeId),
    /// Crash the node in the middle of its next compaction: after the snapshot is written
    /// and before it replaces the log, so the old log stays whole (a node that is down is
    /// left alone).
    CrashInCompaction(NodeId),
    /// Crash the node and lose its whole disk; its next restart calls
    /// [`Protocol::rejoin`](crate::protocol::Protocol::rejoin).
    Amnesia(NodeId),
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
    /// Chaos plus storage faults: crashes between a compaction's snapshot write and its
    /// log swap, and long outages (a node down until the heal) that make the others
    /// compact past it.
    Storage,
    /// Storage plus one lost disk: a node crashes, loses every record, and restarts
    /// through the rejoin path.
    Amnesia,
}

impl std::str::FromStr for FaultProfile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            "partitions" => Ok(Self::Partitions),
            "crashes" => Ok(Self::Crashes),
            "chaos" => Ok(Self::Chaos),
            "storage" => Ok(Self::Storage),
            "amnesia" => Ok(Self::Amnesia),
            other => Err(format!(
                "unknown fault profile {other:?}: expected none, partitions, crashes, chaos, \
                 storage or amnesia"
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
    CrashInCompaction,
    Outage,
    Amnesia,
}

/// The kinds chaos draws, in the order seeds have always drawn them.
const CHAOS: &[Kind] = &[
    Kind::Partition,
    Kind::Heal,
    Kind::Crash,
    Kind::Restart,
    Kind::Slow,
];
/// What the storage profile adds.
const STORAGE: &[Kind] = &[Kind::CrashInCompaction, Kind::Outage];

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
    /// Down until the heal (long outages): never picked by a random restart.
    held: Vec<NodeId>,
    /// Amnesia faults drawn so far (at most one per plan: two replicas rejoining at once
    /// can wait on each other for good in a 3-node cluster).
    amnesias: usize,
    max_down: usize,
    actions: Vec<(Time, FaultAction)>,
}

impl<'a> Draw<'a> {
    fn new(seed: u64, profile: FaultProfile, nodes: &'a [NodeId]) -> Self {
        let kinds = match profile {
            FaultProfile::None => Vec::new(),
            FaultProfile::Partitions => vec![Kind::Partition, Kind::Heal],
            FaultProfile::Crashes => vec![Kind::Crash, Kind::Restart],
            FaultProfile::Chaos => CHAOS.to_vec(),
            FaultProfile::Storage => [CHAOS, STORAGE].concat(),
            FaultProfile::Amnesia => [CHAOS, STORAGE, &[Kind::Amnesia]].concat(),
        };
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x0fa0_17fa_u64),
            profile,
            nodes,
            kinds,
            down: Vec::new(),
            held: Vec::new(),
            amnesias: 0,
            max_down: nodes.len().saturating_sub(1) / 2,
            actions: Vec::new(),
        }
    }

    fn chaos(&self) -> bool {
        matches!(
            self.profile,
            FaultProfile::Chaos | FaultProfile::Storage | FaultProfile::Amnesia
        )
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
            Kind::Crash if self.down.len() < self.max_down => {
                self.crash(at, FaultAction::Crash, false)
            }
            Kind::CrashInCompaction if self.down.len() < self.max_down => {
                self.crash(at, FaultAction::CrashInCompaction, false)
            }
            Kind::Outage if self.down.len() < self.max_down => {
                self.crash(at, FaultAction::Crash, true)
            }
            Kind::Amnesia if self.down.len() < self.max_down && self.amnesias == 0 => {
                self.amnesias += 1;
                self.crash(at, FaultAction::Amnesia, false)
            }
            Kind::Restart => {
                let restartable: Vec<NodeId> = self
                    .down
                    .iter()
                    .filter(|n| !self.held.contains(n))
                    .copied()
                    .collect();
                if !restartable.is_empty() {
                    let node = restartable[self.rng.gen_range(0..restartable.len())];
                    self.down.retain(|&n| n != node);
                    self.actions.push((at, FaultAction::Restart(node)));
                }
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

    /// Take down a node that is up (keeping a majority up) with `action`; `held` keeps it
    /// down until the heal.
    fn crash(&mut self, at: Time, action: fn(NodeId) -> FaultAction, held: bool) {
        let up: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|n| !self.down.contains(n))
            .copied()
            .collect();
        if let Some(&node) = up.choose(&mut self.rng) {
            self.down.push(node);
            if held {
                self.held.push(node);
            }
            self.actions.push((at, action(node)));
        }
    }

    /// Repair everything at `heal_at`: heal partitions, make links reliable, restart
    /// whoever is down, restore normal speed.
    fn repair_everything(&mut self, heal_at: Time) {
        self.actions.push((heal_at, FaultAction::Heal));
        self.actions
            .push((heal_at, FaultAction::SetLinkFaults(FaultConfig::none())));
        self.held.clear();
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
