//! The storage-replica side: the local object store and the handlers for objects sent
//! by coordinators, read repair and hinted handoff.
//!
//! ```text
//!  Store{object}        ─▶ merge into the local object, persist it, then Stored
//!  Store{hint_for: o}   ─▶ (fallback) merge into the hint for o, persist, then Stored
//!  Read                 ─▶ ReadReply with the local object (or the hints, as a fallback)
//!  Repair               ─▶ merge, persist, then Repaired
//!  HintDelivery         ─▶ merge, persist, then HintAck (the fallback deletes its hint)
//! ```
//! Every acknowledgement rides in the `then` of the `Persist` carrying the merged object:
//! a replica never acknowledges a version before it is durable. An unchanged merge is
//! persisted again rather than acknowledged at once, because the equal object may still
//! sit in an earlier, not yet synced `Persist`.

use crate::command::Key;
use crate::dynamo::dvv::Object;
use crate::dynamo::messages::{Message, OpId, Record};
use crate::dynamo::ring::RangeId;
use crate::dynamo::ring_state::MemberStatus;
use crate::dynamo::Dynamo;
use crate::id::NodeId;
use crate::protocol::Effect;
use crate::time::Time;
use std::collections::{BTreeMap, BTreeSet};

/// One key's local state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The key's object (DVV set).
    pub object: Object,
    /// Its digest (Merkle leaves hold it).
    pub digest: u64,
    /// The key's range.
    pub range: RangeId,
    /// When the object became a tombstone here (for garbage collection).
    pub tombstone_since: Option<Time>,
}

/// Every key this node owns, with per-range and tombstone indexes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Store {
    entries: BTreeMap<Key, Entry>,
    by_range: BTreeMap<RangeId, BTreeSet<Key>>,
    tombstones: BTreeSet<Key>,
}

impl Store {
    /// The local entry of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every key and entry, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Entry)> {
        self.entries.iter()
    }

    /// Keys of one range.
    pub fn keys_in(&self, range: RangeId) -> impl Iterator<Item = &Key> {
        self.by_range.get(&range).into_iter().flatten()
    }

    /// Every entry after `after` (all when `None`), in key order.
    pub fn entries_after(&self, after: Option<&Key>) -> impl Iterator<Item = (&Key, &Entry)> {
        use std::ops::Bound;
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.entries.range::<Key, _>((from, Bound::Unbounded))
    }

    /// Recompute every entry's range (the ring changed).
    pub fn reindex(&mut self, range_of: impl Fn(&[u8]) -> RangeId) {
        self.by_range.clear();
        for (key, entry) in self.entries.iter_mut() {
            entry.range = range_of(key);
            self.by_range
                .entry(entry.range)
                .or_default()
                .insert(key.clone());
        }
    }

    /// Keys whose object is a tombstone.
    pub fn tombstones(&self) -> impl Iterator<Item = &Key> {
        self.tombstones.iter()
    }

    /// Replace `key`'s object. Returns the old digest.
    pub fn put(&mut self, key: Key, object: Object, range: RangeId, now: Time) -> Option<u64> {
        let digest = object.digest();
        let tombstone = object.is_tombstone();
        let old = self.entries.get(&key);
        let old_digest = old.map(|e| e.digest);
        let tombstone_since = match old {
            Some(e) if tombstone && e.tombstone_since.is_some() => e.tombstone_since,
            _ if tombstone => Some(now),
            _ => None,
        };
        if tombstone {
            self.tombstones.insert(key.clone());
        } else {
            self.tombstones.remove(&key);
        }
        self.by_range.entry(range).or_default().insert(key.clone());
        self.entries.insert(
            key,
            Entry {
                object,
                digest,
                range,
                tombstone_since,
            },
        );
        old_digest
    }

    /// Forget `key`. Returns its entry.
    pub fn remove(&mut self, key: &Key) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        if let Some(keys) = self.by_range.get_mut(&entry.range) {
            keys.remove(key);
        }
        self.tombstones.remove(key);
        Some(entry)
    }

    /// Start every tombstone's grace period at `now` (ages do not survive restarts).
    pub fn reset_tombstone_ages(&mut self, now: Time) {
        for key in &self.tombstones {
            if let Some(entry) = self.entries.get_mut(key) {
                entry.tombstone_since = Some(now);
            }
        }
    }
}

impl Dynamo {
    /// Merge `incoming` into the local object of `key`; returns the resulting object and
    /// whether it changed. Updates the Merkle leaves.
    pub(crate) fn merge_local(
        &mut self,
        now: Time,
        key: &Key,
        incoming: &Object,
    ) -> (Object, bool) {
        let range = self.ring.range_of(key);
        let (mut merged, changed) = match self.store.get(key) {
            Some(entry) => {
                let mut merged = entry.object.clone();
                let changed = merged.merge(incoming);
                (merged, changed)
            }
            None => (
                incoming.clone(),
                !incoming.is_empty() || !incoming.context().is_empty(),
            ),
        };
        if self.config.lww {
            merged.keep_last_writer();
        }
        if changed {
            self.install(now, key.clone(), merged.clone(), range);
        }
        (merged, changed)
    }

    /// Replace the local object of `key` and keep the Merkle leaves in step.
    pub(crate) fn install(&mut self, now: Time, key: Key, object: Object, range: RangeId) {
        let digest = object.digest();
        let old = self.store.put(key.clone(), object, range, now);
        self.merkle.update(range, &key, old, Some(digest));
        self.track_foreign(&key);
    }

    /// Whether `node` owns `range`'s keys before or after the move in progress.
    fn owns_either(&self, node: NodeId, key: &[u8]) -> bool {
        let ring = self.write_ring();
        self.ring.is_primary(node, self.ring.range_of(key))
            || ring.is_primary(node, ring.range_of(key))
    }

    pub(crate) fn on_store(
        &mut self,
        now: Time,
        from: NodeId,
        op: OpId,
        key: Key,
        object: Object,
        hint_for: Option<NodeId>,
    ) {
        let range = self.ring.range_of(&key);
        let ack = Effect::Send {
            to: from,
            message: Message::Stored {
                op,
                key: key.clone(),
                hint_for,
            },
        };
        match hint_for {
            None => {
                // A member takes any key: one it does not own (from a coordinator with
                // another ring) is handed off to the owners (`streaming`). A node that
                // left the ring takes nothing, so it is never counted.
                // A leaving node takes no new write either: what it takes it must hand
                // off before it may leave, and under steady load that would never end.
                // Writes made during the move meet their level among the next owners.
                let status = self.state.status_of(self.id);
                if !matches!(status, Some(MemberStatus::Normal | MemberStatus::Joining)) {
                    self.metrics.incr("dropped_messages");
                    return;
                }
                if !self.owns_either(self.id, &key) {
                    self.metrics.incr("stores_not_owned");
                }
                let (merged, _) = self.merge_local(now, &key, &object);
                self.persist(
                    vec![Record::Object {
                        key,
                        object: merged,
                    }],
                    vec![ack],
                );
            }
            Some(owner) => {
                if !self.owns_either(owner, &key)
                    || self.owns_either(self.id, &key)
                    || !self.state.contains(self.id)
                {
                    self.metrics.incr("dropped_messages");
                    return;
                }
                match self.hints.store(owner, key.clone(), &object, now) {
                    Ok((seq, merged)) => {
                        self.metrics.incr("hints_written");
                        self.persist(
                            vec![Record::Hint {
                                seq,
                                owner,
                                key,
                                object: merged,
                            }],
                            vec![ack],
                        );
                    }
                    Err(reason) => {
                        self.metrics.incr("hints_refused");
                        self.metrics.incr("hints_dropped");
                        self.mark_priority_ranges(now, [range]);
                        self.outbox.send(from, Message::Refused { op, reason });
                    }
                }
            }
        }
    }

    pub(crate) fn on_read(&mut self, from: NodeId, op: OpId, key: Key, hint_for: Option<NodeId>) {
        let object = self.local_answer(&key, hint_for);
        self.outbox
            .send(from, Message::ReadReply { op, key, object });
    }

    /// What this node answers a read of `key` with: its object, or as a fallback the
    /// hints it holds for the key.
    pub(crate) fn local_answer(&self, key: &Key, hint_for: Option<NodeId>) -> Option<Object> {
        match hint_for {
            None => self.store.get(key).map(|e| e.object.clone()),
            Some(_) => self.hints.object_for(key),
        }
    }

    pub(crate) fn on_repair(
        &mut self,
        now: Time,
        from: NodeId,
        op: OpId,
        key: Key,
        object: Object,
    ) {
        if !self.owns_either(self.id, &key) {
            self.metrics.incr("dropped_messages");
            return;
        }
        let (merged, changed) = self.merge_local(now, &key, &object);
        if changed {
            self.metrics.incr("read_repairs_applied");
        }
        let ack = Effect::Send {
            to: from,
            message: Message::Repaired {
                op,
                key: key.clone(),
            },
        };
        self.persist(
            vec![Record::Object {
                key,
                object: merged,
            }],
            vec![ack],
        );
    }

    pub(crate) fn on_hint_delivery(
        &mut self,
        now: Time,
        from: NodeId,
        key: Key,
        object: Object,
        seq: u64,
    ) {
        let ack = Effect::Send {
            to: from,
            message: Message::HintAck {
                key: key.clone(),
                seq,
            },
        };
        if !self.state.contains(self.id) {
            // Left the ring: no ack, the fallback absorbs the hint and hands it off.
            self.metrics.incr("dropped_messages");
            return;
        }
        if !self.owns_either(self.id, &key) {
            // The ring moved since the hint was written: keep it; the handoff carries
            // it on to the key's owners.
            self.metrics.incr("hints_misrouted");
        }
        let (merged, _) = self.merge_local(now, &key, &object);
        self.metrics.incr("hints_received");
        self.persist(
            vec![Record::Object {
                key,
                object: merged,
            }],
            vec![ack],
        );
    }

    pub(crate) fn on_hint_ack(&mut self, from: NodeId, key: Key, seq: u64) {
        if self.hints.remove_exact(from, &key, seq) {
            self.metrics.incr("hints_delivered");
            self.persist(
                vec![Record::HintRemoved {
                    owner: from,
                    key,
                    seq,
                }],
                Vec::new(),
            );
        }
    }
}
