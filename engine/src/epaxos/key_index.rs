//! The per-key dependency index: a new command's attributes without scanning every
//! instance. Interference is per key and reads do not interfere with reads
//! (docs/design.md#epaxos, rule 3).

use super::instance::{Attributes, Batch, InstanceId};
use crate::command::Command;
use crate::id::NodeId;
use crate::key_map::KeyMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Per key: the latest interfering instances of each leader, so a new command's
/// dependencies are found without scanning every instance. Earlier instances of the same
/// leader are reached transitively (a leader always includes its own earlier interfering
/// instances). Keys are hashed, not compared ([`KeyMap`]); encoded in key order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyIndex {
    keys: KeyMap<Leaders>,
}

/// A key's entries by leader, sorted by leader. Most keys are named by one leader (a
/// unique-key load: every key), and a one-entry vector costs a tenth of a one-entry
/// `BTreeMap` (whose node has room for eleven): every replica holds an entry per key
/// written in the last seconds. Encoded as the map it replaces (snapshots keep their
/// format).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
struct Leaders(Vec<(NodeId, KeyEntry)>);

impl Leaders {
    /// `leader`'s entry, created empty if missing.
    fn entry(&mut self, leader: NodeId) -> &mut KeyEntry {
        let at = match self.0.binary_search_by_key(&leader, |&(l, _)| l) {
            Ok(at) => at,
            Err(at) => {
                // Exactly one more: a vector's first growth would make room for four.
                self.0.reserve_exact(1);
                self.0.insert(at, (leader, KeyEntry::default()));
                at
            }
        };
        &mut self.0[at].1
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
        for &(leader, ref entry) in &entries.0 {
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
        // The key is copied only when it is new.
        let leaders = match self.keys.get_mut(command.key()) {
            Some(leaders) => leaders,
            None => self.keys.entry_or_default(command.key().clone()),
        };
        let entry = leaders.entry(id.leader);
        if command.is_read() {
            entry.note_read(id.slot, seq);
        } else {
            entry.note_write(id.slot, seq);
        }
    }

    /// Attributes for a batch: the union over its commands (excluding `this` instance).
    /// A batch interferes with every command that interferes with one of its commands.
    pub fn attributes_for_batch(&self, this: InstanceId, batch: &Batch) -> Attributes {
        let mut attributes = Attributes::default();
        for payload in batch.commands() {
            attributes.merge(&self.attributes_for(this, &payload.command));
        }
        attributes
    }

    /// Remember every command of a batch.
    pub fn insert_batch(&mut self, id: InstanceId, batch: &Batch, seq: u64) {
        for payload in batch.commands() {
            self.insert(id, &payload.command, seq);
        }
    }

    /// Forget what every replica executed and collected: per leader, entries whose
    /// instances all lie below `floor` (a later command need not depend on them: they
    /// ran everywhere before it existed), and keys left with no entry (whatever the
    /// order they are visited in). Returns the keys dropped.
    pub fn prune(&mut self, floor: &BTreeMap<NodeId, u64>) -> usize {
        let before = self.keys.len();
        self.keys.retain(|_, leaders| {
            leaders.0.retain(|(leader, entry)| {
                let below = floor.get(leader).copied().unwrap_or(0);
                let newest = entry
                    .reads_after
                    .iter()
                    .map(|&(slot, _)| slot)
                    .chain(entry.last_write.map(|(slot, _)| slot))
                    .max();
                newest.is_some_and(|slot| slot >= below)
            });
            !leaders.0.is_empty()
        });
        before - self.keys.len()
    }

    /// Every instance of `other` this index does not name yet is named (a snapshot
    /// received by state transfer).
    pub fn merge(&mut self, other: &KeyIndex) {
        // The result does not depend on the order keys are visited in.
        for (key, leaders) in other.keys.iter_unordered() {
            let mine = self.keys.entry_or_default(key.clone());
            for (leader, entry) in &leaders.0 {
                let target = mine.entry(*leader);
                if let Some((slot, seq)) = entry.last_write {
                    target.note_write(slot, seq);
                }
                for &(slot, seq) in &entry.reads_after {
                    target.note_read(slot, seq);
                }
            }
        }
    }

    /// Keys indexed.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl KeyEntry {
    /// A read of this leader at `slot`: kept if it comes after the latest write.
    fn note_read(&mut self, slot: u64, seq: u64) {
        let after_write = self.last_write.is_none_or(|(w, _)| slot > w);
        if after_write {
            match self.reads_after.iter_mut().find(|(s, _)| *s == slot) {
                Some(existing) => existing.1 = existing.1.max(seq),
                None => self.reads_after.push((slot, seq)),
            }
        }
    }

    /// A write of this leader at `slot`: the latest one replaces the earlier and the
    /// reads before it.
    fn note_write(&mut self, slot: u64, seq: u64) {
        match self.last_write {
            Some((w, _)) if w > slot => {}
            Some((w, s)) if w == slot => self.last_write = Some((w, s.max(seq))),
            _ => {
                self.last_write = Some((slot, seq));
                self.reads_after.retain(|(s, _)| *s > slot);
            }
        }
    }
}

#[cfg(test)]
#[path = "key_index_test.rs"]
mod tests;
