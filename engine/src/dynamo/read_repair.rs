//! Read repair: owners that answered a read with an older object get the merged one.
//!
//! A read merges every answer into one object. An owner whose answer differs from the
//! merge (it misses a version, or still holds one the merge superseded) is stale and gets
//! the merged object (`Repair`, acknowledged by `Repaired` once durable). Owners the read
//! counted are repaired *before* the reply, within the deadline (`ReadRepair::Blocking`;
//! `Background` if the deadline came first); owners that answer after the reply are
//! repaired in the background when the read is dropped. Fallbacks are never repaired:
//! they hold hints, not replicas.

use crate::command::Key;
use crate::dynamo::dvv::Object;
use crate::dynamo::messages::{Message, OpId};
use crate::dynamo::plan::Target;
use crate::dynamo::read::ReadState;
use crate::dynamo::Dynamo;
use crate::id::NodeId;
use crate::request::ReadRepair;
use std::collections::BTreeMap;

/// Owners (not fallbacks) whose answer differs from `merged`, in id order. "Nothing" and
/// an empty object are the same answer.
pub(crate) fn stale_answers(
    targets: &BTreeMap<NodeId, Target>,
    answers: &BTreeMap<NodeId, Option<Object>>,
    merged: &Object,
) -> Vec<NodeId> {
    let empty = Object::new();
    answers
        .iter()
        .filter(|(node, _)| targets.get(node).is_some_and(|t| !t.fallback))
        .filter(|(_, answer)| answer.as_ref().unwrap_or(&empty) != merged)
        .map(|(node, _)| *node)
        .collect()
}

impl Dynamo {
    /// The read `op` met its level: repair the stale owners among its answers and wait
    /// for them. Returns false when no answer is stale (reply at once).
    pub(crate) fn start_blocking_repair(&mut self, op: OpId) -> bool {
        let Some(read) = self.coordinator.read_mut(op) else {
            return false;
        };
        let stale = stale_answers(&read.targets, &read.answers, &read.merged);
        if stale.is_empty() {
            return false;
        }
        let reply = read.merged.clone();
        let digest = reply.digest();
        for node in &stale {
            read.repaired.insert(*node, digest);
        }
        read.state = ReadState::Repairing {
            reply: reply.clone(),
            counted: read.order.clone(),
            waiting: stale.iter().copied().collect(),
        };
        let key = read.key.clone();
        self.metrics.add("read_repairs", stale.len() as u64);
        for node in stale {
            let message = Message::Repair {
                op,
                key: key.clone(),
                object: reply.clone(),
            };
            self.outbox.send(node, message);
        }
        true
    }

    pub(crate) fn on_repaired(&mut self, from: NodeId, op: OpId, key: Key) {
        let Some(read) = self.coordinator.read_mut(op) else {
            return self.metrics.incr("late_replies");
        };
        if read.key != key {
            return self.metrics.incr("dropped_messages");
        }
        if let ReadState::Repairing { waiting, .. } = &mut read.state {
            waiting.remove(&from);
            if waiting.is_empty() {
                self.metrics.incr("read_repairs_blocking");
                self.reply_read(op, ReadRepair::Blocking);
            }
        }
    }

    /// Drop a read, repairing in the background every owner that answered with an
    /// object older than the final merge (and not already repaired with it).
    pub(crate) fn finish_read(&mut self, op: OpId) {
        let Some(read) = self.coordinator.remove_read(op) else {
            return;
        };
        debug_assert_eq!(
            read.state,
            ReadState::Replied,
            "only answered reads are dropped"
        );
        self.coordinator.lingering = self.coordinator.lingering.saturating_sub(1);
        let digest = read.merged.digest();
        let mut stale = stale_answers(&read.targets, &read.answers, &read.merged);
        stale.retain(|n| read.repaired.get(n) != Some(&digest));
        self.metrics.add("read_repairs", stale.len() as u64);
        self.metrics
            .add("read_repairs_background", stale.len() as u64);
        for node in stale {
            let message = Message::Repair {
                op,
                key: read.key.clone(),
                object: read.merged.clone(),
            };
            self.outbox.send(node, message);
        }
    }
}

#[cfg(test)]
#[path = "read_repair_test.rs"]
mod tests;
