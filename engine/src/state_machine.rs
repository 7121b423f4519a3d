//! Deterministic application of committed commands.

use crate::command::{Command, CommandResult, Key, Value};
use crate::hashed::HashedMap;
use serde::de::Deserializer;
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Bound;

/// Bytes (keys and values) a [`Command::Scan`] returns at most, so its reply fits a
/// frame: it stops before an entry that would pass this, unless that is its first (a
/// single entry was written in one request, so it fits).
pub const SCAN_MAX_BYTES: usize = 4 << 20;

/// A deterministic state machine the protocols apply committed commands to.
///
/// # Correctness
/// `apply` must be a pure function of the state and the command: replicas that apply the
/// same commands in the same order must return the same results and reach the same state.
pub trait StateMachine {
    /// Apply one command and return its result.
    fn apply(&mut self, command: &Command) -> CommandResult;
}

/// The replicated key-value map.
///
/// Every command finds its key by hash; the keys are also kept in order, touched only
/// when a key is added or removed, for scans, counts and encoding. (A `BTreeMap` alone
/// compared key bytes at every level of every lookup: an eighth of a simulated
/// Multi-Paxos run's CPU, each replica applying every command.) Encoded, hashed and
/// printed as the map in key order, as the `BTreeMap<Key, Value>` it was, so snapshots
/// keep their bytes.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KvStore {
    values: HashedMap<Key, Value>,
    /// The keys of `values`, in order.
    order: BTreeSet<Key>,
}

impl KvStore {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Read a key without going through a protocol (local, possibly stale reads).
    pub fn read(&self, key: &[u8]) -> Option<&Value> {
        self.values.get(key)
    }

    /// Number of keys present.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no key is present.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The entries whose key starts with `prefix` (and comes after `after`, if given), in
    /// key order.
    pub fn prefixed<'a>(
        &'a self,
        prefix: &'a [u8],
        after: Option<&'a [u8]>,
    ) -> impl Iterator<Item = (&'a Key, &'a Value)> {
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        self.order
            .range::<[u8], _>((start, Bound::Unbounded))
            .take_while(move |key| key.starts_with(prefix))
            .filter_map(|key| self.values.get_key_value(key))
    }

    /// What a [`Command::Scan`] returns: the entries under `prefix` after `after`, at
    /// most `limit` of them within [`SCAN_MAX_BYTES`], and whether more keys matched.
    pub fn scan(&self, prefix: &[u8], after: Option<&[u8]>, limit: u32) -> CommandResult {
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        for (key, value) in self.prefixed(prefix, after) {
            let size = key.len() + value.len();
            let full = entries.len() >= limit as usize
                || (!entries.is_empty() && bytes.saturating_add(size) > SCAN_MAX_BYTES);
            if full {
                return CommandResult::Entries {
                    entries,
                    more: true,
                };
            }
            bytes += size;
            entries.push((key.clone(), value.clone()));
        }
        CommandResult::Entries {
            entries,
            more: false,
        }
    }

    /// What a [`Command::Count`] of `prefix` returns.
    pub fn count(&self, prefix: &[u8]) -> CommandResult {
        CommandResult::Count(self.prefixed(prefix, None).count() as u64)
    }

    /// What a read-only command returns on this state without applying anything (local
    /// reads); `None` for a write.
    pub fn read_only(&self, command: &Command) -> Option<CommandResult> {
        match command {
            Command::Get { key } => Some(CommandResult::Value(self.values.get(key).cloned())),
            Command::Scan {
                prefix,
                after,
                limit,
            } => Some(self.scan(prefix, after.as_deref(), *limit)),
            Command::Count { prefix } => Some(self.count(prefix)),
            Command::Put { .. } | Command::Delete { .. } | Command::Cas { .. } => None,
        }
    }

    /// All entries in key order (snapshots, tests).
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Value)> {
        self.order
            .iter()
            .filter_map(|key| self.values.get_key_value(key))
    }

    /// Set `key` to `value`. A key written before keeps its entry and reuses its value's
    /// allocation: most writes rewrite a key, and cloning the key and value anew for each
    /// was a tenth of a simulated Multi-Paxos run's CPU.
    fn write(&mut self, key: &Key, value: &Value) {
        match self.values.get_mut(key) {
            Some(current) => current.clone_from(value),
            None => {
                self.values.insert(key.clone(), value.clone());
                self.order.insert(key.clone());
            }
        }
    }
}

impl Hash for KvStore {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.len().hash(state);
        self.iter().for_each(|entry| entry.hash(state));
    }
}

impl fmt::Debug for KvStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KvStore")
            .field("entries", &DebugMap(self))
            .finish()
    }
}

/// The entries in key order, printed as a map.
struct DebugMap<'a>(&'a KvStore);

impl fmt::Debug for DebugMap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

/// The encoded form: the struct with one `BTreeMap` it was.
#[derive(Serialize)]
#[serde(rename = "KvStore")]
struct Encoded<Entries> {
    entries: Entries,
}

/// The entries in key order, encoded as a map.
struct OrderedEntries<'a>(&'a KvStore);

impl Serialize for OrderedEntries<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in self.0.iter() {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl Serialize for KvStore {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Encoded {
            entries: OrderedEntries(self),
        }
        .serialize(serializer)
    }
}

#[derive(Deserialize)]
#[serde(rename = "KvStore")]
struct Decoded {
    entries: BTreeMap<Key, Value>,
}

impl<'de> Deserialize<'de> for KvStore {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let decoded = Decoded::deserialize(deserializer)?;
        Ok(Self {
            order: decoded.entries.keys().cloned().collect(),
            values: decoded.entries.into_iter().collect(),
        })
    }
}

impl StateMachine for KvStore {
    fn apply(&mut self, command: &Command) -> CommandResult {
        match command {
            Command::Get { key } => CommandResult::Value(self.values.get(key).cloned()),
            Command::Scan {
                prefix,
                after,
                limit,
            } => self.scan(prefix, after.as_deref(), *limit),
            Command::Count { prefix } => self.count(prefix),
            Command::Put { key, value } => {
                self.write(key, value);
                CommandResult::Written
            }
            Command::Delete { key } => {
                if self.values.remove(key).is_some() {
                    self.order.remove(key);
                }
                CommandResult::Written
            }
            Command::Cas { key, expected, new } => {
                let previous = self.values.get(key).cloned();
                let applied = previous == *expected;
                if applied {
                    self.write(key, new);
                }
                CommandResult::Cas { applied, previous }
            }
        }
    }
}

#[cfg(test)]
#[path = "state_machine_test.rs"]
mod tests;
