//! What the explorer has seen so far, and the invariants checked against it.
//!
//! Safety, at every state:
//! - agreement: every commit of a command that became durable or was revealed (a Commit
//!   message sent), by any replica before or after a crash, has the same payload and
//!   timestamp. A decision lost in a crash before either is no decision: nobody, the
//!   deciding replica included, can act on it;
//! - execution: a replica executes each command once, with its committed timestamp, and
//!   per key in increasing (timestamp, dot) order; the two conflicting requests run in
//!   the same relative order on every replica that ran both;
//! - replies: a client's answer leaves only after its commit record is durable at the
//!   replica that answers, and equals what every replica computes for that request in
//!   its own execution order.
//!
//! Liveness, after a fair run with a reliable network: every live replica is idle
//! (nothing driven, every command it knows committed and executed); a live coordinator
//! has committed its command, and answered its client unless it crashed meanwhile.

use crate::id::NodeId;
use crate::model_check::{Observe, PairOrder, Replies, Scenario, Subject};
use crate::request::{ClientReply, Response};
use crate::state_machine::{KvStore, StateMachine};
use crate::tempo::{Dot, Message, Payload, Record, Tempo};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Hash)]
pub(crate) struct Observations {
    /// The first commit decision seen per command.
    committed: BTreeMap<Dot, (Payload, u64)>,
    replies: Replies,
    /// The explored requests, and their relative order once a replica ran both.
    order: PairOrder,
}

impl Observe<Tempo> for Observations {
    fn new(scenario: &Scenario<Tempo>) -> Self {
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
            if let Record::Committed { dot, payload, ts } = record {
                self.on_decision(at, *dot, payload, *ts)?;
            }
        }
        Ok(())
    }

    /// A Commit message reveals a decision.
    fn on_send(&mut self, from: NodeId, message: &Message) -> Result<(), String> {
        match message {
            Message::Commit { dot, payload, ts } => self.on_decision(from, *dot, payload, *ts),
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
        let dot = self
            .committed
            .iter()
            .find(|(_, (payload, _))| payload.request == reply.id)
            .map(|(&dot, _)| dot)
            .ok_or_else(|| format!("{from} answered {} before anyone committed it", reply.id))?;
        if !durable.any(|r| matches!(r, Record::Committed { dot: d, .. } if *d == dot)) {
            return Err(format!(
                "{from} answered {} before its commit of {dot:?} was durable",
                reply.id
            ));
        }
        self.replies.record(reply.id, result)
    }

    /// Execution invariants over every live replica.
    fn check_state(&mut self, cores: &[(NodeId, &Tempo, bool)]) -> Result<(), String> {
        for &(node, core, _) in cores {
            let mut kv = KvStore::new();
            let mut seen = BTreeSet::new();
            let mut last_on_key = BTreeMap::new();
            let mut positions = self.order.positions();
            for (position, entry) in core.executed().iter().enumerate() {
                if !seen.insert(entry.request) {
                    return Err(format!("{node} executed {} twice", entry.request));
                }
                let result = kv.apply(&entry.command);
                let order = (entry.ts, entry.dot);
                if let Some(before) = last_on_key.insert(entry.command.key().clone(), order) {
                    if before >= order {
                        return Err(format!(
                            "execution order: {node} runs {:?} at {} after {before:?} on the \
                             same key",
                            entry.dot, entry.ts
                        ));
                    }
                }
                match self.committed.get(&entry.dot) {
                    // Its commit is still on the way to the disk: nobody can see it yet.
                    None => continue,
                    Some((payload, ts)) if payload.command != entry.command || *ts != entry.ts => {
                        return Err(format!(
                            "{node} executed {:?} as {:?} at {}, committed as {:?} at {ts}",
                            entry.dot, entry.command, entry.ts, payload.command
                        ))
                    }
                    Some(_) => {}
                }
                if let Some(answered) = self.replies.get(&entry.request) {
                    if *answered != result {
                        return Err(format!(
                            "{node} computes {result:?} for {}, its client was answered {answered:?}",
                            entry.request
                        ));
                    }
                }
                self.order.note(&mut positions, entry.request, position);
            }
            self.order.check(node, &positions)?;
        }
        Ok(())
    }

    /// Liveness after a fair run: see the module doc.
    fn check_outcome(
        &self,
        scenario: &Scenario<Tempo>,
        cores: &[(NodeId, &Tempo, bool)],
        submitted: &dyn Fn(usize) -> bool,
    ) -> Result<(), String> {
        for &(node, core, crashed) in cores {
            if !core.idle() {
                return Err(format!(
                    "liveness: {node} is not idle ({} commands live, {} waiting)",
                    core.live_commands(),
                    core.replica.executor.backlog()
                ));
            }
            for (i, (coordinator, request)) in scenario.requests.iter().enumerate() {
                if *coordinator != node || !submitted(i) {
                    continue;
                }
                let held = core.replica.cmds.iter().find(|(_, cmd)| {
                    cmd.payload
                        .as_ref()
                        .is_some_and(|p| p.request == request.id)
                });
                if let Some((dot, cmd)) = held {
                    if cmd.decided.is_none() {
                        return Err(format!("liveness: {node} never committed its {dot:?}"));
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
    /// `at` made durable or revealed this decision on `dot`.
    fn on_decision(
        &mut self,
        at: NodeId,
        dot: Dot,
        payload: &Payload,
        ts: u64,
    ) -> Result<(), String> {
        match self.committed.get(&dot) {
            Some((p, t)) if p != payload || *t != ts => Err(format!(
                "agreement: {at} commits {dot:?} as {:?} at {ts}, already committed as {:?} at {t}",
                payload.command, p.command
            )),
            Some(_) => Ok(()),
            None => {
                self.committed.insert(dot, (payload.clone(), ts));
                Ok(())
            }
        }
    }
}
