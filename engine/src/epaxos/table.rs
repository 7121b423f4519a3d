//! The instance table: every instance this replica knows, the ballots it promised (for
//! instances seen or not), the highest ballot heard of per instance, and the per-key index
//! that gives new commands their dependencies.
//!
//! An instance keeps two ballots, the highest promised and the one its attributes were
//! last recorded in (docs/design.md#epaxos, rule 1). A promise made before the instance
//! was seen stays binding once it is.

use super::instance::{Attributes, Ballot, Batch, Instance, InstanceId, Status};
use super::key_index::{KeyIndex, RanEverywhere};
use super::messages::{InstanceRecord, InstanceReport, Record};
use crate::id::NodeId;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What this replica knows of every instance (see the module doc).
#[derive(Clone, Default, Hash)]
pub(super) struct InstanceTable {
    pub(super) instances: BTreeMap<InstanceId, Instance>,
    /// Shared with the snapshot taken of it (copied on the first write while one is
    /// held, as the executor's map).
    pub(super) index: Arc<KeyIndex>,
    /// Promises for instances not seen yet.
    pub(super) promises: BTreeMap<InstanceId, Ballot>,
    /// Highest ballot heard of per instance (to outbid it when recovering).
    pub(super) seen_ballots: BTreeMap<InstanceId, Ballot>,
}

impl InstanceTable {
    pub(super) fn get(&self, id: InstanceId) -> Option<&Instance> {
        self.instances.get(&id)
    }

    /// Whether this replica knows `id` committed.
    pub(super) fn is_committed(&self, id: InstanceId) -> bool {
        self.get(id).is_some_and(|i| i.status == Status::Committed)
    }

    /// The instance's latest state as a durable record.
    pub(super) fn instance_record(&self, id: InstanceId) -> Option<InstanceRecord> {
        self.get(id).map(|i| InstanceRecord {
            instance: id,
            payload: i.payload.clone(),
            attributes: i.attributes.clone(),
            status: i.status,
            ballot: i.accepted_in,
            promised: i.promised,
            witness: i.witness,
        })
    }

    pub(super) fn record_of(&self, id: InstanceId) -> Option<Record> {
        self.instance_record(id).map(Record::Instance)
    }

    /// The highest ballot promised for `id` here (seen instance or bare promise).
    pub(super) fn promised_for(&self, id: InstanceId) -> Ballot {
        let seen = self.get(id).map(|i| i.promised);
        let bare = self.promises.get(&id).copied();
        seen.max(bare).unwrap_or_default()
    }

    /// The highest ballot heard of for `id`, promised here or not.
    pub(super) fn highest_ballot(&self, id: InstanceId) -> Ballot {
        self.promised_for(id)
            .max(self.seen_ballots.get(&id).copied().unwrap_or_default())
    }

    pub(super) fn note_ballot(&mut self, id: InstanceId, ballot: Ballot) {
        let seen = self.seen_ballots.entry(id).or_default();
        *seen = (*seen).max(ballot);
    }

    /// Attributes a new proposal of `payload` as `id` gets from what is indexed here,
    /// leaving out what ran everywhere.
    pub(super) fn attributes_for(
        &self,
        id: InstanceId,
        payload: &Batch,
        ran_everywhere: &RanEverywhere,
    ) -> Attributes {
        self.index.attributes_for_batch(id, payload, ran_everywhere)
    }

    /// Store attributes for an instance at `ballot` and index them.
    pub(super) fn store(
        &mut self,
        id: InstanceId,
        payload: Batch,
        attributes: Attributes,
        status: Status,
        ballot: Ballot,
    ) {
        Arc::make_mut(&mut self.index).insert_batch(id, &payload, attributes.seq);
        self.store_unindexed(id, payload, attributes, status, ballot);
    }

    /// Index what is stored for `id` (a leader's own instance under ordered delivery,
    /// stored when proposed and indexed at its release time: `hold.rs`).
    pub(super) fn index_stored(&mut self, id: InstanceId) {
        if let Some(instance) = self.instances.get(&id) {
            let seq = instance.attributes.seq;
            Arc::make_mut(&mut self.index).insert_batch(id, &instance.payload, seq);
        }
    }

    /// Store attributes for an instance at `ballot` without indexing them: later
    /// proposals here do not see it until [`Self::index_stored`].
    pub(super) fn store_unindexed(
        &mut self,
        id: InstanceId,
        payload: Batch,
        attributes: Attributes,
        status: Status,
        ballot: Ballot,
    ) {
        match self.instances.get_mut(&id) {
            Some(instance) => {
                instance.payload = payload;
                instance.attributes = attributes;
                instance.status = status;
                instance.promised = instance.promised.max(ballot);
                instance.accepted_in = ballot;
                instance.witness = false;
            }
            None => {
                let mut instance = Instance::new(payload, attributes, status, ballot);
                // A promise made before the instance was seen stays binding.
                if let Some(promised) = self.promises.remove(&id) {
                    instance.promised = instance.promised.max(promised);
                }
                self.instances.insert(id, instance);
            }
        }
    }

    /// Mark the attributes just stored for `id` as its command leader's initial-ballot ones
    /// (docs/design.md#epaxos, rule 2).
    pub(super) fn mark_witness(&mut self, id: InstanceId) {
        if let Some(instance) = self.instances.get_mut(&id) {
            instance.witness = true;
        }
    }

    /// Promise `ballot` for `id`: the record to persist before anyone hears of the
    /// promise, and what this replica knows of the instance (for the recovering one).
    pub(super) fn promise(
        &mut self,
        id: InstanceId,
        ballot: Ballot,
    ) -> (Record, Option<InstanceReport>) {
        let report = match self.instances.get_mut(&id) {
            Some(instance) => {
                instance.promised = instance.promised.max(ballot);
                Some(InstanceReport {
                    payload: instance.payload.clone(),
                    attributes: instance.attributes.clone(),
                    status: instance.status,
                    accepted_in: instance.accepted_in,
                    witness: instance.witness,
                })
            }
            None => {
                let promised = self.promises.entry(id).or_default();
                *promised = (*promised).max(ballot);
                None
            }
        };
        let record = self.record_of(id).unwrap_or(Record::Promise {
            instance: id,
            ballot,
        });
        (record, report)
    }

    /// Forget every instance of `leader` below `slot` (executed everywhere), with its
    /// promises and ballots; returns how many were held. The per-key index is pruned
    /// apart, at compaction (`KeyIndex::prune`).
    pub(super) fn forget_below(&mut self, leader: NodeId, slot: u64) -> usize {
        let range = InstanceId { leader, slot: 0 }..InstanceId { leader, slot };
        let doomed: Vec<InstanceId> = self
            .instances
            .range(range.clone())
            .map(|(&id, _)| id)
            .collect();
        for id in &doomed {
            self.instances.remove(id);
        }
        let stale = |map: &BTreeMap<InstanceId, Ballot>| -> Vec<InstanceId> {
            map.range(range.clone()).map(|(&id, _)| id).collect()
        };
        for id in stale(&self.seen_ballots) {
            self.seen_ballots.remove(&id);
        }
        for id in stale(&self.promises) {
            self.promises.remove(&id);
        }
        doomed.len()
    }

    /// Every instance and bare promise as durable records (a compaction's tail).
    pub(super) fn records(&self) -> Vec<Record> {
        let instances = self.instances.keys().filter_map(|&id| self.record_of(id));
        let promises = self
            .promises
            .iter()
            .map(|(&instance, &ballot)| Record::Promise { instance, ballot });
        instances.chain(promises).collect()
    }
}
