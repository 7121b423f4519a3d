//! Replay: rebuilding a replica from its durable records after a restart: the snapshot
//! a compaction left first (the execution, the key index, the next own slot), then the
//! records after it.
//!
//! The instance table is rebuilt record by record: the last record of an instance wins
//! unless it would move its status backwards, and promises only grow, whichever record
//! wins. Committed instances are executed again (their clients belonged to the previous
//! incarnation: nobody is answered), in the order their commits were first recorded: a
//! command may leave out an instance every replica had executed (`RanEverywhere`), so
//! nothing but that order puts the older one first. An own instance that was not committed is resumed
//! at the first input, at its own ballot, unless this replica promised a recovery a
//! higher one or last recorded a recovery's attributes for it: then it is no longer ours
//! (docs/design.md#epaxos, rule 1).

use super::execution::Executor;
use super::fence::Fence;
use super::instance::{Attributes, Batch, Instance, InstanceId, Status};
use super::messages::{InstanceRecord, Record, Snapshot};
use super::table::InstanceTable;
use super::vote_bounds::BoundsTold;
use crate::id::NodeId;
use crate::time::Time;
use std::collections::BTreeSet;
use std::sync::Arc;

/// What replay leaves for the roles to pick up.
pub(super) struct Replayed {
    /// The first slot no own instance used.
    pub(super) next_slot: u64,
    /// Own unfinished instances to resume.
    pub(super) resume: Vec<InstanceId>,
    /// The rejoin fence (the default if the disk was never lost).
    pub(super) fence: Fence,
    /// Vote bounds told to rejoined peers.
    pub(super) bounds_told: BoundsTold,
}

/// Rebuild `table` and `executor` (both empty) from `records`, in order, for replica
/// `me`.
pub(super) fn replay(
    me: NodeId,
    records: Vec<Record>,
    table: &mut InstanceTable,
    executor: &mut Executor,
) -> Replayed {
    let mut next_slot = 0;
    let mut fence = Fence::default();
    let mut bounds_told = BoundsTold::default();
    let mut commit_order = Vec::new();
    let mut seen_committed = BTreeSet::new();
    for record in records {
        match record {
            Record::Fence(last) => fence = *last,
            Record::Instance(record) => {
                if record.instance.leader == me {
                    next_slot = u64::max(next_slot, record.instance.slot + 1);
                }
                if record.status == Status::Committed && seen_committed.insert(record.instance) {
                    commit_order.push(record.instance);
                }
                replay_instance(table, record);
            }
            Record::Snapshot(snapshot) => {
                let Snapshot {
                    executed,
                    index,
                    next_slot: snapshot_next,
                } = *snapshot;
                executor.restore(executed);
                Arc::make_mut(&mut table.index).merge(&index);
                next_slot = next_slot.max(snapshot_next);
            }
            Record::Promise { instance, ballot } => {
                let promised = table.promises.entry(instance).or_default();
                *promised = (*promised).max(ballot);
            }
            Record::BoundTold { asker, start, slot } => bounds_told.restore(asker, start, slot),
        }
    }
    // A promise recorded before the instance was seen binds it.
    for (id, instance) in &mut table.instances {
        if let Some(bare) = table.promises.remove(id) {
            instance.promised = instance.promised.max(bare);
        }
    }
    let committed: Vec<(InstanceId, Batch, Attributes)> = commit_order
        .into_iter()
        .filter_map(|id| {
            let instance = table.instances.get(&id)?;
            Some((id, instance.payload.clone(), instance.attributes.clone()))
        })
        .collect();
    for (id, payload, attributes) in committed.into_iter().filter(|_| fence.executes()) {
        // Replies to clients of a previous incarnation are gone: just re-apply.
        let _ = executor.commit(Time::ZERO, id, payload, attributes);
    }
    // Only what we were driving at our own ballot is ours to resume: an instance whose
    // promise, or whose last attributes, belong to a recovery is not.
    let resume = table
        .instances
        .iter()
        .filter(|(id, i)| {
            id.leader == me
                && i.status != Status::Committed
                && i.promised == i.accepted_in
                && i.accepted_in.node == me
                && fence.may_vote(**id)
        })
        .map(|(&id, _)| id)
        .collect();
    let next_slot = next_slot.max(fence.own_start(me));
    Replayed {
        next_slot,
        resume,
        fence,
        bounds_told,
    }
}

/// One instance record: it replaces what the table holds unless that got further.
fn replay_instance(table: &mut InstanceTable, record: InstanceRecord) {
    let id = record.instance;
    let existing = table.instances.get(&id);
    // Promises only grow, whichever record of the instance wins.
    let promised = record
        .promised
        .max(record.ballot)
        .max(existing.map(|i| i.promised).unwrap_or_default());
    let keep_existing = existing.is_some_and(|i| {
        i.status > record.status || (i.status == record.status && i.accepted_in > record.ballot)
    });
    if !keep_existing {
        Arc::make_mut(&mut table.index).insert_batch(id, &record.payload, record.attributes.seq);
        let mut instance = Instance::new(
            record.payload,
            record.attributes,
            record.status,
            record.ballot,
        );
        instance.witness = record.witness;
        table.instances.insert(id, instance);
    }
    if let Some(instance) = table.instances.get_mut(&id) {
        instance.promised = promised;
    }
}
