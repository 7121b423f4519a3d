//! Exactly-once execution of client requests.
//!
//! A network can deliver a forwarded request twice and a retry can reach a new leader,
//! so the same request id may be ordered twice. Every replica applies the ordered
//! commands through a [`SessionTable`] that remembers, per client, the results of its
//! recent requests: a repeat is not executed again but answered with the first result.
//! It is part of the replicated state (built only from the ordered commands), so every
//! replica makes the same decision.

use crate::command::CommandResult;
use crate::id::{ClientId, RequestId};
use std::collections::BTreeMap;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn id(seq: u64) -> RequestId {
        RequestId {
            client: ClientId(1),
            seq,
        }
    }

    #[test]
    fn a_repeat_gets_the_first_result_and_is_not_executed() {
        let mut table = SessionTable::new();
        assert_eq!(table.admit(id(3)), Admission::Execute);
        table.record(id(3), CommandResult::Written);
        assert_eq!(
            table.admit(id(3)),
            Admission::Duplicate(Some(CommandResult::Written))
        );
        assert_eq!(
            table.admit(id(4)),
            Admission::Execute,
            "other requests still run"
        );
    }

    #[test]
    fn the_window_is_bounded_and_forgotten_requests_never_run() {
        let mut table = SessionTable::new();
        for seq in 0..(SESSION_WINDOW as u64 + 10) {
            table.record(id(seq), CommandResult::Written);
        }
        assert_eq!(table.clients[&ClientId(1)].results.len(), SESSION_WINDOW);
        assert_eq!(table.admit(id(0)), Admission::Duplicate(None));
    }
}
