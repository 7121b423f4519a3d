//! Deterministic application of committed commands.

use crate::command::{Command, CommandResult, Key, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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

    /// All entries in key order (snapshots, tests).
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Value)> {
        self.entries.iter()
    }
}

impl StateMachine for KvStore {
    fn apply(&mut self, command: &Command) -> CommandResult {
        match command {
            Command::Get { key } => CommandResult::Value(self.entries.get(key).cloned()),
            Command::Put { key, value } => {
                self.entries.insert(key.clone(), value.clone());
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
                    self.entries.insert(key.clone(), new.clone());
                }
                CommandResult::Cas { applied, previous }
            }
        }
    }
}

#[cfg(test)]
#[path = "state_machine_test.rs"]
mod tests;
