//! Coordinating a write (put or delete).
//!
//! ```text
//!  owner coordinator: object' = local.update(client ctx, fresh dot, value)
//!                     reject above the size or sibling hard limit (never prune)
//!                     Persist{Object(object')} then: Stored→self  ‖  Store→other targets
//!  non-owner (no live owner to forward to): one-shot actor, Store→targets
//!  Stored from targets ─▶ count owners (fallbacks only if sloppy) ─▶ reply when met
//!  deadline ─▶ Unavailable{replied, needed, who holds it}
//! ```
//! The whole object goes to every target (the prefix property of `dvv` depends on it).
//! It leaves at once, in parallel with the coordinator's own fsync: if the node crashes
//! before that sync, its next boot has a new epoch, so the lost dot is never reissued.
//! The coordinator counts itself only once its copy is durable.

use crate::command::{Key, Value};
use crate::dynamo::dvv::{Actor, Dot, Object, Sibling, VersionVector};
use crate::dynamo::hash::mix2;
use crate::dynamo::level::Requirement;
use crate::dynamo::messages::{Message, OpId, Record};
use crate::dynamo::plan::{counted_owners, names, receipt, versioned, Plan, ReplyTo, Target};
use crate::dynamo::ring_state::MemberStatus;
use crate::dynamo::Dynamo;
use crate::id::{NodeId, RequestId};
use crate::protocol::Effect;
use crate::request::{ReadRepair, RequestError};
use crate::time::Time;
use std::collections::BTreeMap;

pub(crate) struct WriteOp {
    request: RequestId,
    reply_to: ReplyTo,
    key: Key,
    requirement: Requirement,
    /// While ranges move: the level among the owners after the move.
    next: Option<Requirement>,
    sloppy: bool,
    /// The object the coordinator wrote (returned to the client).
    object: Object,
    targets: BTreeMap<NodeId, Target>,
    /// Targets that acknowledged, in order.
    acked: Vec<NodeId>,
    refused: Vec<(NodeId, String)>,
}

impl Dynamo {
    pub(crate) fn start_write(
        &mut self,
        now: Time,
        plan: Plan,
        value: Option<Value>,
        context: VersionVector,
    ) {
        let mut targets = self.plan_targets(now, &plan.key, plan.sloppy, true);
        let leaving = self.state.status_of(self.id) == Some(MemberStatus::Leaving);
        if leaving {
            // A leaving node stores no new write (see `on_store`).
            targets.remove(&self.id);
        }
        if let Err(e) = self.check_reachable(now, &plan, &targets) {
            return self.fail(plan.request, plan.reply_to, e);
        }
        let key = plan.key.clone();
        let range = self.ring.range_of(&key);
        // The owners of either ring issue dots from their local object; while ranges
        // move, both rings' owners hold (or are getting) the key.
        let owner = !leaving && (self.owns_now(&key) || self.owns_next(&key));
        let object = match self.new_version(now, &key, owner, value, &context) {
            Ok(object) => object,
            Err(error) => return self.fail(plan.request, plan.reply_to, error),
        };
        let op = self.coordinator.next_op(self.boot);
        if owner {
            self.install(now, key.clone(), object.clone(), range);
            let own_ack = Message::Stored {
                op,
                key: key.clone(),
                hint_for: None,
            };
            let record = Record::Object {
                key: key.clone(),
                object: object.clone(),
            };
            let then = vec![Effect::Send {
                to: self.id,
                message: own_ack,
            }];
            self.persist(vec![record], then);
        }
        for (&node, target) in &targets {
            if node == self.id && !target.fallback {
                continue;
            }
            let message = Message::Store {
                op,
                key: key.clone(),
                object: object.clone(),
                hint_for: target.fallback.then_some(target.owner),
            };
            self.outbox.send(node, message);
        }
        let write = WriteOp {
            request: plan.request,
            reply_to: plan.reply_to,
            key,
            requirement: plan.requirement,
            next: plan.next,
            sloppy: plan.sloppy,
            object,
            targets,
            acked: Vec::new(),
            refused: Vec::new(),
        };
        self.coordinator.insert_write(op, plan.deadline, write);
    }

    /// The key's object after this write: a fresh dot for `value` over what `context`
    /// saw, or an error when the result would break the sibling limit.
    fn new_version(
        &mut self,
        now: Time,
        key: &Key,
        owner: bool,
        value: Option<Value>,
        context: &VersionVector,
    ) -> Result<Object, RequestError> {
        let sibling = Sibling {
            value,
            timestamp_us: now.as_micros(),
        };
        // An owner issues the dot from its local object; anyone else uses a one-shot
        // actor that has no earlier dots (see the prefix property in `dvv`).
        let (base, actor, first) = if owner {
            let base = self.store.get(key).map(|e| e.object.clone());
            let actor = Actor {
                node: self.id,
                epoch: self.epoch,
            };
            (base.unwrap_or_default(), actor, self.next_counter)
        } else {
            // Unique per (boot epoch, counter): never issued twice.
            let actor = Actor {
                node: self.id,
                epoch: mix2(self.epoch, self.next_counter),
            };
            (Object::new(), actor, 1)
        };
        // A context that already names this actor's later dots can only come from a
        // corrupt client or peer: step past them, so the new version is never taken for
        // one already seen (and superseded).
        let seen = base.context().get(&actor).max(context.get(&actor));
        let Some(counter) = seen.checked_add(1).map(|next| next.max(first)) else {
            self.metrics.incr("context_rejections");
            return Err(RequestError::Rejected(
                "the causal context names every possible version of this replica: it was                  not made by Meridian; write without it"
                    .into(),
            ));
        };
        let dot = Dot { actor, counter };
        let mut object = base.update(context, dot, sibling);
        if self.config.lww {
            let discarded = object.keep_last_writer();
            self.metrics.add("lww_discarded", discarded as u64);
        }
        let bytes = key.len() + object.approx_bytes();
        if bytes > self.config.max_object_bytes {
            self.metrics.incr("size_rejections");
            return Err(RequestError::Rejected(format!(
                "this write would make the key's object {bytes} bytes, over this keyspace's \
                 limit of {} (every sibling counts); store a smaller value, or read the key \
                 and write with the read's context to replace its siblings",
                self.config.max_object_bytes
            )));
        }
        let siblings = object.sibling_count();
        if siblings > self.config.sibling_hard_limit {
            self.metrics.incr("sibling_rejections");
            let error = RequestError::Rejected(format!(
                "this write would leave {siblings} siblings on the key (hard limit {}); read \
                 the key and write with the read's context to resolve them",
                self.config.sibling_hard_limit
            ));
            return Err(error);
        }
        if siblings > self.config.sibling_soft_limit {
            self.metrics.incr("sibling_warnings");
        }
        self.next_counter = self.next_counter.max(counter).saturating_add(1);
        Ok(object)
    }

    pub(crate) fn on_stored(&mut self, from: NodeId, op: OpId, key: Key, hint_for: Option<NodeId>) {
        let Some(write) = self.coordinator.write_mut(op) else {
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
        let next_met = write.next.as_ref().is_none_or(|r| r.is_met(&counted));
        if !write.requirement.is_met(&counted) || !next_met {
            return;
        }
        let Some(write) = self.coordinator.remove_write(op) else {
            return;
        };
        let receipt = receipt(
            &self.ring,
            &write.requirement,
            &write.targets,
            &write.acked,
            ReadRepair::NotNeeded,
        );
        let response = versioned(&write.object, receipt);
        self.respond(write.request, write.reply_to, Ok(response));
    }

    pub(crate) fn on_refused(&mut self, from: NodeId, op: OpId, reason: String) {
        if let Some(write) = self.coordinator.write_mut(op) {
            if write.targets.get(&from).is_some_and(|t| t.fallback) {
                write.refused.push((from, reason));
                return;
            }
        }
        self.metrics.incr("late_replies");
    }

    /// The deadline passed with the level unmet.
    pub(crate) fn expire_write(&mut self, op: OpId) {
        let Some(write) = self.coordinator.remove_write(op) else {
            return;
        };
        let counted = counted_owners(&write.targets, &write.acked, write.sloppy);
        let requirement = match &write.next {
            Some(next) if write.requirement.is_met(&counted) => next,
            _ => &write.requirement,
        };
        let (replied, needed) = requirement.progress(&counted);
        let moving = if write.next.is_some() {
            " (ranges are moving: a write needs its level among the owners before and after the move)"
        } else {
            ""
        };
        let mut detail = format!(
            "{}{moving}; durable at: {}; the write may still reach the others",
            requirement.shortfall(&counted),
            names(&write.acked)
        );
        for (node, reason) in &write.refused {
            detail.push_str(&format!("; {node} refused a hint: {reason}"));
        }
        let error = RequestError::Unavailable {
            replied,
            needed,
            detail,
        };
        self.fail(write.request, write.reply_to, error);
    }
}
