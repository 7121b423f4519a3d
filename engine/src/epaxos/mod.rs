//! EPaxos: leaderless consensus (Moraru, Andersen, Kaminsky, SOSP'13).
//!
//! ```text
//!  client ─▶ local replica L (command leader of instance L.i)
//!   L: attrs = (seq, deps) from its key index; persist; PreAccept ─▶ replicas
//!   replicas: attrs ∪= what they know; persist; PreAcceptOk ─▶ L
//!   L: fast quorum F+⌊(F+1)/2⌋ (L included) all unchanged ─▶ commit      (1 round trip)
//!      otherwise: union deps, max seq; Accept ─▶ majority ─▶ commit      (2 round trips)
//!   commit ─▶ executor: Tarjan SCC over committed deps, (seq, leader, slot) inside a
//!   component; L answers its client once the command executed.
//! ```
//! Interference is per key; reads do not interfere with reads. Every reply is persisted
//! before it is sent, and a decision (a Commit, a client answer, the host's commit
//! notice) leaves only behind its durable commit record. A command leader persists an
//! instance's state before telling anyone about it, so after a crash it resumes its
//! unfinished instances at its own ballot, unless it promised a recovery a higher one.
//! Lost messages are resent on timers; a replica whose execution waits on an instance it
//! never saw committed asks that instance's leader, then recovers it (explicit prepare
//! with TryPreAccept, `recovery.rs`). Instances executed everywhere are forgotten
//! (garbage collection). Batching is optional and off by default (`batch.rs`).
//!
//! | file | concept |
//! |------|---------|
//! | `mod.rs` | the replica, command-leader phases, commit, timers, the Protocol impl |
//! | `acceptor.rs` | PreAccept/Accept handling, promises, revealing decisions |
//! | `recovery.rs` | explicit prepare, TryPreAccept, competing recoveries by ballot |
//! | `batch.rs` | instance values ([`Batch`]), the leader's request queue |
//! | `execution.rs` | Tarjan SCC executor |
//! | `instance.rs`, `messages.rs`, `config.rs` | instances and key index, wire and records, options |
//! | `model_check/` (tests) | exhaustive small-scope check of recovery: 3 replicas, 2 conflicting commands, every schedule within a budget of reorderings, drops, crashes and timers; negative control |
//! | `*_test.rs`, `tests.rs` | handler tests |

mod acceptor;
mod batch;
#[cfg(test)]
mod batch_test;
#[cfg(test)]
mod cluster_test;
mod config;
mod execution;
mod instance;
mod messages;
#[cfg(test)]
mod model_check;
mod recovery;
#[cfg(test)]
mod recovery_test;
#[cfg(test)]
mod tests;

pub use batch::Batch;
pub use config::EpaxosConfig;
pub use execution::{ExecutedEntry, Executor};
pub use instance::{Attributes, InstanceId, KeyIndex, Status};
pub use messages::{Ballot, InstanceRecord, InstanceReport, Message, Payload, Record};

use crate::command::CommandResult;
use crate::id::NodeId;
use crate::protocol::{CommitPath, Effect, Membership, Metrics, Outbox, Output, Protocol};
use crate::quorum::{epaxos_fast_quorum, majority, VoteSet};
use crate::request::{ClientReply, ClientRequest, Consistency, RequestError, Response};
use crate::time::Time;
use execution::Executed;
use instance::Instance;
use std::collections::{BTreeMap, VecDeque};

#[derive(Clone, Hash)]
enum Phase {
    PreAccept {
        /// Replies so far (the leader's own included once durable).
        replies: BTreeMap<NodeId, Attributes>,
    },
    Accept {
        votes: VoteSet,
    },
}

/// Who hears of a commit decided or learned here, once its record is durable.
#[derive(Clone, Copy)]
enum Announce {
    /// Learned from a peer.
    Nobody,
    /// Decided here by recovery: every peer.
    Peers,
    /// Decided here for our own client: every peer, and the host (commit latency).
    PeersAndHost(CommitPath),
}

/// A command leader's (or a recovering replica's) progress on an instance.
#[derive(Clone, Hash)]
struct Leading {
    /// Run by a recovering replica: never take the fast path; commits count as recovered.
    recovery: bool,
    ballot: Ballot,
    original: Attributes,
    phase: Phase,
    sent_at: Time,
}

/// One EPaxos replica.
#[derive(Clone)]
pub struct Epaxos {
    id: NodeId,
    members: Vec<NodeId>,
    /// Other replicas nearest first (thrifty PreAccept targets).
    peers_by_distance: Vec<NodeId>,
    fast_quorum: usize,
    slow_quorum: usize,
    config: EpaxosConfig,
    instances: BTreeMap<InstanceId, Instance>,
    index: KeyIndex,
    next_slot: u64,
    leading: BTreeMap<InstanceId, Leading>,
    /// Recoveries in their Prepare or TryPreAccept phase.
    recovering: BTreeMap<InstanceId, recovery::Recovery>,
    /// Promises for instances not seen yet.
    promises: BTreeMap<InstanceId, Ballot>,
    /// Highest ballot heard of per instance (to outbid it when recovering).
    seen_ballots: BTreeMap<InstanceId, Ballot>,
    /// Times an uncommitted dependency was found stalled (recovery starts after a few).
    stalls: BTreeMap<InstanceId, u32>,
    /// Latest executed prefix reported by each replica (garbage collection).
    peer_prefixes: BTreeMap<NodeId, BTreeMap<NodeId, u64>>,
    /// When this replica next reports its executed prefix.
    next_gc: Option<Time>,
    executor: Executor,
    /// Time of the last input, for timers.
    now: Time,
    /// When the retransmission/stall timer fires next (armed while there is work).
    next_tick: Option<Time>,
    /// Unfinished own instances recovered from disk, resumed at the first input.
    resume: Vec<InstanceId>,
    /// Client requests waiting for room in the window of own instances (batching).
    queued: VecDeque<Payload>,
    outbox: Outbox<Message, Record>,
    metrics: Metrics,
}

impl Epaxos {
    /// A replica of `cluster`, rebuilt from its durable `recovered` records.
    pub fn new(
        id: NodeId,
        cluster: &Membership,
        config: EpaxosConfig,
        _seed: u64,
        recovered: Vec<Record>,
    ) -> Self {
        let members: Vec<NodeId> = cluster.ids().collect();
        let n = members.len();
        let peers_by_distance = cluster
            .by_distance(id)
            .into_iter()
            .filter(|&p| p != id)
            .collect();
        let mut replica = Self {
            id,
            members,
            peers_by_distance,
            fast_quorum: epaxos_fast_quorum(n),
            slow_quorum: majority(n),
            peer_prefixes: BTreeMap::new(),
            next_gc: None,
            instances: BTreeMap::new(),
            index: KeyIndex::default(),
            next_slot: 0,
            leading: BTreeMap::new(),
            recovering: BTreeMap::new(),
            promises: BTreeMap::new(),
            seen_ballots: BTreeMap::new(),
            stalls: BTreeMap::new(),
            executor: Executor::new(config.record_execution),
            config,
            now: Time::ZERO,
            next_tick: None,
            resume: Vec::new(),
            queued: VecDeque::new(),
            outbox: Outbox::new(),
            metrics: Metrics::new(),
        };
        replica.recover(recovered);
        replica
    }

    /// Rebuild the instance table (the last record of an instance wins unless it would
    /// move its status backwards), re-execute committed instances, and note own
    /// unfinished instances to resume.
    fn recover(&mut self, records: Vec<Record>) {
        for record in records {
            let record = match record {
                Record::Instance(record) => record,
                Record::Promise { instance, ballot } => {
                    let promised = self.promises.entry(instance).or_default();
                    *promised = (*promised).max(ballot);
                    continue;
                }
            };
            let id = record.instance;
            if id.leader == self.id {
                self.next_slot = self.next_slot.max(id.slot + 1);
            }
            // Promises only grow, whichever record of the instance wins.
            let promised = record.promised.max(record.ballot).max(
                self.instances
                    .get(&id)
                    .map(|i| i.promised)
                    .unwrap_or_default(),
            );
            let keep_existing = self.instances.get(&id).is_some_and(|i| {
                i.status > record.status
                    || (i.status == record.status && i.accepted_in > record.ballot)
            });
            if !keep_existing {
                self.index
                    .insert_batch(id, &record.payload, record.attributes.seq);
                self.instances.insert(
                    id,
                    Instance::new(
                        record.payload,
                        record.attributes,
                        record.status,
                        record.ballot,
                    ),
                );
            }
            if let Some(instance) = self.instances.get_mut(&id) {
                instance.promised = promised;
            }
        }
        for (id, instance) in &mut self.instances {
            if let Some(bare) = self.promises.remove(id) {
                instance.promised = instance.promised.max(bare);
            }
        }
        let committed: Vec<(InstanceId, Batch, Attributes)> = self
            .instances
            .iter()
            .filter(|(_, i)| i.status == Status::Committed)
            .map(|(&id, i)| (id, i.payload.clone(), i.attributes.clone()))
            .collect();
        for (id, payload, attributes) in committed {
            // Replies to clients of a previous incarnation are gone: just re-apply.
            let _ = self.executor.commit(Time::ZERO, id, payload, attributes);
        }
        // Only what we were driving at our own ballot is ours to resume: an instance
        // whose promise, or whose last attributes, belong to a recovery is not.
        self.resume = self
            .instances
            .iter()
            .filter(|(id, i)| {
                id.leader == self.id
                    && i.status != Status::Committed
                    && i.promised == i.accepted_in
                    && i.accepted_in.node == self.id
            })
            .map(|(&id, _)| id)
            .collect();
    }

    /// Every command executed here, in order.
    pub fn executed(&self) -> &[ExecutedEntry] {
        self.executor.order()
    }

    /// The key-value map as executed here.
    pub fn kv(&self) -> &crate::state_machine::KvStore {
        self.executor.kv()
    }

    /// Instances held in memory.
    pub fn live_instances(&self) -> usize {
        self.instances.len()
    }

    /// Keys in the dependency index.
    pub fn indexed_keys(&self) -> usize {
        self.index.len()
    }

    /// Whether `id` was executed everywhere and forgotten: late messages about it are
    /// dropped instead of bringing it back.
    fn is_collected(&self, id: InstanceId) -> bool {
        !self.instances.contains_key(&id) && self.executor.is_executed(id)
    }

    /// Tell everyone how far we executed, and forget what everyone executed.
    ///
    /// The report waits behind every record persisted before it: execution follows the
    /// commit record into the outbox, not onto disk, and a peer that forgot an instance on
    /// the word of a replica that then crashed before syncing its commit could never tell
    /// the restarted replica what was decided (found by kill -9 under load: the restarted
    /// replica recovered such instances as no-ops and lost acknowledged writes).
    fn report_executed(&mut self) {
        let prefix: Vec<(NodeId, u64)> = self
            .executor
            .executed_prefix()
            .iter()
            .map(|(&l, &s)| (l, s))
            .collect();
        let reports = self
            .others()
            .into_iter()
            .map(|peer| Effect::Send {
                to: peer,
                message: Message::Executed {
                    prefix: prefix.clone(),
                },
            })
            .collect();
        self.outbox.persist(Vec::new(), reports);
        self.collect_garbage();
    }

    fn on_executed_report(&mut self, from: NodeId, prefix: Vec<(NodeId, u64)>) {
        self.catch_up(from, &prefix);
        self.peer_prefixes
            .insert(from, prefix.into_iter().collect());
        self.collect_garbage();
    }

    /// Ask `from` for instances it executed that this replica never saw committed. A
    /// replica that was down while they committed would otherwise miss every one that no
    /// later command depends on: its state would lag forever and, since its executed
    /// prefix could not pass them, nobody could collect anything after them.
    fn catch_up(&mut self, from: NodeId, prefix: &[(NodeId, u64)]) {
        /// Inquiries per report, so a long outage is caught up over a few reports
        /// instead of in one burst.
        const MAX_INQUIRIES: usize = 4_096;
        let mut asked = 0;
        for &(leader, reported) in prefix {
            let own = self
                .executor
                .executed_prefix()
                .get(&leader)
                .copied()
                .unwrap_or(0);
            for slot in own..reported {
                let id = InstanceId { leader, slot };
                if self.is_committed(id) || self.executor.is_executed(id) {
                    continue;
                }
                if asked == MAX_INQUIRIES {
                    return;
                }
                asked += 1;
                self.metrics.incr("catch_up_inquiries");
                self.outbox.send(from, Message::Inquire { instance: id });
            }
        }
    }

    /// Forget instances every replica executed: a later command that names one finds it
    /// executed (DESIGN.md: memory stays bounded in long runs). The dependency index keeps
    /// one small entry per key and leader, the same order of size as the key-value map.
    fn collect_garbage(&mut self) {
        let own = self.executor.executed_prefix().clone();
        let mut below: BTreeMap<NodeId, u64> = BTreeMap::new();
        for &leader in &self.members {
            let mut min = own.get(&leader).copied().unwrap_or(0);
            for &member in self.members.iter().filter(|&&m| m != self.id) {
                let reported = self
                    .peer_prefixes
                    .get(&member)
                    .and_then(|p| p.get(&leader))
                    .copied()
                    .unwrap_or(0);
                min = min.min(reported);
            }
            if min > 0 {
                below.insert(leader, min);
            }
        }
        for (leader, slot) in below {
            let start = InstanceId { leader, slot: 0 };
            let end = InstanceId { leader, slot };
            let doomed: Vec<InstanceId> = self
                .instances
                .range(start..end)
                .map(|(&id, _)| id)
                .collect();
            for id in doomed {
                // The per-key index keeps naming the collected instance: a replica that
                // restarts replays its whole log and must still order it first.
                self.instances.remove(&id);
                self.seen_ballots.remove(&id);
                self.metrics.incr("instances_collected");
            }
            self.executor.collect(leader, slot);
        }
    }

    /// Whether this replica knows `instance` committed.
    pub fn is_committed(&self, instance: InstanceId) -> bool {
        self.instances
            .get(&instance)
            .is_some_and(|i| i.status == Status::Committed)
    }

    fn others(&self) -> Vec<NodeId> {
        self.members
            .iter()
            .copied()
            .filter(|&n| n != self.id)
            .collect()
    }

    fn record_of(&self, id: InstanceId) -> Option<Record> {
        self.instances.get(&id).map(|i| {
            Record::Instance(InstanceRecord {
                instance: id,
                payload: i.payload.clone(),
                attributes: i.attributes.clone(),
                status: i.status,
                ballot: i.accepted_in,
                promised: i.promised,
            })
        })
    }

    /// The highest ballot promised for `id` here (seen instance or bare promise).
    fn promised_for(&self, id: InstanceId) -> Ballot {
        let seen = self.instances.get(&id).map(|i| i.promised);
        let bare = self.promises.get(&id).copied();
        seen.max(bare).unwrap_or_default()
    }

    /// Store attributes for an instance at `ballot` and index them.
    fn store(
        &mut self,
        id: InstanceId,
        payload: Batch,
        attributes: Attributes,
        status: Status,
        ballot: Ballot,
    ) {
        self.index.insert_batch(id, &payload, attributes.seq);
        match self.instances.get_mut(&id) {
            Some(instance) => {
                instance.payload = payload;
                instance.attributes = attributes;
                instance.status = status;
                instance.promised = instance.promised.max(ballot);
                instance.accepted_in = ballot;
            }
            None => {
                let mut instance = Instance::new(payload, attributes, status, ballot);
                // A promise made before the instance was seen stays binding.
                if let Some(promised) = self.promises.remove(&id) {
                    instance.promised = instance.promised.max(promised);
                }
                self.instances.insert(id, instance);
            }
        }
    }

    // ----- command leader -------------------------------------------------------------

    fn lead(&mut self, now: Time, payload: Batch) {
        let id = InstanceId {
            leader: self.id,
            slot: self.next_slot,
        };
        self.next_slot += 1;
        let ballot = Ballot {
            round: 0,
            node: self.id,
        };
        let attributes = self.index.attributes_for_batch(id, &payload);
        self.store(id, payload, attributes.clone(), Status::PreAccepted, ballot);
        self.leading.insert(
            id,
            Leading {
                recovery: false,
                ballot,
                original: attributes,
                phase: Phase::PreAccept {
                    replies: BTreeMap::new(),
                },
                sent_at: now,
            },
        );
        self.send_preaccepts(id, true);
    }

    /// Persist the instance, then PreAccept to the fast quorum (thrifty) or everyone, and
    /// count our own reply.
    fn send_preaccepts(&mut self, id: InstanceId, first: bool) {
        let (Some(record), Some(leading)) = (self.record_of(id), self.leading.get(&id)) else {
            return;
        };
        let targets: Vec<NodeId> = if self.config.thrifty && first && !leading.recovery {
            self.peers_by_distance
                .iter()
                .copied()
                .take(self.fast_quorum - 1)
                .collect()
        } else {
            let replied: Vec<NodeId> = match &leading.phase {
                Phase::PreAccept { replies } => replies.keys().copied().collect(),
                Phase::Accept { .. } => Vec::new(),
            };
            self.others()
                .into_iter()
                .filter(|n| !replied.contains(n))
                .collect()
        };
        let Record::Instance(record) = record else {
            return;
        };
        let message = Message::PreAccept {
            ballot: leading.ballot,
            instance: id,
            payload: record.payload.clone(),
            attributes: leading.original.clone(),
        };
        let record = Record::Instance(record);
        let mut then: Vec<Effect<Message>> = targets
            .into_iter()
            .map(|to| Effect::Send {
                to,
                message: message.clone(),
            })
            .collect();
        if first {
            then.push(Effect::Send {
                to: self.id,
                message: Message::PreAcceptOk {
                    ballot: leading.ballot,
                    instance: id,
                    attributes: leading.original.clone(),
                },
            });
            self.outbox.persist(vec![record], then);
        } else {
            // Already durable; keep the release order behind earlier writes.
            self.outbox.persist(Vec::new(), then);
        }
    }

    fn on_preaccept_ok(
        &mut self,
        now: Time,
        from: NodeId,
        ballot: Ballot,
        id: InstanceId,
        attributes: Attributes,
    ) {
        let Some(leading) = self.leading.get_mut(&id) else {
            return;
        };
        let Phase::PreAccept { replies } = &mut leading.phase else {
            return;
        };
        if leading.ballot != ballot {
            return;
        }
        replies.insert(from, attributes);
        let unchanged = replies.values().all(|a| *a == leading.original);
        if unchanged && replies.len() >= self.fast_quorum && !leading.recovery {
            self.metrics.incr("fast_path");
            let attributes = leading.original.clone();
            self.commit_own(now, id, attributes, CommitPath::Fast);
        } else if (!unchanged || leading.recovery) && replies.len() >= self.slow_quorum {
            self.start_accept(now, id);
        }
    }

    /// Slow path: accept the union of dependencies and the highest sequence number.
    fn start_accept(&mut self, now: Time, id: InstanceId) {
        let Some(leading) = self.leading.get_mut(&id) else {
            return;
        };
        let Phase::PreAccept { replies } = &leading.phase else {
            return;
        };
        let mut attributes = leading.original.clone();
        for reply in replies.values() {
            attributes.merge(reply);
        }
        if replies.values().any(|a| *a != leading.original) {
            self.metrics.incr("conflicts");
        }
        let ballot = leading.ballot;
        leading.phase = Phase::Accept {
            votes: VoteSet::new(self.slow_quorum),
        };
        leading.sent_at = now;
        let Some(payload) = self.instances.get(&id).map(|i| i.payload.clone()) else {
            return;
        };
        self.store(id, payload, attributes, Status::Accepted, ballot);
        self.send_accepts(id, true);
    }

    fn send_accepts(&mut self, id: InstanceId, first: bool) {
        let (Some(record), Some(leading)) = (self.record_of(id), self.leading.get(&id)) else {
            return;
        };
        let Phase::Accept { votes } = &leading.phase else {
            return;
        };
        let Record::Instance(record) = record else {
            return;
        };
        let message = Message::Accept {
            ballot: leading.ballot,
            instance: id,
            payload: record.payload.clone(),
            attributes: record.attributes.clone(),
        };
        let record = Record::Instance(record);
        let mut then: Vec<Effect<Message>> = self
            .others()
            .into_iter()
            .filter(|n| !votes.voters().contains(n))
            .map(|to| Effect::Send {
                to,
                message: message.clone(),
            })
            .collect();
        if first {
            then.push(Effect::Send {
                to: self.id,
                message: Message::AcceptOk {
                    ballot: leading.ballot,
                    instance: id,
                },
            });
            self.outbox.persist(vec![record], then);
        } else {
            self.outbox.persist(Vec::new(), then);
        }
    }

    fn on_accept_ok(&mut self, now: Time, from: NodeId, ballot: Ballot, id: InstanceId) {
        let Some(leading) = self.leading.get_mut(&id) else {
            return;
        };
        let Phase::Accept { votes } = &mut leading.phase else {
            return;
        };
        if leading.ballot != ballot || !votes.add(from) {
            return;
        }
        if !leading.recovery {
            self.metrics.incr("slow_path");
        }
        let Some(attributes) = self.instances.get(&id).map(|i| i.attributes.clone()) else {
            return;
        };
        self.commit_own(now, id, attributes, CommitPath::Slow);
    }

    /// Our instance is decided: persist the commit, then tell everyone; execute.
    fn commit_own(&mut self, now: Time, id: InstanceId, attributes: Attributes, path: CommitPath) {
        let Some(leading) = self.leading.remove(&id) else {
            return;
        };
        let Some(payload) = self.instances.get(&id).map(|i| i.payload.clone()) else {
            return;
        };
        let path = if leading.recovery {
            self.metrics.incr("recovered");
            CommitPath::Recovered
        } else {
            path
        };
        let announce = Announce::PeersAndHost(path);
        self.commit(now, id, payload, attributes, leading.ballot, announce);
    }

    /// Record a commit (ours or learned), announce it behind its record, and execute.
    /// Replies wait behind the commit record too (a reply reveals the decision).
    fn commit(
        &mut self,
        now: Time,
        id: InstanceId,
        payload: Batch,
        attributes: Attributes,
        ballot: Ballot,
        announce: Announce,
    ) {
        if self.is_committed(id) {
            return;
        }
        // Decided: whoever was still driving it here (a leader that learned the commit
        // from a peer, a recovery) stops.
        self.leading.remove(&id);
        self.recovering.remove(&id);
        self.store(
            id,
            payload.clone(),
            attributes.clone(),
            Status::Committed,
            ballot,
        );
        let Some(record) = self.record_of(id) else {
            return;
        };
        let mut then = Vec::new();
        if let Announce::PeersAndHost(path) = announce {
            then.extend(payload.commands().iter().filter(|p| !p.is_noop()).map(|p| {
                Effect::Committed {
                    request: p.request,
                    path,
                }
            }));
        }
        if !matches!(announce, Announce::Nobody) {
            let message = Message::Commit {
                instance: id,
                payload: payload.clone(),
                attributes: attributes.clone(),
            };
            then.extend(self.others().into_iter().map(|to| Effect::Send {
                to,
                message: message.clone(),
            }));
        }
        self.outbox.persist(vec![record], then);
        let executed = self.executor.commit(now, id, payload, attributes);
        self.answer(executed);
    }

    fn answer(&mut self, executed: Vec<Executed>) {
        let mut replies = Vec::new();
        for (id, payload, result) in executed {
            self.metrics.incr("executed");
            if id.leader != self.id || payload.is_noop() {
                continue;
            }
            if let Some(result) = result {
                replies.push(Effect::Reply(ClientReply {
                    id: payload.request,
                    outcome: Ok(Response::Kv(result)),
                }));
            }
        }
        if !replies.is_empty() {
            self.outbox.persist(Vec::new(), replies);
        }
    }

    // ----- timers ---------------------------------------------------------------------

    /// Keep one tick armed while instances are in flight or execution waits.
    fn arm_tick(&mut self, now: Time) {
        let work =
            !self.leading.is_empty() || !self.recovering.is_empty() || self.executor.has_blocked();
        match (work, self.next_tick) {
            (true, None) => self.next_tick = Some(now + self.config.tick),
            (false, Some(_)) => self.next_tick = None,
            _ => {}
        }
    }

    fn on_tick(&mut self, now: Time) {
        if self.next_gc.is_none_or(|t| now >= t) {
            self.next_gc = Some(now + self.config.gc_interval);
            self.report_executed();
        }
        for id in std::mem::take(&mut self.resume) {
            self.resume_own(now, id);
        }
        let late: Vec<InstanceId> = self
            .leading
            .iter()
            .filter(|(_, l)| now >= l.sent_at + self.config.retry_timeout)
            .map(|(&id, _)| id)
            .collect();
        for id in late {
            let Some(leading) = self.leading.get_mut(&id) else {
                continue;
            };
            leading.sent_at = now;
            self.metrics.incr("retransmissions");
            match &leading.phase {
                Phase::PreAccept { replies } if replies.len() >= self.slow_quorum => {
                    self.start_accept(now, id)
                }
                Phase::PreAccept { .. } => self.send_preaccepts(id, false),
                Phase::Accept { .. } => self.send_accepts(id, false),
            }
        }
        let deadline = now - self.config.retry_timeout;
        for dep in self.executor.stalled(deadline) {
            self.executor.touch(dep, now);
            let stalls = self.stalls.entry(dep).or_default();
            *stalls += 1;
            // Ask the leader first; recover after a few silent rounds (staggered by id so
            // replicas rarely duel for the same instance).
            let patience = 2 + u32::from(self.id.0 % 3);
            if *stalls > patience
                && !self.leading.contains_key(&dep)
                && !self.recovering.contains_key(&dep)
            {
                self.stalls.remove(&dep);
                self.start_recovery(now, dep);
            } else if dep.leader != self.id {
                self.metrics.incr("inquiries");
                self.outbox
                    .send(dep.leader, Message::Inquire { instance: dep });
            }
        }
        self.expire_recoveries(now);
    }

    /// Restart path: pick up an own instance where its durable state left it.
    fn resume_own(&mut self, now: Time, id: InstanceId) {
        let Some(instance) = self.instances.get(&id) else {
            return;
        };
        let ballot = instance.accepted_in;
        let attributes = instance.attributes.clone();
        match instance.status {
            Status::Committed => {}
            Status::PreAccepted => {
                let mut replies = BTreeMap::new();
                replies.insert(self.id, attributes.clone());
                self.leading.insert(
                    id,
                    Leading {
                        recovery: false,
                        ballot,
                        original: attributes,
                        phase: Phase::PreAccept { replies },
                        sent_at: now,
                    },
                );
                self.send_preaccepts(id, false);
            }
            Status::Accepted => {
                let mut votes = VoteSet::new(self.slow_quorum);
                votes.add(self.id);
                self.leading.insert(
                    id,
                    Leading {
                        recovery: false,
                        ballot,
                        original: attributes,
                        phase: Phase::Accept { votes },
                        sent_at: now,
                    },
                );
                self.send_accepts(id, false);
            }
        }
    }
}

impl Protocol for Epaxos {
    type Message = Message;
    type Record = Record;

    fn id(&self) -> NodeId {
        self.id
    }

    fn handle_request(&mut self, now: Time, request: ClientRequest) {
        self.now = now;
        let reply = |outcome| ClientReply {
            id: request.id,
            outcome,
        };
        match request.consistency {
            Consistency::Dynamo(level) => {
                self.outbox.reply(reply(Err(RequestError::Invalid(format!(
                "consistency level {level} applies to Dynamo keyspaces; this keyspace runs EPaxos \
                 (use linearizable or local reads)"
            )))))
            }
            Consistency::LocalRead if request.command.is_read() => {
                let value = self.executor.kv().read(request.command.key()).cloned();
                self.outbox
                    .reply(reply(Ok(Response::Kv(CommandResult::Value(value)))));
            }
            Consistency::LocalRead | Consistency::Linearizable => {
                let payload = Payload {
                    request: request.id,
                    command: request.command,
                };
                if !self.submit(now, payload) {
                    self.metrics.incr("requests_rejected");
                    self.outbox.reply(reply(Err(RequestError::Rejected(
                        "too many requests queued at this replica".to_owned(),
                    ))));
                }
            }
        }
        self.arm_tick(now);
    }

    fn handle_message(&mut self, now: Time, from: NodeId, message: Message) {
        self.now = now;
        if !self.members.contains(&from) {
            self.metrics.incr("dropped_messages");
            return;
        }
        let about = match &message {
            Message::PreAccept { instance, .. }
            | Message::Accept { instance, .. }
            | Message::Commit { instance, .. }
            | Message::Prepare { instance, .. }
            | Message::TryPreAccept { instance, .. } => Some(*instance),
            _ => None,
        };
        if about.is_some_and(|id| self.is_collected(id)) {
            self.metrics.incr("stale_messages");
            return;
        }
        match message {
            Message::PreAccept {
                ballot,
                instance,
                payload,
                attributes,
            } => self.on_preaccept(from, ballot, instance, payload, attributes),
            Message::PreAcceptOk {
                ballot,
                instance,
                attributes,
            } => self.on_preaccept_ok(now, from, ballot, instance, attributes),
            Message::Accept {
                ballot,
                instance,
                payload,
                attributes,
            } => self.on_accept(from, ballot, instance, payload, attributes),
            Message::AcceptOk { ballot, instance } => {
                self.on_accept_ok(now, from, ballot, instance)
            }
            Message::Nack { instance, promised } => self.on_nack(instance, promised),
            Message::Prepare { ballot, instance } => self.on_prepare(from, ballot, instance),
            Message::PrepareOk {
                ballot,
                instance,
                report,
            } => self.on_prepare_ok(now, from, ballot, instance, report),
            Message::TryPreAccept {
                ballot,
                instance,
                payload,
                attributes,
            } => self.on_try_preaccept(from, ballot, instance, payload, attributes),
            Message::TryPreAcceptReply {
                ballot,
                instance,
                conflict,
            } => self.on_try_preaccept_reply(now, from, ballot, instance, conflict),
            Message::Inquire { instance } => self.on_inquire(from, instance),
            Message::Executed { prefix } => self.on_executed_report(from, prefix),
            Message::Commit {
                instance,
                payload,
                attributes,
            } => {
                let ballot = self
                    .instances
                    .get(&instance)
                    .map_or(Ballot::default(), |i| i.promised);
                self.commit(now, instance, payload, attributes, ballot, Announce::Nobody);
            }
        }
        // A commit may have freed room for queued requests.
        self.propose_queued(now);
        self.arm_tick(now);
    }

    fn handle_timeout(&mut self, now: Time) {
        self.now = now;
        let due = self.next_tick.is_some_and(|t| now >= t);
        if due || !self.resume.is_empty() {
            self.next_tick = None;
            self.on_tick(now);
        }
        // A commit may have freed room for queued requests.
        self.propose_queued(now);
        self.arm_tick(now);
    }

    fn poll_output(&mut self) -> Option<Output<Message, Record>> {
        self.outbox.pop()
    }

    fn poll_timeout(&self) -> Option<Time> {
        if !self.resume.is_empty() {
            return Some(self.now);
        }
        self.next_tick
    }

    fn metrics(&self) -> Metrics {
        let mut metrics = self.metrics.clone();
        metrics.set("instances_live", self.instances.len() as u64);
        metrics.set("recoveries_in_progress", self.recovering.len() as u64);
        metrics.set("execution_waiting", self.executor.waiting() as u64);
        metrics.set("dependencies_missing", self.executor.missing() as u64);
        metrics
    }
}
