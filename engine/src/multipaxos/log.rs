//! The replicated log at one replica: accepted values per slot, which slots are known
//! chosen, and in-order execution into the key-value state machine.
//!
//! Bounded (docs/design.md#multi-paxos-compaction): slots below the `floor` are forgotten
//! one by one, their effect lives only in the state machine and the session table (and
//! in the snapshot a compaction writes); the history of applied commands keeps only the
//! most recent ones.

use super::messages::{AcceptedEntry, Ballot, Batch, Record, Slot, Snapshot};
use crate::command::{Command, CommandResult};
use crate::configuration::{ConfigSchedule, Configuration, ScheduleError};
use crate::id::{NodeId, RequestId};
use crate::request::RequestError;
use crate::session::{Admission, SessionLimits, SessionTable};
use crate::state_machine::{KvStore, StateMachine};
use std::collections::{BTreeMap, VecDeque};

/// Applied commands remembered for [`ReplicaLog::applied`] (tests and debugging).
pub const APPLIED_HISTORY: usize = 10_000;

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

/// One proposal executed: where, whose, and what it did.
#[derive(Clone, Debug)]
pub(crate) struct Ran {
    pub(crate) request: RequestId,
    /// The replica that took it from its client (and answers it).
    pub(crate) origin: NodeId,
    pub(crate) executed: Executed,
}

/// What executing one proposal produced: its result, or why it was not run.
pub(crate) type Outcome = Result<CommandResult, RequestError>;

/// What executing one proposal did: a command's outcome, or a membership change's (the
/// configuration it made, or why it did not apply).
#[derive(Clone, Debug)]
pub(crate) enum Executed {
    /// A client command.
    Command(Outcome),
    /// A membership change.
    Change(Result<Configuration, ScheduleError>),
}

#[derive(Debug)]
pub(crate) struct ReplicaLog {
    slots: BTreeMap<Slot, SlotState>,
    /// Slots below are compacted: executed, and held only as state (`floor <= next_execute`).
    floor: Slot,
    /// Every slot below is executed.
    next_execute: Slot,
    /// One past the highest slot marked committed here (reads ask for it: a field, so a
    /// read does not walk the uncommitted pipeline above the commit point).
    committed_end: Slot,
    kv: KvStore,
    sessions: SessionTable,
    /// The most recent applied commands, at most [`APPLIED_HISTORY`]: slot, batch and
    /// position in it (sharing the batch, where a copy of each command per replica cost
    /// an allocation of its key and value).
    applied: VecDeque<(Slot, Batch, u32)>,
    /// Which configuration governs which slots: changes enter it as they execute
    /// (docs/design.md#membership).
    schedule: ConfigSchedule,
}

impl ReplicaLog {
    /// An empty log whose session table keeps to `limits`, starting in `initial`.
    pub(crate) fn new(limits: SessionLimits, initial: Configuration) -> Self {
        Self {
            slots: BTreeMap::new(),
            floor: 0,
            next_execute: 0,
            committed_end: 0,
            kv: KvStore::default(),
            sessions: SessionTable::with_limits(limits),
            applied: VecDeque::new(),
            schedule: ConfigSchedule::new(initial),
        }
    }

    /// The configuration that governs the next slot to execute (and every later one
    /// until a change executes).
    pub(crate) fn configuration(&self) -> &Configuration {
        self.schedule.current()
    }

    /// Record an accepted value (a later ballot replaces an earlier one; a committed slot
    /// keeps its value; a compacted slot is chosen and executed already).
    pub(crate) fn accept(&mut self, slot: Slot, ballot: Ballot, value: Batch) {
        if slot < self.floor {
            return;
        }
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
            value: Batch::default(),
            committed: false,
        });
        if !entry.committed {
            entry.value = value;
            entry.committed = true;
            self.committed_end = self.committed_end.max(slot + 1);
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

    /// One past the highest slot known committed (at least the commit point): a slot
    /// committed above one that is not yet (a new leader re-proposing what it took over
    /// while its own proposals commit) may have answered its client already, wherever
    /// the slots below it were known committed.
    pub(crate) fn committed_end(&self) -> Slot {
        self.commit_point().max(self.committed_end)
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

    /// First slot still held one by one.
    pub(crate) fn floor(&self) -> Slot {
        self.floor
    }

    /// Slots held one by one.
    pub(crate) fn held(&self) -> usize {
        self.slots.len()
    }

    /// Client sessions in the exactly-once table.
    pub(crate) fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// The replicated state as of now.
    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot {
            executed: self.next_execute,
            kv: self.kv.clone(),
            sessions: self.sessions.clone(),
            configuration: self.schedule.current().clone(),
        }
    }

    /// The acceptor facts a snapshot does not cover: what was accepted in every slot not
    /// yet executed (slots this replica only learned committed were never accepted here).
    pub(crate) fn tail_records(&self) -> Vec<Record> {
        self.slots
            .range(self.next_execute..)
            .filter(|(_, s)| s.ballot != Ballot::default())
            .map(|(&slot, s)| Record::Accepted {
                slot,
                ballot: s.ballot,
                value: s.value.clone(),
            })
            .collect()
    }

    /// Forget executed slots below `slot` one by one (at most up to what is executed).
    pub(crate) fn trim(&mut self, slot: Slot) {
        let slot = slot.min(self.next_execute);
        if slot <= self.floor {
            return;
        }
        self.slots = self.slots.split_off(&slot);
        self.floor = slot;
        self.schedule.forget_below(slot);
    }

    /// Take `snapshot` as the state if it is ahead of ours: every slot below its frontier
    /// is then compacted here. Returns whether it was taken.
    pub(crate) fn install(&mut self, snapshot: Snapshot) -> bool {
        if snapshot.executed <= self.next_execute {
            return false;
        }
        let limits = self.sessions.limits();
        self.kv = snapshot.kv;
        self.sessions = snapshot.sessions;
        self.sessions.set_limits(limits);
        self.schedule = ConfigSchedule::new(snapshot.configuration);
        self.next_execute = snapshot.executed;
        self.slots = self.slots.split_off(&snapshot.executed);
        self.floor = snapshot.executed;
        true
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

    /// Execute every committed slot in order; returns what ran, with outcomes. A request
    /// ordered twice runs once; its repeat yields the first result, or `SessionExpired`
    /// when the session table no longer remembers it.
    pub(crate) fn execute(&mut self) -> Vec<Ran> {
        let mut done = Vec::new();
        while let Some(state) = self.slots.get(&self.next_execute).filter(|s| s.committed) {
            let slot = self.next_execute;
            let batch = Batch::clone(&state.value);
            for (position, proposal) in batch.iter().enumerate() {
                let ran = |executed| Ran {
                    request: proposal.request,
                    origin: proposal.origin,
                    executed,
                };
                if let Some(change) = &proposal.change {
                    // Not in the session table: a change ordered twice names an epoch
                    // that is gone by its second slot, so it is refused there.
                    let result = self.schedule.record(slot, change).cloned();
                    done.push(ran(Executed::Change(result)));
                    continue;
                }
                // A range read's result may be megabytes: the session table keeps a
                // stand-in, and a repeat (a retry ordered twice, or one the table
                // forgot) runs again: it changes nothing, and answers the state at its
                // own slot, inside the request's interval since its client still waits.
                let range_read = proposal.command.prefix().is_some();
                let result = match self.sessions.admit(proposal.request) {
                    Admission::Execute if range_read => {
                        let result = self.kv.apply(&proposal.command);
                        self.sessions
                            .record(proposal.request, CommandResult::Count(0));
                        result
                    }
                    Admission::Duplicate(_) | Admission::Expired if range_read => {
                        let result = self.kv.apply(&proposal.command);
                        done.push(ran(Executed::Command(Ok(result))));
                        continue;
                    }
                    Admission::Execute => {
                        let result = self.kv.apply(&proposal.command);
                        self.sessions.record(proposal.request, result.clone());
                        result
                    }
                    Admission::Duplicate(result) => {
                        done.push(ran(Executed::Command(Ok(result))));
                        continue;
                    }
                    Admission::Expired => {
                        let request = proposal.request;
                        let expired = Err(RequestError::SessionExpired { request });
                        done.push(ran(Executed::Command(expired)));
                        continue;
                    }
                };
                if self.applied.len() >= APPLIED_HISTORY {
                    self.applied.pop_front();
                }
                let position = u32::try_from(position).expect("a batch of fewer than 2^32");
                self.applied
                    .push_back((slot, Batch::clone(&batch), position));
                done.push(ran(Executed::Command(Ok(result))));
            }
            self.next_execute += 1;
        }
        done
    }

    pub(crate) fn kv(&self) -> &KvStore {
        &self.kv
    }

    pub(crate) fn applied(&self) -> Vec<AppliedEntry> {
        self.applied
            .iter()
            .map(|(slot, batch, position)| {
                let proposal = &batch[*position as usize];
                AppliedEntry {
                    slot: *slot,
                    request: proposal.request,
                    command: proposal.command.clone(),
                }
            })
            .collect()
    }
}
