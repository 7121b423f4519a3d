//! Execution: committed instances run in dependency order.
//!
//! Tarjan's algorithm finds strongly connected components of the committed dependency
//! graph and emits them dependencies-first; inside a component, commands run by
//! `(seq, leader, slot)`. A component runs only when everything it reaches is committed;
//! an uncommitted dependency holds back only the components that reach it (Moraru et al.,
//! SOSP'13, §4.4; docs/design.md#epaxos, rule 4). Commits may arrive before their
//! dependencies.
//!
//! A commit with an uncommitted dependency cannot make anything new runnable (whatever
//! reaches it also reaches that dependency), so it only records what is missing. A
//! commit whose dependencies are all known runs a pass rooted at it and, as instances
//! execute, at the pending instances that depend on them (a reverse-dependency index):
//! the cost follows what the commit unblocks, not everything pending. (A pass over
//! every pending instance per commit made a restart's replay of 12k records take 5-8 s,
//! and a catching-up replica's every commit cost as much as its backlog: criterion
//! `commit_in_log_order/10000` went from 6.5 s to 28 ms.)

use super::instance::{Attributes, Batch, InstanceId, Payload};
use crate::command::CommandResult;
use crate::configuration::{ChangeError, Configuration, ProposedChange};
use crate::id::{NodeId, RequestId};
use crate::session::{Admission, KeySessions};
use crate::state_machine::{KvStore, StateMachine};
use crate::time::Time;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// One executed command, in this replica's execution order (the commands of a batch one
/// after another).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExecutedEntry {
    /// Its instance.
    pub instance: InstanceId,
    /// Its payload.
    pub payload: Payload,
}

/// An executed command: its instance, its request, and its result (or `None` for a
/// resend its key no longer remembers: answered `SessionExpired`, not run; and for a
/// membership switch). Not the payload: a copy of each command (its key and value) per
/// replica was a needless allocation on the hot path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executed {
    /// Its instance.
    pub instance: InstanceId,
    /// The client request it came from.
    pub request: RequestId,
    /// Whether a client waits for it (not a no-op, not a membership switch).
    pub answers_client: bool,
    /// Its result.
    pub result: Option<CommandResult>,
}

/// A membership switch executed here: the operator's request and the configuration it
/// made, or why it did not apply (another switch from its epoch ran first).
pub type Switched = (RequestId, Result<Configuration, ChangeError>);

/// Runs committed instances in dependency order (see the module doc).
#[derive(Clone, Default, Hash)]
pub struct Executor {
    /// Committed, not yet executed.
    committed: BTreeMap<InstanceId, (Batch, Attributes)>,
    /// Per leader: every slot below is executed here.
    executed_prefix: BTreeMap<NodeId, u64>,
    /// Executed instances above their leader's executed prefix (execution follows
    /// dependencies, not slot order).
    executed_above: BTreeSet<InstanceId>,
    /// Instances executed by this incarnation (compaction counts from it).
    executed_count: u64,
    /// Keep the execution order for inspection (tests); off for long runs.
    record_order: bool,
    /// Uncommitted instances that pending ones depend on, and since when.
    missing: BTreeMap<InstanceId, Time>,
    /// Pending instances by a dependency not executed yet (where passes go next).
    dependents: BTreeMap<InstanceId, BTreeSet<InstanceId>>,
    /// Pending instances a pass found held back, each with an uncommitted instance it
    /// reaches: while that one is still missing, a later pass stops there.
    blockers: Unhashed<BTreeMap<InstanceId, InstanceId>>,
    /// Instances visited by passes so far (the work execution did).
    visited: Unhashed<Visited>,
    /// Shared with the snapshots taken of it (copied on the first write while one is
    /// held): cloning the map and the table at every compaction, then dropping the
    /// clone once it was encoded, was about a tenth of a simulated `gcp-13` run.
    kv: Arc<KvStore>,
    sessions: Arc<KeySessions>,
    order: Vec<ExecutedEntry>,
    /// Configurations by epoch, oldest first: the initial one, then one per switch that
    /// applied (docs/design.md, "EPaxos epochs"). Replicated state: snapshots and state
    /// transfers carry it. Empty for an executor that runs no switches (tests, benches).
    configurations: Vec<Configuration>,
    /// Switches executed since the replica last took them.
    switched: Vec<Switched>,
    /// Committed instances of an epoch whose switch has not run here yet.
    ahead: BTreeMap<InstanceId, (Batch, Attributes)>,
    /// The last switch executed here that applied (this incarnation; reported so peers
    /// that missed it ask for it).
    last_switch: Option<InstanceId>,
    /// The replica this executor runs for: once a switch removes it, nothing more runs.
    owner: Option<NodeId>,
    /// A switch removed the owner: later commands may leave out dependencies it never
    /// executed (its peers' floors stop waiting for it), so it executes nothing more
    /// and fetches its peers' state if it is added again (`rejoin.rs`).
    halted: bool,
}

/// The execution a snapshot keeps (see [`Executor::executed_state`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExecutedState {
    /// Per leader: every slot below is executed.
    pub prefix: BTreeMap<NodeId, u64>,
    /// Executed instances above their leader's prefix.
    pub above: BTreeSet<InstanceId>,
    /// The state machine (encoded as the map itself).
    pub kv: Arc<KvStore>,
    /// The exactly-once table (encoded as the table itself).
    pub sessions: Arc<KeySessions>,
    /// Configurations by epoch, oldest first (empty: the replica's initial one).
    pub configurations: Vec<Configuration>,
}

struct Frame {
    node: InstanceId,
    deps: Vec<InstanceId>,
    next: usize,
}

/// Tarjan bookkeeping for one pass.
#[derive(Default)]
struct Pass {
    index: BTreeMap<InstanceId, (usize, usize)>,
    on_stack: BTreeSet<InstanceId>,
    stack: Vec<InstanceId>,
    /// Pending instances that cannot run in this pass, each with an uncommitted instance
    /// it reaches.
    held: BTreeMap<InstanceId, InstanceId>,
    counter: usize,
}

impl Pass {
    /// `node` reaches `blocker`, which is not committed: it cannot run.
    fn hold(&mut self, node: InstanceId, blocker: InstanceId) {
        self.held.entry(node).or_insert(blocker);
    }

    fn blocker(&self, node: InstanceId) -> Option<InstanceId> {
        self.held.get(&node).copied()
    }
}

/// What the executor keeps beside its state and leaves out of its hash (model-checked
/// states): derived from the commits seen, or a count of work done.
///
/// The blockers: per pending instance held back by a pass, an uncommitted instance it
/// reaches. A committed instance's dependencies never change, so "reaches X" stays true,
/// and the entry holds for as long as X is still missing. Without it, under heavy
/// conflicts every commit whose dependencies were all known walked every pending instance
/// it reaches (all of them, on a hot key) only to find the same missing one again: a pass
/// per commit as long as the backlog (gcp-13 at 100% conflicts spent 60% of its CPU
/// there).
#[derive(Clone, Default)]
struct Unhashed<T>(T);

impl<T> std::hash::Hash for Unhashed<T> {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

/// Instances visited by passes: in all, and since the replica last took the count for
/// its counter.
#[derive(Clone, Copy, Default)]
struct Visited {
    total: u64,
    untaken: u64,
}

impl Executor {
    /// The key-value map as executed.
    pub fn kv(&self) -> &KvStore {
        &self.kv
    }

    /// An executor that keeps (`true`) or skips the execution-order log, remembering
    /// `key_window` writes per key (sessions).
    pub fn new(record_order: bool, key_window: usize) -> Self {
        Self {
            record_order,
            sessions: Arc::new(KeySessions::with_window(key_window)),
            ..Self::default()
        }
    }

    /// Per leader, the first slot not known executed here (all below are).
    pub fn executed_prefix(&self) -> &BTreeMap<NodeId, u64> {
        &self.executed_prefix
    }

    /// Keys the exactly-once table remembers writes for.
    pub(super) fn session_keys(&self) -> usize {
        self.sessions.keys()
    }

    /// Instances executed by this incarnation.
    pub(super) fn executed_count(&self) -> u64 {
        self.executed_count
    }

    /// Whether `id` was executed here (collected instances included).
    pub fn is_executed(&self, id: InstanceId) -> bool {
        id.slot < self.executed_prefix.get(&id.leader).copied().unwrap_or(0)
            || self.executed_above.contains(&id)
    }

    /// What a snapshot keeps of the execution: the executed set, the state machine and
    /// the session table (`snapshot.rs`).
    pub(super) fn executed_state(&self) -> ExecutedState {
        ExecutedState {
            prefix: self.executed_prefix.clone(),
            above: self.executed_above.clone(),
            kv: Arc::clone(&self.kv),
            sessions: Arc::clone(&self.sessions),
            configurations: self.configurations.clone(),
        }
    }

    /// Start from these configurations (oldest first; before replay, the one of epoch 0).
    pub(super) fn start_from(&mut self, configurations: Vec<Configuration>) {
        self.configurations = configurations;
    }

    /// Configurations by epoch, oldest first.
    pub fn configurations(&self) -> &[Configuration] {
        &self.configurations
    }

    /// The switches executed since the last call.
    pub(super) fn take_switched(&mut self) -> Vec<Switched> {
        std::mem::take(&mut self.switched)
    }

    /// Start from a snapshot's execution (replay or state transfer). What was committed
    /// and not executed before stays pending; the caller commits again whatever the
    /// snapshot has not executed.
    pub(super) fn restore(&mut self, state: ExecutedState) {
        self.executed_prefix = state.prefix;
        self.executed_above = state.above;
        self.kv = state.kv;
        let window = self.sessions.window();
        self.sessions = state.sessions;
        Arc::make_mut(&mut self.sessions).set_window(window);
        if !state.configurations.is_empty() {
            self.configurations = state.configurations;
        }
        self.committed.clear();
        self.ahead.clear();
        self.missing.clear();
        self.dependents.clear();
        self.blockers.0.clear();
        // An order kept from before (`keep_order_of`) keeps what this state executed;
        // the rest runs again from here (a peer's state may be older than ours).
        let mut order = std::mem::take(&mut self.order);
        order.retain(|e| self.is_executed(e.instance));
        self.order = order;
    }

    /// Committed instances waiting for a dependency before they can run.
    pub fn waiting(&self) -> usize {
        self.committed.len() + self.ahead.len()
    }

    /// Dependencies named by committed instances but not committed here yet.
    pub fn missing(&self) -> usize {
        self.missing.len()
    }

    /// Every command executed, in order.
    pub fn order(&self) -> &[ExecutedEntry] {
        &self.order
    }

    fn is_known(&self, id: InstanceId) -> bool {
        self.is_executed(id) || self.committed.contains_key(&id)
    }

    /// Uncommitted dependencies waited on since before `deadline`.
    pub(super) fn stalled(&self, deadline: Time) -> Vec<InstanceId> {
        self.missing
            .iter()
            .filter(|(_, since)| **since <= deadline)
            .map(|(&id, _)| id)
            .collect()
    }

    /// Uncommitted dependencies and when each was last found missing or asked about.
    pub(super) fn missing_since(&self) -> impl Iterator<Item = (InstanceId, Time)> + '_ {
        self.missing.iter().map(|(&id, &since)| (id, since))
    }

    /// Whether `id` is a dependency waited on and not committed here.
    pub(super) fn is_missing(&self, id: InstanceId) -> bool {
        self.missing.contains_key(&id)
    }

    /// Reset the stall clock of a dependency after asking about it.
    pub(super) fn touch(&mut self, id: InstanceId, now: Time) {
        if let Some(since) = self.missing.get_mut(&id) {
            *since = now;
        }
    }

    pub(super) fn has_blocked(&self) -> bool {
        !self.missing.is_empty()
    }

    /// A commit arrived: run everything that became runnable; returns what ran.
    pub fn commit(
        &mut self,
        now: Time,
        id: InstanceId,
        payload: Batch,
        attributes: Attributes,
    ) -> Vec<Executed> {
        if self.is_known(id) || self.ahead.contains_key(&id) {
            return Vec::new();
        }
        self.missing.remove(&id);
        let epoch = self.epoch();
        if epoch.is_some_and(|current| attributes.epoch > current) {
            // Its epoch's switch has not run here: it may leave out, as run everywhere,
            // what ran before that switch (a replica that was not a member then never
            // held the collection back), so it waits for the switch.
            self.ahead.insert(id, (payload, attributes));
            return Vec::new();
        }
        let mut done = self.run_committed(now, id, payload, attributes);
        let mut reached = epoch;
        while self.epoch() > reached {
            reached = self.epoch();
            let due: Vec<InstanceId> = self
                .ahead
                .iter()
                .filter(|(_, (_, a))| Some(a.epoch) <= reached)
                .map(|(&id, _)| id)
                .collect();
            for id in due {
                if let Some((payload, attributes)) = self.ahead.remove(&id) {
                    done.extend(self.run_committed(now, id, payload, attributes));
                }
            }
        }
        done
    }

    /// The epoch of the newest configuration (`None`: an executor that runs no switches).
    fn epoch(&self) -> Option<u64> {
        self.configurations.last().map(Configuration::epoch)
    }

    /// A commit of the current epoch or an earlier one: run what became runnable.
    fn run_committed(
        &mut self,
        now: Time,
        id: InstanceId,
        payload: Batch,
        attributes: Attributes,
    ) -> Vec<Executed> {
        // A commit held for its epoch's switch was found missing again meanwhile (passes
        // that reached it).
        self.missing.remove(&id);
        if attributes
            .deps
            .iter()
            .all(|&dep| dep == id || self.is_executed(dep))
        {
            // Everything it depends on ran (the usual case): it is a component of its
            // own and runs now, as a pass rooted at it would run it, without the pass's
            // bookkeeping; the pass goes on at what waited for it.
            let mut done = Vec::new();
            self.run_instance(id, &payload, &mut done);
            let waiting = self.dependents.remove(&id).unwrap_or_default();
            return self.run_pass(now, waiting.into_iter().collect(), done);
        }
        if !self.insert(now, id, payload, attributes) {
            return Vec::new();
        }
        self.run_pass(now, vec![id], Vec::new())
    }

    /// Record a commit not known yet; whether a pass rooted at it could run something
    /// (all its dependencies are known).
    fn insert(
        &mut self,
        now: Time,
        id: InstanceId,
        payload: Batch,
        attributes: Attributes,
    ) -> bool {
        let mut all_known = true;
        for &dep in attributes.deps.iter().filter(|&&d| d != id) {
            if self.is_executed(dep) {
                continue;
            }
            self.dependents.entry(dep).or_default().insert(id);
            if !self.committed.contains_key(&dep) {
                self.missing.entry(dep).or_insert(now);
                all_known = false;
            }
        }
        self.committed.insert(id, (payload, attributes));
        all_known
    }

    /// One Tarjan pass from `roots`, continued at the dependents of whatever executes,
    /// after `done` (whose dependents were taken already).
    fn run_pass(
        &mut self,
        now: Time,
        roots: Vec<InstanceId>,
        mut done: Vec<Executed>,
    ) -> Vec<Executed> {
        let mut pass = Pass::default();
        let mut work = roots;
        let mut dependents_seen = done.len();
        while let Some(root) = work.pop() {
            if self.committed.contains_key(&root)
                && !pass.index.contains_key(&root)
                && self.known_blocker(root).is_none()
            {
                self.tarjan(now, root, &mut pass, &mut done);
            }
            for executed in &done[dependents_seen..] {
                if let Some(waiting) = self.dependents.remove(&executed.instance) {
                    work.extend(waiting);
                }
            }
            dependents_seen = done.len();
        }
        self.blockers.0.extend(pass.held);
        self.visited.0.total += pass.counter as u64;
        self.visited.0.untaken += pass.counter as u64;
        done
    }

    /// Instances visited by dependency-graph passes so far: about one per commit when
    /// commits arrive in dependency order, and what a commit that completes a backlog
    /// unblocks.
    pub fn instances_visited(&self) -> u64 {
        self.visited.0.total
    }

    /// Instances visited since the last call (the replica's `execution_visits` counter).
    pub(super) fn take_visits(&mut self) -> u64 {
        std::mem::take(&mut self.visited.0.untaken)
    }

    /// An uncommitted instance `node` is known to reach, if it is still missing (an
    /// instance leaves `missing` when it commits; one that left it uncommitted is looked
    /// for again, so a pass finds it missing again).
    fn known_blocker(&self, node: InstanceId) -> Option<InstanceId> {
        let &blocker = self.blockers.0.get(&node)?;
        let uncommitted = !self.committed.contains_key(&blocker) && !self.is_executed(blocker);
        (self.missing.contains_key(&blocker) && uncommitted).then_some(blocker)
    }

    fn visit(&self, node: InstanceId, pass: &mut Pass) -> Frame {
        pass.index.insert(node, (pass.counter, pass.counter));
        pass.counter += 1;
        pass.stack.push(node);
        pass.on_stack.insert(node);
        let deps = self
            .committed
            .get(&node)
            .map(|(_, a)| a.deps.iter().copied().filter(|d| *d != node).collect())
            .unwrap_or_default();
        Frame {
            node,
            deps,
            next: 0,
        }
    }

    fn tarjan(&mut self, now: Time, root: InstanceId, pass: &mut Pass, done: &mut Vec<Executed>) {
        let mut calls = vec![self.visit(root, pass)];
        while let Some(frame) = calls.last_mut() {
            if frame.next < frame.deps.len() {
                let dep = frame.deps[frame.next];
                frame.next += 1;
                let node = frame.node;
                if self.is_executed(dep) {
                    continue;
                }
                if !self.committed.contains_key(&dep) {
                    self.missing.entry(dep).or_insert(now);
                    pass.hold(node, dep);
                    continue;
                }
                match pass.index.get(&dep).copied() {
                    None => {
                        if let Some(blocker) = self.known_blocker(dep) {
                            // Held back as an uncommitted dependency would hold it: what
                            // reaches `dep` cannot run, whatever else `dep` reaches.
                            pass.hold(node, blocker);
                            continue;
                        }
                        let child = self.visit(dep, pass);
                        calls.push(child);
                    }
                    Some((dep_index, _)) if pass.on_stack.contains(&dep) => {
                        if let Some(entry) = pass.index.get_mut(&node) {
                            entry.1 = entry.1.min(dep_index);
                        }
                    }
                    Some(_) => {
                        // A finished component: if it was held back, so is this node.
                        if let Some(blocker) = pass.blocker(dep) {
                            pass.hold(node, blocker);
                        }
                    }
                }
                continue;
            }
            let node = frame.node;
            calls.pop();
            let (node_index, node_low) = pass.index[&node];
            if let Some(parent) = calls.last() {
                let parent_node = parent.node;
                if let Some(entry) = pass.index.get_mut(&parent_node) {
                    entry.1 = entry.1.min(node_low);
                }
                if let Some(blocker) = pass.blocker(node) {
                    pass.hold(parent_node, blocker);
                }
            }
            if node_low == node_index {
                let mut component = Vec::new();
                while let Some(member) = pass.stack.pop() {
                    pass.on_stack.remove(&member);
                    component.push(member);
                    if member == node {
                        break;
                    }
                }
                if let Some(blocker) = component.iter().find_map(|&m| pass.blocker(m)) {
                    for member in component {
                        pass.hold(member, blocker);
                    }
                } else {
                    self.execute_component(component, done);
                }
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
            let Some((batch, _)) = self.committed.remove(&id) else {
                continue;
            };
            self.run_instance(id, &batch, done);
        }
    }

    /// Execute `id`'s commands, in order.
    fn run_instance(&mut self, id: InstanceId, batch: &Batch, done: &mut Vec<Executed>) {
        if self.halted {
            // Dropped with this executor: the replica fetches its peers' state.
            return;
        }
        self.mark_executed(id);
        self.blockers.0.remove(&id);
        for payload in batch.commands() {
            let executed = |result| Executed {
                instance: id,
                request: payload.request,
                answers_client: !payload.is_noop() && !payload.is_switch(),
                result,
            };
            if let Some(change) = &payload.change {
                if self.switch(payload.request, change) {
                    self.last_switch = Some(id);
                }
                self.note_order(id, payload);
                done.push(executed(None));
                continue;
            }
            let result = self.execute(id, payload);
            done.push(executed(result));
        }
    }

    /// Add `id` to the executed set, moving its leader's prefix past it when it can.
    fn mark_executed(&mut self, id: InstanceId) {
        self.executed_count += 1;
        let prefix = self.executed_prefix.entry(id.leader).or_default();
        if id.slot < *prefix {
            return;
        }
        if id.slot > *prefix {
            self.executed_above.insert(id);
            return;
        }
        *prefix += 1;
        let leader = id.leader;
        while self.executed_above.remove(&InstanceId {
            leader,
            slot: *prefix,
        }) {
            *prefix += 1;
        }
    }

    /// Apply a membership switch to the newest configuration (executors without one run
    /// no switches).
    /// Apply a switch; whether it applied.
    fn switch(&mut self, request: RequestId, change: &ProposedChange) -> bool {
        let Some(current) = self.configurations.last() else {
            return false;
        };
        let result = current.apply(change);
        let applied = result.is_ok();
        if let Ok(next) = &result {
            if let Some(owner) = self.owner {
                self.halted |= current.role_of(owner).is_some() && next.role_of(owner).is_none();
            }
            self.configurations.push(next.clone());
        }
        self.switched.push((request, result));
        applied
    }

    /// Halt once a switch removes `owner` (see `halted`).
    pub(super) fn halt_when_removed(&mut self, owner: NodeId) {
        self.owner = Some(owner);
    }

    /// Whether a switch removed the owner (nothing runs any more).
    pub(super) fn halted(&self) -> bool {
        self.halted
    }

    /// Keep `old`'s record of the execution order ahead of this one's (a replica that
    /// fetches its peers' state executed that much before).
    pub(super) fn keep_order_of(&mut self, old: &mut Executor) {
        let mut order = std::mem::take(&mut old.order);
        order.append(&mut self.order);
        self.order = order;
    }

    /// The last switch executed here that applied, if this incarnation executed one.
    pub(super) fn last_switch(&self) -> Option<InstanceId> {
        self.last_switch
    }

    fn note_order(&mut self, id: InstanceId, payload: &Payload) {
        if self.record_order {
            self.order.push(ExecutedEntry {
                instance: id,
                payload: payload.clone(),
            });
        }
    }

    /// Run one command once (a repeat gets the first result, if remembered).
    fn execute(&mut self, id: InstanceId, payload: &Payload) -> Option<CommandResult> {
        match self
            .sessions
            .admit(payload.request, &payload.command, payload.resend)
        {
            Admission::Execute => {
                let result = Arc::make_mut(&mut self.kv).apply(&payload.command);
                Arc::make_mut(&mut self.sessions).record(
                    payload.request,
                    &payload.command,
                    result.clone(),
                );
                self.note_order(id, payload);
                Some(result)
            }
            Admission::Duplicate(result) => Some(result),
            Admission::Expired => None,
        }
    }
}
