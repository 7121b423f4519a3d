//! Exactly-once execution of client requests.
//!
//! A network can deliver a forwarded request twice and a retry can reach a new leader,
//! so the same request id may be ordered twice. Every replica applies the ordered
//! commands through a [`SessionTable`] that remembers, per client, the results of its
//! recent requests: a repeat is not executed again but answered with the first result.
//! It is part of the replicated state (built only from the ordered commands), so every
//! replica makes the same decision.

use crate::command::{Command, CommandResult, Key};
use crate::id::{ClientId, RequestId};
use std::collections::{BTreeMap, VecDeque};

/// Recent requests remembered per client. A request older than the window that is not
/// remembered is treated as already handled (its client gave up on it long ago, so its
/// outcome was unknown to it either way).
pub const SESSION_WINDOW: usize = 1_024;

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct ClientSession {
    results: BTreeMap<u64, CommandResult>,
    /// Sequence numbers below this are forgotten.
    floor: u64,
}

/// What to do with an ordered request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// First time: execute it.
    Execute,
    /// Already executed: answer with this result (`None` if it fell out of the window).
    Duplicate(Option<CommandResult>),
}

/// Per-client memory of executed requests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SessionTable {
    clients: BTreeMap<ClientId, ClientSession>,
}

impl SessionTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `request` must be executed or was already.
    pub fn admit(&self, request: RequestId) -> Admission {
        match self.clients.get(&request.client) {
            None => Admission::Execute,
            Some(session) => match session.results.get(&request.seq) {
                Some(result) => Admission::Duplicate(Some(result.clone())),
                None if request.seq < session.floor => Admission::Duplicate(None),
                None => Admission::Execute,
            },
        }
    }

    /// Remember the result of an executed request.
    pub fn record(&mut self, request: RequestId, result: CommandResult) {
        let session = self.clients.entry(request.client).or_default();
        session.results.insert(request.seq, result);
        while session.results.len() > SESSION_WINDOW {
            if let Some((&oldest, _)) = session.results.iter().next() {
                session.results.remove(&oldest);
                session.floor = session.floor.max(oldest + 1);
            }
        }
    }
}

/// Writes remembered per key by [`KeySessions`].
pub const KEY_SESSION_WINDOW: usize = 1_024;

/// Exactly-once execution where only commands on the same key are ordered the same way
/// everywhere (EPaxos). A per-client window would decide by the order of unrelated
/// commands, which replicas execute in different orders: a replica catching up after a
/// restart ran a client's new requests before its missed old ones, slid the window past
/// them and skipped them as duplicates, losing acknowledged writes. Two instances of one
/// request carry the same command, so they interfere and every replica orders them the
/// same way; remembering recent writes per key therefore gives every replica the same
/// decision. Reads change nothing, so a repeated read simply runs again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KeySessions {
    writes: BTreeMap<Key, VecDeque<(RequestId, CommandResult)>>,
}

impl KeySessions {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `command` of `request` must be executed or was already (a repeat of a
    /// write that fell out of its key's window runs again).
    pub fn admit(&self, request: RequestId, command: &Command) -> Admission {
        if command.is_read() {
            return Admission::Execute;
        }
        let seen = self
            .writes
            .get(command.key())
            .and_then(|recent| recent.iter().find(|(id, _)| *id == request));
        match seen {
            Some((_, result)) => Admission::Duplicate(Some(result.clone())),
            None => Admission::Execute,
        }
    }

    /// Remember the result of an executed command.
    pub fn record(&mut self, request: RequestId, command: &Command, result: CommandResult) {
        if command.is_read() {
            return;
        }
        let recent = self.writes.entry(command.key().clone()).or_default();
        recent.push_back((request, result));
        if recent.len() > KEY_SESSION_WINDOW {
            recent.pop_front();
        }
    }
}

#[cfg(test)]
#[path = "session_test.rs"]
mod tests;
