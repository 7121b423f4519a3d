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

use crate::command::{Command, CommandResult};
use crate::hashed::HashedMap;
use crate::id::{ClientId, RequestId};
use crate::key_map::KeyMap;
use serde::de::Deserializer;
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::hash::{Hash, Hasher};

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
    results: Results,
    /// Sequence numbers below this are forgotten.
    floor: u64,
    /// The table's clock when this client last executed a request.
    last_active: u64,
}

/// A client's remembered results in ascending sequence order. A client's sequence numbers
/// mostly grow, so results are appended at the back and forgotten at the front: a sorted
/// deque, where a B-tree per client cost a node walk and often an allocation per command.
/// Encoded, hashed and printed as the `BTreeMap<u64, CommandResult>` it replaced.
///
/// The highest sequence number is kept beside the deque: a new request (the usual case)
/// is told apart without reading the deque's buffer, which a closed-loop client last
/// touched a whole round of every other client ago (a cache miss per command per replica
/// in admission, about half of a simulated Multi-Paxos run's time in `admit`).
#[derive(Clone, Default, PartialEq, Eq)]
struct Results {
    entries: VecDeque<(u64, CommandResult)>,
    /// The sequence number at the back of `entries`.
    last: Option<u64>,
}

impl Hash for Results {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.entries.hash(state);
    }
}

impl Results {
    fn find(&self, seq: u64) -> Result<usize, usize> {
        // The ends first: a new request goes after the last, the oldest is forgotten.
        match self.last {
            None => Err(0),
            Some(last) if last < seq => Err(self.entries.len()),
            _ => match self.entries.front() {
                Some(&(first, _)) if first == seq => Ok(0),
                _ => self.entries.binary_search_by_key(&seq, |&(s, _)| s),
            },
        }
    }

    fn get(&self, seq: u64) -> Option<&CommandResult> {
        self.find(seq).ok().map(|i| &self.entries[i].1)
    }

    fn insert(&mut self, seq: u64, result: CommandResult) {
        match self.find(seq) {
            Ok(i) => self.entries[i].1 = result,
            Err(i) => {
                self.entries.insert(i, (seq, result));
                self.last = self.last.max(Some(seq));
            }
        }
    }

    fn remove(&mut self, seq: u64) -> Option<CommandResult> {
        let i = self.find(seq).ok()?;
        let removed = self.entries.remove(i).map(|(_, result)| result);
        if i == self.entries.len() {
            self.last = self.entries.back().map(|&(s, _)| s);
        }
        removed
    }

    fn pop_first(&mut self) -> Option<(u64, CommandResult)> {
        let first = self.entries.pop_front();
        if self.entries.is_empty() {
            self.last = None;
        }
        first
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

impl fmt::Debug for Results {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(s, r)| (s, r)))
            .finish()
    }
}

impl Serialize for Results {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.entries.iter().map(|(s, r)| (s, r)))
    }
}

impl<'de> Deserialize<'de> for Results {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<u64, CommandResult>::deserialize(deserializer)?;
        let last = map.last_key_value().map(|(&s, _)| s);
        Ok(Results {
            entries: map.into_iter().collect(),
            last,
        })
    }
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
///
/// Encoded as the struct of B-tree maps it was (`clients`, `by_activity` as a map from
/// last activity to client, `by_age`, `clock`, `expired_up_to`), so snapshots keep their
/// bytes.
#[derive(Clone, Default)]
pub struct SessionTable {
    /// Looked up by hash (three times per command); encoded, hashed and printed in id
    /// order, so nothing observable depends on the map's order.
    clients: HashedMap<ClientId, ClientSession>,
    /// Clients by last activity, oldest first: each record appends `(clock, client)`; an
    /// entry whose clock is no longer its client's `last_active` is stale, dropped when
    /// it reaches the front, or all at once when they outnumber the live ones (behind a
    /// client idle at the front). A B-tree moved every record: a removal and an insertion.
    by_activity: VecDeque<(u64, ClientId)>,
    /// Every remembered result by the clock it was recorded at, oldest first.
    by_age: VecDeque<(u64, RequestId)>,
    /// Requests recorded so far: the table's clock.
    clock: u64,
    /// The highest client id whose session expired.
    expired_up_to: Option<ClientId>,
    /// Not replicated state: set from the keyspace's configuration.
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
            Some(session) => match session.results.get(request.seq) {
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
        session.last_active = clock;
        self.by_activity.push_back((clock, request.client));
        session.results.insert(request.seq, result);
        while session.results.len() > per_client {
            if let Some((oldest, _)) = session.results.pop_first() {
                session.floor = session.floor.max(oldest + 1);
            }
        }
        self.by_age.push_back((clock, request));
        self.forget_old_results(clock);
        self.expire(clock);
        if self.by_activity.len() > 2 * self.clients.len() + 64 {
            self.drop_stale_activity();
        }
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
                if session.results.remove(request.seq).is_some() {
                    session.floor = session.floor.max(request.seq + 1);
                }
            }
        }
    }

    /// Whether `(active, client)` of `by_activity` is the client's latest activity.
    fn is_live(&self, active: u64, client: ClientId) -> bool {
        self.clients
            .get(&client)
            .is_some_and(|s| s.last_active == active)
    }

    /// Drop the least recently active sessions while there are too many or they are idle
    /// for too long.
    ///
    /// An entry not idle, with no more sessions than allowed, ends the walk whether it is
    /// stale or not: every entry behind it is as recent, so nothing expires. Stale entries
    /// left at the front are dropped by [`Self::drop_stale_activity`], all at once, instead
    /// of a lookup of the front client per command (a cache miss per command per replica).
    fn expire(&mut self, clock: u64) {
        let max_clients = self.limits.max_clients.max(1);
        while let Some(&(active, client)) = self.by_activity.front() {
            let idle = clock - active > self.limits.idle_commands;
            if !idle && self.clients.len() <= max_clients {
                break;
            }
            if !self.is_live(active, client) {
                self.by_activity.pop_front();
                continue;
            }
            self.by_activity.pop_front();
            self.clients.remove(&client);
            self.expired_up_to = self.expired_up_to.max(Some(client));
        }
    }

    fn drop_stale_activity(&mut self) {
        let mut activity = std::mem::take(&mut self.by_activity);
        activity.retain(|&(active, client)| self.is_live(active, client));
        self.by_activity = activity;
    }

    /// The sessions in client order.
    fn sorted_clients(&self) -> BTreeMap<ClientId, &ClientSession> {
        self.clients.iter().map(|(&id, s)| (id, s)).collect()
    }

    /// Each session's last activity and client, oldest first.
    fn activity(&self) -> impl Iterator<Item = (u64, ClientId)> + '_ {
        self.by_activity
            .iter()
            .copied()
            .filter(|&(active, client)| self.is_live(active, client))
    }
}

impl PartialEq for SessionTable {
    fn eq(&self, other: &Self) -> bool {
        self.clients == other.clients
            && self.activity().eq(other.activity())
            && self.by_age == other.by_age
            && self.clock == other.clock
            && self.expired_up_to == other.expired_up_to
            && self.limits == other.limits
    }
}

impl Eq for SessionTable {}

impl Hash for SessionTable {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.sorted_clients().hash(state);
        self.clients.len().hash(state);
        self.activity().for_each(|entry| entry.hash(state));
        self.by_age.hash(state);
        self.clock.hash(state);
        self.expired_up_to.hash(state);
        self.limits.hash(state);
    }
}

impl fmt::Debug for SessionTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionTable")
            .field("clients", &self.sorted_clients())
            .field("by_activity", &BTreeMap::from_iter(self.activity()))
            .field("by_age", &self.by_age)
            .field("clock", &self.clock)
            .field("expired_up_to", &self.expired_up_to)
            .field("limits", &self.limits)
            .finish()
    }
}

/// The encoded form of [`SessionTable`] (the fields of the struct it was, in order).
#[derive(Serialize)]
#[serde(rename = "SessionTable")]
struct EncodedTable<'a, Activity> {
    clients: BTreeMap<ClientId, &'a ClientSession>,
    by_activity: Activity,
    by_age: &'a VecDeque<(u64, RequestId)>,
    clock: u64,
    expired_up_to: Option<ClientId>,
}

/// The decoded form of [`SessionTable`].
#[derive(Deserialize)]
#[serde(rename = "SessionTable")]
struct DecodedTable {
    clients: BTreeMap<ClientId, ClientSession>,
    by_activity: BTreeMap<u64, ClientId>,
    by_age: VecDeque<(u64, RequestId)>,
    clock: u64,
    expired_up_to: Option<ClientId>,
}

/// Live sessions by last activity, encoded as a map.
struct ActivityMap<'a>(&'a SessionTable);

impl Serialize for ActivityMap<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let live = self.0.clients.len();
        let mut map = serializer.serialize_map(Some(live))?;
        for (active, client) in self.0.activity() {
            map.serialize_entry(&active, &client)?;
        }
        map.end()
    }
}

impl Serialize for SessionTable {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        EncodedTable {
            clients: self.sorted_clients(),
            by_activity: ActivityMap(self),
            by_age: &self.by_age,
            clock: self.clock,
            expired_up_to: self.expired_up_to,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SessionTable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let decoded = DecodedTable::deserialize(deserializer)?;
        Ok(Self {
            clients: decoded.clients.into_iter().collect(),
            by_activity: decoded.by_activity.into_iter().collect(),
            by_age: decoded.by_age,
            clock: decoded.clock,
            expired_up_to: decoded.expired_up_to,
            limits: SessionLimits::default(),
        })
    }
}

/// Writes each key remembers by default ([`KeySessions::with_window`]).
pub const KEY_SESSION_WINDOW: usize = 8;

/// Exactly-once execution where only commands on the same key are ordered the same way
/// everywhere (EPaxos, Tempo). A per-client window would decide by the order of unrelated
/// commands, which replicas execute in different orders: a replica catching up after a
/// restart ran a client's new requests before its missed old ones, slid the window past
/// them and skipped them as duplicates, losing acknowledged writes. Two instances of one
/// request carry the same command, so they interfere and every replica orders them the
/// same way; what a key remembers is therefore the same everywhere when a command on it
/// runs.
///
/// The rule (docs/design.md#sessions): each key remembers its last `window` writes (the
/// request and its result), in the key's own execution order. A write found there is
/// answered with its first result. A write not found runs if it is a first send, and is
/// answered `SessionExpired` (never run) if it is a resend: its original may have run
/// and been forgotten, or may still be ordered later. A client sends a first send once
/// and a replica proposes what it received once, so a first send is ordered once and
/// only a resend can meet a forgotten original. Reads change nothing, so they always run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeySessions {
    /// Keys are hashed, not compared ([`KeyMap`]); encoded in key order.
    writes: KeyMap<Window>,
    /// Not replicated state: set from the keyspace's configuration (every replica must
    /// use the same; 0 means [`KEY_SESSION_WINDOW`]).
    #[serde(skip)]
    window: usize,
}

/// One remembered write and its result.
type Remembered = (RequestId, CommandResult);

/// A key's recent writes, oldest first. Most keys are written once by a put (a
/// unique-key load writes every key once), so such a key holds only the request id:
/// its result is `Written`. A window of puts and deletes only keeps their ids alone:
/// an admission that finds none of them (nearly every one) reads 16 bytes per write
/// instead of 48, two cache lines for a full default window instead of six (a tenth
/// of a simulated replica's execution went to that scan).
///
/// Canonical, so equal windows compare and hash equal: `Written` for one put or delete,
/// `Writes` for more, `Many` when some result is not `Written`. Encoded as the enum of
/// `Written(id)` and `Many([(id, result)])` it was (snapshots keep their bytes).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Window {
    /// One put or delete (result `Written`).
    Written(RequestId),
    /// Puts and deletes only (every result `Written`), at least two.
    Writes(Box<[RequestId]>),
    /// Any other window, at most the table's window long (a boxed slice: two words).
    Many(Box<[Remembered]>),
}

impl Window {
    fn result_of(&self, request: RequestId) -> Option<CommandResult> {
        match self {
            Window::Written(id) => (*id == request).then_some(CommandResult::Written),
            Window::Writes(ids) => ids.contains(&request).then_some(CommandResult::Written),
            Window::Many(writes) => writes
                .iter()
                .find(|(id, _)| *id == request)
                .map(|(_, result)| result.clone()),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        match self {
            Window::Written(_) => 1,
            Window::Writes(ids) => ids.len(),
            Window::Many(writes) => writes.len(),
        }
    }

    fn first(request: RequestId, result: CommandResult) -> Window {
        Window::canonical(vec![(request, result)])
    }

    /// The canonical window of `writes` (oldest first).
    fn canonical(writes: Vec<Remembered>) -> Window {
        if writes.is_empty() || writes.iter().any(|(_, r)| *r != CommandResult::Written) {
            return Window::Many(writes.into_boxed_slice());
        }
        match writes[..] {
            [(only, _)] => Window::Written(only),
            _ => Window::Writes(writes.into_iter().map(|(id, _)| id).collect()),
        }
    }

    /// Remember one more write, forgetting the oldest beyond `window`.
    fn push(&mut self, write: Remembered, window: usize) {
        let window = window.max(1);
        match self {
            Window::Writes(ids) if ids.len() == window && write.1 == CommandResult::Written => {
                // Full: the oldest makes room in place.
                ids.rotate_left(1);
                ids[window - 1] = write.0;
            }
            _ => {
                let mut writes = match std::mem::replace(self, Window::Many(Box::new([]))) {
                    Window::Written(first) => vec![(first, CommandResult::Written)],
                    Window::Writes(ids) => {
                        ids.iter().map(|&id| (id, CommandResult::Written)).collect()
                    }
                    Window::Many(writes) => writes.into_vec(),
                };
                writes.push(write);
                let excess = writes.len().saturating_sub(window);
                writes.drain(..excess);
                *self = Window::canonical(writes);
            }
        }
    }
}

/// A window as it is encoded: the derive of the enum before `Writes` existed.
#[derive(Deserialize)]
#[serde(rename = "Window")]
enum WindowCoded {
    Written(RequestId),
    Many(Vec<Remembered>),
}

/// `Writes` encoded as the `Many` it stands for: `(id, Written)` pairs.
struct WritesCoded<'a>(&'a [RequestId]);

impl Serialize for WritesCoded<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|id| (id, &CommandResult::Written)))
    }
}

impl Serialize for Window {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Window::Written(id) => serializer.serialize_newtype_variant("Window", 0, "Written", id),
            Window::Writes(ids) => {
                serializer.serialize_newtype_variant("Window", 1, "Many", &WritesCoded(ids))
            }
            Window::Many(writes) => {
                serializer.serialize_newtype_variant("Window", 1, "Many", writes)
            }
        }
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match WindowCoded::deserialize(deserializer)? {
            WindowCoded::Written(id) => Window::Written(id),
            WindowCoded::Many(writes) => Window::canonical(writes),
        })
    }
}

impl KeySessions {
    /// An empty table remembering [`KEY_SESSION_WINDOW`] writes per key.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty table remembering `window` writes per key (at least 1).
    pub fn with_window(window: usize) -> Self {
        Self {
            window: window.max(1),
            ..Self::default()
        }
    }

    /// Remember `window` writes per key from now on (after a table was restored from a
    /// snapshot).
    pub fn set_window(&mut self, window: usize) {
        self.window = window.max(1);
    }

    /// Writes remembered per key.
    pub fn window(&self) -> usize {
        if self.window == 0 {
            KEY_SESSION_WINDOW
        } else {
            self.window
        }
    }

    /// Whether `command` of `request` must be executed, was already, or can no longer be
    /// judged (`resend`: the client may have sent this request before).
    pub fn admit(&self, request: RequestId, command: &Command, resend: bool) -> Admission {
        if command.is_read() {
            return Admission::Execute;
        }
        let seen = self
            .writes
            .get(command.key())
            .and_then(|recent| recent.result_of(request));
        match seen {
            Some(result) => Admission::Duplicate(result),
            None if resend => Admission::Expired,
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
        let window = self.window();
        // The key is copied only when it is new.
        match self.writes.get_mut(command.key()) {
            Some(recent) => recent.push((request, result), window),
            None => {
                let first = Window::first(request, result);
                self.writes.insert(command.key().clone(), first);
            }
        }
    }
}

#[cfg(test)]
#[path = "session_test.rs"]
mod tests;
