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
    /// Read the keys that start with `prefix` and their values, in key order: at most
    /// `limit` entries, fewer if their bytes would pass the state machine's reply
    /// budget (`SCAN_MAX_BYTES`, 4 MiB). Only protocols that
    /// order it against every write under the prefix take it (Multi-Paxos, whose log
    /// orders everything); the others refuse it.
    Scan {
        /// Keys that start with it (empty: every key).
        prefix: Key,
        /// Only keys after this one (to continue a scan that stopped early).
        after: Option<Key>,
        /// Entries returned at most.
        limit: u32,
    },
    /// Count the keys that start with `prefix` (taken where [`Command::Scan`] is).
    Count {
        /// Keys that start with it (empty: every key).
        prefix: Key,
    },
}

/// Default most commands per EPaxos instance and Multi-Paxos slot: batching is on, and
/// adaptive (a replica packs only the requests it finds waiting together; a lone request
/// is proposed at once).
pub const DEFAULT_MAX_BATCH: usize = 256;

/// Default bytes of keys and values past which a batch stops growing (well below the
/// 4 MiB default peer frame).
pub const DEFAULT_MAX_BATCH_BYTES: usize = 256 << 10;

/// How many of `commands` (queued in order) one batch takes: at least one, at most
/// `max_count`, and no more once their [`Command::payload_bytes`] would pass `max_bytes`
/// (so a batch of large values still fits a peer frame).
pub(crate) fn batch_len<'a>(
    commands: impl Iterator<Item = &'a Command>,
    max_count: usize,
    max_bytes: usize,
) -> usize {
    let mut bytes = 0usize;
    let mut taken = 0usize;
    for command in commands.take(max_count.max(1)) {
        bytes = bytes.saturating_add(command.payload_bytes());
        if taken > 0 && bytes > max_bytes {
            break;
        }
        taken += 1;
    }
    taken
}

impl Command {
    /// Bytes of keys and values the command carries (what a batch's size is bounded by).
    pub fn payload_bytes(&self) -> usize {
        match self {
            Self::Get { key } | Self::Delete { key } => key.len(),
            Self::Put { key, value } => key.len() + value.len(),
            Self::Cas { key, expected, new } => {
                key.len() + expected.as_ref().map_or(0, Vec::len) + new.len()
            }
            Self::Scan { prefix, after, .. } => prefix.len() + after.as_ref().map_or(0, Vec::len),
            Self::Count { prefix } => prefix.len(),
        }
    }

    /// The key the command touches; for [`Command::Scan`] and [`Command::Count`], which
    /// touch every key under it, their prefix (see [`Command::prefix`]): code that indexes
    /// commands by key must refuse those two.
    pub fn key(&self) -> &Key {
        match self {
            Self::Get { key } | Self::Put { key, .. } | Self::Delete { key } => key,
            Self::Cas { key, .. } => key,
            Self::Scan { prefix, .. } | Self::Count { prefix } => prefix,
        }
    }

    /// For a range read ([`Command::Scan`], [`Command::Count`]), its prefix.
    pub fn prefix(&self) -> Option<&Key> {
        match self {
            Self::Scan { prefix, .. } | Self::Count { prefix } => Some(prefix),
            _ => None,
        }
    }

    /// Whether the command only reads.
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            Self::Get { .. } | Self::Scan { .. } | Self::Count { .. }
        )
    }

    /// Whether the command touches `key`.
    pub fn touches(&self, key: &[u8]) -> bool {
        match self.prefix() {
            Some(prefix) => key.starts_with(prefix),
            None => self.key().as_slice() == key,
        }
    }

    /// Whether executing `self` and `other` in different orders can produce different
    /// results: they touch a common key and at least one of them writes. Reads never
    /// interfere with reads; a range read interferes with every write under its prefix.
    pub fn interferes(&self, other: &Self) -> bool {
        if self.is_read() && other.is_read() {
            return false;
        }
        // At most one of the two is a range read (range reads are reads).
        match (self.prefix(), other.prefix()) {
            (Some(_), _) => self.touches(other.key()),
            (None, _) => other.touches(self.key()),
        }
    }

    /// Short name of the operation, as used in histories and metrics.
    pub fn op_name(&self) -> &'static str {
        match self {
            Self::Get { .. } => "get",
            Self::Put { .. } => "put",
            Self::Delete { .. } => "delete",
            Self::Cas { .. } => "cas",
            Self::Scan { .. } => "scan",
            Self::Count { .. } => "count",
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
    /// Result of a `Scan`: entries in key order.
    Entries {
        /// The keys under the prefix with their values, from the first.
        entries: Vec<(Key, Value)>,
        /// Whether more keys are under the prefix than were returned (the limit or the
        /// byte budget stopped the scan).
        more: bool,
    },
    /// Result of a `Count`: how many keys are under the prefix.
    Count(u64),
}

#[cfg(test)]
#[path = "command_test.rs"]
mod tests;
