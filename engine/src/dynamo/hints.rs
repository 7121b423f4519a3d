//! Hinted handoff: objects a fallback keeps for an unreachable owner.
//!
//! ```text
//!  coordinator ──Store{hint_for: owner}──▶ fallback: merge into hints[(owner, key)],
//!                                           persist Record::Hint, then Stored (counted)
//!  fallback ──HintDelivery (≤ batch per round, owner alive)──▶ owner: merge, persist,
//!  fallback ◀──HintAck{seq}────────────────────────────────── then ack
//!  fallback: remove hint if still that seq (a newer merge keeps it), persist HintRemoved
//! ```
//! One hint per `(owner, key)`: later hinted writes merge into it (objects are DVV sets,
//! so merging loses nothing) and take a new sequence number, so an ack for an older
//! version never deletes a newer one. The store is bounded per owner and overall, in
//! count and bytes; a hint that would exceed a bound is refused, and one older than
//! `max_age` is dropped. Both are counted by the caller, which also marks the key's range
//! for priority anti-entropy: that is how the data reaches the owner instead.

use crate::command::Key;
use crate::dynamo::config::HintLimits;
use crate::dynamo::dvv::Object;
use crate::id::NodeId;
use crate::time::Time;
use std::collections::BTreeMap;
use std::time::Duration;

/// One hinted object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hint {
    /// Sequence of this version (new on every merge).
    pub seq: u64,
    /// The merged hinted object.
    pub object: Object,
    /// Its approximate size.
    pub bytes: usize,
    /// When this node first held it (ages are measured from here).
    pub since: Time,
    /// Last delivery attempt.
    pub sent_at: Option<Time>,
}

/// Bounded hint storage (in memory; the caller persists records).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HintStore {
    limits: HintLimits,
    entries: BTreeMap<(NodeId, Key), Hint>,
    per_target: BTreeMap<NodeId, (usize, usize)>,
    total_bytes: usize,
    next_seq: u64,
}

impl HintStore {
    /// An empty store.
    pub fn new(limits: HintLimits) -> Self {
        Self {
            limits,
            entries: BTreeMap::new(),
            per_target: BTreeMap::new(),
            total_bytes: 0,
            next_seq: 1,
        }
    }

    /// Hints held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no hint is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes held (approximate).
    pub fn bytes(&self) -> usize {
        self.total_bytes
    }

    /// Every hint, in `(owner, key)` order.
    pub fn iter(&self) -> impl Iterator<Item = (&(NodeId, Key), &Hint)> {
        self.entries.iter()
    }

    /// Recount the hints held and check them against the limits. `Err` names the first
    /// bound exceeded, or running totals that drifted from the entries (for invariant
    /// checks in tests; admission itself uses the running totals).
    pub fn check_bounds(&self) -> Result<(), String> {
        let mut per_target: BTreeMap<NodeId, (usize, usize)> = BTreeMap::new();
        for ((owner, _), hint) in &self.entries {
            let target = per_target.entry(*owner).or_default();
            target.0 += 1;
            target.1 += hint.bytes;
        }
        let total_bytes: usize = per_target.values().map(|(_, bytes)| bytes).sum();
        if per_target != self.per_target || total_bytes != self.total_bytes {
            return Err(format!(
                "running totals {:?} / {} bytes differ from the entries {per_target:?} / \
                 {total_bytes} bytes",
                self.per_target, self.total_bytes
            ));
        }
        let limits = &self.limits;
        for (owner, &(count, bytes)) in &per_target {
            if count > limits.max_per_target || bytes > limits.max_bytes_per_target {
                return Err(format!(
                    "{count} hints / {bytes} bytes for {owner} (limits {} / {})",
                    limits.max_per_target, limits.max_bytes_per_target
                ));
            }
        }
        if self.entries.len() > limits.max_total || total_bytes > limits.max_bytes_total {
            return Err(format!(
                "{} hints / {total_bytes} bytes in total (limits {} / {})",
                self.entries.len(),
                limits.max_total,
                limits.max_bytes_total
            ));
        }
        Ok(())
    }

    /// Owners with at least one hint.
    pub fn owners(&self) -> Vec<NodeId> {
        self.per_target
            .iter()
            .filter(|(_, (count, _))| *count > 0)
            .map(|(o, _)| *o)
            .collect()
    }

    /// Replay a durable hint at restart (no bounds: it was admitted before).
    pub fn restore(&mut self, seq: u64, owner: NodeId, key: Key, object: Object) {
        self.next_seq = self.next_seq.max(seq + 1);
        self.remove_entry(owner, &key);
        self.insert_entry(owner, key, object, seq, Time::ZERO);
    }

    /// Start every hint's age at `now` (ages do not survive restarts).
    pub fn reset_ages(&mut self, now: Time) {
        for hint in self.entries.values_mut() {
            hint.since = now;
            hint.sent_at = None;
        }
    }

    /// Merge `object` into the hint for `(owner, key)`. Returns the new sequence and the
    /// merged object to persist, or why it was refused.
    pub fn store(
        &mut self,
        owner: NodeId,
        key: Key,
        object: &Object,
        now: Time,
    ) -> Result<(u64, Object), String> {
        let existing = self.entries.get(&(owner, key.clone()));
        let merged = match existing {
            Some(hint) => hint.object.join(object),
            None => object.clone(),
        };
        let new_bytes = key.len() + merged.approx_bytes();
        let old_bytes = existing.map_or(0, |h| h.bytes);
        let added = usize::from(existing.is_none());
        let (count, bytes) = self.per_target.get(&owner).copied().unwrap_or((0, 0));
        let grow = |total: usize| total.saturating_sub(old_bytes) + new_bytes;
        if count + added > self.limits.max_per_target {
            return Err(format!(
                "hint store full for {owner}: {count} hints (limit {})",
                self.limits.max_per_target
            ));
        }
        if self.entries.len() + added > self.limits.max_total {
            return Err(format!(
                "hint store full: {} hints (limit {})",
                self.entries.len(),
                self.limits.max_total
            ));
        }
        if grow(bytes) > self.limits.max_bytes_per_target {
            return Err(format!(
                "hint store full for {owner}: {bytes} bytes (limit {})",
                self.limits.max_bytes_per_target
            ));
        }
        if grow(self.total_bytes) > self.limits.max_bytes_total {
            return Err(format!(
                "hint store full: {} bytes (limit {})",
                self.total_bytes, self.limits.max_bytes_total
            ));
        }
        let since = existing.map_or(now, |h| h.since);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.remove_entry(owner, &key);
        self.insert_entry(owner, key, merged.clone(), seq, since);
        Ok((seq, merged))
    }

    /// Remove the hint if it is still version `seq`. Returns whether it was removed.
    pub fn remove_exact(&mut self, owner: NodeId, key: &Key, seq: u64) -> bool {
        let matches = self
            .entries
            .get(&(owner, key.clone()))
            .is_some_and(|h| h.seq == seq);
        if matches {
            self.remove_entry(owner, key);
        }
        matches
    }

    /// The merge of every hint held for `key` (any owner): what a fallback answers a read
    /// with.
    pub fn object_for(&self, key: &Key) -> Option<Object> {
        let mut found: Option<Object> = None;
        for ((_, k), hint) in &self.entries {
            if k == key {
                match &mut found {
                    Some(object) => {
                        object.merge(&hint.object);
                    }
                    None => found = Some(hint.object.clone()),
                }
            }
        }
        found
    }

    /// Hints older than `max_age` at `now`: `(owner, key, seq)`.
    pub fn expired(&self, now: Time) -> Vec<(NodeId, Key, u64)> {
        self.entries
            .iter()
            .filter(|(_, h)| now.saturating_since(h.since) >= self.limits.max_age)
            .map(|((owner, key), h)| (*owner, key.clone(), h.seq))
            .collect()
    }

    /// Up to `batch` hints for `owner` not sent within `retry`, marked as sent at `now`.
    pub fn due(
        &mut self,
        owner: NodeId,
        now: Time,
        batch: usize,
        retry: Duration,
    ) -> Vec<(Key, u64, Object)> {
        let mut out = Vec::new();
        let start = (owner, Key::new());
        for ((o, key), hint) in self.entries.range_mut(start..) {
            if *o != owner || out.len() >= batch {
                break;
            }
            if hint.sent_at.is_some_and(|at| now < at + retry) {
                continue;
            }
            hint.sent_at = Some(now);
            out.push((key.clone(), hint.seq, hint.object.clone()));
        }
        out
    }

    fn insert_entry(&mut self, owner: NodeId, key: Key, object: Object, seq: u64, since: Time) {
        let bytes = key.len() + object.approx_bytes();
        let target = self.per_target.entry(owner).or_insert((0, 0));
        target.0 += 1;
        target.1 += bytes;
        self.total_bytes += bytes;
        self.entries.insert(
            (owner, key),
            Hint {
                seq,
                object,
                bytes,
                since,
                sent_at: None,
            },
        );
    }

    fn remove_entry(&mut self, owner: NodeId, key: &Key) {
        if let Some(hint) = self.entries.remove(&(owner, key.clone())) {
            if let Some(target) = self.per_target.get_mut(&owner) {
                target.0 = target.0.saturating_sub(1);
                target.1 = target.1.saturating_sub(hint.bytes);
                if target.0 == 0 {
                    self.per_target.remove(&owner);
                }
            }
            self.total_bytes = self.total_bytes.saturating_sub(hint.bytes);
        }
    }
}
