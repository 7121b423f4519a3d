//! Multi-Paxos: the leader-based baseline.
//!
//! ```text
//!  client ─▶ any replica ──Forward──▶ leader ──Accept──▶ acceptors (persist, then Accepted)
//!                ▲                      │ q2 Accepted (own vote counts once durable)
//!                └──── Commit ◀─────────┘ commit; every replica executes slots in order;
//!                                          the replica that took the request replies
//! ```
//! A leader runs phase 1 (Prepare/Promise) once per ballot and phase 2 per slot, with
//! pipelining and optional batching. Followers watch heartbeats; after a randomized
//! silence they stand with a higher ballot. A new leader adopts, per slot, the value with
//! the highest accepted ballot among a phase-1 quorum and fills gaps with no-ops. Reads go
//! through the log (linearizable) unless the client asks for a local read. Lagging
//! replicas learn the leader's commit point from heartbeats and fetch committed slots.
//!
//! Requests in flight at a leader change may be lost: their clients time out (unknown
//! outcome) and retry under a new request id, so no command is ever proposed twice.

mod acceptor;
mod config;
mod election;
mod leader;
mod log;
mod messages;
#[cfg(test)]
mod tests;

pub use config::MultiPaxosConfig;
pub use log::AppliedEntry;
pub use messages::{AcceptedEntry, Ballot, Batch, Message, Proposal, Record, Slot};

use crate::client::{ClientReply, ClientRequest, Consistency, RequestError, Response};
use crate::command::CommandResult;
use crate::id::NodeId;
use crate::protocol::{ClusterConfig, Metrics, Outbox, Output, Protocol};
use crate::quorum::PaxosQuorums;
use crate::time::Time;
use election::Candidacy;
use leader::Leadership;
use log::ReplicaLog;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;
use std::time::Duration;

/// Proposals a non-leader holds while no leader is known.
const MAX_WAITING: usize = 10_000;
/// Forwarding hops before a proposal is dropped (elections can bounce it around).
const MAX_HOPS: u8 = 3;

enum Role {
    Follower,
    Candidate(Candidacy),
    Leader(Leadership),
}

/// One Multi-Paxos replica (proposer, acceptor and learner).
pub struct MultiPaxos {
    id: NodeId,
    members: Vec<NodeId>,
    config: MultiPaxosConfig,
    quorums: PaxosQuorums,
    rng: ChaCha8Rng,
    /// Highest ballot promised (made durable before any reply that depends on it).
    promised: Ballot,
    log: ReplicaLog,
    role: Role,
    /// Who this replica believes leads.
    leader_hint: Option<NodeId>,
    /// Proposals held until a leader is known.
    waiting: VecDeque<Proposal>,
    election_deadline: Time,
    heartbeat_due: Time,
    last_catch_up_request: Option<Time>,
    /// False until the first input tells the core what time it is.
    started: bool,
    /// Built with no durable records (first boot).
    fresh: bool,
    outbox: Outbox<Message, Record>,
    metrics: Metrics,
}

impl MultiPaxos {
    /// A replica of `cluster`, rebuilt from its durable `recovered` records (empty on
    /// first boot). `seed` drives election jitter only.
    pub fn new(
        id: NodeId,
        cluster: &ClusterConfig,
        config: MultiPaxosConfig,
        seed: u64,
        recovered: Vec<Record>,
    ) -> Self {
        let members: Vec<NodeId> = cluster.ids().collect();
        let quorums = config
            .quorums
            .unwrap_or_else(|| PaxosQuorums::majority(members.len()));
        let fresh = recovered.is_empty();
        let mut log = ReplicaLog::default();
        let mut promised = Ballot::default();
        for record in recovered {
            match record {
                Record::Promised(ballot) => promised = promised.max(ballot),
                Record::Accepted {
                    slot,
                    ballot,
                    value,
                } => {
                    promised = promised.max(ballot);
                    log.accept(slot, ballot, value);
                }
            }
        }
        Self {
            id,
            members,
            config,
            quorums,
            rng: ChaCha8Rng::seed_from_u64(seed),
            promised,
            log,
            role: Role::Follower,
            leader_hint: None,
            waiting: VecDeque::new(),
            election_deadline: Time::ZERO,
            heartbeat_due: Time::ZERO,
            last_catch_up_request: None,
            started: false,
            fresh,
            outbox: Outbox::new(),
            metrics: Metrics::new(),
        }
    }

    /// Who this replica believes leads.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader_hint
    }

    /// Whether this replica currently leads.
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    /// The highest ballot promised.
    pub fn promised(&self) -> Ballot {
        self.promised
    }

    /// Every command applied, in execution order.
    pub fn applied(&self) -> &[AppliedEntry] {
        self.log.applied()
    }

    /// First slot not yet executed.
    pub fn executed_up_to(&self) -> Slot {
        self.log.next_execute()
    }

    /// The replicated map as applied here.
    pub fn kv(&self) -> &crate::state_machine::KvStore {
        self.log.kv()
    }

    fn peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.iter().copied().filter(move |&n| n != self.id)
    }

    fn broadcast(&mut self, message: Message) {
        let peers: Vec<NodeId> = self.peers().collect();
        for peer in peers {
            self.outbox.send(peer, message.clone());
        }
    }

    fn election_timeout(&mut self) -> Duration {
        let base = self.config.election_timeout;
        let extra_us = self.rng.gen_range(0..=base.as_micros().max(1) as u64);
        base + Duration::from_micros(extra_us)
    }

    fn reset_election_deadline(&mut self, now: Time) {
        self.election_deadline = now + self.election_timeout();
    }

    fn start(&mut self, now: Time) {
        if self.started {
            return;
        }
        self.started = true;
        self.reset_election_deadline(now);
        if self.fresh && self.id == self.config.initial_leader {
            self.start_election(now);
        }
    }

    /// Accept a proposal from a client of this replica or a forwarder.
    fn submit(&mut self, now: Time, proposal: Proposal, hops: u8) {
        match &mut self.role {
            Role::Leader(leadership) => {
                leadership.queue.push_back(proposal);
                self.propose(now);
            }
            _ => match self.leader_hint.filter(|&l| l != self.id) {
                Some(leader) if hops < MAX_HOPS => {
                    self.metrics.incr("forwarded");
                    self.outbox.send(
                        leader,
                        Message::Forward {
                            proposal,
                            hops: hops + 1,
                        },
                    );
                }
                _ if self.waiting.len() < MAX_WAITING => self.waiting.push_back(proposal),
                _ => self.metrics.incr("requests_dropped"),
            },
        }
    }

    /// Hand held proposals to the leader now known (or to ourselves if we lead).
    fn release_waiting(&mut self, now: Time) {
        let waiting: Vec<Proposal> = self.waiting.drain(..).collect();
        for proposal in waiting {
            self.submit(now, proposal, 0);
        }
    }

    /// Execute newly committed slots; answer the clients this replica took requests from.
    fn execute(&mut self) {
        for (_, proposal, result) in self.log.execute() {
            self.metrics.incr("executed");
            if proposal.origin == self.id {
                self.outbox.reply(ClientReply {
                    id: proposal.request,
                    outcome: Ok(Response::Kv(result)),
                });
            }
        }
    }

    fn on_commit(&mut self, slot: Slot, value: Batch) {
        self.log.commit(slot, value);
        self.execute();
    }

    fn on_heartbeat(&mut self, now: Time, from: NodeId, ballot: Ballot, commit_point: Slot) {
        if ballot < self.promised {
            self.outbox.send(
                from,
                Message::Nack {
                    promised: self.promised,
                },
            );
            return;
        }
        self.follow(now, ballot);
        let behind = self.log.next_execute() < commit_point;
        let asked_recently = self
            .last_catch_up_request
            .is_some_and(|t| now < t + self.config.heartbeat_interval * 2);
        if behind && !asked_recently {
            self.last_catch_up_request = Some(now);
            self.outbox.send(
                from,
                Message::CatchUpRequest {
                    from_slot: self.log.next_execute(),
                },
            );
        }
    }

    fn on_catch_up_request(&mut self, from: NodeId, from_slot: Slot) {
        let to = self.log.commit_point();
        let entries = self
            .log
            .committed_range(from_slot, to, self.config.catch_up_batch);
        if !entries.is_empty() {
            self.metrics
                .add("catch_up_entries_sent", entries.len() as u64);
            self.outbox.send(from, Message::CatchUp { entries });
        }
    }

    fn on_catch_up(&mut self, entries: Vec<(Slot, Batch)>) {
        for (slot, value) in entries {
            self.log.commit(slot, value);
        }
        self.execute();
    }
}

impl Protocol for MultiPaxos {
    type Message = Message;
    type Record = Record;

    fn id(&self) -> NodeId {
        self.id
    }

    fn handle_request(&mut self, now: Time, request: ClientRequest) {
        self.start(now);
        let reply = |outcome| ClientReply {
            id: request.id,
            outcome,
        };
        match request.consistency {
            Consistency::Dynamo(level) => {
                self.outbox.reply(reply(Err(RequestError::Invalid(format!(
                    "consistency level {level} applies to Dynamo keyspaces; this keyspace runs \
                     Multi-Paxos (use linearizable or local reads)"
                )))));
            }
            Consistency::LocalRead if request.command.is_read() => {
                let value = self.log.kv().read(request.command.key()).cloned();
                self.outbox
                    .reply(reply(Ok(Response::Kv(CommandResult::Value(value)))));
            }
            Consistency::LocalRead | Consistency::Linearizable => {
                let proposal = Proposal {
                    request: request.id,
                    origin: self.id,
                    command: request.command,
                };
                self.submit(now, proposal, 0);
            }
        }
    }

    fn handle_message(&mut self, now: Time, from: NodeId, message: Message) {
        self.start(now);
        if !self.members.contains(&from) {
            self.metrics.incr("dropped_messages");
            return;
        }
        match message {
            Message::Prepare { ballot, from_slot } => self.on_prepare(now, from, ballot, from_slot),
            Message::Promise { ballot, accepted } => self.on_promise(now, from, ballot, accepted),
            Message::OwnPromiseDurable { ballot } if from == self.id => {
                let accepted = match &self.role {
                    Role::Candidate(c) => self.log.accepted_from(c.from_slot),
                    _ => Vec::new(),
                };
                self.on_promise(now, from, ballot, accepted);
            }
            Message::OwnPromiseDurable { .. } => self.metrics.incr("dropped_messages"),
            Message::Accept {
                ballot,
                slot,
                value,
            } => self.on_accept(now, from, ballot, slot, value),
            Message::Accepted { ballot, slot } => self.on_accepted(now, from, ballot, slot),
            Message::Nack { promised } => self.observe_higher_ballot(now, promised),
            Message::Commit { slot, value } => self.on_commit(slot, value),
            Message::Heartbeat {
                ballot,
                commit_point,
            } => self.on_heartbeat(now, from, ballot, commit_point),
            Message::CatchUpRequest { from_slot } => self.on_catch_up_request(from, from_slot),
            Message::CatchUp { entries } => self.on_catch_up(entries),
            Message::Forward { proposal, hops } => self.submit(now, proposal, hops),
        }
    }

    fn handle_timeout(&mut self, now: Time) {
        if !self.started {
            self.start(now);
            return;
        }
        match &self.role {
            Role::Leader(_) => {
                if now >= self.heartbeat_due {
                    self.send_heartbeats(now);
                }
            }
            Role::Follower | Role::Candidate(_) => {
                if now >= self.election_deadline {
                    self.start_election(now);
                }
            }
        }
    }

    fn poll_output(&mut self) -> Option<Output<Message, Record>> {
        self.outbox.pop()
    }

    fn poll_timeout(&self) -> Option<Time> {
        if !self.started {
            return Some(Time::ZERO);
        }
        Some(match self.role {
            Role::Leader(_) => self.heartbeat_due,
            _ => self.election_deadline,
        })
    }

    fn metrics(&self) -> Metrics {
        let mut metrics = self.metrics.clone();
        metrics.set("executed_up_to", self.log.next_execute());
        metrics
    }
}
