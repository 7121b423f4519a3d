//! The coordinator side: turning a client request into replica traffic and a reply.
//!
//! ```text
//!  write at an owner:   issue a dot on the local object, persist it, THEN send the whole
//!                       object to the other owners (and to fallbacks standing in for
//!                       owners the failure detector suspects, if sloppy); reply once the
//!                       durable acknowledgements meet the level
//!  write elsewhere:     forward to the nearest live owner, which coordinates; with no live
//!                       owner, issue the dot under a one-shot actor (see `dvv`)
//!  read anywhere:       ask every owner (and fallbacks for suspected owners, if sloppy),
//!                       merge answers; once the level (and, for SESSION, the client's
//!                       causal context) is met, repair stale answerers and wait for their
//!                       acks (blocking read repair), then reply; late answers are repaired
//!                       in the background
//! ```
//! Every request has a deadline (`request_timeout`); a request whose level is unmet then
//! fails with `Unavailable` and the counts. Levels are checked against the failure
//! detector first: a level that the live owners (plus fallbacks, when sloppy) cannot
//! meet fails at once and nothing is written.
//!
//! # SESSION contract
//! The client library keeps the `context` of every response it receives for a key
//! (joining them) and sends it with each request. A SESSION read returns only a version
//! whose context covers the client's: it waits for more owners, asks again every
//! `session_retry`, and fails with `Unavailable` at the deadline if none has caught up.
//! SESSION writes wait for one durable acknowledgement, like ONE. Together this gives
//! read-your-writes and monotonic reads per client, as long as the client keeps its
//! context.

use crate::client::{
    ClientReply, ClientRequest, Consistency, Level, ReadRepair, Receipt, ReceiptReplica,
    RequestError, Response, VersionedResponse,
};
use crate::command::{Command, Key, Value};
use crate::dynamo::dvv::{Actor, Dot, Object, Sibling, VersionVector};
use crate::dynamo::hash::mix2;
use crate::dynamo::level::{Op, Requirement};
use crate::dynamo::messages::{Message, OpId, Record};
use crate::dynamo::read_repair::stale_answers;
use crate::dynamo::Dynamo;
use crate::id::{NodeId, RequestId};
use crate::protocol::Effect;
use crate::time::Time;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Where the reply of a coordinated request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReplyTo {
    Client,
    Forwarder { node: NodeId, op: OpId },
}

/// A replica a request was sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// The owner it counts for.
    pub(crate) owner: NodeId,
    /// Whether it stands in for `owner` (sloppy quorum).
    pub(crate) fallback: bool,
}

pub(crate) struct WriteOp {
    request: RequestId,
    reply_to: ReplyTo,
    key: Key,
    requirement: Requirement,
    sloppy: bool,
    object: Object,
    targets: BTreeMap<NodeId, Target>,
    acked: Vec<NodeId>,
    refused: Vec<(NodeId, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum ReadState {
    Collecting,
    Repairing {
        reply: Object,
        counted: Vec<NodeId>,
        waiting: BTreeSet<NodeId>,
    },
    Replied,
}

pub(crate) struct ReadOp {
    request: RequestId,
    reply_to: ReplyTo,
    key: Key,
    requirement: Requirement,
    sloppy: bool,
    session: Option<VersionVector>,
    targets: BTreeMap<NodeId, Target>,
    answers: BTreeMap<NodeId, Option<Object>>,
    order: Vec<NodeId>,
    merged: Object,
    state: ReadState,
    deadline: Time,
    linger_until: Time,
    retry_at: Option<Time>,
    /// Digest of the object each replica was last repaired with.
    repaired: BTreeMap<NodeId, u64>,
}

pub(crate) struct ForwardOp {
    request: RequestId,
    to: NodeId,
    needed: u32,
}

pub(crate) enum Pending {
    Write(WriteOp),
    Read(ReadOp),
    Forward(ForwardOp),
}

/// Requests this node coordinates, with their timers.
#[derive(Default)]
pub(crate) struct Coordinator {
    pub(crate) ops: BTreeMap<OpId, (Time, Pending)>,
    pub(crate) timers: BTreeSet<(Time, OpId)>,
    next_seq: u64,
}

impl Coordinator {
    fn next_op(&mut self, boot: u32) -> OpId {
        self.next_seq += 1;
        OpId {
            boot,
            seq: self.next_seq,
        }
    }

    fn insert(&mut self, op: OpId, wake: Time, pending: Pending) {
        self.timers.insert((wake, op));
        self.ops.insert(op, (wake, pending));
    }

    fn remove(&mut self, op: OpId) -> Option<Pending> {
        let (wake, pending) = self.ops.remove(&op)?;
        self.timers.remove(&(wake, op));
        Some(pending)
    }

    fn reschedule(&mut self, op: OpId, wake: Time) {
        if let Some((old, _)) = self.ops.get_mut(&op) {
            self.timers.remove(&(*old, op));
            *old = wake;
            self.timers.insert((wake, op));
        }
    }

    /// Requests in flight.
    pub(crate) fn len(&self) -> usize {
        self.ops.len()
    }

    /// The earliest timer.
    pub(crate) fn next_timer(&self) -> Option<Time> {
        self.timers.first().map(|(t, _)| *t)
    }
}

fn versioned(object: &Object, receipt: Receipt) -> Response {
    Response::Versioned(VersionedResponse {
        siblings: object.values(),
        context: object.context().encode(),
        receipt,
    })
}

impl Dynamo {
    /// Entry point for client requests (and forwarded ones).
    pub(crate) fn coordinate(
        &mut self,
        now: Time,
        request: ClientRequest,
        reply_to: ReplyTo,
        region: &str,
        deadline: Time,
    ) {
        let level = match request.consistency {
            Consistency::Dynamo(level) => level,
            other => {
                let name = match other {
                    Consistency::LocalRead => "local reads",
                    _ => "linearizable consistency",
                };
                return self.respond(
                    request.id,
                    reply_to,
                    Err(RequestError::Invalid(format!(
                        "{name} need a consensus keyspace; this keyspace runs Dynamo mode: ask \
                         for a Dynamo level (ONE, TWO, THREE, QUORUM, ALL, LOCAL_ONE, \
                         LOCAL_QUORUM, EACH_QUORUM, SESSION or R=<r>,W=<w>)"
                    ))),
                );
            }
        };
        let (op, value) = match &request.command {
            Command::Get { .. } => (Op::Read, None),
            Command::Put { value, .. } => (Op::Write, Some(value.clone())),
            Command::Delete { .. } => (Op::Write, None),
            Command::Cas { .. } => {
                return self.respond(
                    request.id,
                    reply_to,
                    Err(RequestError::Invalid(
                        "compare-and-set needs consensus and Dynamo keyspaces have none: read, \
                         then write with the read's context (concurrent writers become \
                         siblings), or use an EPaxos/Multi-Paxos keyspace"
                            .to_owned(),
                    )),
                );
            }
        };
        let context = match VersionVector::decode(&request.context) {
            Ok(context) => context,
            Err(e) => {
                return self.respond(
                    request.id,
                    reply_to,
                    Err(RequestError::Invalid(format!("bad causal context: {e}"))),
                )
            }
        };
        if self.coordinator.len() >= self.config.max_pending_requests {
            self.metrics.incr("requests_rejected");
            return self.respond(
                request.id,
                reply_to,
                Err(RequestError::Rejected(format!(
                    "{} requests in flight at {} (limit {})",
                    self.coordinator.len(),
                    self.id,
                    self.config.max_pending_requests
                ))),
            );
        }
        let key = request.command.key().clone();
        let range = self.ring.range_of(&key);
        let preference = self.ring.preference(range).to_vec();
        let requirement = match Requirement::new(
            level,
            op,
            &preference,
            |n| self.ring.region_of(n).to_owned(),
            region,
        ) {
            Ok(r) => r,
            Err(e) => return self.fail(request.id, reply_to, e),
        };
        let sloppy = request.sloppy.unwrap_or(self.config.sloppy);
        match op {
            Op::Read => {
                self.metrics.incr("requests_read");
                let session = (level == Level::Session && !context.is_empty()).then_some(context);
                self.start_read(
                    now,
                    request.id,
                    reply_to,
                    key,
                    requirement,
                    sloppy,
                    session,
                    deadline,
                );
            }
            Op::Write => {
                self.metrics.incr("requests_write");
                let is_owner = preference.contains(&self.id);
                let forwardable = reply_to == ReplyTo::Client && !is_owner;
                if forwardable {
                    let nearest = self
                        .cluster
                        .by_distance(self.id)
                        .into_iter()
                        .find(|n| preference.contains(n) && self.detector.is_alive(*n, now));
                    if let Some(owner) = nearest {
                        let (_, needed) = requirement.progress(&BTreeSet::new());
                        return self.forward(now, request, owner, region, needed, deadline);
                    }
                }
                self.start_write(
                    now,
                    request.id,
                    reply_to,
                    key,
                    value,
                    context,
                    requirement,
                    sloppy,
                    deadline,
                );
            }
        }
    }

    fn forward(
        &mut self,
        now: Time,
        request: ClientRequest,
        owner: NodeId,
        region: &str,
        needed: u32,
        deadline: Time,
    ) {
        self.metrics.incr("forwarded");
        let op = self.coordinator.next_op(self.boot);
        let rtt = self.cluster.rtt_us(self.id, owner).unwrap_or(0);
        let budget_us = deadline
            .saturating_since(now)
            .as_micros()
            .saturating_sub(u128::from(rtt)) as u64;
        let id = request.id;
        self.outbox.send(
            owner,
            Message::Forward {
                op,
                request,
                region: region.to_owned(),
                budget_us,
            },
        );
        self.coordinator.insert(
            op,
            deadline,
            Pending::Forward(ForwardOp {
                request: id,
                to: owner,
                needed,
            }),
        );
    }

    pub(crate) fn on_forward(
        &mut self,
        now: Time,
        from: NodeId,
        op: OpId,
        request: ClientRequest,
        region: String,
        budget_us: u64,
    ) {
        let budget = Duration::from_micros(budget_us).min(self.config.request_timeout);
        self.coordinate(
            now,
            request,
            ReplyTo::Forwarder { node: from, op },
            &region,
            now + budget,
        );
    }

    pub(crate) fn on_forward_reply(&mut self, from: NodeId, op: OpId, reply: ClientReply) {
        match self.coordinator.ops.get(&op) {
            Some((_, Pending::Forward(f))) if f.to == from && f.request == reply.id => {}
            _ => return self.metrics.incr("late_replies"),
        }
        self.coordinator.remove(op);
        self.outbox.reply(reply);
    }

    /// Who a request goes to: every owner, plus (if sloppy) a live fallback for each
    /// owner the failure detector suspects.
    fn plan_targets(&self, now: Time, key: &Key, sloppy: bool) -> BTreeMap<NodeId, Target> {
        let range = self.ring.range_of(key);
        let preference = self.ring.preference(range);
        let mut targets: BTreeMap<NodeId, Target> = preference
            .iter()
            .map(|&owner| {
                (
                    owner,
                    Target {
                        owner,
                        fallback: false,
                    },
                )
            })
            .collect();
        if sloppy {
            let mut taken: BTreeSet<NodeId> = preference.iter().copied().collect();
            for &owner in preference {
                if self.detector.is_alive(owner, now) {
                    continue;
                }
                let usable = |n: NodeId| self.detector.is_alive(n, now);
                if let Some(fallback) = self.ring.fallback_for(range, owner, &taken, usable) {
                    taken.insert(fallback);
                    targets.insert(
                        fallback,
                        Target {
                            owner,
                            fallback: true,
                        },
                    );
                }
            }
        }
        targets
    }

    /// Fail fast when the live targets cannot meet the level; nothing has been sent.
    fn check_reachable(
        &self,
        now: Time,
        requirement: &Requirement,
        targets: &BTreeMap<NodeId, Target>,
        sloppy: bool,
    ) -> Result<(), RequestError> {
        let reachable: BTreeSet<NodeId> = targets
            .iter()
            .filter(|(node, t)| self.detector.is_alive(**node, now) && (!t.fallback || sloppy))
            .map(|(_, t)| t.owner)
            .collect();
        if requirement.is_reachable(&reachable) {
            return Ok(());
        }
        let down: Vec<String> = targets
            .iter()
            .filter(|(node, t)| !t.fallback && !self.detector.is_alive(**node, now))
            .map(|(n, _)| n.to_string())
            .collect();
        let (_, needed) = requirement.progress(&BTreeSet::new());
        let sloppy_note = if sloppy {
            "no live fallback could stand in for them"
        } else {
            "sloppy quorum is off"
        };
        Err(RequestError::Unavailable {
            replied: 0,
            needed,
            detail: format!(
                "{}; owners down per the failure detector: {}; {sloppy_note}; nothing was sent",
                requirement.shortfall(&reachable),
                down.join(" ")
            ),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn start_write(
        &mut self,
        now: Time,
        request: RequestId,
        reply_to: ReplyTo,
        key: Key,
        value: Option<Value>,
        context: VersionVector,
        requirement: Requirement,
        sloppy: bool,
        deadline: Time,
    ) {
        let targets = self.plan_targets(now, &key, sloppy);
        if let Err(e) = self.check_reachable(now, &requirement, &targets, sloppy) {
            return self.fail(request, reply_to, e);
        }
        let range = self.ring.range_of(&key);
        let owner = self.ring.is_primary(self.id, range);
        let sibling = Sibling {
            value,
            timestamp_us: now.as_micros(),
        };
        // An owner issues the dot from its local object; anyone else uses a one-shot
        // actor that has no earlier dots (see the prefix property in `dvv`).
        let (base, actor) = if owner {
            let base = self
                .store
                .get(&key)
                .map(|e| e.object.clone())
                .unwrap_or_default();
            (
                base,
                Actor {
                    node: self.id,
                    epoch: self.epoch,
                },
            )
        } else {
            (
                Object::new(),
                Actor {
                    node: self.id,
                    epoch: mix2(self.epoch, self.next_counter),
                },
            )
        };
        let counter = if owner { self.next_counter } else { 1 };
        let dot = Dot { actor, counter };
        let mut object = base.update(&context, dot, sibling);
        if self.config.lww {
            let discarded = object.keep_last_writer();
            self.metrics.add("lww_discarded", discarded as u64);
        }
        let siblings = object.sibling_count();
        if siblings > self.config.sibling_hard_limit {
            self.metrics.incr("sibling_rejections");
            return self.fail(
                request,
                reply_to,
                RequestError::Rejected(format!(
                    "this write would leave {siblings} siblings on the key (hard limit {}); \
                     read the key and write with the read's context to resolve them",
                    self.config.sibling_hard_limit
                )),
            );
        }
        if siblings > self.config.sibling_soft_limit {
            self.metrics.incr("sibling_warnings");
        }
        self.next_counter += 1;
        let op = self.coordinator.next_op(self.boot);
        let mut sends = Vec::new();
        for (&node, target) in &targets {
            if node == self.id && !target.fallback {
                continue;
            }
            sends.push(Effect::Send {
                to: node,
                message: Message::Store {
                    op,
                    key: key.clone(),
                    object: object.clone(),
                    hint_for: target.fallback.then_some(target.owner),
                },
            });
        }
        if owner {
            self.install(now, key.clone(), object.clone(), range);
            let mut then = vec![Effect::Send {
                to: self.id,
                message: Message::Stored {
                    op,
                    key: key.clone(),
                    hint_for: None,
                },
            }];
            then.extend(sends);
            self.persist(
                vec![Record::Object {
                    key: key.clone(),
                    object: object.clone(),
                }],
                then,
            );
        } else {
            // The one-shot epoch derives from the counter: make the counter durable
            // before the dot leaves, so a restart never derives the same epoch again.
            self.persist(
                vec![Record::Counter {
                    next: self.next_counter,
                }],
                sends,
            );
        }
        self.coordinator.insert(
            op,
            deadline,
            Pending::Write(WriteOp {
                request,
                reply_to,
                key,
                requirement,
                sloppy,
                object,
                targets,
                acked: Vec::new(),
                refused: Vec::new(),
            }),
        );
    }

    pub(crate) fn on_stored(&mut self, from: NodeId, op: OpId, key: Key, hint_for: Option<NodeId>) {
        let Some((_, Pending::Write(write))) = self.coordinator.ops.get_mut(&op) else {
            return self.metrics.incr("late_replies");
        };
        let Some(target) = write.targets.get(&from).copied() else {
            return self.metrics.incr("dropped_messages");
        };
        let expected = target.fallback.then_some(target.owner);
        if write.key != key || hint_for != expected || write.acked.contains(&from) {
            return self.metrics.incr("dropped_messages");
        }
        write.acked.push(from);
        let counted = counted_owners(&write.targets, &write.acked, write.sloppy);
        if write.requirement.is_met(&counted) {
            let Some(Pending::Write(write)) = self.coordinator.remove(op) else {
                return;
            };
            let receipt = self.receipt(
                &write.requirement,
                &write.targets,
                &write.acked,
                ReadRepair::NotNeeded,
            );
            let response = versioned(&write.object, receipt);
            self.respond(write.request, write.reply_to, Ok(response));
        }
    }

    pub(crate) fn on_refused(&mut self, from: NodeId, op: OpId, reason: String) {
        if let Some((_, Pending::Write(write))) = self.coordinator.ops.get_mut(&op) {
            if write.targets.get(&from).is_some_and(|t| t.fallback) {
                write.refused.push((from, reason));
                return;
            }
        }
        self.metrics.incr("late_replies");
    }

    #[allow(clippy::too_many_arguments)]
    fn start_read(
        &mut self,
        now: Time,
        request: RequestId,
        reply_to: ReplyTo,
        key: Key,
        requirement: Requirement,
        sloppy: bool,
        session: Option<VersionVector>,
        deadline: Time,
    ) {
        let targets = self.plan_targets(now, &key, sloppy);
        if let Err(e) = self.check_reachable(now, &requirement, &targets, sloppy) {
            return self.fail(request, reply_to, e);
        }
        let op = self.coordinator.next_op(self.boot);
        let local = targets.get(&self.id).copied();
        for (&node, target) in &targets {
            if node != self.id {
                self.outbox.send(
                    node,
                    Message::Read {
                        op,
                        key: key.clone(),
                        hint_for: target.fallback.then_some(target.owner),
                    },
                );
            }
        }
        self.coordinator.insert(
            op,
            deadline,
            Pending::Read(ReadOp {
                request,
                reply_to,
                key: key.clone(),
                requirement,
                sloppy,
                session,
                targets,
                answers: BTreeMap::new(),
                order: Vec::new(),
                merged: Object::new(),
                state: ReadState::Collecting,
                deadline,
                linger_until: deadline + self.config.request_timeout,
                retry_at: None,
                repaired: BTreeMap::new(),
            }),
        );
        if let Some(target) = local {
            let answer = self.local_answer(&key, target.fallback.then_some(target.owner));
            self.on_read_reply(now, self.id, op, key, answer);
        }
    }

    pub(crate) fn on_read_reply(
        &mut self,
        now: Time,
        from: NodeId,
        op: OpId,
        key: Key,
        object: Option<Object>,
    ) {
        let Some((_, Pending::Read(read))) = self.coordinator.ops.get_mut(&op) else {
            return self.metrics.incr("late_replies");
        };
        if read.key != key || !read.targets.contains_key(&from) {
            return self.metrics.incr("dropped_messages");
        }
        if let Some(object) = &object {
            read.merged.merge(object);
        }
        if read.answers.insert(from, object).is_none() {
            read.order.push(from);
        }
        match read.state {
            ReadState::Collecting => self.try_complete_read(now, op),
            ReadState::Repairing { .. } => {}
            ReadState::Replied => {
                if read.answers.len() == read.targets.len() {
                    self.finish_read(op);
                }
            }
        }
    }

    /// Reply (or start blocking read repair) once the level and the session are met.
    fn try_complete_read(&mut self, now: Time, op: OpId) {
        let Some((_, Pending::Read(read))) = self.coordinator.ops.get_mut(&op) else {
            return;
        };
        let counted = counted_owners(&read.targets, &read.order, read.sloppy);
        if !read.requirement.is_met(&counted) {
            return;
        }
        if let Some(session) = &read.session {
            if !read.merged.context().dominates(session) {
                if read.answers.len() == read.targets.len() && read.retry_at.is_none() {
                    read.retry_at = Some(now + self.config.session_retry);
                    let wake = read.deadline.min(now + self.config.session_retry);
                    self.coordinator.reschedule(op, wake);
                }
                return;
            }
        }
        read.retry_at = None;
        let stale = stale_answers(&read.targets, &read.answers, &read.merged);
        if stale.is_empty() {
            return self.reply_read(op, ReadRepair::NotNeeded);
        }
        let reply = read.merged.clone();
        let digest = reply.digest();
        for node in &stale {
            read.repaired.insert(*node, digest);
        }
        read.state = ReadState::Repairing {
            reply: reply.clone(),
            counted: read.order.clone(),
            waiting: stale.iter().copied().collect(),
        };
        let key = read.key.clone();
        self.metrics.add("read_repairs", stale.len() as u64);
        for node in stale {
            self.outbox.send(
                node,
                Message::Repair {
                    op,
                    key: key.clone(),
                    object: reply.clone(),
                },
            );
        }
    }

    pub(crate) fn on_repaired(&mut self, from: NodeId, op: OpId, key: Key) {
        let Some((_, Pending::Read(read))) = self.coordinator.ops.get_mut(&op) else {
            return self.metrics.incr("late_replies");
        };
        if read.key != key {
            return self.metrics.incr("dropped_messages");
        }
        if let ReadState::Repairing { waiting, .. } = &mut read.state {
            waiting.remove(&from);
            if waiting.is_empty() {
                self.metrics.incr("read_repairs_blocking");
                self.reply_read(op, ReadRepair::Blocking);
            }
        }
    }

    /// Send the read's reply; keep the operation until late answers are in (or the
    /// linger time passes) to repair them in the background.
    fn reply_read(&mut self, op: OpId, repair: ReadRepair) {
        let Some((_, Pending::Read(read))) = self.coordinator.ops.get_mut(&op) else {
            return;
        };
        let (object, counted) = match std::mem::replace(&mut read.state, ReadState::Replied) {
            ReadState::Repairing { reply, counted, .. } => (reply, counted),
            _ => (read.merged.clone(), read.order.clone()),
        };
        let (request, reply_to) = (read.request, read.reply_to);
        let all_in = read.answers.len() == read.targets.len();
        let linger = read.linger_until;
        let receipt = {
            let read = &*read;
            Self::receipt_for(
                &self.ring,
                &read.requirement,
                &read.targets,
                &counted,
                repair,
            )
        };
        self.respond(request, reply_to, Ok(versioned(&object, receipt)));
        if all_in {
            self.finish_read(op);
        } else {
            self.coordinator.reschedule(op, linger);
        }
    }

    /// Drop a read, repairing in the background every owner that answered with an
    /// object older than the final merge.
    fn finish_read(&mut self, op: OpId) {
        let Some(Pending::Read(read)) = self.coordinator.remove(op) else {
            return;
        };
        let digest = read.merged.digest();
        let mut stale = stale_answers(&read.targets, &read.answers, &read.merged);
        stale.retain(|n| read.repaired.get(n) != Some(&digest));
        if !stale.is_empty() {
            self.metrics.add("read_repairs", stale.len() as u64);
            self.metrics
                .add("read_repairs_background", stale.len() as u64);
        }
        for node in stale {
            self.outbox.send(
                node,
                Message::Repair {
                    op,
                    key: read.key.clone(),
                    object: read.merged.clone(),
                },
            );
        }
    }

    /// Fire every coordinator timer due at `now`.
    pub(crate) fn expire_ops(&mut self, now: Time) {
        // Bounded: each op is handled once per call.
        let due: Vec<OpId> = self
            .coordinator
            .timers
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, op)| *op)
            .collect();
        for op in due {
            let Some((_, pending)) = self.coordinator.ops.get_mut(&op) else {
                continue;
            };
            match pending {
                Pending::Forward(f) => {
                    let detail = format!(
                        "forwarded to {} (an owner of this key), which did not answer in time; \
                         the write may still apply",
                        f.to
                    );
                    let (request, needed) = (f.request, f.needed);
                    self.coordinator.remove(op);
                    self.fail(
                        request,
                        ReplyTo::Client,
                        RequestError::Unavailable {
                            replied: 0,
                            needed,
                            detail,
                        },
                    );
                }
                Pending::Write(_) => {
                    let Some(Pending::Write(write)) = self.coordinator.remove(op) else {
                        continue;
                    };
                    let counted = counted_owners(&write.targets, &write.acked, write.sloppy);
                    let (replied, needed) = write.requirement.progress(&counted);
                    let mut detail = format!(
                        "{}; durable at: {}; the write may still reach the others",
                        write.requirement.shortfall(&counted),
                        names(&write.acked)
                    );
                    for (node, reason) in &write.refused {
                        detail.push_str(&format!("; {node} refused a hint: {reason}"));
                    }
                    self.fail(
                        write.request,
                        write.reply_to,
                        RequestError::Unavailable {
                            replied,
                            needed,
                            detail,
                        },
                    );
                }
                Pending::Read(read) => {
                    let state = read.state.clone();
                    match state {
                        ReadState::Collecting if now >= read.deadline => {
                            let counted = counted_owners(&read.targets, &read.order, read.sloppy);
                            let error = if read.requirement.is_met(&counted) {
                                let missing = read
                                    .session
                                    .as_ref()
                                    .map(|s| read.merged.context().missing_from(s))
                                    .unwrap_or_default();
                                RequestError::Unavailable {
                                    replied: 0,
                                    needed: 1,
                                    detail: format!(
                                        "SESSION: no replica has caught up with the client's \
                                         causal context ({} answered; missing writes of {} \
                                         actor(s), e.g. {:?})",
                                        names(&read.order),
                                        missing.len(),
                                        missing.first()
                                    ),
                                }
                            } else {
                                let (replied, needed) = read.requirement.progress(&counted);
                                RequestError::Unavailable {
                                    replied,
                                    needed,
                                    detail: read.requirement.shortfall(&counted),
                                }
                            };
                            let (request, reply_to) = (read.request, read.reply_to);
                            read.state = ReadState::Replied;
                            let linger = read.linger_until;
                            self.fail(request, reply_to, error);
                            self.coordinator.reschedule(op, linger);
                        }
                        ReadState::Collecting => {
                            // Session retry: ask every target again.
                            read.retry_at = None;
                            read.answers.clear();
                            read.order.clear();
                            let deadline = read.deadline;
                            let key = read.key.clone();
                            let targets: Vec<(NodeId, Target)> =
                                read.targets.iter().map(|(n, t)| (*n, *t)).collect();
                            self.coordinator.reschedule(op, deadline);
                            self.metrics.incr("session_retries");
                            for (node, target) in targets {
                                let hint_for = target.fallback.then_some(target.owner);
                                if node == self.id {
                                    let answer = self.local_answer(&key, hint_for);
                                    self.on_read_reply(now, node, op, key.clone(), answer);
                                } else {
                                    self.outbox.send(
                                        node,
                                        Message::Read {
                                            op,
                                            key: key.clone(),
                                            hint_for,
                                        },
                                    );
                                }
                            }
                        }
                        ReadState::Repairing { .. } => {
                            self.metrics.incr("read_repairs_unconfirmed");
                            self.reply_read(op, ReadRepair::Background);
                        }
                        ReadState::Replied => self.finish_read(op),
                    }
                }
            }
        }
    }

    fn receipt(
        &self,
        requirement: &Requirement,
        targets: &BTreeMap<NodeId, Target>,
        answered: &[NodeId],
        repair: ReadRepair,
    ) -> Receipt {
        Self::receipt_for(&self.ring, requirement, targets, answered, repair)
    }

    fn receipt_for(
        ring: &crate::dynamo::ring::Ring,
        requirement: &Requirement,
        targets: &BTreeMap<NodeId, Target>,
        answered: &[NodeId],
        repair: ReadRepair,
    ) -> Receipt {
        let replicas: Vec<ReceiptReplica> = answered
            .iter()
            .filter_map(|n| {
                targets.get(n).map(|t| ReceiptReplica {
                    node: *n,
                    region: ring.region_of(*n).to_owned(),
                    fallback: t.fallback,
                })
            })
            .collect();
        let hints_written = replicas.iter().filter(|r| r.fallback).count() as u32;
        Receipt {
            requested: requirement.level().to_string(),
            met: true,
            answered: replicas,
            hints_written,
            read_repair: repair,
        }
    }

    pub(crate) fn fail(&mut self, request: RequestId, reply_to: ReplyTo, error: RequestError) {
        self.respond(request, reply_to, Err(error));
    }

    pub(crate) fn respond(
        &mut self,
        request: RequestId,
        reply_to: ReplyTo,
        outcome: Result<Response, RequestError>,
    ) {
        match &outcome {
            Err(RequestError::Unavailable { .. }) => self.metrics.incr("unavailable"),
            Err(RequestError::Invalid(_)) => self.metrics.incr("invalid"),
            Err(_) => self.metrics.incr("failed"),
            Ok(_) => self.metrics.incr("requests_ok"),
        }
        let reply = ClientReply {
            id: request,
            outcome,
        };
        match reply_to {
            ReplyTo::Client => self.outbox.reply(reply),
            ReplyTo::Forwarder { node, op } => {
                self.outbox.send(node, Message::ForwardReply { op, reply })
            }
        }
    }
}

/// Owners whose answer counts: primaries for themselves; fallbacks for the owner they
/// stand in for, only in sloppy requests.
fn counted_owners(
    targets: &BTreeMap<NodeId, Target>,
    answered: &[NodeId],
    sloppy: bool,
) -> BTreeSet<NodeId> {
    answered
        .iter()
        .filter_map(|n| targets.get(n))
        .filter(|t| !t.fallback || sloppy)
        .map(|t| t.owner)
        .collect()
}

fn names(nodes: &[NodeId]) -> String {
    if nodes.is_empty() {
        return "none".to_owned();
    }
    nodes
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}
