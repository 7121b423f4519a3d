//! Execution: committed instances run in dependency order.
//!
//! Tarjan's algorithm finds strongly connected components of the committed dependency
//! graph and emits them dependencies-first; inside a component, commands run by
//! `(seq, leader, slot)`. A component runs only when everything it reaches is committed.
//! An uncommitted dependency blocks only the instances that reach it: the attempt stops,
//! remembers what it waits for, and is retried when that instance commits (Moraru et al.,
//! SOSP'13, §4.4; DESIGN.md item 4). Commits may arrive before their dependencies' payloads.

use super::instance::{Attributes, InstanceId};
use super::messages::Payload;
use crate::command::CommandResult;
use crate::session::{Admission, SessionTable};
use crate::state_machine::{KvStore, StateMachine};
use crate::time::Time;
use std::collections::{BTreeMap, BTreeSet};

/// One executed command, in this replica's execution order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutedEntry {
    /// Its instance.
    pub instance: InstanceId,
    /// Its payload.
    pub payload: Payload,
}

/// An executed command and its result (or `None` for a repeat forgotten by the session
/// table: nothing to answer).
pub(super) type Executed = (InstanceId, Payload, Option<CommandResult>);

#[derive(Default)]
pub(super) struct Executor {
    committed: BTreeMap<InstanceId, (Payload, Attributes)>,
    executed: BTreeSet<InstanceId>,
    /// Missing dependency → instances whose execution waits for it, and since when.
    blocked: BTreeMap<InstanceId, (Time, BTreeSet<InstanceId>)>,
    kv: KvStore,
    sessions: SessionTable,
    order: Vec<ExecutedEntry>,
}

struct Frame {
    node: InstanceId,
    deps: Vec<InstanceId>,
    next: usize,
}

impl Executor {
    pub(super) fn kv(&self) -> &KvStore {
        &self.kv
    }

    pub(super) fn order(&self) -> &[ExecutedEntry] {
        &self.order
    }

    /// Dependencies waited on since before `deadline`.
    pub(super) fn stalled(&self, deadline: Time) -> Vec<InstanceId> {
        self.blocked
            .iter()
            .filter(|(_, (since, _))| *since <= deadline)
            .map(|(&id, _)| id)
            .collect()
    }

    /// Reset the stall clock of a dependency after asking about it.
    pub(super) fn touch(&mut self, id: InstanceId, now: Time) {
        if let Some(entry) = self.blocked.get_mut(&id) {
            entry.0 = now;
        }
    }

    pub(super) fn has_blocked(&self) -> bool {
        !self.blocked.is_empty()
    }

    /// A commit arrived: run everything that became runnable.
    pub(super) fn commit(
        &mut self,
        now: Time,
        id: InstanceId,
        payload: Payload,
        attributes: Attributes,
    ) -> Vec<Executed> {
        if self.executed.contains(&id) || self.committed.contains_key(&id) {
            return Vec::new();
        }
        self.committed.insert(id, (payload, attributes));
        let mut roots = vec![id];
        if let Some((_, waiting)) = self.blocked.remove(&id) {
            roots.extend(waiting);
        }
        let mut done = Vec::new();
        for root in roots {
            if self.committed.contains_key(&root) {
                self.run_from(now, root, &mut done);
            }
        }
        done
    }

    /// Tarjan from `root` over committed, unexecuted instances; executes components as
    /// they complete and stops at the first uncommitted dependency.
    fn run_from(&mut self, now: Time, root: InstanceId, done: &mut Vec<Executed>) {
        let mut index: BTreeMap<InstanceId, (usize, usize)> = BTreeMap::new(); // (index, lowlink)
        let mut on_stack: BTreeSet<InstanceId> = BTreeSet::new();
        let mut stack: Vec<InstanceId> = Vec::new();
        let mut calls: Vec<Frame> = Vec::new();
        let mut counter = 0;
        let visit = |node: InstanceId,
                     index: &mut BTreeMap<InstanceId, (usize, usize)>,
                     stack: &mut Vec<InstanceId>,
                     on_stack: &mut BTreeSet<InstanceId>,
                     counter: &mut usize,
                     committed: &BTreeMap<InstanceId, (Payload, Attributes)>|
         -> Frame {
            index.insert(node, (*counter, *counter));
            *counter += 1;
            stack.push(node);
            on_stack.insert(node);
            let deps = committed
                .get(&node)
                .map(|(_, a)| a.deps.iter().copied().collect())
                .unwrap_or_default();
            Frame {
                node,
                deps,
                next: 0,
            }
        };
        calls.push(visit(
            root,
            &mut index,
            &mut stack,
            &mut on_stack,
            &mut counter,
            &self.committed,
        ));
        while let Some(frame) = calls.last_mut() {
            if frame.next < frame.deps.len() {
                let dep = frame.deps[frame.next];
                frame.next += 1;
                if self.executed.contains(&dep) {
                    continue;
                }
                if !self.committed.contains_key(&dep) {
                    // Blocked: everything on the DFS path waits for `dep`.
                    let entry = self
                        .blocked
                        .entry(dep)
                        .or_insert_with(|| (now, BTreeSet::new()));
                    entry.1.insert(root);
                    return;
                }
                match index.get(&dep) {
                    None => {
                        let child = visit(
                            dep,
                            &mut index,
                            &mut stack,
                            &mut on_stack,
                            &mut counter,
                            &self.committed,
                        );
                        calls.push(child);
                    }
                    Some(&(dep_index, _)) if on_stack.contains(&dep) => {
                        let node = frame.node;
                        if let Some(entry) = index.get_mut(&node) {
                            entry.1 = entry.1.min(dep_index);
                        }
                    }
                    Some(_) => {}
                }
                continue;
            }
            let node = frame.node;
            calls.pop();
            let (node_index, node_low) = index[&node];
            if let Some(parent) = calls.last() {
                let parent_node = parent.node;
                if let Some(entry) = index.get_mut(&parent_node) {
                    entry.1 = entry.1.min(node_low);
                }
            }
            if node_low == node_index {
                let mut component = Vec::new();
                while let Some(member) = stack.pop() {
                    on_stack.remove(&member);
                    component.push(member);
                    if member == node {
                        break;
                    }
                }
                self.execute_component(component, done);
            }
        }
    }

    fn execute_component(&mut self, mut component: Vec<InstanceId>, done: &mut Vec<Executed>) {
        component.sort_by_key(|id| {
            (
                self.committed.get(id).map_or(0, |(_, a)| a.seq),
                id.leader,
                id.slot,
            )
        });
        for id in component {
            let Some((payload, _)) = self.committed.remove(&id) else {
                continue;
            };
            self.executed.insert(id);
            let result = match self.sessions.admit(payload.request) {
                Admission::Execute => {
                    let result = self.kv.apply(&payload.command);
                    self.sessions.record(payload.request, result.clone());
                    self.order.push(ExecutedEntry {
                        instance: id,
                        payload: payload.clone(),
                    });
                    Some(result)
                }
                Admission::Duplicate(result) => result,
            };
            done.push((id, payload, result));
        }
    }
}
