//! Per-key linearizability of key-value histories with compare-and-set.
//!
//! Every command touches one key, and linearizability is compositional (Herlihy & Wing
//! 1990, locality), so each key's sub-history is checked alone against a single-register
//! model (absent initially). The search is Wing & Gong's: walk the time-ordered list of
//! call and return entries, linearize a pending call whose result the model explains, and
//! backtrack when a return is reached whose operation was not linearized yet; Lowe's
//! memoization skips `(linearized set, state)` pairs already explored.
//!
//! Outcomes: `Ok` operations must take effect exactly once between call and return;
//! `Fail` operations never take effect (dropped); `Unknown`/`Pending` writes may take
//! effect at any point after their call, or never (they have no return entry, and the
//! search succeeds once every `Ok` operation is placed); unknown reads are dropped.
//!
//! The search is exponential in the worst case, so each key gets a budget of steps (not
//! wall time, which would make verdicts machine-dependent); a key that exhausts it is
//! reported [`Verdict::Inconclusive`], never as a pass.

use super::history::{History, OpId, Outcome};
use crate::command::{Command, CommandResult, Key, Value};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;

/// Limits of the search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckConfig {
    /// Entry visits allowed per key before the key is declared inconclusive.
    pub max_steps_per_key: u64,
    /// Bytes the search may keep of explored states per key (each holds a bit per
    /// operation of the key) before the key is declared inconclusive: a wide history
    /// (thousands of requests in flight) filled memory long before the step budget ran
    /// out.
    pub max_memo_bytes_per_key: usize,
}

impl Default for CheckConfig {
    /// 20 million steps and 8 GiB of explored states per key: histories of thousands of
    /// operations per key with tens of concurrent clients typically need well under a
    /// million steps; a violation is only found once the search is exhausted, which took
    /// more than 1 GiB for the simulator's drifting-leader test (t23).
    fn default() -> Self {
        Self {
            max_steps_per_key: 20_000_000,
            max_memo_bytes_per_key: 8 << 30,
        }
    }
}

/// The checker's conclusion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's history has a linearization.
    Linearizable,
    /// A key's history has none.
    Violation {
        /// The key.
        key: Key,
        /// Operations of that key concurrent with the one that could not be placed.
        ops: Vec<OpId>,
        /// Human-readable account of where the search failed.
        explanation: String,
    },
    /// No violation found, but the budget ran out on these keys.
    Inconclusive {
        /// Keys not fully searched.
        keys: Vec<Key>,
    },
}

/// Verdict plus what was checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The conclusion.
    pub verdict: Verdict,
    /// Distinct keys checked.
    pub keys_checked: usize,
    /// Operations that took part (failed operations and unknown reads excluded).
    pub ops_checked: usize,
    /// Search steps over all keys.
    pub steps: u64,
}

/// Check a whole history key by key.
///
/// Scans are judged through [`project_scans`](super::scans::project_scans): each reads the
/// keys it covers (operation ids past the history's own are those projected reads);
/// counts are not judged.
pub fn check_kv(history: &History, config: &CheckConfig) -> Report {
    check_kv_pruned(history, config, true)
}

/// [`check_kv`], with the pruning of unobserved unknown writes optional (tests compare).
fn check_kv_pruned(history: &History, config: &CheckConfig, prune: bool) -> Report {
    let projected = super::scans::project_scans(history);
    let history = projected.as_ref().unwrap_or(history);
    let mut by_key: BTreeMap<&Key, Vec<OpId>> = BTreeMap::new();
    for (id, op) in history.ops().iter().enumerate() {
        if op.command.prefix().is_some() {
            continue;
        }
        let keep = match op.outcome {
            Outcome::Ok(_) => true,
            Outcome::Fail(_) => false,
            Outcome::Unknown | Outcome::Pending => !op.command.is_read(),
        };
        if keep {
            by_key.entry(op.command.key()).or_default().push(id);
        }
    }
    if prune {
        for ids in by_key.values_mut() {
            drop_unobserved_unknown_puts(history, ids);
        }
    }
    let mut report = Report {
        verdict: Verdict::Linearizable,
        keys_checked: by_key.len(),
        ops_checked: by_key.values().map(Vec::len).sum(),
        steps: 0,
    };
    let mut inconclusive = Vec::new();
    for (key, ids) in by_key {
        let mut search = KeySearch::new(history, &ids);
        let result = search.run(config.max_steps_per_key, config.max_memo_bytes_per_key);
        report.steps += search.steps;
        match result {
            KeyResult::Linearizable => {}
            KeyResult::Budget => inconclusive.push(key.clone()),
            KeyResult::Stuck => {
                let (ops, explanation) = search.explain(history, key);
                report.verdict = Verdict::Violation {
                    key: key.clone(),
                    ops,
                    explanation,
                };
                return report;
            }
        }
    }
    if !inconclusive.is_empty() {
        report.verdict = Verdict::Inconclusive { keys: inconclusive };
    }
    report
}

/// Drop the unknown-outcome puts of a key whose value nothing observed: no result of the
/// key names it (a read, a compare-and-set's previous value) and no compare-and-set expects
/// it. Each may take effect at any time after its call or never, so a few of them make the
/// search exponential (t10 seed 146033: ten timed-out puts during a partition left a key
/// inconclusive), and dropping them changes no verdict. Given a linearization that places
/// such a put, remove it: until the next write the register then holds the value before it
/// instead; nothing in that window returned the put's value, so nothing there read the
/// register (a read or a completed compare-and-set would have returned it) except
/// compare-and-sets of unknown outcome, which expected another value and changed nothing;
/// drop those too (an unknown command may never take effect). Puts and deletes after the
/// window do not depend on the state.
fn drop_unobserved_unknown_puts(history: &History, ids: &mut Vec<OpId>) {
    let ops = history.ops();
    let mut observed: HashSet<&Value> = HashSet::new();
    for &id in ids.iter() {
        let op = &ops[id];
        if let Command::Cas {
            expected: Some(expected),
            ..
        } = &op.command
        {
            observed.insert(expected);
        }
        match &op.outcome {
            Outcome::Ok(CommandResult::Value(Some(value)))
            | Outcome::Ok(CommandResult::Cas {
                previous: Some(value),
                ..
            }) => {
                observed.insert(value);
            }
            _ => {}
        }
    }
    ids.retain(|&id| {
        let op = &ops[id];
        let unknown = matches!(op.outcome, Outcome::Unknown | Outcome::Pending);
        match &op.command {
            Command::Put { value, .. } if unknown => observed.contains(value),
            _ => true,
        }
    });
}

/// The register model: the state after `command` from `state`, if `result` (when known)
/// is what the command returns there.
fn apply(
    state: &Option<Value>,
    command: &Command,
    result: Option<&CommandResult>,
) -> Option<Option<Value>> {
    match command {
        Command::Get { .. } => match result {
            None => Some(state.clone()),
            Some(CommandResult::Value(read)) if read == state => Some(state.clone()),
            Some(_) => None,
        },
        Command::Put { value, .. } => match result {
            None | Some(CommandResult::Written) => Some(Some(value.clone())),
            Some(_) => None,
        },
        Command::Delete { .. } => match result {
            None | Some(CommandResult::Written) => Some(None),
            Some(_) => None,
        },
        // Never grouped by key (see `check_kv`).
        Command::Scan { .. } | Command::Count { .. } => None,
        Command::Cas { expected, new, .. } => {
            let applied = state == expected;
            let matches = match result {
                None => true,
                Some(CommandResult::Cas {
                    applied: reported,
                    previous,
                }) => *reported == applied && previous == state,
                Some(_) => false,
            };
            matches.then(|| {
                if applied {
                    Some(new.clone())
                } else {
                    state.clone()
                }
            })
        }
    }
}

enum KeyResult {
    Linearizable,
    Stuck,
    Budget,
}

#[derive(Clone, Copy)]
struct Entry {
    op: usize,
    is_call: bool,
}

/// Wing–Gong–Lowe search over one key's operations.
struct KeySearch<'h> {
    ids: Vec<OpId>,
    commands: Vec<&'h Command>,
    results: Vec<Option<&'h CommandResult>>,
    /// Entries 1..=m between sentinels 0 (head) and m+1 (tail).
    entries: Vec<Entry>,
    next: Vec<usize>,
    prev: Vec<usize>,
    call_entry: Vec<usize>,
    ret_entry: Vec<Option<usize>>,
    steps: u64,
    /// Deepest point reached: (linearized count, blocking op, state there).
    deepest: Option<(usize, usize, Option<Value>)>,
}

impl<'h> KeySearch<'h> {
    fn new(history: &'h History, ids: &[OpId]) -> Self {
        let ops = history.ops();
        let mut timed: Vec<(crate::time::Time, bool, usize)> = Vec::new();
        let mut results = Vec::with_capacity(ids.len());
        let mut commands = Vec::with_capacity(ids.len());
        for (local, &id) in ids.iter().enumerate() {
            let op = &ops[id];
            commands.push(&op.command);
            // Calls sort before returns at equal times: touching intervals count as
            // concurrent, the permissive reading of equal timestamps.
            timed.push((op.call, false, local));
            match &op.outcome {
                Outcome::Ok(result) => {
                    results.push(Some(result));
                    timed.push((op.ret.unwrap_or(op.call), true, local));
                }
                _ => results.push(None),
            }
        }
        timed.sort_by_key(|&(time, is_return, local)| (time, is_return, local));
        let m = timed.len();
        let mut entries = vec![
            Entry {
                op: 0,
                is_call: false
            };
            m + 2
        ];
        let mut call_entry = vec![0; ids.len()];
        let mut ret_entry = vec![None; ids.len()];
        for (i, &(_, is_return, local)) in timed.iter().enumerate() {
            entries[i + 1] = Entry {
                op: local,
                is_call: !is_return,
            };
            if is_return {
                ret_entry[local] = Some(i + 1);
            } else {
                call_entry[local] = i + 1;
            }
        }
        Self {
            ids: ids.to_vec(),
            commands,
            results,
            entries,
            next: (0..m + 2).map(|i| (i + 1).min(m + 1)).collect(),
            prev: (0..m + 2).map(|i| i.saturating_sub(1)).collect(),
            call_entry,
            ret_entry,
            steps: 0,
            deepest: None,
        }
    }

    fn unlink(&mut self, entry: usize) {
        let (p, n) = (self.prev[entry], self.next[entry]);
        self.next[p] = n;
        self.prev[n] = p;
    }

    fn relink(&mut self, entry: usize) {
        let (p, n) = (self.prev[entry], self.next[entry]);
        self.next[p] = entry;
        self.prev[n] = entry;
    }

    fn lift(&mut self, op: usize) {
        self.unlink(self.call_entry[op]);
        if let Some(ret) = self.ret_entry[op] {
            self.unlink(ret);
        }
    }

    fn unlift(&mut self, op: usize) {
        if let Some(ret) = self.ret_entry[op] {
            self.relink(ret);
        }
        self.relink(self.call_entry[op]);
    }

    fn run(&mut self, budget: u64, memo_budget: usize) -> KeyResult {
        let tail = self.entries.len() - 1;
        let words = self.ids.len().div_ceil(64);
        let mut linearized = vec![0u64; words];
        let mut cache: HashSet<(Vec<u64>, Option<Value>)> = HashSet::new();
        // What one explored state costs: its bit set, its value and the set's own slot
        // (the tuple, a hash-table control byte and spare capacity, roughly).
        let entry_bytes = |value: &Option<Value>| {
            words * 8
                + value.as_ref().map_or(0, Vec::len)
                + 2 * size_of::<(Vec<u64>, Option<Value>)>()
        };
        let mut memo_bytes = 0usize;
        let mut stack: Vec<(usize, Option<Value>)> = Vec::new();
        let mut state: Option<Value> = None;
        let mut required = self.results.iter().filter(|r| r.is_some()).count();
        let mut entry = self.next[0];
        loop {
            if required == 0 {
                return KeyResult::Linearizable;
            }
            self.steps += 1;
            if self.steps > budget {
                return KeyResult::Budget;
            }
            let current = (entry != tail).then(|| self.entries[entry]);
            match current {
                Some(Entry { op, is_call: true }) => {
                    if let Some(next_state) = apply(&state, self.commands[op], self.results[op]) {
                        linearized[op / 64] |= 1 << (op % 64);
                        let bytes = entry_bytes(&next_state);
                        if cache.insert((linearized.clone(), next_state.clone())) {
                            memo_bytes = memo_bytes.saturating_add(bytes);
                            if memo_bytes > memo_budget {
                                return KeyResult::Budget;
                            }
                            stack.push((op, std::mem::replace(&mut state, next_state)));
                            self.lift(op);
                            if self.results[op].is_some() {
                                required -= 1;
                            }
                            entry = self.next[0];
                            continue;
                        }
                        linearized[op / 64] &= !(1 << (op % 64));
                    }
                    entry = self.next[entry];
                }
                blocked => {
                    // A return whose operation is not linearized (or the end): undo the
                    // last choice and try the next candidate after it.
                    if let Some(Entry { op, .. }) = blocked {
                        if self.deepest.as_ref().is_none_or(|d| stack.len() > d.0) {
                            self.deepest = Some((stack.len(), op, state.clone()));
                        }
                    }
                    let Some((op, previous)) = stack.pop() else {
                        return KeyResult::Stuck;
                    };
                    linearized[op / 64] &= !(1 << (op % 64));
                    state = previous;
                    self.unlift(op);
                    if self.results[op].is_some() {
                        required += 1;
                    }
                    entry = self.next[self.call_entry[op]];
                }
            }
        }
    }

    fn explain(&self, history: &History, key: &Key) -> (Vec<OpId>, String) {
        let text = |v: &Option<Value>| match v {
            Some(bytes) => format!("{:?}", String::from_utf8_lossy(bytes)),
            None => "absent".to_owned(),
        };
        let ops = history.ops();
        let Some((depth, blocking, state)) = &self.deepest else {
            return (
                self.ids.clone(),
                "no operation could be linearized first".to_owned(),
            );
        };
        let blocked = &ops[self.ids[*blocking]];
        let concurrent: Vec<OpId> = self
            .ids
            .iter()
            .copied()
            .filter(|&id| {
                let op = &ops[id];
                op.call <= blocked.ret.unwrap_or(crate::time::Time::MAX)
                    && op.ret.is_none_or(|r| r >= blocked.call)
            })
            .collect();
        let mut out = format!(
            "key {:?}: after linearizing {depth} of {} operations (register then {}), operation #{} \
             cannot be placed before it returns:\n",
            String::from_utf8_lossy(key),
            self.ids.len(),
            text(state),
            self.ids[*blocking],
        );
        for &id in &concurrent {
            let op = &ops[id];
            let ret = op.ret.map_or_else(|| "never".to_owned(), |r| r.to_string());
            let _ = writeln!(
                out,
                "  {}#{id} {} call {} ret {ret}: {:?} -> {:?}",
                if id == self.ids[*blocking] {
                    "* "
                } else {
                    "  "
                },
                op.client,
                op.call,
                op.command,
                op.outcome
            );
        }
        (concurrent, out)
    }
}

#[cfg(test)]
#[path = "linearizability_test.rs"]
mod tests;
