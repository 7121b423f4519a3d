//! What every role of a Tempo replica shares: identity, quorums, options, the command
//! table, clocks and promises, the executor, the outbox and the counters; learning a
//! commit and running what became stable.

use super::clocks::{Clocks, FloorTable, PromiseTable};
use super::config::TempoConfig;
use super::dots::DotSet;
use super::epochs::Epochs;
use super::execution::{ExecutedEntry, Executor, Outcome, Ran};
use super::messages::{Ballot, Dot, KeyPromise, Message, Payload, Record, SWITCH_LANE};
use super::waits::{OwnWait, OwnWaits};
use crate::command::{Command, CommandResult, Key};
use crate::configuration::{
    ChangeError, ChangeFailure, ChangeOutcome, Configuration, ScheduleError,
};
use crate::id::{NodeId, RequestId};
use crate::protocol::{CommitPath, Effect, Member, Membership, Metrics, Outbox};
use crate::request::{ClientReply, RequestError, Response};
use crate::time::Time;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

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
    /// Every replica of the cluster, members or not (spares, removed), with distances.
    pub cluster: Membership,
    /// The members of the current configuration, voters and learners.
    pub members: Vec<NodeId>,
    pub config: TempoConfig,
    /// This replica's fast quorum in the current configuration (itself and the nearest
    /// other voters; empty if it is not a voter).
    pub fast_quorum: Vec<NodeId>,
    /// Voters that left a proposal of this replica unanswered and have not been heard
    /// since: left out of its fast quorum while enough others are left.
    pub suspected: BTreeSet<NodeId>,
    /// Membership changes proposed here, until they end: the switch and when to give up.
    pub pending_changes: BTreeMap<RequestId, (Dot, Time)>,
    /// Membership changes that ended, for the host.
    pub change_outcomes: VecDeque<ChangeOutcome>,
    /// Own commands abandoned with their client waiting: proposed again in the current
    /// epoch (`Tempo::settle`).
    pub abandoned: Vec<Dot>,
    /// This replica executed its own removal and has not fenced itself yet: it is an
    /// acceptor of its epochs' commands until a member's report shows it was added again
    /// (`Tempo::dispatch`).
    pub removed: bool,
    pub cmds: BTreeMap<Dot, Cmd>,
    pub clocks: Clocks,
    pub promises: PromiseTable,
    /// Every replica's promise on every key up to its floor (`floors.rs`).
    pub floors: FloorTable,
    pub executor: Executor,
    /// Own commands whose client waits here, with when they were submitted.
    pub clients: BTreeMap<Dot, Time>,
    /// Own commands committed and not executed yet (stability delay).
    pub committed_at: OwnWaits,
    /// Keys whose stability must be checked again.
    pub touched: BTreeSet<Key>,
    /// Per key, the first command waiting for stability when lost announcements were
    /// last looked for (`gc.rs::ask_for_lost_promises`).
    pub waiting_heads: BTreeMap<Key, (u64, Dot)>,
    /// Commands executed everywhere (forgotten).
    pub collected: DotSet,
    /// What this replica may vote on after a lost disk (`fence.rs`).
    pub fence: super::fence::Fence,
    pub outbox: Outbox<Message, Record>,
    pub metrics: Metrics,
}

impl Replica {
    pub(super) fn new(id: NodeId, cluster: &Membership, config: TempoConfig) -> Self {
        let initial = Configuration::initial_of(cluster, config.initial_members.as_deref());
        let record = config.record_execution;
        let window = config.key_session_window;
        let mut replica = Self {
            id,
            cluster: cluster.clone(),
            members: Vec::new(),
            config,
            fast_quorum: Vec::new(),
            suspected: BTreeSet::new(),
            pending_changes: BTreeMap::new(),
            change_outcomes: VecDeque::new(),
            abandoned: Vec::new(),
            removed: false,
            cmds: BTreeMap::new(),
            clocks: Clocks::default(),
            promises: PromiseTable::default(),
            floors: FloorTable::default(),
            executor: Executor::new(record, window, Epochs::new(initial)),
            clients: BTreeMap::new(),
            committed_at: OwnWaits::default(),
            touched: BTreeSet::new(),
            waiting_heads: BTreeMap::new(),
            collected: DotSet::default(),
            fence: super::fence::Fence::default(),
            outbox: Outbox::counting(),
            metrics: Metrics::new(),
        };
        replica.follow_configuration();
        replica
    }

    /// The current configuration.
    pub(super) fn configuration(&self) -> &Configuration {
        self.executor.epochs().current()
    }

    /// Take the members and this replica's fast quorum from the current configuration.
    pub(super) fn follow_configuration(&mut self) {
        let current = self.executor.epochs().current();
        // A member this replica was not started with (a replica added to a running
        // cluster): heard from now on, and a candidate for quorums (at the far end).
        for member in current.members() {
            if !self.cluster.contains(member.id) {
                self.cluster.members.push(Member {
                    id: member.id,
                    region: member.region.clone(),
                });
                self.cluster.members.sort_by_key(|m| m.id);
            }
        }
        self.members = current.members().iter().map(|m| m.id).collect();
        self.choose_fast_quorum();
    }

    /// This replica's fast quorum: itself and the nearest other voters, passing over
    /// those suspected down while enough others are left (a command proposed to a dead
    /// member waits for a recovery; its quorum is part of its value and never changes).
    fn choose_fast_quorum(&mut self) {
        let current = self.executor.epochs().current();
        self.fast_quorum = if current.counts_vote(self.id) {
            let size = self.config.fast_quorum(current.voter_count());
            let voters: Vec<NodeId> = current.voters().collect();
            let mut nearest: Vec<NodeId> = self
                .cluster
                .by_distance(self.id)
                .into_iter()
                .filter(|n| voters.contains(n))
                .collect();
            // Stable: by distance among the trusted, then among the suspected.
            nearest.sort_by_key(|n| self.suspected.contains(n));
            nearest.truncate(size);
            nearest
        } else {
            Vec::new()
        };
    }

    /// `peer` left a proposal unanswered for a `retry_timeout`: propose to others.
    pub(super) fn suspect(&mut self, peer: NodeId) {
        if peer != self.id && self.suspected.insert(peer) {
            self.metrics.incr("peers_suspected");
            self.choose_fast_quorum();
        }
    }

    /// A message from `peer`: it is up.
    pub(super) fn heard(&mut self, peer: NodeId) {
        if self.suspected.remove(&peer) {
            self.choose_fast_quorum();
        }
    }

    /// The voters of configuration `epoch`, if known here.
    pub(super) fn voters_of(&self, epoch: u64) -> Option<Vec<NodeId>> {
        let configuration = self.executor.epochs().get(epoch)?;
        Some(configuration.voters().collect())
    }

    /// Every member but this one.
    pub(super) fn peers(&self) -> Vec<NodeId> {
        self.members
            .iter()
            .copied()
            .filter(|&m| m != self.id)
            .collect()
    }

    /// Who hears of a command of configuration `epoch`: every current member and every
    /// voter of its epoch (a removed replica stays its acceptor), but this replica.
    pub(super) fn audience(&self, epoch: u64) -> Vec<NodeId> {
        let mut to = self.peers();
        for voter in self.voters_of(epoch).unwrap_or_default() {
            if voter != self.id && !to.contains(&voter) {
                to.push(voter);
            }
        }
        to
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

    /// The promise and floor tables, and whether a command's commit is durable here (or
    /// it executed), borrowed apart so the tables can change while commits are looked up.
    pub(super) fn tables_and_commits(
        &mut self,
    ) -> (
        &mut PromiseTable,
        &mut FloorTable,
        impl Fn(Dot) -> bool + '_,
    ) {
        let Self {
            promises,
            floors,
            executor,
            collected,
            cmds,
            ..
        } = self;
        (promises, floors, committed_here(executor, collected, cmds))
    }

    /// The highest timestamp a majority of `voters` promised every key up to, with every
    /// command they listed committed here: a switch up to it may run (`floors.rs`).
    pub(super) fn switch_certified_up_to(&mut self, voters: &[NodeId]) -> u64 {
        let (_, floors, committed) = self.tables_and_commits();
        floors.stable(voters, committed)
    }

    /// Take `from`'s announced promise on a key, and look at that key again if it
    /// changed anything.
    pub(super) fn take_promise(&mut self, from: NodeId, promise: &KeyPromise) {
        let key = promise.key.clone();
        let (promises, _, committed) = self.tables_and_commits();
        if !promises.update(from, promise, committed) {
            return;
        }
        self.touched.insert(key);
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
            for peer in self.audience(payload.config_epoch) {
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
                    epoch: payload.config_epoch,
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

    /// The commit of `dot` is durable here: it waits for stability. Returns the
    /// timestamp of a switch whose commit this was (the floor is at least it now: the
    /// caller sends this replica's floor promise, `floors.rs`).
    pub(super) fn on_durable(&mut self, dot: Dot) -> Option<u64> {
        let cmd = self.cmds.get_mut(&dot)?;
        let (Some(ts), Some(payload)) = (cmd.decided, cmd.payload.as_ref()) else {
            return None;
        };
        if cmd.durable {
            return None;
        }
        cmd.durable = true;
        let key = payload.key().clone();
        let switch = key.as_slice() == SWITCH_LANE;
        if switch {
            // Its proposals are holes on every key: each waiting key looks again.
            let waiting: Vec<Key> = self.executor.waiting_keys().cloned().collect();
            self.touched.extend(waiting);
        }
        self.executor.add(&key, ts, dot);
        self.touched.insert(key);
        if self.executor.pending_switch().is_some() {
            // It may be the last command a floor promise the switch waits for listed.
            self.touched.insert(SWITCH_LANE.to_vec());
        }
        switch.then_some(ts)
    }

    /// Run whatever became stable on the touched keys; answer own clients.
    pub(super) fn execute(&mut self, now: Time) {
        if !self.fence.executes() {
            // A lost disk: commits wait for a peer's state (`rejoin.rs`).
            return;
        }
        if !self.committed_at.is_empty() {
            // Own writes the switch lane's stability passed may be answered now.
            let stable = self.stable(SWITCH_LANE);
            let keys = self.committed_at.keys_the_lane_passed(stable);
            self.touched.extend(keys);
        }
        // A switch that removes this replica gives its state up: nothing more runs here,
        // not even a later switch that adds it again (it then fetches the members').
        while self.fence.executes() {
            let Some(key) = self.touched.pop_first() else {
                break;
            };
            if self.executor.head(&key).is_none() {
                self.on_promised(now, &key);
                continue;
            }
            let mut stable = self.stable(&key);
            if key.as_slice() == SWITCH_LANE && !self.config.unsafe_switch_without_floor_promises {
                // A switch closes its range on every key: it runs once a majority of the
                // epoch's voters promised every key up to it (`floors.rs`).
                let voters: Vec<NodeId> = self.configuration().voters().collect();
                stable = stable.min(self.switch_certified_up_to(&voters));
            }
            self.on_promised(now, &key);
            let Self { executor, cmds, .. } = self;
            let ran = executor.run(&key, stable, |dot| {
                cmds.get(&dot).and_then(|c| c.payload.as_ref())
            });
            if key.as_slice() == SWITCH_LANE && !ran.is_empty() {
                // A switch ran, applied or not: stability on every key was capped at it.
                let waiting: Vec<Key> = self.executor.waiting_keys().cloned().collect();
                self.touched.extend(waiting);
            }
            for ran in ran {
                self.finish(now, ran);
            }
        }
    }

    /// The highest timestamp on `key` stable here: every closed range is (its switch ran
    /// only once a majority of its voters promised every key up to it, `floors.rs`);
    /// above the last switch that ran, a majority of the current voters promised up to
    /// it; never past a switch committed here and not executed yet
    /// (docs/design.md#tempo-epochs-the-rule-and-why-it-is-safe, rule 4).
    pub(super) fn stable(&mut self, key: &[u8]) -> u64 {
        let cap = self
            .executor
            .pending_switch()
            .map_or(u64::MAX, |(ts, _)| ts);
        let closed = self.executor.epochs().closed_up_to();
        let voters: Vec<NodeId> = self.configuration().voters().collect();
        let (promises, _, committed) = self.tables_and_commits();
        let promised = promises.stable(key, &voters, &committed).min(cap);
        promised.max(closed)
    }

    /// One executed command: answer its client, or propose it again if it was
    /// abandoned, or follow the configuration a switch made.
    fn finish(&mut self, now: Time, ran: Ran) {
        self.metrics.incr("executed");
        if let Some(wait) = self.committed_at.remove(ran.dot) {
            let micros = |from: Time, to: Time| to.saturating_since(from).as_micros() as u64;
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
        let outcome = match ran.outcome {
            Outcome::Result(result) => Ok(Response::Kv(result)),
            Outcome::Expired => Err(RequestError::SessionExpired {
                request: ran.request,
            }),
            Outcome::Abandoned => return self.on_abandoned(ran.dot, ran.request),
            Outcome::Switched(result) => return self.on_switched(ran.dot, ran.request, result),
        };
        if self.clients.remove(&ran.dot).is_some() {
            self.outbox.reply(ClientReply {
                id: ran.request,
                outcome,
            });
        }
    }

    /// A command whose timestamp fell outside its epoch's range ran nowhere: an own
    /// client's is proposed again; an own switch did not apply.
    fn on_abandoned(&mut self, dot: Dot, request: RequestId) {
        self.metrics.incr("abandoned");
        if self.clients.contains_key(&dot) {
            self.abandoned.push(dot);
        }
        if self
            .pending_changes
            .get(&request)
            .is_some_and(|(d, _)| *d == dot)
        {
            self.pending_changes.remove(&request);
            let current = self.configuration().epoch();
            let proposed = self.cmds.get(&dot).and_then(|c| c.payload.as_ref());
            let from = proposed.map_or(current, |p| p.config_epoch);
            let error = ChangeError::StaleEpoch {
                proposed: from,
                current,
            };
            self.change_outcomes.push_back(ChangeOutcome {
                request,
                result: Err(ChangeFailure::NotApplied(ScheduleError::Change(error))),
            });
        }
    }

    /// This replica was removed: it hears no more promises, so it runs nothing more, and
    /// the members collect without it. Its clients still waiting are told the outcome is
    /// unknown (their commands may run at the members). It stays an acceptor of the
    /// commands of its epochs (recoveries may need its answer) until a member's report
    /// shows it was added again; then it fences itself as after a lost disk and fetches
    /// the members' state.
    fn left_configuration(&mut self) {
        self.metrics.incr("removed_here");
        self.removed = true;
        self.fence.lost_state = true;
        let record = Record::Fence(Box::new(self.fence.clone()));
        self.outbox.persist(vec![record], Vec::new());
        let waiting: Vec<Dot> = self.clients.keys().copied().collect();
        for dot in waiting {
            let Some(payload) = self.cmds.get(&dot).and_then(|c| c.payload.as_ref()) else {
                continue;
            };
            let id = payload.request;
            self.clients.remove(&dot);
            self.outbox.reply(ClientReply {
                id,
                outcome: Err(RequestError::Timeout),
            });
        }
    }

    /// A switch executed in its epoch's range: the next configuration, or none.
    fn on_switched(
        &mut self,
        dot: Dot,
        request: RequestId,
        result: Result<Configuration, ChangeError>,
    ) {
        match &result {
            Ok(configuration) => {
                self.metrics.incr("switches_applied");
                self.follow_configuration();
                if !configuration.members().iter().any(|m| m.id == self.id) {
                    self.left_configuration();
                }
                // Every range above the switch now counts the new voters.
                let waiting: Vec<Key> = self.executor.waiting_keys().cloned().collect();
                self.touched.extend(waiting);
            }
            Err(_) => self.metrics.incr("switches_not_applied"),
        }
        if self
            .pending_changes
            .get(&request)
            .is_some_and(|(d, _)| *d == dot)
        {
            self.pending_changes.remove(&request);
            let result = result.map_err(|e| ChangeFailure::NotApplied(ScheduleError::Change(e)));
            self.change_outcomes
                .push_back(ChangeOutcome { request, result });
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
        let early = self.config.answer_promised_writes;
        // What a majority of each waiting epoch's voters cover on the key, looked up once
        // per epoch; only the commands not promised yet are looked at (a promise, once
        // made, stays: those clocks were announced durably).
        for epoch in self.committed_at.unpromised_epochs(key) {
            let voters = self.voters_of(epoch).unwrap_or_default();
            let covered = self.promises.covered(key, &voters);
            self.committed_at.promise(key, epoch, covered, now, early);
        }
        let mut answerable = Vec::new();
        for (dot, ts, epoch) in self.committed_at.to_answer(key) {
            if !self.clients.contains_key(&dot) {
                self.committed_at.answered(dot);
            } else if self.cmds.get(&dot).is_some_and(|c| c.durable) {
                answerable.push((dot, ts, epoch));
            }
        }
        // The switch lane's stability, looked up once, and only for a write to answer.
        let mut lane_stable = None;
        for (dot, ts, epoch) in answerable {
            if !self.range_certain(ts, epoch, &mut lane_stable) {
                continue;
            }
            let Some(payload) = self.cmds.get(&dot).and_then(|c| c.payload.as_ref()) else {
                continue;
            };
            let request = payload.request;
            self.committed_at.answered(dot);
            if self.clients.remove(&dot).is_some() {
                self.metrics.incr("answered_when_promised");
                self.outbox.reply(ClientReply {
                    id: request,
                    outcome: Ok(Response::Kv(CommandResult::Written)),
                });
            }
        }
    }

    /// Whether a command of configuration `epoch` committed with `ts` certainly runs: its
    /// timestamp lies in its epoch's range and no switch this replica does not know yet
    /// can end that range below it (the switch lane is stable up to it). Only then may a
    /// write be answered before it runs (rule 5 of the epochs).
    /// `lane_stable` keeps the switch lane's stability once looked up (it does not move
    /// while nothing commits).
    fn range_certain(&mut self, ts: u64, epoch: u64, lane_stable: &mut Option<u64>) -> bool {
        let span = self.executor.epochs().span_at(ts);
        if span.configuration.epoch() != epoch {
            return false;
        }
        if span.high.is_some() {
            return true;
        }
        let stable = match *lane_stable {
            Some(stable) => stable,
            None => *lane_stable.insert(self.stable(SWITCH_LANE)),
        };
        stable >= ts
    }

    /// Every command executed here, in order.
    pub(super) fn executed(&self) -> &[ExecutedEntry] {
        self.executor.order()
    }
}

/// Whether a command's commit is durable here (or it executed, or ran everywhere).
fn committed_here<'a>(
    executor: &'a Executor,
    collected: &'a DotSet,
    cmds: &'a BTreeMap<Dot, Cmd>,
) -> impl Fn(Dot) -> bool + 'a {
    |dot: Dot| {
        executor.executed.contains(dot)
            || collected.contains(dot)
            || cmds.get(&dot).is_some_and(|c| c.durable)
    }
}
