//! Exactly-once execution of client requests.
//!
//! A network can deliver a forwarded request twice and a retry can reach a new leader,
//! so the same request id may be ordered twice. Every replica applies the ordered
//! commands through a [`SessionTable`] that remembers, per client, the results of its
//! recent requests: a repeat is not executed again but answered with the first result.
//! It is part of the replicated state (built only from the ordered commands), so every
//! replica makes the same decision.
//!
//! The table is bounded (docs/design.md#sessions): each client keeps its most recent
//! results, a client idle for too long (counted in executed commands, which every replica
//! counts alike) or the least recently active one beyond a count loses its session, and
//! an ordered request the table can no longer judge is answered
//! [`RequestError::SessionExpired`](crate::request::RequestError::SessionExpired), never
//! executed.

use crate::command::{Command, CommandResult, Key};
use crate::id::{ClientId, RequestId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// How much a [`SessionTable`] remembers. Every replica of a keyspace must use the same
/// limits (they decide what is executed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionLimits {
    /// Results remembered per client at most (default 1,024): a client with more requests
    /// in flight than this may see its oldest ones answered `SessionExpired`.
    pub per_client: usize,
    /// Executed commands a result is remembered for (default 50,000): a retry that comes
    /// back later than that is answered `SessionExpired`.
    pub result_commands: u64,
    /// Client sessions remembered (default 100,000); beyond it the least recently active
    /// session expires.
    pub max_clients: usize,
    /// Executed commands after which an idle client's session expires (default
    /// 10,000,000).
    pub idle_commands: u64,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            per_client: 1_024,
            result_commands: 50_000,
            max_clients: 100_000,
            idle_commands: 10_000_000,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct ClientSession {
    results: BTreeMap<u64, CommandResult>,
    /// Sequence numbers below this are forgotten.
    floor: u64,
    /// The table's clock when this client last executed a request.
    last_active: u64,
}

/// What to do with an ordered request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// First time: execute it.
    Execute,
    /// Already executed: answer with this result.
    Duplicate(CommandResult),
    /// The table no longer remembers whether it ran (an old retry of an expired session,
    /// or of a request older than its client's window): answer
    /// [`RequestError::SessionExpired`](crate::request::RequestError::SessionExpired) and
    /// do not execute it.
    Expired,
}

/// Per-client memory of executed requests, bounded by [`SessionLimits`].
///
/// Client ids grow with the time a client was created (the client library takes them
/// from the clock; the simulator numbers clients in order), so when a session expires the
/// table keeps only the highest expired id: a request from an unknown client at or below
/// it belongs to an expired session, one above it to a new client.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionTable {
    clients: BTreeMap<ClientId, ClientSession>,
    /// Clients by last activity (the clock is unique per recorded request).
    by_activity: BTreeMap<u64, ClientId>,
    /// Every remembered result by the clock it was recorded at, oldest first.
    by_age: VecDeque<(u64, RequestId)>,
    /// Requests recorded so far: the table's clock.
    clock: u64,
    /// The highest client id whose session expired.
    expired_up_to: Option<ClientId>,
    /// Not replicated state: set from the keyspace's configuration.
    #[serde(skip)]
    limits: SessionLimits,
}

impl SessionTable {
    /// An empty table with the default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty table with `limits`.
    pub fn with_limits(limits: SessionLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Use `limits` from now on (after a table was restored from a snapshot).
    pub fn set_limits(&mut self, limits: SessionLimits) {
        self.limits = limits;
    }

    /// The limits in force.
    pub fn limits(&self) -> SessionLimits {
        self.limits
    }

    /// Client sessions remembered.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether no session is remembered.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Whether `request` must be executed, was already, or can no longer be judged.
    pub fn admit(&self, request: RequestId) -> Admission {
        match self.clients.get(&request.client) {
            None if self.expired_up_to >= Some(request.client) => Admission::Expired,
            None => Admission::Execute,
            Some(session) => match session.results.get(&request.seq) {
                Some(result) => Admission::Duplicate(result.clone()),
                None if request.seq < session.floor => Admission::Expired,
                None => Admission::Execute,
            },
        }
    }

    /// Remember the result of an executed request, then expire what the limits no
    /// longer allow.
    pub fn record(&mut self, request: RequestId, result: CommandResult) {
        self.clock += 1;
        let clock = self.clock;
        let per_client = self.limits.per_client.max(1);
        let session = self.clients.entry(request.client).or_default();
        self.by_activity.remove(&session.last_active);
        session.last_active = clock;
        self.by_activity.insert(clock, request.client);
        session.results.insert(request.seq, result);
        while session.results.len() > per_client {
            if let Some((oldest, _)) = session.results.pop_first() {
                session.floor = session.floor.max(oldest + 1);
            }
        }
        self.by_age.push_back((clock, request));
        self.forget_old_results(clock);
        self.expire(clock);
    }

    /// Forget results recorded more than `result_commands` ago: their requests, and any
    /// older one of the same client not executed yet, are expired from then on.
    fn forget_old_results(&mut self, clock: u64) {
        while let Some(&(at, request)) = self.by_age.front() {
            if clock - at <= self.limits.result_commands {
                break;
            }
            self.by_age.pop_front();
            if let Some(session) = self.clients.get_mut(&request.client) {
                if session.results.remove(&request.seq).is_some() {
                    session.floor = session.floor.max(request.seq + 1);
                }
            }
        }
    }

    /// Drop the least recently active sessions while there are too many or they are idle
    /// for too long.
    fn expire(&mut self, clock: u64) {
        while let Some((&active, &client)) = self.by_activity.first_key_value() {
            let idle = clock - active > self.limits.idle_commands;
            if !idle && self.clients.len() <= self.limits.max_clients.max(1) {
                break;
            }
            self.by_activity.remove(&active);
            self.clients.remove(&client);
            self.expired_up_to = self.expired_up_to.max(Some(client));
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeySessions {
    writes: BTreeMap<Key, Window>,
}

/// One remembered write and its result.
type Remembered = (RequestId, CommandResult);

/// A key's recent writes, oldest first. Most keys are written once (a unique-key load
/// writes every key once), so one write is held inline: a deque per key cost a heap
/// block more per key ever written, in every replica. Encoded as the sequence of its
/// writes, as the deque it replaces was (snapshots keep their format).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(from = "VecDeque<Remembered>")]
enum Window {
    One(Remembered),
    Many(VecDeque<Remembered>),
}

impl Window {
    fn iter(&self) -> impl Iterator<Item = &Remembered> {
        let (one, many) = match self {
            Window::One(write) => (Some(write), None),
            Window::Many(writes) => (None, Some(writes.iter())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }

    fn len(&self) -> usize {
        match self {
            Window::One(_) => 1,
            Window::Many(writes) => writes.len(),
        }
    }

    /// Remember one more write, forgetting the oldest beyond [`KEY_SESSION_WINDOW`].
    fn push(&mut self, write: Remembered) {
        match self {
            Window::One(first) => {
                let mut writes = VecDeque::with_capacity(2);
                writes.push_back(first.clone());
                writes.push_back(write);
                *self = Window::Many(writes);
            }
            Window::Many(writes) => {
                writes.push_back(write);
                if writes.len() > KEY_SESSION_WINDOW {
                    writes.pop_front();
                }
            }
        }
    }
}

impl From<VecDeque<Remembered>> for Window {
    fn from(mut writes: VecDeque<Remembered>) -> Self {
        if writes.len() == 1 {
            if let Some(write) = writes.pop_front() {
                return Window::One(write);
            }
        }
        Window::Many(writes)
    }
}

impl Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The length up front: postcard cannot encode a sequence of unknown length (and
        // the chained iterator does not tell it).
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for write in self.iter() {
            seq.serialize_element(write)?;
        }
        seq.end()
    }
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
            Some((_, result)) => Admission::Duplicate(result.clone()),
            None => Admission::Execute,
        }
    }

    /// Keys with remembered writes.
    pub fn keys(&self) -> usize {
        self.writes.len()
    }

    /// Remember the result of an executed command.
    pub fn record(&mut self, request: RequestId, command: &Command, result: CommandResult) {
        if command.is_read() {
            return;
        }
        // The key is copied only when it is new.
        match self.writes.get_mut(command.key()) {
            Some(recent) => recent.push((request, result)),
            None => {
                self.writes
                    .insert(command.key().clone(), Window::One((request, result)));
            }
        }
    }
}

#[cfg(test)]
#[path = "session_test.rs"]
mod tests;
