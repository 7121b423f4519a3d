//! What a node forgets: tombstones every owner holds, and log records the live state
//! no longer needs (compaction into a snapshot, replayed by `replay`).
//!
//! # Tombstones: the rule
//! Only the first owner of a range (its "GC leader") decides. It drops a tombstone it
//! stored at `t` when `now - t >= tombstone_grace` *and*, for every other owner `p` of the
//! range, an anti-entropy exchange with `p` that started after `t` has completed (so `p`
//! holds the tombstone or something newer). It then tells the other owners to `Forget`
//! the key; each drops its copy only if that copy is still a tombstone the leader's
//! context covers (anything newer stays and comes back through anti-entropy).
//!
//! One decider avoids the resurrection loop of independent collection, where owners that
//! collected at different times keep handing the tombstone back to each other through
//! anti-entropy. A tombstone that does come back (a lost `Forget`, a lagging owner) is
//! simply collected again by the same rule.
//!
//! The grace period outlasts `hints.max_age`, so no hint still waiting in a fallback can
//! bring the deleted value back; a message delayed longer than the grace period can (the
//! classic `gc_grace` caveat of Cassandra and Riak), and then shows up as a sibling next
//! to later writes, never as a lost write. A range whose leader is down collects nothing
//! until it returns.
//!
//! While ranges move (a member joining or leaving) nothing is collected, and a new ring
//! restarts the anti-entropy coverage (it is per range of one ring): a tombstone is
//! collected only once every owner of the new ring is known to hold it. Tombstones move
//! with the data (streams and handoffs carry whole objects), so a move never resurrects
//! a delete unless a handoff is delayed past the grace period (the same caveat).

use crate::command::Key;
use crate::dynamo::dvv::VersionVector;
use crate::dynamo::messages::{Message, Record};
use crate::dynamo::Dynamo;
use crate::id::NodeId;
use crate::time::Time;

/// Tombstones collected per round (bounds the records and messages of one timer).
const MAX_PER_ROUND: usize = 1_000;

impl Dynamo {
    /// Collect the tombstones this node leads that every owner is known to hold.
    pub(crate) fn collect_tombstones(&mut self, now: Time) {
        if self.next_ring.is_some() {
            // Ranges are moving: anti-entropy coverage is restarted for the new ring.
            return;
        }
        let mut collectable = Vec::new();
        for key in self.store.tombstones() {
            if collectable.len() >= MAX_PER_ROUND {
                break;
            }
            let Some(entry) = self.store.get(key) else {
                continue;
            };
            let preference = self.ring.preference(entry.range);
            if preference.first() != Some(&self.id) {
                continue;
            }
            let Some(since) = entry.tombstone_since else {
                continue;
            };
            if now.saturating_since(since) < self.config.tombstone_grace {
                continue;
            }
            let covered = preference.iter().filter(|&&p| p != self.id).all(|&p| {
                self.anti_entropy
                    .covered
                    .get(&(entry.range, p))
                    .is_some_and(|&start| start > since)
            });
            if covered {
                collectable.push(key.clone());
            }
        }
        for key in collectable {
            let Some(entry) = self.store.remove(&key) else {
                continue;
            };
            self.merkle
                .update(entry.range, &key, Some(entry.digest), None);
            self.metrics.incr("tombstones_collected");
            self.persist(vec![Record::ObjectRemoved { key: key.clone() }], Vec::new());
            let others: Vec<NodeId> = self
                .ring
                .preference(entry.range)
                .iter()
                .copied()
                .filter(|&p| p != self.id)
                .collect();
            for owner in others {
                let message = Message::Forget {
                    key: key.clone(),
                    context: entry.object.context().clone(),
                };
                self.outbox.send(owner, message);
            }
        }
    }

    /// The range's leader collected `key`: drop the local tombstone if it is no newer.
    pub(crate) fn on_forget(&mut self, from: NodeId, key: Key, context: VersionVector) {
        let range = self.ring.range_of(&key);
        if self.ring.preference(range).first() != Some(&from) {
            return self.metrics.incr("dropped_messages");
        }
        let Some(entry) = self.store.get(&key) else {
            return;
        };
        if !entry.object.is_tombstone() || !context.dominates(entry.object.context()) {
            return self.metrics.incr("forget_refused");
        }
        if let Some(entry) = self.store.remove(&key) {
            self.merkle.update(range, &key, Some(entry.digest), None);
            self.metrics.incr("tombstones_collected");
            self.persist(vec![Record::ObjectRemoved { key }], Vec::new());
        }
    }

    /// Replace the log by a snapshot once it holds far more records than live state.
    pub(super) fn maybe_compact(&mut self) {
        let live = 1 + self.store.len() + self.hints.len();
        if self.records_since_compaction < self.config.compact_after_records.max(2 * live) {
            return;
        }
        let mut snapshot = Vec::with_capacity(live);
        snapshot.push(Record::Epoch { epoch: self.epoch });
        if self.state.epoch() > 0 {
            snapshot.push(Record::Ring {
                state: self.state.clone(),
            });
        }
        for (key, entry) in self.store.iter() {
            snapshot.push(Record::Object {
                key: key.clone(),
                object: entry.object.clone(),
            });
        }
        for ((owner, key), hint) in self.hints.iter() {
            snapshot.push(Record::Hint {
                seq: hint.seq,
                owner: *owner,
                key: key.clone(),
                object: hint.object.clone(),
            });
        }
        self.records_since_compaction = snapshot.len();
        self.metrics.incr("compactions");
        self.outbox.compact(snapshot);
    }
}
