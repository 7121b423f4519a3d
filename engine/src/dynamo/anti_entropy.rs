//! Merkle anti-entropy: owners of a range periodically compare trees and exchange the
//! objects of the leaves that differ.
//!
//! ```text
//!  A (initiator)                          B (another owner of range r)
//!  AeCompare{level 0, root} ───────────▶  equal → AeDone
//!                          ◀──────────── AeCompare{level 1, B's children of differing}
//!  AeCompare{level 2, ...} ───────────▶  (levels alternate until the leaves)
//!                          ◀──────────── AeObjects{differing leaves, B's objects, reply}
//!  merge, persist, then AeObjects{A's objects for those leaves} ─▶ merge, persist, AeDone
//! ```
//! Every `anti_entropy_interval` a node starts one exchange with one (range, peer) pair:
//! first ranges marked by dropped hints (priority), else round-robin over its ranges and
//! their other owners, skipping peers the failure detector suspects. Both sides merge
//! whole objects (DVV sets), so an exchange never loses a version, and after it both
//! hold the join of the differing keys.
//!
//! The initiator records when the last completed exchange with each (range, peer) pair
//! *started*: every object it held then is at the peer now. Tombstone collection relies
//! on this (see `gc`).

use crate::command::Key;
use crate::dynamo::dvv::Object;
use crate::dynamo::messages::{ExchangeId, Message, Record};
use crate::dynamo::ring::RangeId;
use crate::dynamo::Dynamo;
use crate::id::NodeId;
use crate::protocol::Effect;
use crate::time::Time;
use std::collections::{BTreeMap, BTreeSet};

/// The exchange this node is driving.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Running {
    pub(crate) id: ExchangeId,
    pub(crate) range: RangeId,
    pub(crate) peer: NodeId,
    pub(crate) started: Time,
}

/// Anti-entropy bookkeeping of one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct AntiEntropy {
    /// Round-robin position over `(range, peer)` pairs.
    cursor: usize,
    pairs: Vec<(RangeId, NodeId)>,
    pub(crate) running: Option<Running>,
    next_id: u64,
    /// Start time of the last completed exchange per `(range, peer)`.
    pub(crate) covered: BTreeMap<(RangeId, NodeId), Time>,
    /// Ranges to exchange first, with the peers not yet exchanged with since marking.
    pub(crate) priority: BTreeMap<RangeId, BTreeSet<NodeId>>,
}

impl AntiEntropy {
    /// Bookkeeping for the `(range, peer)` pairs of `ranges`.
    pub(crate) fn new(pairs: Vec<(RangeId, NodeId)>, id_base: u64) -> Self {
        Self {
            pairs,
            next_id: id_base,
            ..Self::default()
        }
    }

    /// A new ring: its `(range, peer)` pairs replace the old ones, and everything keyed
    /// by the old ring's ranges is forgotten (exchange ids keep counting up).
    pub(crate) fn reset(&mut self, pairs: Vec<(RangeId, NodeId)>) {
        *self = Self {
            pairs,
            next_id: self.next_id,
            ..Self::default()
        };
    }

    /// The next pair to exchange: a priority range first, else round-robin; only peers
    /// `alive` accepts.
    fn pick(&mut self, alive: impl Fn(NodeId) -> bool) -> Option<(RangeId, NodeId)> {
        for (range, peers) in &self.priority {
            if let Some(peer) = peers.iter().copied().find(|p| alive(*p)) {
                return Some((*range, peer));
            }
        }
        for _ in 0..self.pairs.len() {
            let pair = self.pairs[self.cursor % self.pairs.len()];
            self.cursor = (self.cursor + 1) % self.pairs.len();
            if alive(pair.1) {
                return Some(pair);
            }
        }
        None
    }
}

impl Dynamo {
    /// Start an exchange if none is running (abandoning one that timed out).
    pub(crate) fn anti_entropy_tick(&mut self, now: Time) {
        if let Some(running) = &self.anti_entropy.running {
            if now < running.started + self.config.anti_entropy_timeout {
                return;
            }
            self.metrics.incr("anti_entropy_abandoned");
            self.anti_entropy.running = None;
        }
        let detector = &self.detector;
        let Some((range, peer)) = self.anti_entropy.pick(|p| detector.is_alive(p, now)) else {
            return;
        };
        self.anti_entropy.next_id += 1;
        let id = ExchangeId {
            initiator: self.id,
            id: self.anti_entropy.next_id,
        };
        self.anti_entropy.running = Some(Running {
            id,
            range,
            peer,
            started: now,
        });
        self.metrics.incr("anti_entropy_rounds");
        let nodes = self.merkle.hashes(range, 0, &[0]);
        self.outbox.send(
            peer,
            Message::AeCompare {
                ring: self.state.epoch(),
                exchange: id,
                range,
                level: 0,
                nodes,
            },
        );
    }

    /// Whether an anti-entropy message about `range` from `from` concerns this node.
    fn shares_range(&self, from: NodeId, ring: u64, range: RangeId, exchange: ExchangeId) -> bool {
        ring == self.state.epoch()
            && from != self.id
            && self.ring.is_primary(self.id, range)
            && self.ring.is_primary(from, range)
            && (exchange.initiator == from || exchange.initiator == self.id)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_ae_compare(
        &mut self,
        now: Time,
        from: NodeId,
        ring: u64,
        exchange: ExchangeId,
        range: RangeId,
        level: u8,
        nodes: Vec<(u32, u64)>,
    ) {
        if !self.shares_range(from, ring, range, exchange) || level > self.merkle.depth() {
            return self.metrics.incr("dropped_messages");
        }
        let differing = self.merkle.differing(range, level, &nodes);
        if differing.is_empty() {
            return self.finish_exchange(now, from, exchange, range);
        }
        if level == self.merkle.depth() {
            let objects = self.objects_in_leaves(range, &differing);
            self.outbox.send(
                from,
                Message::AeObjects {
                    ring,
                    exchange,
                    range,
                    leaves: differing,
                    objects,
                    reply: true,
                },
            );
            return;
        }
        let children: Vec<u32> = differing
            .iter()
            .flat_map(|&i| self.merkle.children(i))
            .collect();
        let nodes = self.merkle.hashes(range, level + 1, &children);
        self.outbox.send(
            from,
            Message::AeCompare {
                ring,
                exchange,
                range,
                level: level + 1,
                nodes,
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_ae_objects(
        &mut self,
        now: Time,
        from: NodeId,
        ring: u64,
        exchange: ExchangeId,
        range: RangeId,
        leaves: Vec<u32>,
        objects: Vec<(Key, Object)>,
        reply: bool,
    ) {
        if !self.shares_range(from, ring, range, exchange) {
            return self.metrics.incr("dropped_messages");
        }
        let leaf_set: BTreeSet<u32> = leaves.iter().copied().collect();
        let mut records = Vec::new();
        for (key, object) in objects {
            if self.ring.range_of(&key) != range || !leaf_set.contains(&self.merkle.leaf_of(&key)) {
                self.metrics.incr("dropped_messages");
                continue;
            }
            let (merged, changed) = self.merge_local(now, &key, &object);
            if changed {
                self.metrics.incr("anti_entropy_keys_repaired");
                records.push(Record::Object {
                    key,
                    object: merged,
                });
            }
        }
        let next = if reply {
            let objects = self.objects_in_leaves(range, &leaves);
            Some(Message::AeObjects {
                ring,
                exchange,
                range,
                leaves,
                objects,
                reply: false,
            })
        } else if exchange.initiator == self.id {
            None
        } else {
            Some(Message::AeDone {
                ring,
                exchange,
                range,
            })
        };
        let then: Vec<Effect<Message>> = next
            .map(|message| Effect::Send { to: from, message })
            .into_iter()
            .collect();
        if records.is_empty() {
            for effect in then {
                self.outbox.now(effect);
            }
        } else {
            self.persist(records, then);
        }
        if !reply && exchange.initiator == self.id {
            self.complete_exchange(exchange, range, from);
        }
    }

    pub(crate) fn on_ae_done(
        &mut self,
        from: NodeId,
        ring: u64,
        exchange: ExchangeId,
        range: RangeId,
    ) {
        if exchange.initiator != self.id || ring != self.state.epoch() {
            return self.metrics.incr("dropped_messages");
        }
        self.complete_exchange(exchange, range, from);
    }

    /// The trees agreed: end the exchange (or tell the initiator it ended).
    fn finish_exchange(&mut self, _now: Time, from: NodeId, exchange: ExchangeId, range: RangeId) {
        if exchange.initiator == self.id {
            self.complete_exchange(exchange, range, from);
        } else {
            let ring = self.state.epoch();
            self.outbox.send(
                from,
                Message::AeDone {
                    ring,
                    exchange,
                    range,
                },
            );
        }
    }

    fn complete_exchange(&mut self, exchange: ExchangeId, range: RangeId, peer: NodeId) {
        let Some(running) = &self.anti_entropy.running else {
            return;
        };
        if running.id != exchange || running.range != range || running.peer != peer {
            return;
        }
        let started = running.started;
        self.anti_entropy.running = None;
        self.anti_entropy.covered.insert((range, peer), started);
        if let Some(peers) = self.anti_entropy.priority.get_mut(&range) {
            peers.remove(&peer);
            if peers.is_empty() {
                self.anti_entropy.priority.remove(&range);
            }
        }
        self.metrics.incr("anti_entropy_completed");
    }

    /// This node's objects in `leaves` of `range`: at most `anti_entropy_max_keys` of them
    /// and, past the first, at most `max_object_bytes` in all, so one message carries no
    /// more than one object's worth (the rest goes in later rounds).
    pub(super) fn objects_in_leaves(&self, range: RangeId, leaves: &[u32]) -> Vec<(Key, Object)> {
        let leaves: BTreeSet<u32> = leaves.iter().copied().collect();
        let mut budget = self.config.max_object_bytes;
        let mut objects = Vec::new();
        let keys = self
            .store
            .keys_in(range)
            .filter(|key| leaves.contains(&self.merkle.leaf_of(key)));
        for key in keys.take(self.config.anti_entropy_max_keys) {
            let Some(entry) = self.store.get(key) else {
                continue;
            };
            let bytes = key.len() + entry.object.approx_bytes();
            if bytes > budget && !objects.is_empty() {
                break;
            }
            budget = budget.saturating_sub(bytes);
            objects.push((key.clone(), entry.object.clone()));
        }
        objects
    }

    /// A peer says hints for `range` were dropped: exchange it with priority.
    pub(crate) fn on_priority_range(&mut self, ring: u64, range: RangeId) {
        if ring != self.state.epoch() || !self.ring.is_primary(self.id, range) {
            return self.metrics.incr("dropped_messages");
        }
        let peers: BTreeSet<NodeId> = self
            .ring
            .preference(range)
            .iter()
            .copied()
            .filter(|&p| p != self.id)
            .collect();
        self.metrics.incr("anti_entropy_priority_marks");
        self.anti_entropy.priority.insert(range, peers);
    }

    /// Tell the owners of `ranges` (this node included) to exchange them first.
    pub(crate) fn mark_priority_ranges(
        &mut self,
        _now: Time,
        ranges: impl IntoIterator<Item = RangeId>,
    ) {
        let ranges: BTreeSet<RangeId> = ranges.into_iter().collect();
        for range in ranges {
            let owners = self.ring.preference(range).to_vec();
            for owner in owners {
                let ring = self.state.epoch();
                if owner == self.id {
                    self.on_priority_range(ring, range);
                } else {
                    self.outbox
                        .send(owner, Message::PriorityRange { ring, range });
                }
            }
        }
    }
}
