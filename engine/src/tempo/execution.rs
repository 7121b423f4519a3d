//! Execution: committed commands run per key in `(timestamp, dot)` order once their
//! timestamp is stable (a majority promised every timestamp up to it), through a per-key
//! session table so a request ordered twice runs once.

use super::dots::DotSet;
use super::messages::{Dot, Payload};
use crate::command::{Command, CommandResult, Key};
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
    /// Its result (`None`: a repeat the session table no longer judges).
    pub result: Option<CommandResult>,
}

/// The state machine, the session table and the committed commands waiting for
/// stability.
#[derive(Clone, Debug, Default, Hash)]
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
    /// `key_window` writes per key (sessions).
    pub(super) fn new(record: bool, key_window: usize) -> Self {
        Self {
            state: State {
                record,
                sessions: KeySessions::with_window(key_window),
                ..State::default()
            },
            ..Self::default()
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

    /// Run every command on `key` with a timestamp up to `stable`, in order.
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
            ran.push(self.state.apply(dot, ts, payload));
            self.executed.insert(dot);
            self.unrecorded.push(dot);
            self.ran += 1;
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

    /// Take a snapshot's (or a peer's) executed set, state machine and session table;
    /// what waits and was executed there stops waiting.
    pub(super) fn restore(&mut self, executed: DotSet, kv: KvStore, sessions: KeySessions) {
        self.executed = executed;
        self.state.kv = kv;
        self.state.sessions = sessions;
        let done = &self.executed;
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

/// The state machine, the session table and the execution log.
#[derive(Clone, Debug, Default, Hash)]
struct State {
    kv: KvStore,
    sessions: KeySessions,
    order: Vec<ExecutedEntry>,
    record: bool,
}

impl State {
    fn apply(&mut self, dot: Dot, ts: u64, payload: &Payload) -> Ran {
        let Self {
            kv,
            sessions,
            order,
            record,
        } = self;
        let result = match sessions.admit(payload.request, &payload.command, payload.resend) {
            Admission::Execute => {
                let result = kv.apply(&payload.command);
                sessions.record(payload.request, &payload.command, result.clone());
                Some(result)
            }
            Admission::Duplicate(result) => Some(result),
            Admission::Expired => None,
        };
        if *record {
            order.push(ExecutedEntry {
                dot,
                ts,
                request: payload.request,
                command: payload.command.clone(),
            });
        }
        Ran {
            dot,
            request: payload.request,
            result,
        }
    }
}
