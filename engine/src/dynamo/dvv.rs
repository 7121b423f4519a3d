//! Dotted version vectors: per-key causality that keeps exactly the concurrent versions.
//!
//! A key's state is an [`Object`] (a DVV set in the sense of Almeida, Baquero, Gonçalves,
//! Preguiça, Fonte, "Scalable and Accurate Causality Tracking for Eventually Consistent
//! Stores", DAIS 2014): the surviving versions (*siblings*), each tagged with the *dot*
//! `(actor, counter)` of the write that created it, and a causal *context*, a version
//! vector summarising every write this replica has seen for the key, superseded or not.
//!
//! ```text
//!  write(client ctx C, fresh dot d, v):  siblings ← {s | s.dot ∉ C} ∪ {d ↦ v}
//!                                        context  ← context ∪ C ∪ {d}
//!  merge(a, b):  keep s ∈ a if s ∈ b or s.dot ∉ b.context   (and symmetrically)
//!                context ← a.context ∪ b.context
//! ```
//! A write supersedes exactly the versions its client saw (their dots are in `C`); two
//! writes that did not see each other both survive as siblings. A dot is a single event,
//! not a range, so a version written without a context never hides an older sibling of
//! the same actor (the "sibling explosion" and false-supersession problems of plain
//! per-client or per-server version vectors).
//!
//! # Why a version vector suffices as the context (the prefix property)
//! `context[a] = n` claims "every dot of actor `a` on this key up to `n` is seen". That is
//! true only if whoever holds `(a, n)` also holds (or saw superseded) every earlier dot of
//! `a` on this key. The Dynamo core guarantees it:
//! 1. an actor issues dots for a key only where it stores the key, from its in-memory
//!    object, which holds every dot the actor issued on the key (or their supersessors);
//! 2. replicas always exchange whole objects, never single siblings;
//! 3. counters are node-wide per actor, so a counter is never reused even after a key's
//!    tombstone is garbage-collected;
//! 4. an actor is `(node, epoch)` and a node takes a fresh epoch on *every* boot: what a
//!    crash lost from memory (including dots that left the node before they were
//!    durable) and what a lost disk forgot can never be reissued (Riak kv679).
//!
//! A coordinator that does not store the key issues its one dot under a one-shot actor
//! (an epoch derived from its boot epoch and counter), which trivially has no earlier
//! dots.

use crate::command::Value;
use crate::dynamo::hash::Hasher64;
use crate::id::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Who issues dots: a node in one epoch of its disk.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Actor {
    /// The node.
    pub node: NodeId,
    /// Random per boot (and derived per one-shot coordination).
    pub epoch: u64,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{:x}", self.node, self.epoch & 0xffff)
    }
}

/// One write event: the actor that issued it and its counter.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Dot {
    /// Issuer.
    pub actor: Actor,
    /// Strictly increasing per actor (node-wide, not per key).
    pub counter: u64,
}

/// Per-actor high-water marks: the set of dots `{(a, c) | c ≤ vv[a]}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VersionVector(BTreeMap<Actor, u64>);

/// A client context that could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// Wrong format version byte.
    #[error("unknown causal context format {0} (expected 1)")]
    Version(u8),
    /// Too short, too long, or a count that does not match the length.
    #[error("causal context of {0} bytes is truncated or has trailing bytes")]
    Length(usize),
}

const CONTEXT_FORMAT: u8 = 1;
const ENTRY_BYTES: usize = 2 + 8 + 8;

impl VersionVector {
    /// The empty vector (nothing seen).
    pub fn new() -> Self {
        Self::default()
    }

    /// Highest counter seen from `actor` (0 = none).
    pub fn get(&self, actor: &Actor) -> u64 {
        self.0.get(actor).copied().unwrap_or(0)
    }

    /// Whether `dot` is in the set.
    pub fn contains(&self, dot: &Dot) -> bool {
        self.get(&dot.actor) >= dot.counter
    }

    /// Add `dot` (and, by the prefix property, everything before it).
    pub fn add(&mut self, dot: &Dot) {
        let entry = self.0.entry(dot.actor).or_insert(0);
        *entry = (*entry).max(dot.counter);
    }

    /// Pointwise maximum.
    pub fn join(&mut self, other: &Self) {
        for (actor, &counter) in &other.0 {
            let entry = self.0.entry(*actor).or_insert(0);
            *entry = (*entry).max(counter);
        }
    }

    /// Whether every dot of `other` is in `self`.
    pub fn dominates(&self, other: &Self) -> bool {
        other.0.iter().all(|(actor, &c)| self.get(actor) >= c)
    }

    /// Dots of `other` missing here, one `(actor, counter)` per actor (for error texts).
    pub fn missing_from(&self, other: &Self) -> Vec<(Actor, u64)> {
        other
            .0
            .iter()
            .filter(|(actor, &c)| self.get(actor) < c)
            .map(|(a, &c)| (*a, c))
            .collect()
    }

    /// Whether nothing is in the set.
    pub fn is_empty(&self) -> bool {
        self.0.values().all(|&c| c == 0)
    }

    /// Number of actors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Every `(actor, counter)` in actor order.
    pub fn iter(&self) -> impl Iterator<Item = (&Actor, &u64)> {
        self.0.iter()
    }

    /// The opaque bytes handed to clients: a format byte, a little-endian `u32` count,
    /// then per actor `node: u16, epoch: u64, counter: u64` (little-endian).
    pub fn encode(&self) -> Vec<u8> {
        let entries: Vec<_> = self.0.iter().filter(|(_, &c)| c > 0).collect();
        let mut out = Vec::with_capacity(5 + entries.len() * ENTRY_BYTES);
        out.push(CONTEXT_FORMAT);
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        for (actor, &counter) in entries {
            out.extend_from_slice(&actor.node.0.to_le_bytes());
            out.extend_from_slice(&actor.epoch.to_le_bytes());
            out.extend_from_slice(&counter.to_le_bytes());
        }
        out
    }

    /// Parse [`encode`](Self::encode)'s output. Empty bytes are the empty context.
    pub fn decode(bytes: &[u8]) -> Result<Self, ContextError> {
        if bytes.is_empty() {
            return Ok(Self::new());
        }
        if bytes[0] != CONTEXT_FORMAT {
            return Err(ContextError::Version(bytes[0]));
        }
        let length_error = || ContextError::Length(bytes.len());
        let count_bytes: [u8; 4] = bytes
            .get(1..5)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(length_error)?;
        let count = u32::from_le_bytes(count_bytes) as usize;
        let body = &bytes[5..];
        if count.checked_mul(ENTRY_BYTES) != Some(body.len()) {
            return Err(length_error());
        }
        let mut vv = Self::new();
        for chunk in body.chunks_exact(ENTRY_BYTES) {
            let word = |range: std::ops::Range<usize>| {
                let mut buf = [0u8; 8];
                buf.copy_from_slice(&chunk[range]);
                u64::from_le_bytes(buf)
            };
            let node = NodeId(u16::from_le_bytes([chunk[0], chunk[1]]));
            let dot = Dot {
                actor: Actor {
                    node,
                    epoch: word(2..10),
                },
                counter: word(10..18),
            };
            vv.add(&dot);
        }
        Ok(vv)
    }
}

impl FromIterator<Dot> for VersionVector {
    fn from_iter<I: IntoIterator<Item = Dot>>(iter: I) -> Self {
        let mut vv = Self::new();
        for dot in iter {
            vv.add(&dot);
        }
        vv
    }
}

/// One version of a key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Sibling {
    /// The value, or `None` for a delete (tombstone).
    pub value: Option<Value>,
    /// The coordinator's clock when written (µs). Only last-write-wins keyspaces use it.
    pub timestamp_us: u64,
}

/// A key's versions and causal context (a DVV set).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Object {
    siblings: BTreeMap<Dot, Sibling>,
    context: VersionVector,
}

impl Object {
    /// Nothing written, nothing seen.
    pub fn new() -> Self {
        Self::default()
    }

    /// The surviving versions, in dot order.
    pub fn siblings(&self) -> impl Iterator<Item = (&Dot, &Sibling)> {
        self.siblings.iter()
    }

    /// The surviving values (`None` = delete), in dot order.
    pub fn values(&self) -> Vec<Option<Value>> {
        self.siblings.values().map(|s| s.value.clone()).collect()
    }

    /// Every write seen for the key; a client that passes it back supersedes all siblings.
    pub fn context(&self) -> &VersionVector {
        &self.context
    }

    /// Number of siblings.
    pub fn sibling_count(&self) -> usize {
        self.siblings.len()
    }

    /// Whether no version survives (never written, as far as this object knows).
    pub fn is_empty(&self) -> bool {
        self.siblings.is_empty()
    }

    /// Whether every surviving version is a delete (and there is at least one).
    pub fn is_tombstone(&self) -> bool {
        !self.siblings.is_empty() && self.siblings.values().all(|s| s.value.is_none())
    }

    /// The object after a client write: `dot` must be fresh (not in this context), and
    /// `client` is the context the client read. Siblings the client saw are superseded;
    /// the others survive next to the new version.
    pub fn update(&self, client: &VersionVector, dot: Dot, sibling: Sibling) -> Self {
        debug_assert!(!self.context.contains(&dot), "dot {dot:?} reissued");
        let mut siblings: BTreeMap<Dot, Sibling> = self
            .siblings
            .iter()
            .filter(|(d, _)| !client.contains(d))
            .map(|(d, s)| (*d, s.clone()))
            .collect();
        siblings.insert(dot, sibling);
        let mut context = self.context.clone();
        context.join(client);
        context.add(&dot);
        Self { siblings, context }
    }

    /// Merge another replica's object into this one; returns whether this one changed.
    ///
    /// Commutative, associative and idempotent (checked by property tests). Robust to a
    /// peer's object whose context misses its own sibling dots: those count as seen.
    pub fn merge(&mut self, other: &Self) -> bool {
        let mut theirs = other.context.clone();
        for dot in other.siblings.keys() {
            theirs.add(dot);
        }
        let mut ours = self.context.clone();
        for dot in self.siblings.keys() {
            ours.add(dot);
        }
        let mut merged: BTreeMap<Dot, Sibling> = BTreeMap::new();
        for (dot, sibling) in &self.siblings {
            match other.siblings.get(dot) {
                // Same dot must mean the same write; a disagreeing peer gets a
                // deterministic winner so merges still commute.
                Some(them) => {
                    merged.insert(*dot, sibling.clone().max(them.clone()));
                }
                None if !theirs.contains(dot) => {
                    merged.insert(*dot, sibling.clone());
                }
                None => {}
            }
        }
        for (dot, sibling) in &other.siblings {
            if !self.siblings.contains_key(dot) && !ours.contains(dot) {
                merged.insert(*dot, sibling.clone());
            }
        }
        ours.join(&theirs);
        let changed = merged != self.siblings || ours != self.context;
        self.siblings = merged;
        self.context = ours;
        changed
    }

    /// The merge of two objects.
    pub fn join(&self, other: &Self) -> Self {
        let mut out = self.clone();
        out.merge(other);
        out
    }

    /// Last-write-wins keyspaces only (lossy by design): keep the single sibling with the
    /// highest `(timestamp, dot)`. Returns how many siblings were discarded.
    pub fn keep_last_writer(&mut self) -> usize {
        let Some(winner) = self
            .siblings
            .iter()
            .max_by_key(|(dot, s)| (s.timestamp_us, **dot))
            .map(|(dot, _)| *dot)
        else {
            return 0;
        };
        let before = self.siblings.len();
        self.siblings.retain(|dot, _| *dot == winner);
        before - self.siblings.len()
    }

    /// Approximate encoded size, for hint-store bounds.
    pub fn approx_bytes(&self) -> usize {
        let siblings: usize = self
            .siblings
            .values()
            .map(|s| 34 + s.value.as_ref().map_or(0, Vec::len))
            .sum();
        siblings + self.context.len() * ENTRY_BYTES + 8
    }

    /// A digest of the whole object (siblings and context), equal on equal objects.
    pub fn digest(&self) -> u64 {
        let mut h = Hasher64::default();
        h.u64(self.siblings.len() as u64);
        for (dot, sibling) in &self.siblings {
            h.u64(u64::from(dot.actor.node.0))
                .u64(dot.actor.epoch)
                .u64(dot.counter)
                .u64(sibling.timestamp_us);
            match &sibling.value {
                Some(v) => h.u64(1).field(v),
                None => h.u64(0),
            };
        }
        h.u64(self.context.len() as u64);
        for (actor, counter) in self.context.iter() {
            h.u64(u64::from(actor.node.0))
                .u64(actor.epoch)
                .u64(*counter);
        }
        h.finish()
    }
}
