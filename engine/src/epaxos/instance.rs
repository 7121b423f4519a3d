//! Value types: instance ids, ballots, attributes, statuses, client commands as
//! replicated ([`Payload`]), instance values ([`Batch`]) and one instance as a replica
//! knows it ([`Instance`]). Nothing here imports another file of the folder.

use crate::command::Command;
use crate::configuration::ProposedChange;
use crate::id::{ClientId, NodeId, RequestId};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::Arc;

/// `(command leader, slot)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InstanceId {
    /// The replica that leads it.
    pub leader: NodeId,
    /// The leader's own counter.
    pub slot: u64,
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.leader.0, self.slot)
    }
}

/// A ballot for one instance: `(round, node)`. The command leader starts at
/// `(0, leader)`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Ballot {
    /// Increases with every new owner of the instance.
    pub round: u32,
    /// The replica running the instance at this ballot.
    pub node: NodeId,
}

impl Ballot {
    /// The ballot the command leader of `id` starts it at.
    pub fn initial(id: InstanceId) -> Self {
        Self {
            round: 0,
            node: id.leader,
        }
    }
}

/// Ordering attributes: a sequence number and the instances it depends on, and the
/// configuration epoch the instance belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Attributes {
    /// Orders commands inside a strongly connected component.
    pub seq: u64,
    /// Interfering instances that must execute first (or in the same component).
    pub deps: Deps,
    /// The epoch its leader started it in: the configuration whose voters size and count
    /// its quorums for its whole life (`epochs.rs`). Fixed by the leader; every replica
    /// reports the same one, so it rides along wherever attributes go (PreAccept, Accept,
    /// TryPreAccept, Commit, recovery reports, durable records).
    pub epoch: u64,
}

impl Attributes {
    /// Union of dependencies and maximum sequence number (slow-path merge). Attributes
    /// computed here from the key index carry no epoch (0) and take the other's.
    pub fn merge(&mut self, other: &Self) {
        self.seq = self.seq.max(other.seq);
        self.deps.extend(other.deps.iter().copied());
        self.epoch = self.epoch.max(other.epoch);
    }
}

/// The instances a command must follow: sorted, without repeats.
///
/// Dependencies are few (per interfering key, the latest write of each leader: usually
/// none or one, a few per leader on a hot key) and travel in every PreAccept, Accept and
/// Commit to every peer and in every record. As a `BTreeSet` each set cost a node
/// allocation, cloned per message and dropped per record (about 5% of a simulated
/// `gcp-13` EPaxos run). A sorted vector holds the same elements in the same order, so it
/// compares, hashes, prints and encodes (a sequence) as the set did; decoding sorts and
/// drops repeats, as decoding into the set did.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deps(Vec<InstanceId>);

impl Deps {
    /// No dependency.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `id`; whether it was new.
    pub fn insert(&mut self, id: InstanceId) -> bool {
        match self.0.binary_search(&id) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, id);
                true
            }
        }
    }

    /// Drop `id`; whether it was there.
    pub fn remove(&mut self, id: &InstanceId) -> bool {
        match self.0.binary_search(id) {
            Ok(at) => {
                self.0.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    /// Whether `id` is one.
    pub fn contains(&self, id: &InstanceId) -> bool {
        self.0.binary_search(id).is_ok()
    }

    /// In order.
    pub fn iter(&self) -> std::slice::Iter<'_, InstanceId> {
        self.0.iter()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Extend<InstanceId> for Deps {
    fn extend<I: IntoIterator<Item = InstanceId>>(&mut self, ids: I) {
        self.0.extend(ids);
        self.0.sort_unstable();
        self.0.dedup();
    }
}

impl FromIterator<InstanceId> for Deps {
    fn from_iter<I: IntoIterator<Item = InstanceId>>(ids: I) -> Self {
        let mut deps = Self::new();
        deps.extend(ids);
        deps
    }
}

impl<'a> IntoIterator for &'a Deps {
    type Item = &'a InstanceId;
    type IntoIter = std::slice::Iter<'a, InstanceId>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Debug for Deps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(&self.0).finish()
    }
}

impl Serialize for Deps {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(&self.0)
    }
}

impl<'de> Deserialize<'de> for Deps {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Vec::<InstanceId>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

/// How far an instance got at this replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Status {
    /// Phase 1 attributes recorded.
    PreAccepted,
    /// Phase 2 attributes recorded.
    Accepted,
    /// Final attributes known.
    Committed,
}

/// A client command as replicated: which request it answers and what it does. An
/// instance carries a [`Batch`] of them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Payload {
    /// The client request (for exactly-once execution and the reply).
    pub request: RequestId,
    /// The client may have sent it before (`ClientRequest::resend`; sessions).
    pub resend: bool,
    /// What to execute.
    pub command: Command,
    /// A membership switch (docs/design.md, "EPaxos epochs", rule 2): executing it makes
    /// the next epoch's configuration. Its command is the no-op read; it interferes with
    /// every command and travels alone in its instance.
    pub change: Option<ProposedChange>,
}

/// Client id reserved for no-ops that recovery commits when no replica saw the command.
pub const NOOP_CLIENT: ClientId = ClientId(u64::MAX);

impl Payload {
    /// A command that changes nothing and interferes with no client key: a read of the
    /// empty key under the reserved client id. Nobody is answered for it.
    pub fn noop() -> Self {
        Self {
            request: RequestId {
                client: NOOP_CLIENT,
                seq: 0,
            },
            resend: false,
            command: Command::Get { key: Vec::new() },
            change: None,
        }
    }

    /// The switch that applies `change`, proposed for the operator's `request`.
    pub fn switch(request: RequestId, change: ProposedChange) -> Self {
        Self {
            request,
            change: Some(change),
            ..Self::noop()
        }
    }

    /// Whether this is a recovery no-op.
    pub fn is_noop(&self) -> bool {
        self.request.client == NOOP_CLIENT && self.change.is_none()
    }

    /// Whether this is a membership switch.
    pub fn is_switch(&self) -> bool {
        self.change.is_some()
    }
}

/// The commands of one instance, in execution order (batching: `batch.rs`). Immutable and
/// shared: the leader's record, each PreAccept, Accept and Commit it sends and each
/// replica's copy are one allocation (the simulator spent a tenth of its CPU cloning and
/// dropping per-peer copies). Encoded as a plain sequence.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Batch(Arc<[Payload]>);

impl Batch {
    /// A batch of one command.
    pub fn single(payload: Payload) -> Self {
        Self(Arc::new([payload]))
    }

    /// The recovery no-op (see [`Payload::noop`]).
    pub fn noop() -> Self {
        Self::single(Payload::noop())
    }

    /// Whether nothing in it answers a client.
    pub fn is_noop(&self) -> bool {
        self.0.iter().all(Payload::is_noop)
    }

    /// The commands, in execution order.
    pub fn commands(&self) -> &[Payload] {
        &self.0
    }

    /// Whether it holds a membership switch.
    pub fn is_switch(&self) -> bool {
        self.0.iter().any(Payload::is_switch)
    }

    /// Whether running `self` and `other` in either order can differ (a switch: always).
    pub fn interferes(&self, other: &Self) -> bool {
        if self.is_switch() || other.is_switch() {
            return true;
        }
        self.0
            .iter()
            .any(|a| other.0.iter().any(|b| a.command.interferes(&b.command)))
    }
}

impl From<Vec<Payload>> for Batch {
    fn from(commands: Vec<Payload>) -> Self {
        Self(commands.into())
    }
}

/// One instance as this replica knows it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Instance {
    pub(super) payload: Batch,
    pub(super) attributes: Attributes,
    pub(super) status: Status,
    /// Highest ballot promised for this instance (docs/design.md#epaxos, rule 1).
    pub(super) promised: Ballot,
    /// Ballot the current attributes were recorded in (kept apart from `promised`).
    pub(super) accepted_in: Ballot,
    /// The attributes are the command leader's own initial-ballot ones (a fast-path
    /// witness: docs/design.md#epaxos, rule 2).
    pub(super) witness: bool,
}

impl Instance {
    pub(super) fn new(
        payload: Batch,
        attributes: Attributes,
        status: Status,
        ballot: Ballot,
    ) -> Self {
        Self {
            payload,
            attributes,
            status,
            promised: ballot,
            accepted_in: ballot,
            witness: false,
        }
    }
}

#[cfg(test)]
#[path = "instance_test.rs"]
mod tests;
