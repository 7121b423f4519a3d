//! What every role of a Tempo replica shares: identity, quorums, options, the command
//! table, clocks and promises, the executor, the outbox and the counters; learning a
//! commit and running what became stable.

use super::clocks::{Clocks, PromiseTable};
use super::config::TempoConfig;
use super::execution::{ExecutedEntry, Executor};
use super::messages::{Ballot, Dot, KeyPromise, Message, Payload, Record};
use crate::command::{Command, CommandResult, Key};
use crate::id::NodeId;
use crate::protocol::{CommitPath, Effect, Membership, Metrics, Outbox};
use crate::request::{ClientReply, RequestError, Response};
use crate::time::Time;
use std::collections::{BTreeMap, BTreeSet};

/// What this replica knows of one command.
#[derive(Clone, Debug, Hash)]
pub(super) struct Cmd {
    pub payload: Option<Payload>,
    /// This replica's proposal, if it made one.
    pub proposal: Option<u64>,
    /// The proposal was made for a recovery.
    pub in_recovery: bool,
    /// Highest ballot promised.
    pub ballot: Ballot,
    /// Ballot of the last accepted timestamp.
    pub accepted: Ballot,
    pub accepted_ts: u64,
    /// The committed timestamp, once known.
    pub decided: Option<u64>,
    /// The commit is durable here (the command may execute).
    pub durable: bool,
    /// When this replica last saw progress on it (recovery patience).
    pub since: Time,
}

impl Cmd {
    pub(super) fn new(now: Time) -> Self {
        Self {
            payload: None,
            proposal: None,
            in_recovery: false,
            ballot: Ballot::ZERO,
            accepted: Ballot::ZERO,
            accepted_ts: 0,
            decided: None,
            durable: false,
            since: now,
        }
    }
}

/// An own command between its commit and its execution: where the stability delay goes.
#[derive(Clone, Debug)]
pub(super) struct OwnWait {
    pub key: Key,
    pub ts: u64,
    pub committed: Time,
    /// When a majority's clocks first covered `ts` (attached promises aside); from then
    /// on it waits only for commands with lower proposals to commit here.
    pub promised: Option<Time>,
    /// A first send of a put or delete: its result (`Written`) depends on nothing ordered
    /// before it, so its client may be answered once its timestamp is promised.
    pub blind: bool,
}

/// The shared state of a replica.
#[derive(Clone)]
pub(super) struct Replica {
    pub id: NodeId,
    pub members: Vec<NodeId>,
    pub config: TempoConfig,
    /// This replica's fast quorum (itself and the nearest others).
    pub fast_quorum: Vec<NodeId>,
    pub cmds: BTreeMap<Dot, Cmd>,
    pub clocks: Clocks,
    pub promises: PromiseTable,
    pub executor: Executor,
    /// Own commands whose client waits here, with when they were submitted.
    pub clients: BTreeMap<Dot, Time>,
    /// Own commands committed and not executed yet (stability delay).
    pub committed_at: BTreeMap<Dot, OwnWait>,
    /// Keys whose stability must be checked again.
    pub touched: BTreeSet<Key>,
    /// Per key, the first command waiting for stability when lost announcements were
    /// last looked for (`gc.rs::ask_for_lost_promises`).
    pub waiting_heads: BTreeMap<Key, (u64, Dot)>,
    /// Commands executed everywhere (forgotten).
    pub collected: super::dots::DotSet,
    /// What this replica may vote on after a lost disk (`fence.rs`).
    pub fence: super::fence::Fence,
    pub outbox: Outbox<Message, Record>,
    pub metrics: Metrics,
}

impl Replica {
    pub(super) fn new(id: NodeId, cluster: &Membership, config: TempoConfig) -> Self {
        let members: Vec<NodeId> = cluster.ids().collect();
        let size = config.fast_quorum(members.len());
        let fast_quorum = cluster.by_distance(id).into_iter().take(size).collect();
        let record = config.record_execution;
        let window = config.key_session_window;
        Self {
            id,
            members,
            config,
            fast_quorum,
            cmds: BTreeMap::new(),
            clocks: Clocks::default(),
            promises: PromiseTable::default(),
            executor: Executor::new(record, window),
            clients: BTreeMap::new(),
            committed_at: BTreeMap::new(),
            touched: BTreeSet::new(),
            waiting_heads: BTreeMap::new(),
            collected: super::dots::DotSet::default(),
            fence: super::fence::Fence::default(),
            outbox: Outbox::counting(),
            metrics: Metrics::new(),
        }
    }

    pub(super) fn n(&self) -> usize {
        self.members.len()
    }

    pub(super) fn majority(&self) -> usize {
        self.n() / 2 + 1
    }

    /// Every member but this one.
    pub(super) fn peers(&self) -> Vec<NodeId> {
        self.members
            .iter()
            .copied()
            .filter(|&m| m != self.id)
            .collect()
    }

    /// The entry of `dot`, created if new (None if it was collected).
    pub(super) fn cmd(&mut self, now: Time, dot: Dot) -> Option<&mut Cmd> {
        if self.collected.contains(dot) {
            return None;
        }
        Some(self.cmds.entry(dot).or_insert_with(|| Cmd::new(now)))
    }

    /// A `Propose` for a command of an epoch of its coordinator fenced here that this
    /// replica does not know: its former self sent it before losing its disk; only a
    /// command some peer knew when it fenced may still be decided (by recovery).
    pub(super) fn is_stale(&self, dot: Dot) -> bool {
        !self.cmds.contains_key(&dot)
            && !self.fence.current(dot.node, super::dots::epoch_of(dot.seq))
    }

    /// The promise table, and whether a command's commit is durable here (or it
    /// executed), borrowed apart so the table can change while commits are looked up.
    fn promises_and_commits(&mut self) -> (&mut PromiseTable, impl Fn(Dot) -> bool + '_) {
        let Self {
            promises,
            executor,
            collected,
            cmds,
            ..
        } = self;
        let committed = |dot: Dot| {
            executor.executed.contains(dot)
                || collected.contains(dot)
                || cmds.get(&dot).is_some_and(|c| c.durable)
        };
        (promises, committed)
    }

    /// Take `from`'s announced promise on a key, and look at that key again if it
    /// changed anything.
    pub(super) fn take_promise(&mut self, from: NodeId, promise: KeyPromise) {
        let key = promise.key.clone();
        let (promises, committed) = self.promises_and_commits();
        if promises.update(from, promise, committed) {
            self.touched.insert(key);
        }
    }

    /// Learn that `dot` committed with `ts`: persist it, tell the others if `announce`,
    /// and let it execute once the record is durable (a self-send).
    pub(super) fn commit(
        &mut self,
        now: Time,
        dot: Dot,
        payload: Payload,
        ts: u64,
        path: Option<CommitPath>,
    ) {
        let Some(cmd) = self.cmd(now, dot) else {
            return;
        };
        if cmd.decided.is_some() {
            return;
        }
        cmd.decided = Some(ts);
        cmd.payload = Some(payload.clone());
        self.clocks.raise(payload.key(), ts);
        let mut then = vec![Effect::Send {
            to: self.id,
            message: Message::Durable { dot },
        }];
        if let Some(path) = path {
            // The decision leaves only behind its durable record: a coordinator that
            // crashed before it and answers a recovery must not have revealed it.
            for peer in self.peers() {
                then.push(Effect::Send {
                    to: peer,
                    message: Message::Commit {
                        dot,
                        payload: payload.clone(),
                        ts,
                    },
                });
            }
            self.metrics.incr(match path {
                CommitPath::Fast => "fast_path",
                CommitPath::Slow => "slow_path",
                _ => "recovered",
            });
            if self.clients.contains_key(&dot) {
                // Observability only, and at the decision: the command is chosen once a
                // quorum's votes are durable, as Multi-Paxos reports it; the reply still
                // waits for this record and execution.
                self.outbox.now(Effect::Committed {
                    request: payload.request,
                    path,
                });
                let key = payload.key().clone();
                // A first send is ordered once and runs; a resend may be refused, so it
                // waits for its execution (docs/design.md#per-key-sessions-epaxos-tempo).
                let blind = !payload.resend
                    && matches!(
                        payload.command,
                        Command::Put { .. } | Command::Delete { .. }
                    );
                let wait = OwnWait {
                    key,
                    ts,
                    committed: now,
                    promised: None,
                    blind,
                };
                self.committed_at.insert(dot, wait);
            }
        }
        let record = Record::Committed { dot, payload, ts };
        self.outbox.persist(vec![record], then);
    }

    /// The commit of `dot` is durable here: it waits for stability.
    pub(super) fn on_durable(&mut self, dot: Dot) {
        let Some(cmd) = self.cmds.get_mut(&dot) else {
            return;
        };
        let (Some(ts), Some(payload)) = (cmd.decided, cmd.payload.as_ref()) else {
            return;
        };
        if cmd.durable {
            return;
        }
        cmd.durable = true;
        let key = payload.key().clone();
        self.executor.add(&key, ts, dot);
        self.touched.insert(key);
    }

    /// Run whatever became stable on the touched keys; answer own clients.
    pub(super) fn execute(&mut self, now: Time) {
        if !self.fence.executes() {
            // A lost disk: commits wait for a peer's state (`rejoin.rs`).
            return;
        }
        let keys = std::mem::take(&mut self.touched);
        for key in keys {
            let majority = self.majority();
            let (promises, committed) = self.promises_and_commits();
            let stable = promises.stable(&key, majority, committed);
            self.on_promised(now, &key);
            let Self { executor, cmds, .. } = self;
            let ran = executor.run(&key, stable, |dot| {
                cmds.get(&dot).and_then(|c| c.payload.as_ref())
            });
            for ran in ran {
                self.metrics.incr("executed");
                if let Some(wait) = self.committed_at.remove(&ran.dot) {
                    let micros =
                        |from: Time, to: Time| to.saturating_since(from).as_micros() as u64;
                    let promised = wait.promised.unwrap_or(now);
                    let metrics = &mut self.metrics;
                    metrics.add("stability_wait_us", micros(wait.committed, now));
                    metrics.add(
                        "stability_promise_wait_us",
                        micros(wait.committed, promised),
                    );
                    metrics.add("stability_order_wait_us", micros(promised, now));
                    metrics.incr("stability_waits");
                }
                if self.clients.remove(&ran.dot).is_none() {
                    continue;
                }
                let outcome = match ran.result {
                    Some(result) => Ok(Response::Kv(result)),
                    None => Err(RequestError::SessionExpired {
                        request: ran.request,
                    }),
                };
                self.outbox.reply(ClientReply {
                    id: ran.request,
                    outcome,
                });
            }
        }
    }

    /// The own commands on `key` whose timestamp a majority's clocks now cover, whatever
    /// their attached promises: note when (the stability delay splits into the wait for
    /// promises and the wait for lower proposals to commit), and answer the blind writes
    /// among them whose commit is durable here. Every command invoked later gets a higher
    /// timestamp, so answering is linearizable before the lower commands commit
    /// (docs/design.md#tempo, rule 3).
    fn on_promised(&mut self, now: Time, key: &Key) {
        if self.committed_at.is_empty() {
            return;
        }
        let covered = self.promises.covered(key, self.majority());
        let early = self.config.answer_promised_writes;
        let Self {
            committed_at,
            cmds,
            clients,
            outbox,
            metrics,
            ..
        } = self;
        for (dot, wait) in committed_at.iter_mut() {
            if wait.key != *key || wait.ts > covered {
                continue;
            }
            wait.promised.get_or_insert(now);
            let durable = cmds.get(dot).is_some_and(|c| c.durable);
            if !(early && wait.blind && durable) {
                continue;
            }
            let Some(payload) = cmds.get(dot).and_then(|c| c.payload.as_ref()) else {
                continue;
            };
            if clients.remove(dot).is_some() {
                metrics.incr("answered_when_promised");
                outbox.reply(ClientReply {
                    id: payload.request,
                    outcome: Ok(Response::Kv(CommandResult::Written)),
                });
            }
        }
    }

    /// Every command executed here, in order.
    pub(super) fn executed(&self) -> &[ExecutedEntry] {
        self.executor.order()
    }
}
