//! [`KeyMap`]: per-key state found by hashing the key, for tables that are looked up
//! on every command (the EPaxos key index, the per-key sessions).
//!
//! A `BTreeMap<Key, _>` compares key bytes at every level on every lookup; with tens
//! of thousands of keys that sharing long prefixes (`user-000123`), those compares
//! were several per cent of a replica's CPU. A hash lookup reads the key once.
//!
//! The hasher is seeded at random (keys come from clients: a fixed seed would let one
//! choose colliding keys), so iteration order differs from run to run. Nothing
//! observable may depend on it: encoding, hashing and `Debug` go through the keys in
//! their sorted order, so snapshots keep the bytes of the `BTreeMap` this replaced and a
//! simulated run stays the same for the same seed. [`KeyMap::iter_unordered`] and
//! [`KeyMap::retain`] are for uses whose result does not depend on the order.

use crate::command::Key;
use crate::hashed::HashedMap;
use serde::de::Deserializer;
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};

/// A map from keys to `V`, looked up by hash; see the module doc for its order.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMap<V> {
    map: HashedMap<Key, V>,
}

impl<V> Default for KeyMap<V> {
    fn default() -> Self {
        Self {
            map: HashedMap::default(),
        }
    }
}

impl<V> KeyMap<V> {
    /// The value of `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        Key: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key)
    }

    /// The value of `key`, to change.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        Key: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get_mut(key)
    }

    /// Whether `key` has a value.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        Key: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.contains_key(key)
    }

    /// Set the value of `key`; returns the previous one.
    pub fn insert(&mut self, key: Key, value: V) -> Option<V> {
        self.map.insert(key, value)
    }

    /// Remove `key`; returns its value.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        Key: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.remove(key)
    }

    /// The value of `key`, created empty if missing (look it up with
    /// [`KeyMap::get_mut`] first to copy the key only when it is new).
    pub fn entry_or_default(&mut self, key: Key) -> &mut V
    where
        V: Default,
    {
        self.map.entry(key).or_default()
    }

    /// Keys with a value.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key has a value.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Keep only the entries `keep` accepts (called in no particular order), then give
    /// memory back if most of the table is now empty.
    pub fn retain(&mut self, keep: impl FnMut(&Key, &mut V) -> bool) {
        self.map.retain(keep);
        if self.map.capacity() > 4 * self.map.len() + 64 {
            self.map.shrink_to_fit();
        }
    }

    /// Every entry, in no particular order (for uses whose result does not depend on
    /// it).
    pub fn iter_unordered(&self) -> impl Iterator<Item = (&Key, &V)> {
        self.map.iter()
    }

    /// Every entry in key order.
    pub fn sorted(&self) -> Vec<(&Key, &V)> {
        let mut entries: Vec<(&Key, &V)> = self.map.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        entries
    }
}

impl<Q, V> std::ops::Index<&Q> for KeyMap<V>
where
    Key: Borrow<Q>,
    Q: Hash + Eq + ?Sized,
{
    type Output = V;

    /// The value of `key`; panics if there is none (like a map's index).
    fn index(&self, key: &Q) -> &V {
        &self.map[key]
    }
}

impl<V: fmt::Debug> fmt::Debug for KeyMap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.sorted()).finish()
    }
}

/// Hashes like the sorted map it replaced: the length, then every entry in key order.
impl<V: Hash> Hash for KeyMap<V> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.map.len());
        for entry in self.sorted() {
            entry.hash(state);
        }
    }
}

/// Encodes as a map in key order: the bytes of the `BTreeMap` it replaced.
impl<V: Serialize> Serialize for KeyMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.map.len()))?;
        for (key, value) in self.sorted() {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for KeyMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self {
            map: HashedMap::deserialize(deserializer)?,
        })
    }
}

#[cfg(test)]
#[path = "key_map_test.rs"]
mod tests;
