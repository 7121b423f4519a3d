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

#[cfg(test)]
mod key_session_tests {
    use super::*;

    fn id(client: u64, seq: u64) -> RequestId {
        RequestId {
            client: ClientId(client),
            seq,
        }
    }

    fn put(key: &str) -> Command {
        Command::Put {
            key: key.into(),
            value: b"v".to_vec(),
        }
    }

    #[test]
    fn a_repeated_write_gets_the_first_result_and_reads_run_again() {
        let mut table = KeySessions::new();
        assert_eq!(table.admit(id(1, 3), &put("k")), Admission::Execute);
        table.record(id(1, 3), &put("k"), CommandResult::Written);
        assert_eq!(
            table.admit(id(1, 3), &put("k")),
            Admission::Duplicate(Some(CommandResult::Written))
        );
        let get = Command::Get { key: "k".into() };
        table.record(id(1, 4), &get, CommandResult::Value(None));
        assert_eq!(table.admit(id(1, 4), &get), Admission::Execute);
    }

    /// The regression: the decision for an old request must not depend on how many of
    /// the client's newer requests, on other keys, ran first.
    #[test]
    fn newer_requests_on_other_keys_never_make_an_old_one_a_duplicate() {
        let mut table = KeySessions::new();
        for seq in 1_000..5_000 {
            let key = format!("k{seq}");
            table.record(id(1, seq), &put(&key), CommandResult::Written);
        }
        assert_eq!(table.admit(id(1, 7), &put("k7")), Admission::Execute);
    }

    #[test]
    fn each_key_remembers_a_bounded_window() {
        let mut table = KeySessions::new();
        for seq in 0..(KEY_SESSION_WINDOW as u64 + 5) {
            table.record(id(seq, 0), &put("hot"), CommandResult::Written);
        }
        assert_eq!(table.writes[&b"hot".to_vec()].len(), KEY_SESSION_WINDOW);
        assert_eq!(table.admit(id(0, 0), &put("hot")), Admission::Execute);
        assert!(matches!(
            table.admit(id(KEY_SESSION_WINDOW as u64 + 4, 0), &put("hot")),
            Admission::Duplicate(Some(_))
        ));
    }
}
