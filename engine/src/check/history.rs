//! Client histories: one entry per operation, with call and return times and outcome.

use crate::command::{Command, CommandResult};
use crate::id::{ClientId, NodeId};
use crate::protocol::CommitPath;
use crate::request::{ClientReply, ClientRequest};
use crate::time::Time;
use serde::{Deserialize, Serialize};

/// Index of an operation in its [`History`].
pub type OpId = usize;

/// One client operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// Who issued it.
    pub client: ClientId,
    /// What it asked.
    pub command: Command,
    /// When it was invoked.
    pub call: Time,
    /// When its outcome reached the client (`None` while pending, or never returned).
    pub ret: Option<Time>,
    /// What happened.
    pub outcome: Outcome,
}

/// The outcome of an operation as the client saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Invoked, no answer yet; checkers treat it as [`Outcome::Unknown`].
    Pending,
    /// Completed with this result.
    Ok(CommandResult),
    /// Definitely did not take effect.
    Fail(String),
    /// Timed out or indefinite: it may or may not have taken effect.
    Unknown,
}

/// Counts of outcomes in a history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistoryCounts {
    /// Completed operations.
    pub ok: usize,
    /// Failed operations.
    pub fail: usize,
    /// Operations with unknown outcome.
    pub unknown: usize,
    /// Operations still pending.
    pub pending: usize,
}

/// A recorded history of client operations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    ops: Vec<Operation>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Record an invocation; returns its id for the completion.
    pub fn invoke(&mut self, client: ClientId, command: Command, at: Time) -> OpId {
        self.ops.push(Operation {
            client,
            command,
            call: at,
            ret: None,
            outcome: Outcome::Pending,
        });
        self.ops.len() - 1
    }

    fn finish(&mut self, op: OpId, at: Time, outcome: Outcome) {
        if let Some(entry) = self.ops.get_mut(op) {
            debug_assert!(
                entry.outcome == Outcome::Pending,
                "operation {op} completed twice"
            );
            entry.ret = Some(at.max(entry.call));
            entry.outcome = outcome;
        }
    }

    /// The operation completed with `result`.
    pub fn complete(&mut self, op: OpId, at: Time, result: CommandResult) {
        self.finish(op, at, Outcome::Ok(result));
    }

    /// The operation definitely did not take effect.
    pub fn fail(&mut self, op: OpId, at: Time, reason: impl Into<String>) {
        self.finish(op, at, Outcome::Fail(reason.into()));
    }

    /// The client gave up at `at`: the outcome is unknown.
    pub fn unknown(&mut self, op: OpId, at: Time) {
        self.finish(op, at, Outcome::Unknown);
    }

    /// Every operation in invocation order.
    pub fn ops(&self) -> &[Operation] {
        &self.ops
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Outcome counts.
    pub fn counts(&self) -> HistoryCounts {
        let mut counts = HistoryCounts::default();
        for op in &self.ops {
            match op.outcome {
                Outcome::Pending => counts.pending += 1,
                Outcome::Ok(_) => counts.ok += 1,
                Outcome::Fail(_) => counts.fail += 1,
                Outcome::Unknown => counts.unknown += 1,
            }
        }
        counts
    }
}

/// Everything a host saw of one client request: the raw material of a [`History`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpRecord {
    /// Who issued it.
    pub client: ClientId,
    /// The client's region index.
    pub region: usize,
    /// The replica it was sent to.
    pub node: NodeId,
    /// The request.
    pub request: ClientRequest,
    /// When the client issued it.
    pub call: Time,
    /// When the client could first learn it committed (commit time at the committing
    /// replica plus the one-way delay from there to the client), and how it committed.
    pub commit: Option<(Time, CommitPath)>,
    /// When the reply reached the client (`None`: it timed out, or is still pending).
    pub ret: Option<Time>,
    /// The reply (`None`: timed out or pending).
    pub reply: Option<ClientReply>,
    /// Whether the client gave up waiting.
    pub timed_out: bool,
}

impl OpRecord {
    /// Time from call to reply.
    pub fn latency(&self) -> Option<std::time::Duration> {
        self.ret.map(|r| r.saturating_since(self.call))
    }

    /// Time from call to the client being able to learn of the commit.
    pub fn commit_latency(&self) -> Option<std::time::Duration> {
        self.commit.map(|(t, _)| t.saturating_since(self.call))
    }
}
