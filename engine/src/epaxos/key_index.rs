//! The per-key dependency index: a new command's attributes without scanning every
//! instance. Interference is per key and reads do not interfere with reads
//! (docs/design.md#epaxos, rule 3).

use super::instance::{Attributes, Batch, InstanceId};
use crate::command::Command;
use crate::id::NodeId;
use crate::key_map::KeyMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Per command leader, the first slot some replica has not reported executed: every
/// instance below ran on every replica (`gc.rs`).
pub type RanEverywhere = BTreeMap<NodeId, u64>;

/// Per key: the latest interfering instances of each leader, so a new command's
/// dependencies are found without scanning every instance. Earlier instances of the same
/// leader are reached transitively (a leader always includes its own earlier interfering
/// instances). Keys are hashed, not compared ([`KeyMap`]); encoded in key order.
///
/// A membership switch interferes with every command (docs/design.md, "EPaxos epochs",
/// rule 2): it depends on the latest instances of every key, and every later command
/// depends on the latest switch of each leader (`barriers`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyIndex {
    keys: KeyMap<Leaders>,
    /// Per leader, its latest switch (as a write).
    barriers: Leaders,
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

    /// Add to `attributes` the instances a command other than `this` must follow here
    /// (a write follows the reads after the latest write too), leaving out those below
    /// `ran_everywhere`; `attributes.seq` becomes the highest of their sequence numbers.
    fn add_to(
        &self,
        attributes: &mut Attributes,
        this: InstanceId,
        write: bool,
        ran_everywhere: &RanEverywhere,
    ) {
        for &(leader, ref entry) in &self.0 {
            let floor = ran_everywhere.get(&leader).copied().unwrap_or(0);
            let mut add = |slot: u64, seq: u64| {
                let id = InstanceId { leader, slot };
                if id != this && slot >= floor {
                    attributes.deps.insert(id);
                    attributes.seq = attributes.seq.max(seq);
                }
            };
            if let Some((slot, seq)) = entry.last_write {
                add(slot, seq);
            }
            if write {
                for &(slot, seq) in &entry.reads_after {
                    add(slot, seq);
                }
            }
        }
    }

    /// Drop the entries whose instances all lie below `floor` (they ran everywhere).
    fn prune(&mut self, floor: &BTreeMap<NodeId, u64>) {
        self.0.retain(|(leader, entry)| {
            let below = floor.get(leader).copied().unwrap_or(0);
            let newest = entry
                .reads_after
                .iter()
                .map(|&(slot, _)| slot)
                .chain(entry.last_write.map(|(slot, _)| slot))
                .max();
            newest.is_some_and(|slot| slot >= below)
        });
    }

    /// Name every instance `other` names.
    fn merge(&mut self, other: &Leaders) {
        for (leader, entry) in &other.0 {
            let target = self.entry(*leader);
            if let Some((slot, seq)) = entry.last_write {
                target.note_write(slot, seq);
            }
            for &(slot, seq) in &entry.reads_after {
                target.note_read(slot, seq);
            }
        }
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
    /// Attributes for `command` given everything indexed (excluding `this` instance and,
    /// per leader, instances below `ran_everywhere`: every replica executed them, so
    /// naming them orders nothing, and leaving them out whatever this replica's last
    /// pruning kept keeps leader and acceptors agreeing on a rewritten key).
    pub fn attributes_for(
        &self,
        this: InstanceId,
        command: &Command,
        ran_everywhere: &RanEverywhere,
    ) -> Attributes {
        let mut attributes = Attributes::default();
        // Every command follows the latest switches (a barrier is a write).
        let key_entries = self.keys.get(command.key());
        for entries in [Some(&self.barriers), key_entries].into_iter().flatten() {
            entries.add_to(&mut attributes, this, !command.is_read(), ran_everywhere);
        }
        attributes.seq += 1;
        attributes
    }

    /// Attributes for a membership switch: it follows the latest instances of every
    /// key and every earlier switch, as a write on every key would.
    fn attributes_for_switch(
        &self,
        this: InstanceId,
        ran_everywhere: &RanEverywhere,
    ) -> Attributes {
        let mut attributes = Attributes::default();
        let every_key = self.keys.iter_unordered().map(|(_, leaders)| leaders);
        for entries in std::iter::once(&self.barriers).chain(every_key) {
            entries.add_to(&mut attributes, this, true, ran_everywhere);
        }
        attributes.seq += 1;
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
    pub fn attributes_for_batch(
        &self,
        this: InstanceId,
        batch: &Batch,
        ran_everywhere: &RanEverywhere,
    ) -> Attributes {
        if batch.is_switch() {
            return self.attributes_for_switch(this, ran_everywhere);
        }
        let mut attributes = Attributes::default();
        for payload in batch.commands() {
            attributes.merge(&self.attributes_for(this, &payload.command, ran_everywhere));
        }
        attributes
    }

    /// Remember every command of a batch.
    pub fn insert_batch(&mut self, id: InstanceId, batch: &Batch, seq: u64) {
        if batch.is_switch() {
            self.barriers.entry(id.leader).note_write(id.slot, seq);
            return;
        }
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
            leaders.prune(floor);
            !leaders.0.is_empty()
        });
        self.barriers.prune(floor);
        before - self.keys.len()
    }

    /// Every instance of `other` this index does not name yet is named (a snapshot
    /// received by state transfer).
    pub fn merge(&mut self, other: &KeyIndex) {
        // The result does not depend on the order keys are visited in.
        for (key, leaders) in other.keys.iter_unordered() {
            self.keys.entry_or_default(key.clone()).merge(leaders);
        }
        self.barriers.merge(&other.barriers);
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
