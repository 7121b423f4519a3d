//! Deterministic application of committed commands.

use crate::command::{Command, CommandResult, Key, Value};
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
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
mod tests {
    use super::*;

    #[test]
    fn cas_applies_only_when_expected_matches() {
        let mut kv = KvStore::new();
        let cas = |expected: Option<&str>, new: &str| Command::Cas {
            key: b"k".to_vec(),
            expected: expected.map(|e| e.as_bytes().to_vec()),
            new: new.as_bytes().to_vec(),
        };
        assert_eq!(
            kv.apply(&cas(None, "a")),
            CommandResult::Cas {
                applied: true,
                previous: None
            }
        );
        assert_eq!(
            kv.apply(&cas(None, "b")),
            CommandResult::Cas {
                applied: false,
                previous: Some(b"a".to_vec())
            }
        );
        assert_eq!(
            kv.apply(&cas(Some("a"), "c")),
            CommandResult::Cas {
                applied: true,
                previous: Some(b"a".to_vec())
            }
        );
        assert_eq!(kv.read(b"k"), Some(&b"c".to_vec()));
    }

    #[test]
    fn delete_makes_the_key_absent() {
        let mut kv = KvStore::new();
        kv.apply(&Command::Put {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        });
        kv.apply(&Command::Delete { key: b"k".to_vec() });
        assert_eq!(
            kv.apply(&Command::Get { key: b"k".to_vec() }),
            CommandResult::Value(None)
        );
    }
}
