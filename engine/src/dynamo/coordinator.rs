//! The coordinator side: turning a client request into replica traffic and a reply.
//!
//! ```text
//!  request ─▶ validate (Dynamo level, no CAS, decodable context) ─▶ Requirement
//!          ─▶ targets: every owner, + a live fallback per suspected owner if sloppy
//!          ─▶ fail fast if the live targets cannot meet the level (nothing is sent)
//!          ─▶ write (`write`): at an owner, or forwarded to the nearest live owner
//!             read  (`read`):  at any node, with read repair (`read_repair`)
//!          ─▶ reply once met; at the deadline, Unavailable with the counts
//! ```
//! Answers count per owner (`level`): a primary for itself, a fallback for the owner its
//! hint names and only in sloppy requests. A fallback never counts toward a strict
//! request, and a level is never downgraded.
//!
//! # SESSION contract (client library side)
//! The client keeps the `context` of every response it receives for a key (joining
//! them; `VersionVector::decode`/`join`/`encode`, or simply the latest response's
//! context) and sends it with each request. A SESSION read returns only a version whose
//! context covers the client's: it waits for more owners, asks again every
//! `session_retry`, and fails with `Unavailable` at the deadline if none has caught up.
//! SESSION writes wait for one durable acknowledgement, like ONE, and pass the context so
//! they supersede what the client saw. Together this gives read-your-writes and
//! monotonic reads per client and key, as long as the client keeps its context.

use crate::command::{Command, Key, Value};
use crate::dynamo::dvv::VersionVector;
use crate::dynamo::level::{Op, Requirement};
use crate::dynamo::messages::{Message, OpId};
use crate::dynamo::plan::{names, Plan, ReplyTo, Target};
use crate::dynamo::read::ReadOp;
use crate::dynamo::ring::Ring;
use crate::dynamo::write::WriteOp;
use crate::dynamo::Dynamo;
use crate::id::{NodeId, RequestId};
use crate::request::{ClientReply, ClientRequest, Consistency, Level, RequestError, Response};
use crate::time::Time;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// A write handed to an owner, waiting for its answer.
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

/// Forwarded requests remembered to drop duplicates (the network may duplicate).
const FORWARDS_REMEMBERED: usize = 10_000;

/// Requests this node coordinates, with their timers.
#[derive(Default)]
pub(crate) struct Coordinator {
    pub(crate) ops: BTreeMap<OpId, (Time, Pending)>,
    timers: BTreeSet<(Time, OpId)>,
    next_seq: u64,
    /// Forwards already coordinated, oldest first (bounded).
    seen_forwards: VecDeque<(NodeId, OpId)>,
    seen_forward_set: BTreeSet<(NodeId, OpId)>,
    /// Reads already answered, kept only to repair late answers: not counted as load.
    pub(crate) lingering: usize,
}

impl Coordinator {
    pub(crate) fn next_op(&mut self, boot: u32) -> OpId {
        self.next_seq += 1;
        OpId {
            boot,
            seq: self.next_seq,
        }
    }

    pub(crate) fn insert(&mut self, op: OpId, wake: Time, pending: Pending) {
        self.timers.insert((wake, op));
        self.ops.insert(op, (wake, pending));
    }

    pub(crate) fn remove(&mut self, op: OpId) -> Option<Pending> {
        let (wake, pending) = self.ops.remove(&op)?;
        self.timers.remove(&(wake, op));
        Some(pending)
    }

    /// Start tracking a read until `wake`.
    pub(crate) fn insert_read(&mut self, op: OpId, wake: Time, read: ReadOp) {
        self.insert(op, wake, Pending::Read(read));
    }

    /// Start tracking a write until `wake`.
    pub(crate) fn insert_write(&mut self, op: OpId, wake: Time, write: WriteOp) {
        self.insert(op, wake, Pending::Write(write));
    }

    /// The read `op`, if it is one in flight.
    pub(crate) fn read_mut(&mut self, op: OpId) -> Option<&mut ReadOp> {
        match self.ops.get_mut(&op) {
            Some((_, Pending::Read(read))) => Some(read),
            _ => None,
        }
    }

    /// The write `op`, if it is one in flight.
    pub(crate) fn write_mut(&mut self, op: OpId) -> Option<&mut WriteOp> {
        match self.ops.get_mut(&op) {
            Some((_, Pending::Write(write))) => Some(write),
            _ => None,
        }
    }

    /// Stop tracking the read `op` (a different kind of operation stays).
    pub(crate) fn remove_read(&mut self, op: OpId) -> Option<ReadOp> {
        self.read_mut(op)?;
        match self.remove(op) {
            Some(Pending::Read(read)) => Some(read),
            _ => None,
        }
    }

    /// Stop tracking the write `op` (a different kind of operation stays).
    pub(crate) fn remove_write(&mut self, op: OpId) -> Option<WriteOp> {
        self.write_mut(op)?;
        match self.remove(op) {
            Some(Pending::Write(write)) => Some(write),
            _ => None,
        }
    }

    pub(crate) fn reschedule(&mut self, op: OpId, wake: Time) {
        if let Some((old, _)) = self.ops.get_mut(&op) {
            self.timers.remove(&(*old, op));
            *old = wake;
            self.timers.insert((wake, op));
        }
    }

    /// Remember a forward; false if it was seen before.
    fn first_forward(&mut self, from: NodeId, op: OpId) -> bool {
        if !self.seen_forward_set.insert((from, op)) {
            return false;
        }
        self.seen_forwards.push_back((from, op));
        if self.seen_forwards.len() > FORWARDS_REMEMBERED {
            if let Some(old) = self.seen_forwards.pop_front() {
                self.seen_forward_set.remove(&old);
            }
        }
        true
    }

    /// Requests not yet answered (the admission bound applies to these).
    pub(crate) fn active(&self) -> usize {
        self.ops.len().saturating_sub(self.lingering)
    }

    /// The earliest timer.
    pub(crate) fn next_timer(&self) -> Option<Time> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Operations whose timer is due at `now`.
    fn due(&self, now: Time) -> Vec<OpId> {
        self.timers
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, op)| *op)
            .collect()
    }
}

/// A request this keyspace can serve, taken apart.
struct Admitted {
    level: Level,
    op: Op,
    /// The value a put writes (`None`: a read, or a delete's tombstone).
    value: Option<Value>,
    /// The client's causal context (empty for a blind write).
    context: VersionVector,
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
        let Admitted {
            level,
            op,
            value,
            context,
        } = match self.admit(&request) {
            Ok(admitted) => admitted,
            Err(error) => return self.fail(request.id, reply_to, error),
        };
        let key = request.command.key().clone();
        let preference = self.ring.preference_for(&key).to_vec();
        let ring = &self.ring;
        let requirement = match Requirement::new(
            level,
            op,
            &preference,
            |n| ring.region_of(n).to_owned(),
            region,
        ) {
            Ok(r) => r,
            Err(e) => return self.fail(request.id, reply_to, e),
        };
        let next = match (op, &self.next_ring) {
            (Op::Write, Some(next_ring)) => {
                let next_preference = next_ring.preference_for(&key).to_vec();
                let region_of = |n: NodeId| next_ring.region_of(n).to_owned();
                // A level the next owners cannot meet at all (LOCAL_* where no next owner
                // is local) still needs one of them: the write must survive the move.
                Requirement::new(level, op, &next_preference, region_of, region)
                    .or_else(|_| {
                        Requirement::new(Level::One, op, &next_preference, region_of, region)
                    })
                    .ok()
            }
            _ => None,
        };
        let plan = Plan {
            request: request.id,
            reply_to,
            key,
            requirement,
            next,
            sloppy: request.sloppy.unwrap_or(self.config.sloppy),
            deadline,
        };
        match op {
            Op::Read => {
                self.metrics.incr("requests_read");
                let session = (level == Level::Session && !context.is_empty()).then_some(context);
                self.start_read(now, plan, session);
            }
            Op::Write => {
                self.metrics.incr("requests_write");
                if reply_to == ReplyTo::Client && !preference.contains(&self.id) {
                    let nearest = self
                        .cluster
                        .by_distance(self.id)
                        .into_iter()
                        .find(|n| preference.contains(n) && self.detector.is_alive(*n, now));
                    if let Some(owner) = nearest {
                        let (_, needed) = plan.requirement.progress(&BTreeSet::new());
                        return self.forward(now, request, owner, region, needed, deadline);
                    }
                }
                self.start_write(now, plan, value, context);
            }
        }
    }

    /// What a request asks for, or why this keyspace cannot serve it (a consensus level,
    /// compare-and-set, a context that does not decode, too many requests in flight).
    fn admit(&mut self, request: &ClientRequest) -> Result<Admitted, RequestError> {
        let level = match request.consistency {
            Consistency::Dynamo(level) => level,
            other => {
                let name = match other {
                    Consistency::LocalRead => "local reads",
                    Consistency::Stale { .. } => "bounded-staleness reads",
                    Consistency::Lease | Consistency::ReadIndex | Consistency::Follower => {
                        "leader-based read levels"
                    }
                    _ => "linearizable consistency",
                };
                return Err(RequestError::Invalid(format!(
                    "{name} need a consensus keyspace; this keyspace runs Dynamo mode: ask \
                     for a Dynamo level (ONE, TWO, THREE, QUORUM, ALL, LOCAL_ONE, \
                     LOCAL_QUORUM, EACH_QUORUM, SESSION or R=<r>,W=<w>)"
                )));
            }
        };
        let (op, value) = match &request.command {
            Command::Get { .. } => (Op::Read, None),
            Command::Put { value, .. } => (Op::Write, Some(value.clone())),
            Command::Delete { .. } => (Op::Write, None),
            Command::Scan { .. } | Command::Count { .. } => {
                return Err(RequestError::Invalid(
                    "scan and keys are not served by Dynamo keyspaces yet: a range read at a \
                     level would have to reach enough owners of every ring range \
                     (docs/design.md#range-reads); use a Multi-Paxos keyspace"
                        .to_owned(),
                ));
            }
            Command::Cas { .. } => {
                return Err(RequestError::Invalid(
                    "compare-and-set needs consensus and Dynamo keyspaces have none: read, \
                     then write with the read's context (concurrent writers become \
                     siblings), or use an EPaxos/Multi-Paxos keyspace"
                        .to_owned(),
                ));
            }
        };
        let context = VersionVector::decode(&request.context)
            .map_err(|e| RequestError::Invalid(format!("bad causal context: {e}")))?;
        // Refused here, before it is forwarded: the object would hold at least this much.
        let bytes = request.command.key().len() + value.as_ref().map_or(0, Vec::len);
        if bytes > self.config.max_object_bytes {
            self.metrics.incr("size_rejections");
            return Err(RequestError::Rejected(format!(
                "key and value are {bytes} bytes, over this keyspace's object limit of {} \
                 bytes (every sibling counts toward it)",
                self.config.max_object_bytes
            )));
        }
        if self.coordinator.active() >= self.config.max_pending_requests {
            self.metrics.incr("requests_rejected");
            return Err(RequestError::Rejected(format!(
                "{} requests in flight at {} (limit {})",
                self.coordinator.active(),
                self.id,
                self.config.max_pending_requests
            )));
        }
        Ok(Admitted {
            level,
            op,
            value,
            context,
        })
    }

    /// Hand a write to `owner`, which coordinates it and answers with `ForwardReply`.
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
        // The owner must answer before our own deadline: leave it a round trip (or a
        // tenth of the budget when the RTT is unknown).
        let remaining = deadline.saturating_since(now).as_micros() as u64;
        let rtt = self
            .cluster
            .rtt_us(self.id, owner)
            .unwrap_or(remaining / 10);
        let budget_us = remaining.saturating_sub(rtt);
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
        if !self.coordinator.first_forward(from, op) {
            return self.metrics.incr("duplicate_forwards");
        }
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

    /// Who a request goes to: every owner (of both rings while ranges move, if
    /// `with_next`), plus (if sloppy) a live fallback for each owner the failure detector
    /// suspects.
    pub(crate) fn plan_targets(
        &self,
        now: Time,
        key: &Key,
        sloppy: bool,
        with_next: bool,
    ) -> BTreeMap<NodeId, Target> {
        let rings: Vec<&Ring> = std::iter::once(&self.ring)
            .chain(self.next_ring.as_ref().filter(|_| with_next))
            .collect();
        let mut targets: BTreeMap<NodeId, Target> = BTreeMap::new();
        for ring in &rings {
            for &owner in ring.preference_for(key) {
                let target = Target {
                    owner,
                    fallback: false,
                };
                targets.insert(owner, target);
            }
        }
        if sloppy {
            let mut taken: BTreeSet<NodeId> = targets.keys().copied().collect();
            for ring in &rings {
                let range = ring.range_of(key);
                for &owner in ring.preference(range) {
                    let covered = targets.values().any(|t| t.owner == owner && t.fallback);
                    if covered || self.detector.is_alive(owner, now) {
                        continue;
                    }
                    let usable = |n: NodeId| self.detector.is_alive(n, now);
                    if let Some(fallback) = ring.fallback_for(range, owner, &taken, usable) {
                        taken.insert(fallback);
                        let target = Target {
                            owner,
                            fallback: true,
                        };
                        targets.insert(fallback, target);
                    }
                }
            }
        }
        targets
    }

    /// Fail fast when the live targets cannot meet the level; nothing has been sent.
    pub(crate) fn check_reachable(
        &self,
        now: Time,
        plan: &Plan,
        targets: &BTreeMap<NodeId, Target>,
    ) -> Result<(), RequestError> {
        let reachable: BTreeSet<NodeId> = targets
            .iter()
            .filter(|(node, t)| self.detector.is_alive(**node, now) && (!t.fallback || plan.sloppy))
            .map(|(_, t)| t.owner)
            .collect();
        let requirement = match &plan.next {
            Some(next) if plan.requirement.is_met(&reachable) && !next.is_met(&reachable) => next,
            _ => &plan.requirement,
        };
        if requirement.is_met(&reachable) {
            return Ok(());
        }
        let down: Vec<NodeId> = targets
            .iter()
            .filter(|(node, t)| !t.fallback && !self.detector.is_alive(**node, now))
            .map(|(n, _)| *n)
            .collect();
        let (_, needed) = requirement.progress(&BTreeSet::new());
        let sloppy_note = if plan.sloppy {
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
                names(&down)
            ),
        })
    }

    /// Fire every coordinator timer due at `now`.
    pub(crate) fn expire_ops(&mut self, now: Time) {
        for op in self.coordinator.due(now) {
            match self.coordinator.ops.get(&op) {
                Some((_, Pending::Forward(_))) => {
                    let Some(Pending::Forward(f)) = self.coordinator.remove(op) else {
                        continue;
                    };
                    let detail = format!(
                        "forwarded to {} (an owner of this key), which did not answer in time; \
                         the write may still apply",
                        f.to
                    );
                    let error = RequestError::Unavailable {
                        replied: 0,
                        needed: f.needed,
                        detail,
                    };
                    self.fail(f.request, ReplyTo::Client, error);
                }
                Some((_, Pending::Write(_))) => self.expire_write(op),
                Some((_, Pending::Read(_))) => self.expire_read(now, op),
                None => {}
            }
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
