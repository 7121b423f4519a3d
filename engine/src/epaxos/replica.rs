//! What every role of a replica shares: who it is and its quorums, the options, the
//! instance table, the executor, the outbox and the counters; and the commit every role
//! ends in.
//!
//! A commit's record is durable before anything reveals the decision: the Commit to peers,
//! the host's commit notice and the client's reply all wait behind it
//! (docs/design.md#epaxos, rule 5).

use super::config::EpaxosConfig;
use super::epochs::Epochs;
use super::execution::{Executed, Executor};
use super::fence::Fence;
use super::instance::{Attributes, Ballot, Batch, InstanceId, Status};
use super::key_index::RanEverywhere;
use super::messages::{Message, Record};
use super::table::InstanceTable;
use crate::configuration::{ChangeFailure, ChangeOutcome, Configuration};
use crate::id::{NodeId, RequestId};
use crate::protocol::{CommitPath, Effect, Membership, Metrics, Outbox};
use crate::request::{ClientReply, RequestError, Response};
use crate::time::Time;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// Who hears of a commit decided or learned here, once its record is durable.
#[derive(Clone, Copy)]
pub(super) enum Announce {
    /// Learned from a peer.
    Nobody,
    /// Decided here by recovery: every peer.
    Peers,
    /// Decided here for our own client: every peer, and the host (commit latency).
    PeersAndHost(CommitPath),
}

/// An instance decided (by its leader or a recovery) or learned, to commit.
pub(super) struct Decision {
    pub(super) instance: InstanceId,
    pub(super) payload: Batch,
    pub(super) attributes: Attributes,
    pub(super) ballot: Ballot,
    pub(super) announce: Announce,
}

/// The state every role reads and writes (see the module doc).
#[derive(Clone)]
pub(super) struct Replica {
    pub(super) id: NodeId,
    /// Configurations by epoch: who votes on an instance, its quorum sizes, who hears
    /// commits.
    pub(super) epochs: Epochs,
    /// Other replicas nearest first (thrifty PreAccept targets).
    pub(super) peers_by_distance: Vec<NodeId>,
    pub(super) config: EpaxosConfig,
    pub(super) table: InstanceTable,
    pub(super) executor: Executor,
    /// What this replica may vote on and propose after a lost disk (`rejoin.rs`).
    pub(super) fence: Fence,
    /// Per leader, the slot below which every replica executed (from the GC reports);
    /// shared with the PreAccepts that carry it.
    pub(super) ran_everywhere: Arc<RanEverywhere>,
    pub(super) outbox: Outbox<Message, Record>,
    pub(super) metrics: Metrics,
    /// Membership changes proposed here whose switch has not executed here yet, and
    /// when they time out.
    pub(super) pending_changes: BTreeMap<RequestId, Time>,
    /// Ended membership changes proposed here, for the host.
    pub(super) change_outcomes: VecDeque<ChangeOutcome>,
}

impl Replica {
    /// A replica of `cluster` that knows nothing yet.
    pub(super) fn new(id: NodeId, cluster: &Membership, config: EpaxosConfig) -> Self {
        let mut executor = Executor::new(config.record_execution, config.key_session_window);
        let initial = config.initial_members.as_deref();
        executor.start_from(vec![Configuration::initial_of(cluster, initial)]);
        executor.halt_when_removed(id);
        let peers_by_distance = cluster
            .by_distance(id)
            .into_iter()
            .filter(|&p| p != id)
            .collect();
        Self {
            id,
            epochs: Epochs::from_history(id, executor.configurations()),
            peers_by_distance,
            table: InstanceTable::default(),
            executor,
            fence: Fence::default(),
            ran_everywhere: Arc::default(),
            config,
            outbox: Outbox::counting(),
            metrics: Metrics::new(),
            pending_changes: BTreeMap::new(),
            change_outcomes: VecDeque::new(),
        }
    }

    /// After execution: the epochs follow the switches that ran, and the changes proposed
    /// here among them end.
    pub(super) fn take_switches(&mut self) {
        let switched = self.executor.take_switched();
        if switched.is_empty() {
            return;
        }
        self.follow_configurations();
        for (request, result) in switched {
            self.metrics.incr("switches_executed");
            if self.pending_changes.remove(&request).is_some() {
                let result = result.map_err(|e| ChangeFailure::NotApplied(e.into()));
                self.change_outcomes
                    .push_back(ChangeOutcome { request, result });
            }
        }
    }

    /// Every member of a kept configuration but this replica.
    pub(super) fn others(&self) -> Vec<NodeId> {
        self.epochs
            .members()
            .iter()
            .copied()
            .filter(|&n| n != self.id)
            .collect()
    }

    /// The peers a rejoin (after a lost disk, or a spare fetching state) asks and
    /// announces its start to: the other members of the current configuration (the first
    /// one's, for a spare not added yet). A removed replica is not asked: its peers
    /// collected instances without waiting for it.
    pub(super) fn rejoin_peers(&self) -> Vec<NodeId> {
        let mut peers = self.epochs.current_members();
        peers.retain(|&p| p != self.id);
        peers
    }

    /// Whether this replica knows `id` committed.
    pub(super) fn is_committed(&self, id: InstanceId) -> bool {
        self.table.is_committed(id)
    }

    /// Whether this replica saw `id` committed: recorded committed, or already executed
    /// (and maybe collected from the table).
    pub(super) fn committed_or_executed(&self, id: InstanceId) -> bool {
        self.table.is_committed(id) || self.executor.is_executed(id)
    }

    /// Whether `id` was executed everywhere and forgotten: late messages about it are
    /// dropped instead of bringing it back. (The executed set first: most messages are
    /// about instances not executed yet, and it is smaller than the instance table, whose
    /// lookup was 4% of a simulated `gcp-13` run.)
    pub(super) fn is_collected(&self, id: InstanceId) -> bool {
        self.executor.is_executed(id) && self.table.get(id).is_none()
    }

    /// `message` to every peer.
    pub(super) fn sends_to_others(&self, message: &Message) -> Vec<Effect<Message>> {
        self.others()
            .into_iter()
            .map(|to| Effect::Send {
                to,
                message: message.clone(),
            })
            .collect()
    }

    /// A commit learned from a peer, recorded at the ballot promised here and announced to
    /// nobody.
    pub(super) fn learned(
        &self,
        instance: InstanceId,
        payload: Batch,
        attributes: Attributes,
    ) -> Decision {
        let ballot = self
            .table
            .get(instance)
            .map_or(Ballot::default(), |i| i.promised);
        Decision {
            instance,
            payload,
            attributes,
            ballot,
            announce: Announce::Nobody,
        }
    }

    /// Changes proposed here whose switch has not executed by their deadline end as
    /// `Timeout` (unknown: the switch may still run).
    pub(super) fn expire_changes(&mut self, now: Time) {
        let expired: Vec<RequestId> = self
            .pending_changes
            .iter()
            .filter(|(_, &deadline)| deadline <= now)
            .map(|(&request, _)| request)
            .collect();
        for request in expired {
            self.pending_changes.remove(&request);
            self.change_outcomes.push_back(ChangeOutcome {
                request,
                result: Err(ChangeFailure::Timeout),
            });
        }
    }

    /// The epochs as the executor's configurations say (after a switch, a snapshot or a
    /// state transfer).
    pub(super) fn follow_configurations(&mut self) {
        self.epochs = Epochs::from_history(self.id, self.executor.configurations());
    }

    /// Record a commit (ours or learned), announce it behind its record, and execute.
    /// Replies wait behind the commit record too (a reply reveals the decision). The
    /// caller checked the instance is not committed yet and stopped driving it.
    pub(super) fn commit(&mut self, now: Time, decision: Decision) {
        let Decision {
            instance: id,
            payload,
            attributes,
            ballot,
            announce,
        } = decision;
        self.table.store(
            id,
            payload.clone(),
            attributes.clone(),
            Status::Committed,
            ballot,
        );
        let Some(record) = self.table.record_of(id) else {
            return;
        };
        let mut then = Vec::new();
        if let Announce::PeersAndHost(path) = announce {
            // Observability only, and at the decision: the instance is chosen once a
            // quorum's votes are durable, as Multi-Paxos reports it; replies still wait
            // for this record and execution.
            for request in payload.commands().iter().filter(|p| !p.is_noop()) {
                self.outbox.now(Effect::Committed {
                    request: request.request,
                    path,
                });
            }
        }
        if !matches!(announce, Announce::Nobody) {
            let message = Message::Commit {
                instance: id,
                payload: payload.clone(),
                attributes: attributes.clone(),
            };
            then.extend(self.sends_to_others(&message));
        }
        self.outbox.persist(vec![record], then);
        if !self.fence.executes() {
            // A lost disk: the commit waits in the table for a peer's state (`rejoin.rs`).
            return;
        }
        let executed = self.executor.commit(now, id, payload, attributes);
        let visits = self.executor.take_visits();
        self.metrics.add("execution_visits", visits);
        self.take_switches();
        self.answer(executed);
    }

    /// Answer the clients of own instances that just executed.
    fn answer(&mut self, executed: Vec<Executed>) {
        let mut replies = Vec::new();
        for executed in executed {
            self.metrics.incr("executed");
            if executed.instance.leader != self.id || !executed.answers_client {
                continue;
            }
            let request = executed.request;
            let outcome = match executed.result {
                Some(result) => Ok(Response::Kv(result)),
                None => Err(RequestError::SessionExpired { request }),
            };
            replies.push(Effect::Reply(ClientReply {
                id: request,
                outcome,
            }));
        }
        if !replies.is_empty() {
            self.outbox.persist(Vec::new(), replies);
        }
    }

    /// The counters, and gauges of what the table and the executor hold.
    pub(super) fn counters_and_gauges(&self) -> Metrics {
        let mut metrics = self.metrics.clone();
        metrics.set("instances_live", self.table.instances.len() as u64);
        metrics.set("key_index_entries", self.table.index.len() as u64);
        metrics.set("session_entries", self.executor.session_keys() as u64);
        metrics.set("execution_waiting", self.executor.waiting() as u64);
        metrics.set("dependencies_missing", self.executor.missing() as u64);
        metrics
    }

    /// Hash what can influence this replica's next moves (the model checker's state
    /// fingerprint). Every field is named, so a new one does not compile until its place
    /// here is decided.
    #[cfg(test)]
    pub(super) fn hash_state(&self, state: &mut impl std::hash::Hasher) {
        use std::hash::Hash;
        let Self {
            // Fixed at construction: the same in every state of a given replica.
            id: _,
            epochs,
            peers_by_distance: _,
            config: _,
            table,
            executor,
            fence,
            ran_everywhere,
            // Empty between moves: the host drains it after every input.
            outbox,
            // Counters only: nothing reads them back.
            metrics: _,
            pending_changes,
            change_outcomes,
        } = self;
        (pending_changes, change_outcomes).hash(state);
        debug_assert!(outbox.is_empty(), "fingerprint of an undrained core");
        epochs.hash(state);
        table.hash(state);
        executor.hash(state);
        fence.hash(state);
        ran_everywhere.hash(state);
    }
}
