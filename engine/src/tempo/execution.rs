//! Execution: committed commands run per key in `(timestamp, dot)` order once their
//! timestamp is stable (a majority promised every timestamp up to it), through a per-key
//! session table so a request ordered twice runs once; a command whose timestamp lies
//! outside its configuration epoch's range runs nowhere, and a switch in its range makes
//! the next configuration (`epochs.rs`).

use super::dots::DotSet;
use super::epochs::Epochs;
use super::messages::{Dot, Payload, SWITCH_LANE};
use crate::command::{Command, CommandResult, Key};
use crate::configuration::{ChangeError, Configuration};
use crate::id::RequestId;
use crate::session::{Admission, KeySessions};
use crate::state_machine::{KvStore, StateMachine};
use std::collections::{BTreeMap, BTreeSet};

/// One executed command, for inspection.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExecutedEntry {
    /// The command's id.
    pub dot: Dot,
    /// Its timestamp.
    pub ts: u64,
    /// The request it came from.
    pub request: RequestId,
    /// The command.
    pub command: Command,
}

/// What one execution produced.
pub(super) struct Ran {
    /// The command.
    pub dot: Dot,
    /// Its request.
    pub request: RequestId,
    /// What became of it.
    pub outcome: Outcome,
}

/// What became of an executed command.
pub(super) enum Outcome {
    /// It ran (or was a repeat the session table answered).
    Result(CommandResult),
    /// A repeat the session table no longer judges.
    Expired,
    /// Its timestamp lies outside its epoch's range: it ran nowhere and its coordinator
    /// proposes it again (docs/design.md#tempo-epochs-the-rule-and-why-it-is-safe, rule 5).
    Abandoned,
    /// A switch in its epoch's range: the configuration it made, or why it made none.
    Switched(Result<Configuration, ChangeError>),
}

/// The state machine, the session table and the committed commands waiting for
/// stability.
#[derive(Clone, Debug, Hash)]
pub(super) struct Executor {
    state: State,
    waiting: BTreeMap<Key, BTreeSet<(u64, Dot)>>,
    pub(super) executed: DotSet,
    /// Executed since the last `Executed` record.
    pub(super) unrecorded: Vec<Dot>,
    /// Commands executed by this incarnation (the compaction trigger).
    pub(super) ran: u64,
}

impl Executor {
    /// An executor that keeps (`record`) or skips the execution log, remembering
    /// `key_window` writes per key (sessions), from the configurations `epochs`.
    pub(super) fn new(record: bool, key_window: usize, epochs: Epochs) -> Self {
        Self {
            state: State {
                kv: KvStore::default(),
                sessions: KeySessions::with_window(key_window),
                epochs,
                order: Vec::new(),
                record,
            },
            waiting: BTreeMap::new(),
            executed: DotSet::default(),
            unrecorded: Vec::new(),
            ran: 0,
        }
    }

    pub(super) fn kv(&self) -> &KvStore {
        &self.state.kv
    }

    pub(super) fn order(&self) -> &[ExecutedEntry] {
        &self.state.order
    }

    /// Commands committed here and not executed yet.
    pub(super) fn backlog(&self) -> usize {
        self.waiting.values().map(BTreeSet::len).sum()
    }

    /// Per key, the first command waiting for stability `(timestamp, command)`.
    pub(super) fn heads(&self) -> impl Iterator<Item = (&Key, (u64, Dot))> {
        self.waiting
            .iter()
            .filter_map(|(key, queue)| queue.first().map(|&head| (key, head)))
    }

    /// `dot`, committed with `ts` on `key`, waits for stability.
    pub(super) fn add(&mut self, key: &Key, ts: u64, dot: Dot) {
        if !self.executed.contains(dot) {
            self.waiting
                .entry(key.clone())
                .or_default()
                .insert((ts, dot));
        }
    }

    /// The configurations and their ranges.
    pub(super) fn epochs(&self) -> &Epochs {
        &self.state.epochs
    }

    /// The first switch committed here and not executed yet `(timestamp, command)`: no key
    /// runs past it before it executed (rule 4 of the epochs).
    pub(super) fn pending_switch(&self) -> Option<(u64, Dot)> {
        self.waiting
            .get(SWITCH_LANE)
            .and_then(|queue| queue.first().copied())
    }

    /// The first timestamp waiting on `key`.
    pub(super) fn head(&self, key: &[u8]) -> Option<u64> {
        self.waiting
            .get(key)
            .and_then(|queue| queue.first().map(|&(ts, _)| ts))
    }

    /// Keys with commands waiting.
    pub(super) fn waiting_keys(&self) -> impl Iterator<Item = &Key> {
        self.waiting.keys()
    }

    /// Run every command on `key` with a timestamp up to `stable`, in order, stopping
    /// after a switch that applied (the ranges changed).
    pub(super) fn run<'a>(
        &mut self,
        key: &[u8],
        stable: u64,
        payload: impl Fn(Dot) -> Option<&'a Payload>,
    ) -> Vec<Ran> {
        let mut ran = Vec::new();
        let Some(queue) = self.waiting.get_mut(key) else {
            return ran;
        };
        while let Some(&(ts, dot)) = queue.first() {
            if ts > stable {
                break;
            }
            queue.pop_first();
            let Some(payload) = payload(dot) else {
                continue;
            };
            let done = self.state.apply(dot, ts, payload);
            let switched = matches!(done.outcome, Outcome::Switched(Ok(_)));
            ran.push(done);
            self.executed.insert(dot);
            self.unrecorded.push(dot);
            self.ran += 1;
            if switched {
                break;
            }
        }
        if queue.is_empty() {
            self.waiting.remove(key);
        }
        ran
    }

    /// The state machine and the session table (snapshots).
    pub(super) fn state(&self) -> (&KvStore, &KeySessions) {
        (&self.state.kv, &self.state.sessions)
    }

    /// Take a snapshot's (or a peer's) executed set, state machine, session table and
    /// configurations; what waits and was executed there stops waiting. The execution
    /// log keeps only what the new state holds: a command run here but not there was
    /// undone (a replica added again may take a state behind its own) and runs again.
    pub(super) fn restore(
        &mut self,
        executed: DotSet,
        (kv, sessions): (KvStore, KeySessions),
        epochs: Epochs,
    ) {
        self.executed = executed;
        self.state.kv = kv;
        self.state.sessions = sessions;
        self.state.epochs = epochs;
        let done = &self.executed;
        self.state.order.retain(|entry| done.contains(entry.dot));
        self.waiting.retain(|_, queue| {
            queue.retain(|(_, dot)| !done.contains(*dot));
            !queue.is_empty()
        });
    }

    /// Replay: run `dot` again (it was executed before a restart, in this order).
    pub(super) fn rerun(&mut self, dot: Dot, ts: u64, payload: &Payload) {
        if let Some(queue) = self.waiting.get_mut(payload.key()) {
            queue.remove(&(ts, dot));
        }
        self.state.apply(dot, ts, payload);
        self.executed.insert(dot);
    }
}

/// The state machine, the session table, the configurations and the execution log.
#[derive(Clone, Debug, Hash)]
struct State {
    kv: KvStore,
    sessions: KeySessions,
    epochs: Epochs,
    order: Vec<ExecutedEntry>,
    record: bool,
}

impl State {
    fn apply(&mut self, dot: Dot, ts: u64, payload: &Payload) -> Ran {
        let Self {
            kv,
            sessions,
            epochs,
            order,
            record,
        } = self;
        let done = |outcome| Ran {
            dot,
            request: payload.request,
            outcome,
        };
        if !epochs.runs(payload.config_epoch, ts) {
            return done(Outcome::Abandoned);
        }
        if let Some(change) = &payload.change {
            return done(Outcome::Switched(epochs.apply(change, ts).cloned()));
        }
        let outcome = match sessions.admit(payload.request, &payload.command, payload.resend) {
            Admission::Execute => {
                let result = kv.apply(&payload.command);
                sessions.record(payload.request, &payload.command, result.clone());
                Outcome::Result(result)
            }
            Admission::Duplicate(result) => Outcome::Result(result),
            Admission::Expired => Outcome::Expired,
        };
        if *record {
            order.push(ExecutedEntry {
                dot,
                ts,
                request: payload.request,
                command: payload.command.clone(),
            });
        }
        done(outcome)
    }
}
