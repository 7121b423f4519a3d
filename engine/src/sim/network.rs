//! Links between simulated replicas: topology delays, jitter, loss, duplication,
//! reordering and partitions.

use super::fault::{FaultConfig, PartitionMode};
use crate::id::NodeId;
use crate::time::Time;
use crate::topology::{DelayDraw, Topology};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// What the network decided for one message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Deliver at `at`, and a copy at `duplicate` (inline: a vector per message was an
    /// allocation per simulated message).
    Deliver { at: Time, duplicate: Option<Time> },
    /// Lost (link fault or partition).
    Lost,
}

pub(crate) struct Network {
    /// Region index of every node, by node index.
    node_region: Vec<usize>,
    /// One-way delay draw between regions, and its mean (the base delay), µs.
    draws: Vec<Vec<DelayDraw>>,
    one_way_us: Vec<Vec<u64>>,
    use_jitter: bool,
    fifo: bool,
    faults: FaultConfig,
    blocked: BTreeSet<(NodeId, NodeId)>,
    slow: BTreeMap<NodeId, u32>,
    last_delivery: BTreeMap<(NodeId, NodeId), Time>,
}

impl Network {
    pub(crate) fn new(topology: &Topology, jitter: bool, fifo: bool, faults: FaultConfig) -> Self {
        let regions = topology.regions().len();
        let one_way_us = (0..regions)
            .map(|a| (0..regions).map(|b| topology.one_way_us(a, b)).collect())
            .collect();
        let draws = (0..regions)
            .map(|a| (0..regions).map(|b| topology.one_way_draw(a, b)).collect())
            .collect();
        let node_region = topology.replicas().into_iter().map(|(_, r)| r).collect();
        Self {
            node_region,
            draws,
            one_way_us,
            use_jitter: jitter,
            fifo,
            faults,
            blocked: BTreeSet::new(),
            slow: BTreeMap::new(),
            last_delivery: BTreeMap::new(),
        }
    }

    pub(crate) fn region_of(&self, node: NodeId) -> usize {
        self.node_region.get(node.index()).copied().unwrap_or(0)
    }

    /// Base one-way delay between two regions, µs.
    pub(crate) fn region_delay_us(&self, a: usize, b: usize) -> u64 {
        self.one_way_us[a][b]
    }

    fn draw_delay(&self, rng: &mut ChaCha8Rng, a: usize, b: usize) -> u64 {
        let draw = self.draws[a][b];
        if self.use_jitter && draw.spread_us > 0 {
            draw.low_us + rng.gen_range(0..=draw.spread_us)
        } else {
            self.one_way_us[a][b]
        }
    }

    fn slow_factor(&self, node: NodeId) -> u64 {
        u64::from(self.slow.get(&node).copied().unwrap_or(1).max(1))
    }

    /// Delay between a client in `client_region` and `node` (clients see no link faults).
    pub(crate) fn client_delay(
        &self,
        rng: &mut ChaCha8Rng,
        client_region: usize,
        node: NodeId,
    ) -> Duration {
        let us = self.draw_delay(rng, client_region, self.region_of(node)) * self.slow_factor(node);
        Duration::from_micros(us)
    }

    pub(crate) fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        self.blocked.contains(&(from, to))
    }

    /// Decide what happens to a message sent now from `from` to `to`.
    pub(crate) fn route(
        &mut self,
        rng: &mut ChaCha8Rng,
        now: Time,
        from: NodeId,
        to: NodeId,
    ) -> Fate {
        if from == to {
            return Fate::Deliver {
                at: now,
                duplicate: None,
            };
        }
        if self.is_blocked(from, to) || (self.faults.drop > 0.0 && rng.gen_bool(self.faults.drop)) {
            return Fate::Lost;
        }
        let duplicated = self.faults.duplicate > 0.0 && rng.gen_bool(self.faults.duplicate);
        let factor = self.slow_factor(from).max(self.slow_factor(to));
        let (ra, rb) = (self.region_of(from), self.region_of(to));
        let mut times = [Time::ZERO; 2];
        let copies = if duplicated { 2 } else { 1 };
        for time in &mut times[..copies] {
            let mut at = now + Duration::from_micros(self.draw_delay(rng, ra, rb) * factor);
            let reordered = self.faults.reorder > 0.0 && rng.gen_bool(self.faults.reorder);
            if reordered {
                let extra = rng.gen_range(0..=self.faults.reorder_delay.as_micros() as u64);
                at = at + Duration::from_micros(extra);
            } else if self.fifo {
                let last = self.last_delivery.entry((from, to)).or_insert(Time::ZERO);
                at = at.max(*last);
                *last = at;
            }
            *time = at;
        }
        Fate::Deliver {
            at: times[0],
            duplicate: duplicated.then_some(times[1]),
        }
    }

    pub(crate) fn partition(&mut self, a: &[NodeId], b: &[NodeId], mode: PartitionMode) {
        for &x in a {
            for &y in b {
                self.blocked.insert((x, y));
                if mode == PartitionMode::Full {
                    self.blocked.insert((y, x));
                }
            }
        }
    }

    pub(crate) fn heal(&mut self) {
        self.blocked.clear();
    }

    pub(crate) fn set_slow(&mut self, node: NodeId, factor: u32) {
        if factor <= 1 {
            self.slow.remove(&node);
        } else {
            self.slow.insert(node, factor);
        }
    }

    pub(crate) fn slow_factor_of(&self, node: NodeId) -> u32 {
        self.slow.get(&node).copied().unwrap_or(1)
    }

    pub(crate) fn set_faults(&mut self, faults: FaultConfig) {
        self.faults = faults;
    }
}
