//! The replicated log at one replica: accepted values per slot, which slots are known
//! chosen, and in-order execution into the key-value state machine.

use super::messages::{AcceptedEntry, Ballot, Batch, Slot};
use crate::command::{Command, CommandResult};
use crate::id::RequestId;
use crate::session::{Admission, SessionTable};
use crate::state_machine::{KvStore, StateMachine};
use std::collections::BTreeMap;

/// One slot's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SlotState {
    pub(crate) ballot: Ballot,
    pub(crate) value: Batch,
    pub(crate) committed: bool,
}

/// A command applied to the state machine, in execution order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedEntry {
    /// Slot it was chosen in.
    pub slot: Slot,
    /// The client request it came from.
    pub request: RequestId,
    /// The command.
    pub command: Command,
}

#[derive(Debug, Default)]
pub(crate) struct ReplicaLog {
    slots: BTreeMap<Slot, SlotState>,
    /// Every slot below is executed.
    next_execute: Slot,
    kv: KvStore,
    sessions: SessionTable,
    applied: Vec<AppliedEntry>,
}

impl ReplicaLog {
    /// Record an accepted value (a later ballot replaces an earlier one; a committed slot
    /// keeps its value).
    pub(crate) fn accept(&mut self, slot: Slot, ballot: Ballot, value: Batch) {
        match self.slots.get_mut(&slot) {
            Some(existing) if existing.committed => {}
            Some(existing) if existing.ballot > ballot => {}
            _ => {
                self.slots.insert(
                    slot,
                    SlotState {
                        ballot,
                        value,
                        committed: false,
                    },
                );
            }
        }
    }

    /// Mark `slot` chosen with `value`.
    pub(crate) fn commit(&mut self, slot: Slot, value: Batch) {
        if slot < self.next_execute {
            return;
        }
        let entry = self.slots.entry(slot).or_insert(SlotState {
            ballot: Ballot::default(),
            value: Vec::new(),
            committed: false,
        });
        if !entry.committed {
            entry.value = value;
            entry.committed = true;
        }
    }

    pub(crate) fn is_committed(&self, slot: Slot) -> bool {
        slot < self.next_execute || self.slots.get(&slot).is_some_and(|s| s.committed)
    }

    pub(crate) fn get(&self, slot: Slot) -> Option<&SlotState> {
        self.slots.get(&slot)
    }

    /// First slot not known committed.
    pub(crate) fn commit_point(&self) -> Slot {
        let mut slot = self.next_execute;
        while self.slots.get(&slot).is_some_and(|s| s.committed) {
            slot += 1;
        }
        slot
    }

    /// One past the highest slot with any state.
    pub(crate) fn end(&self) -> Slot {
        self.slots
            .keys()
            .next_back()
            .map_or(self.next_execute, |s| (s + 1).max(self.next_execute))
    }

    pub(crate) fn next_execute(&self) -> Slot {
        self.next_execute
    }

    /// Accepted entries at or after `from` (for a promise).
    pub(crate) fn accepted_from(&self, from: Slot) -> Vec<AcceptedEntry> {
        self.slots
            .range(from..)
            .map(|(&slot, s)| AcceptedEntry {
                slot,
                ballot: s.ballot,
                value: s.value.clone(),
                committed: s.committed,
            })
            .collect()
    }

    /// Committed values in `[from, to)`, at most `limit`, that this replica still holds.
    pub(crate) fn committed_range(&self, from: Slot, to: Slot, limit: usize) -> Vec<(Slot, Batch)> {
        if from >= to {
            // A peer asked beyond what we know committed (it may know more than we do).
            return Vec::new();
        }
        self.slots
            .range(from..to)
            .take_while(|(_, s)| s.committed)
            .take(limit)
            .map(|(&slot, s)| (slot, s.value.clone()))
            .collect()
    }

    /// Execute every committed slot in order; returns what ran, with results. A request
    /// ordered twice runs once; its repeat yields the first result.
    pub(crate) fn execute(&mut self) -> Vec<(Slot, super::messages::Proposal, CommandResult)> {
        let mut done = Vec::new();
        while let Some(state) = self.slots.get(&self.next_execute).filter(|s| s.committed) {
            let slot = self.next_execute;
            for proposal in state.value.clone() {
                let result = match self.sessions.admit(proposal.request) {
                    Admission::Execute => {
                        let result = self.kv.apply(&proposal.command);
                        self.sessions.record(proposal.request, result.clone());
                        result
                    }
                    Admission::Duplicate(Some(result)) => {
                        done.push((slot, proposal, result));
                        continue;
                    }
                    Admission::Duplicate(None) => continue,
                };
                self.applied.push(AppliedEntry {
                    slot,
                    request: proposal.request,
                    command: proposal.command.clone(),
                });
                done.push((slot, proposal, result));
            }
            self.next_execute += 1;
        }
        done
    }

    pub(crate) fn kv(&self) -> &KvStore {
        &self.kv
    }

    pub(crate) fn applied(&self) -> &[AppliedEntry] {
        &self.applied
    }
}
