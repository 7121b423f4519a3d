//! Deterministic application of committed commands.

use crate::command::{Command, CommandResult, Key, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KvStore {
    entries: BTreeMap<Key, Value>,
}

impl KvStore {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Read a key without going through a protocol (local, possibly stale reads).
    pub fn read(&self, key: &[u8]) -> Option<&Value> {
        self.entries.get(key)
    }

    /// Number of keys present.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is present.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
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
        self.entries
            .range::<[u8], _>((start, Bound::Unbounded))
            .take_while(move |(key, _)| key.starts_with(prefix))
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
            Command::Get { key } => Some(CommandResult::Value(self.entries.get(key).cloned())),
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
        self.entries.iter()
    }

    /// Set `key` to `value`. A key written before keeps its entry and reuses its value's
    /// allocation: most writes rewrite a key, and cloning the key and value anew for each
    /// was a tenth of a simulated Multi-Paxos run's CPU.
    fn write(&mut self, key: &Key, value: &Value) {
        match self.entries.get_mut(key) {
            Some(current) => current.clone_from(value),
            None => {
                self.entries.insert(key.clone(), value.clone());
            }
        }
    }
}

impl StateMachine for KvStore {
    fn apply(&mut self, command: &Command) -> CommandResult {
        match command {
            Command::Get { key } => CommandResult::Value(self.entries.get(key).cloned()),
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
                self.entries.remove(key);
                CommandResult::Written
            }
            Command::Cas { key, expected, new } => {
                let previous = self.entries.get(key).cloned();
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
