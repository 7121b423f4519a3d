//! What the explorer has seen so far, and the invariants checked against it.
//!
//! Safety, at every state:
//! - agreement: every commit of an instance that became durable or was revealed (a
//!   Commit message sent), by any replica before or after a crash, has the same command
//!   and attributes. A decision lost in a crash before either is no decision: nobody,
//!   the deciding replica included, can act on it;
//! - execution: a replica executes each command once and only as committed, and the two
//!   conflicting requests run in the same relative order on every replica that ran both
//!   (counting executions whose commit is durable or revealed);
//! - replies: a client's answer leaves only after its commit record is durable at the
//!   replica that answers, and equals what every replica computes for that request in
//!   its own execution order (so a replied command stays committed with its attributes).
//!
//! Liveness, after a fair run with a reliable network: no replica is left waiting
//! (blocked execution, unfinished instance or recovery); everything committed is
//! executed; a live command leader has committed its command, and answered its client
//! unless it crashed meanwhile.

use crate::epaxos::{Attributes, Batch, Epaxos, InstanceId, Message, Record, Status};
use crate::id::{NodeId, RequestId};
use crate::model_check::{Observe, PairOrder, Replies, Scenario};
use crate::protocol::Protocol;
use crate::request::{ClientReply, Response};
use crate::state_machine::{KvStore, StateMachine};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Hash)]
pub(crate) struct Observations {
    /// The first commit decision seen per instance.
    committed: BTreeMap<InstanceId, (Batch, Attributes)>,
    replies: Replies,
    /// The explored requests, and their relative order once a replica ran both.
    order: PairOrder,
}

impl Observe<Epaxos> for Observations {
    fn new(scenario: &Scenario<Epaxos>) -> Self {
        Self {
            committed: BTreeMap::new(),
            replies: Replies::default(),
            order: PairOrder::new(&scenario.requests),
        }
    }

    fn replies(&self) -> usize {
        self.replies.len()
    }

    /// Every commit among the records must agree.
    fn on_durable(&mut self, at: NodeId, records: &[Record]) -> Result<(), String> {
        for record in records {
            if let Record::Instance(r) = record {
                if r.status == Status::Committed {
                    self.on_decision(at, r.instance, &r.payload, &r.attributes)?;
                }
            }
        }
        Ok(())
    }

    /// A Commit message reveals a decision.
    fn on_send(&mut self, from: NodeId, message: &Message) -> Result<(), String> {
        match message {
            Message::Commit {
                instance,
                payload,
                attributes,
            } => self.on_decision(from, *instance, payload, attributes),
            _ => Ok(()),
        }
    }

    fn on_reply<'a>(
        &mut self,
        from: NodeId,
        reply: &ClientReply,
        mut durable: impl Iterator<Item = &'a Record>,
    ) -> Result<(), String>
    where
        Record: 'a,
    {
        let Ok(Response::Kv(result)) = &reply.outcome else {
            return Err(format!("{from} answered {} with {reply:?}", reply.id));
        };
        let instance = self
            .committed
            .iter()
            .find(|(_, (batch, _))| carries(batch, reply.id))
            .map(|(&id, _)| id)
            .ok_or_else(|| format!("{from} answered {} before anyone committed it", reply.id))?;
        let durable_commit = durable.any(|r| {
            matches!(r, Record::Instance(r) if r.instance == instance && r.status == Status::Committed)
        });
        if !durable_commit {
            return Err(format!(
                "{from} answered {} before its commit of {instance} was durable",
                reply.id
            ));
        }
        self.replies.record(reply.id, result)
    }

    /// Execution invariants over every live replica.
    fn check_state(&mut self, cores: &[(NodeId, &Epaxos, bool)]) -> Result<(), String> {
        for &(node, core, _) in cores {
            let mut kv = KvStore::new();
            let mut seen = BTreeSet::new();
            let mut positions = self.order.positions();
            for (position, entry) in core.executed().iter().enumerate() {
                let request = entry.payload.request;
                if !entry.payload.is_noop() && !seen.insert(request) {
                    return Err(format!("{node} executed {request} twice"));
                }
                let result = kv.apply(&entry.payload.command);
                match self.committed.get(&entry.instance) {
                    // Its commit is still on the way to the disk: nobody can see it yet.
                    None => continue,
                    Some((batch, _)) if !batch.commands().contains(&entry.payload) => {
                        return Err(format!(
                            "{node} executed {:?} in {}, committed as {batch:?}",
                            entry.payload, entry.instance
                        ))
                    }
                    Some(_) => {}
                }
                if let Some(answered) = self.replies.get(&request) {
                    if *answered != result {
                        return Err(format!(
                            "{node} computes {result:?} for {request}, its client was answered {answered:?}"
                        ));
                    }
                }
                self.order.note(&mut positions, request, position);
            }
            self.order.check(node, &positions)?;
        }
        Ok(())
    }

    /// Liveness after a fair run: see the module doc.
    fn check_outcome(
        &self,
        scenario: &Scenario<Epaxos>,
        cores: &[(NodeId, &Epaxos, bool)],
        submitted: &dyn Fn(usize) -> bool,
    ) -> Result<(), String> {
        for &(node, core, crashed) in cores {
            if let Some(at) = core.poll_timeout() {
                return Err(format!("liveness: {node} still has work due at {at}"));
            }
            for (&id, instance) in &core.replica.table.instances {
                if instance.status == Status::Committed && !core.replica.executor.is_executed(id) {
                    return Err(format!("liveness: {node} never executed committed {id}"));
                }
            }
            for (i, (leader, request)) in scenario.requests.iter().enumerate() {
                if *leader != node || !submitted(i) {
                    continue;
                }
                let held = core
                    .replica
                    .table
                    .instances
                    .iter()
                    .find(|(_, instance)| carries(&instance.payload, request.id));
                if let Some((id, instance)) = held {
                    if instance.status != Status::Committed {
                        return Err(format!("liveness: {node} never committed its {id}"));
                    }
                }
                if !crashed && self.replies.get(&request.id).is_none() {
                    return Err(format!(
                        "liveness: {node} never answered {} although it never crashed",
                        request.id
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Observations {
    /// `at` made durable or revealed this decision on `instance`.
    fn on_decision(
        &mut self,
        at: NodeId,
        instance: InstanceId,
        payload: &Batch,
        attributes: &Attributes,
    ) -> Result<(), String> {
        match self.committed.get(&instance) {
            Some((p, a)) if p != payload || a != attributes => Err(format!(
                "agreement: {at} commits {instance} as {payload:?} {attributes:?}, \
                 already committed as {p:?} {a:?}"
            )),
            Some(_) => Ok(()),
            None => {
                self.committed
                    .insert(instance, (payload.clone(), attributes.clone()));
                Ok(())
            }
        }
    }
}

fn carries(batch: &Batch, request: RequestId) -> bool {
    batch.commands().iter().any(|p| p.request == request)
}
