//! What every role of a Tempo replica shares: identity, quorums, options, the command
//! table, clocks and promises, the executor, the outbox and the counters; learning a
//! commit and running what became stable.

use super::clocks::{Clocks, PromiseTable};
use super::config::TempoConfig;
use super::execution::{ExecutedEntry, Executor};
use super::messages::{Ballot, Dot, Message, Payload, Record};
use crate::command::Key;
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
    /// When own commands committed (stability delay).
    pub committed_at: BTreeMap<Dot, Time>,
    /// Keys whose stability must be checked again.
    pub touched: BTreeSet<Key>,
    /// Commands executed everywhere (forgotten).
    pub collected: super::dots::DotSet,
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
            collected: super::dots::DotSet::default(),
            outbox: Outbox::new(),
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

    /// Whether `dot`'s commit is durable here (or it executed).
    pub(super) fn is_committed(&self, dot: Dot) -> bool {
        self.executor.executed.contains(dot)
            || self.collected.contains(dot)
            || self.cmds.get(&dot).is_some_and(|c| c.durable)
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
        self.clocks.bump(payload.key(), ts);
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
                then.push(Effect::Committed {
                    request: payload.request,
                    path,
                });
                self.committed_at.insert(dot, now);
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
        let keys = std::mem::take(&mut self.touched);
        for key in keys {
            let stable = self
                .promises
                .stable(&key, self.majority(), |dot| self.is_committed(dot));
            let Self { executor, cmds, .. } = self;
            let ran = executor.run(&key, stable, |dot| {
                cmds.get(&dot).and_then(|c| c.payload.as_ref())
            });
            for ran in ran {
                self.metrics.incr("executed");
                if self.clients.remove(&ran.dot).is_none() {
                    continue;
                }
                if let Some(at) = self.committed_at.remove(&ran.dot) {
                    let waited = now.saturating_since(at).as_micros() as u64;
                    self.metrics.add("stability_wait_us", waited);
                    self.metrics.incr("stability_waits");
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

    /// Every command executed here, in order.
    pub(super) fn executed(&self) -> &[ExecutedEntry] {
        self.executor.order()
    }
}
