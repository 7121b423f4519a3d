//! The key-value command model and which commands interfere.

use serde::{Deserialize, Serialize};

/// Keys are arbitrary bytes.
pub type Key = Vec<u8>;
/// Values are arbitrary bytes.
pub type Value = Vec<u8>;

/// A command on the replicated key-value map.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Command {
    /// Read the value of `key`.
    Get {
        /// Key to read.
        key: Key,
    },
    /// Set `key` to `value`.
    Put {
        /// Key to write.
        key: Key,
        /// New value.
        value: Value,
    },
    /// Remove `key`.
    Delete {
        /// Key to remove.
        key: Key,
    },
    /// Set `key` to `new` only if its current value equals `expected`
    /// (`None` = the key is absent).
    Cas {
        /// Key to compare and set.
        key: Key,
        /// Value the key must hold for the swap to apply; `None` means absent.
        expected: Option<Value>,
        /// Value written when the comparison succeeds.
        new: Value,
    },
}

impl Command {
    /// The key the command touches.
    pub fn key(&self) -> &Key {
        match self {
            Self::Get { key } | Self::Put { key, .. } | Self::Delete { key } => key,
            Self::Cas { key, .. } => key,
        }
    }

    /// Whether the command only reads.
    pub fn is_read(&self) -> bool {
        matches!(self, Self::Get { .. })
    }

    /// Whether executing `self` and `other` in different orders can produce different
    /// results: they touch the same key and at least one of them writes.
    /// Reads never interfere with reads.
    pub fn interferes(&self, other: &Self) -> bool {
        self.key() == other.key() && !(self.is_read() && other.is_read())
    }

    /// Short name of the operation, as used in histories and metrics.
    pub fn op_name(&self) -> &'static str {
        match self {
            Self::Get { .. } => "get",
            Self::Put { .. } => "put",
            Self::Delete { .. } => "delete",
            Self::Cas { .. } => "cas",
        }
    }
}

/// What applying a [`Command`] to the state machine returned.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CommandResult {
    /// Result of a `Get`: the value, or `None` when absent.
    Value(Option<Value>),
    /// Result of a `Put` or `Delete`.
    Written,
    /// Result of a `Cas`: whether it applied, and the value the key held before it.
    Cas {
        /// Whether `expected` matched and `new` was written.
        applied: bool,
        /// The value before the command (equals `expected` when applied).
        previous: Option<Value>,
    },
}

#[cfg(test)]
#[path = "command_test.rs"]
mod tests;
