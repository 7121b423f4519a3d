//! Coordinating a read.
//!
//! ```text
//!  Read ─▶ every owner (+ fallbacks for suspected owners, if sloppy); the coordinator's
//!          own copy answers at once if it is a target
//!  ReadReply ─▶ merge ─▶ level met? SESSION context covered?
//!               ├─ no stale answer ─────────────▶ reply (NotNeeded)
//!               └─ stale owners ─▶ Repair, wait ─▶ reply (Blocking; Background at deadline)
//!  after the reply: keep collecting until every target answered or the linger time
//!  passed, then repair late stale owners in the background (`read_repair`)
//!  SESSION not covered after every target answered ─▶ ask again every `session_retry`
//!  deadline ─▶ Unavailable (level unmet, or no owner caught up with the session)
//! ```

use crate::command::Key;
use crate::dynamo::dvv::{Object, VersionVector};
use crate::dynamo::level::Requirement;
use crate::dynamo::messages::{Message, OpId};
use crate::dynamo::plan::{counted_owners, names, receipt, versioned, Plan, ReplyTo, Target};
use crate::dynamo::Dynamo;
use crate::id::{NodeId, RequestId};
use crate::request::{ReadRepair, RequestError};
use crate::time::Time;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ReadState {
    /// Waiting for the level (and the session context).
    Collecting,
    /// Level met; waiting for the stale owners it counted to acknowledge a repair.
    Repairing {
        /// What the reply will carry.
        reply: Object,
        /// The answers the reply counts.
        counted: Vec<NodeId>,
        waiting: BTreeSet<NodeId>,
    },
    /// Answered; collecting late answers for background repair.
    Replied,
}

pub(crate) struct ReadOp {
    pub(crate) request: RequestId,
    pub(crate) reply_to: ReplyTo,
    pub(crate) key: Key,
    pub(crate) requirement: Requirement,
    pub(crate) sloppy: bool,
    /// SESSION: the client's causal context the reply must cover.
    pub(crate) session: Option<VersionVector>,
    pub(crate) targets: BTreeMap<NodeId, Target>,
    pub(crate) answers: BTreeMap<NodeId, Option<Object>>,
    /// Answering targets in arrival order.
    pub(crate) order: Vec<NodeId>,
    pub(crate) merged: Object,
    pub(crate) state: ReadState,
    pub(crate) deadline: Time,
    pub(crate) linger_until: Time,
    pub(crate) retry_at: Option<Time>,
    /// Digest of the object each owner was last repaired with.
    pub(crate) repaired: BTreeMap<NodeId, u64>,
}

impl Dynamo {
    pub(crate) fn start_read(&mut self, now: Time, plan: Plan, session: Option<VersionVector>) {
        let targets = self.plan_targets(now, &plan.key, plan.sloppy, false);
        if let Err(e) = self.check_reachable(now, &plan, &targets) {
            return self.fail(plan.request, plan.reply_to, e);
        }
        let op = self.coordinator.next_op(self.boot);
        let key = plan.key.clone();
        let local = targets.get(&self.id).copied();
        self.send_reads(op, &key, &targets);
        let read = ReadOp {
            request: plan.request,
            reply_to: plan.reply_to,
            key: plan.key,
            requirement: plan.requirement,
            sloppy: plan.sloppy,
            session,
            targets,
            answers: BTreeMap::new(),
            order: Vec::new(),
            merged: Object::new(),
            state: ReadState::Collecting,
            deadline: plan.deadline,
            linger_until: plan.deadline + self.config.request_timeout,
            retry_at: None,
            repaired: BTreeMap::new(),
        };
        self.coordinator.insert_read(op, plan.deadline, read);
        if let Some(target) = local {
            let answer = self.local_answer(&key, target.fallback.then_some(target.owner));
            self.on_read_reply(now, self.id, op, key, answer);
        }
    }

    /// Ask every target but this node.
    fn send_reads(&mut self, op: OpId, key: &Key, targets: &BTreeMap<NodeId, Target>) {
        for (&node, target) in targets {
            if node != self.id {
                let message = Message::Read {
                    op,
                    key: key.clone(),
                    hint_for: target.fallback.then_some(target.owner),
                };
                self.outbox.send(node, message);
            }
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
        let Some(read) = self.coordinator.read_mut(op) else {
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
        let Some(read) = self.coordinator.read_mut(op) else {
            return;
        };
        let counted = counted_owners(&read.targets, &read.order, read.sloppy);
        if !read.requirement.is_met(&counted) {
            return;
        }
        let covered = read
            .session
            .as_ref()
            .is_none_or(|s| read.merged.context().dominates(s));
        if !covered {
            // Everyone answered and no one has the client's writes yet: ask again soon.
            if read.answers.len() == read.targets.len() && read.retry_at.is_none() {
                let retry = now + self.config.session_retry;
                read.retry_at = Some(retry);
                let wake = read.deadline.min(retry);
                self.coordinator.reschedule(op, wake);
            }
            return;
        }
        read.retry_at = None;
        if !self.start_blocking_repair(op) {
            self.reply_read(op, ReadRepair::NotNeeded);
        }
    }

    /// Send the read's reply; keep the operation until late answers are in (or the
    /// linger time passes) to repair them in the background.
    pub(crate) fn reply_read(&mut self, op: OpId, repair: ReadRepair) {
        let Some(read) = self.coordinator.read_mut(op) else {
            return;
        };
        let (object, counted) = match std::mem::replace(&mut read.state, ReadState::Replied) {
            ReadState::Repairing { reply, counted, .. } => (reply, counted),
            _ => (read.merged.clone(), read.order.clone()),
        };
        let receipt = receipt(
            &self.ring,
            &read.requirement,
            &read.targets,
            &counted,
            repair,
        );
        let (request, reply_to) = (read.request, read.reply_to);
        let all_in = read.answers.len() == read.targets.len();
        let linger = read.linger_until;
        self.coordinator.lingering += 1;
        self.respond(request, reply_to, Ok(versioned(&object, receipt)));
        if all_in {
            self.finish_read(op);
        } else {
            self.coordinator.reschedule(op, linger);
        }
    }

    /// A read's timer fired: deadline, session retry, or end of lingering.
    pub(crate) fn expire_read(&mut self, now: Time, op: OpId) {
        let Some(read) = self.coordinator.read_mut(op) else {
            return;
        };
        match &read.state {
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
                            "SESSION: no replica has caught up with the client's causal \
                             context ({} answered; writes of {} actor(s) missing, e.g. {:?})",
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
                self.coordinator.lingering += 1;
                self.fail(request, reply_to, error);
                self.coordinator.reschedule(op, linger);
            }
            ReadState::Collecting => {
                // SESSION retry: ask every target again; the merge keeps what we have.
                read.retry_at = None;
                read.answers.clear();
                read.order.clear();
                let deadline = read.deadline;
                let key = read.key.clone();
                let targets = read.targets.clone();
                self.coordinator.reschedule(op, deadline);
                self.metrics.incr("session_retries");
                self.send_reads(op, &key, &targets);
                if let Some(target) = targets.get(&self.id) {
                    let answer = self.local_answer(&key, target.fallback.then_some(target.owner));
                    self.on_read_reply(now, self.id, op, key, answer);
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
