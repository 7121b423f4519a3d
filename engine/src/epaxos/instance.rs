//! Instances, their attributes, and the per-key index that computes dependencies.

use super::batch::Batch;
use super::messages::Ballot;
use crate::command::{Command, Key};
use crate::id::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// `(command leader, slot)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InstanceId {
    /// The replica that leads it.
    pub leader: NodeId,
    /// The leader's own counter.
    pub slot: u64,
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.leader.0, self.slot)
    }
}

/// Ordering attributes: a sequence number and the instances it depends on.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Attributes {
    /// Orders commands inside a strongly connected component.
    pub seq: u64,
    /// Interfering instances that must execute first (or in the same component).
    pub deps: BTreeSet<InstanceId>,
}

impl Attributes {
    /// Union of dependencies and maximum sequence number (slow-path merge).
    pub fn merge(&mut self, other: &Self) {
        self.seq = self.seq.max(other.seq);
        self.deps.extend(other.deps.iter().copied());
    }
}

/// How far an instance got at this replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Status {
    /// Phase 1 attributes recorded.
    PreAccepted,
    /// Phase 2 attributes recorded.
    Accepted,
    /// Final attributes known.
    Committed,
}

/// One instance as this replica knows it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Instance {
    pub(super) payload: Batch,
    pub(super) attributes: Attributes,
    pub(super) status: Status,
    /// Highest ballot promised for this instance.
    pub(super) promised: Ballot,
    /// Ballot the current attributes were recorded in (kept apart from `promised`).
    pub(super) accepted_in: Ballot,
}

/// Per key: the latest interfering instances of each leader, so a new command's
/// dependencies are found without scanning every instance. Earlier instances of the same
/// leader are reached transitively (a leader always includes its own earlier interfering
/// instances).
#[derive(Clone, Debug, Default, Hash)]
pub struct KeyIndex {
    keys: BTreeMap<Key, BTreeMap<NodeId, KeyEntry>>,
}

#[derive(Clone, Debug, Default, Hash)]
struct KeyEntry {
    /// Latest write of this leader on the key, and its sequence number.
    last_write: Option<(u64, u64)>,
    /// Reads of this leader after that write, with their sequence numbers.
    reads_after: Vec<(u64, u64)>,
}

impl KeyIndex {
    /// Attributes for `command` given everything indexed (excluding `this` instance).
    pub fn attributes_for(&self, this: InstanceId, command: &Command) -> Attributes {
        let mut attributes = Attributes::default();
        let Some(entries) = self.keys.get(command.key()) else {
            attributes.seq = 1;
            return attributes;
        };
        let mut max_seq = 0;
        for (&leader, entry) in entries {
            let mut add = |slot: u64, seq: u64| {
                let id = InstanceId { leader, slot };
                if id != this {
                    attributes.deps.insert(id);
                    max_seq = max_seq.max(seq);
                }
            };
            if let Some((slot, seq)) = entry.last_write {
                add(slot, seq);
            }
            if !command.is_read() {
                for &(slot, seq) in &entry.reads_after {
                    add(slot, seq);
                }
            }
        }
        attributes.seq = max_seq + 1;
        attributes
    }

    /// Remember an instance (called whenever its attributes are recorded here).
    pub fn insert(&mut self, id: InstanceId, command: &Command, seq: u64) {
        let entry = self
            .keys
            .entry(command.key().clone())
            .or_default()
            .entry(id.leader)
            .or_default();
        if command.is_read() {
            let after_write = entry.last_write.is_none_or(|(w, _)| id.slot > w);
            if after_write {
                match entry.reads_after.iter_mut().find(|(s, _)| *s == id.slot) {
                    Some(existing) => existing.1 = existing.1.max(seq),
                    None => entry.reads_after.push((id.slot, seq)),
                }
            }
        } else {
            match entry.last_write {
                Some((w, s)) if w > id.slot => {
                    let _ = s;
                }
                Some((w, s)) if w == id.slot => entry.last_write = Some((w, s.max(seq))),
                _ => {
                    entry.last_write = Some((id.slot, seq));
                    entry.reads_after.retain(|(s, _)| *s > id.slot);
                }
            }
        }
    }
}

impl KeyIndex {
    /// Keys indexed.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl Instance {
    pub(super) fn new(
        payload: Batch,
        attributes: Attributes,
        status: Status,
        ballot: Ballot,
    ) -> Self {
        Self {
            payload,
            attributes,
            status,
            promised: ballot,
            accepted_in: ballot,
        }
    }
}
