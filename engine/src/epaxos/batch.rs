//! Optional batching (off by default: DESIGN.md EPaxos item 7).
//!
//! An instance's value is a [`Batch`] of client commands, executed in order, each client
//! answered on its own. A command leader proposes a request in the very input that
//! brings it, unless [`max_in_flight`](super::EpaxosConfig::max_in_flight) of its own
//! instances are still uncommitted: then requests queue, and each input that frees a
//! place puts up to [`max_batch`](super::EpaxosConfig::max_batch) of the queued ones into
//! one instance (the Multi-Paxos scheme). No timer ever holds a request back. A batch
//! interferes with every command that interferes with one of its commands, so its
//! dependencies are the union of its commands'.

use super::instance::{Attributes, InstanceId, KeyIndex};
use super::messages::Payload;
use super::Epaxos;
use crate::time::Time;
use serde::{Deserialize, Serialize};

/// Requests a leader holds while its window of uncommitted instances is full; more are
/// refused as overloaded.
const MAX_QUEUE: usize = 100_000;

/// The commands of one instance, in execution order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Batch(Vec<Payload>);

impl Batch {
    /// A batch of one command.
    pub fn single(payload: Payload) -> Self {
        Self(vec![payload])
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

    /// Whether running `self` and `other` in either order can differ.
    pub fn interferes(&self, other: &Self) -> bool {
        self.0
            .iter()
            .any(|a| other.0.iter().any(|b| a.command.interferes(&b.command)))
    }
}

impl From<Vec<Payload>> for Batch {
    fn from(commands: Vec<Payload>) -> Self {
        Self(commands)
    }
}

impl KeyIndex {
    /// Attributes for a batch: the union over its commands (excluding `this` instance).
    pub fn attributes_for_batch(&self, this: InstanceId, batch: &Batch) -> Attributes {
        let mut attributes = Attributes::default();
        for payload in batch.commands() {
            attributes.merge(&self.attributes_for(this, &payload.command));
        }
        attributes
    }

    /// Remember every command of a batch.
    pub fn insert_batch(&mut self, id: InstanceId, batch: &Batch, seq: u64) {
        for payload in batch.commands() {
            self.insert(id, &payload.command, seq);
        }
    }
}

impl Epaxos {
    /// A client request for this leader: proposed now, or queued while the window of
    /// uncommitted instances is full. False if the queue is full too.
    pub(super) fn submit(&mut self, now: Time, payload: Payload) -> bool {
        let known = self.queued.iter().any(|p| p.request == payload.request);
        if !known {
            if self.queued.len() >= MAX_QUEUE {
                return false;
            }
            self.queued.push_back(payload);
        }
        self.propose_queued(now);
        true
    }

    /// Fill free places of the window with batches of queued requests.
    pub(super) fn propose_queued(&mut self, now: Time) {
        while !self.queued.is_empty() && self.has_room() {
            let take = self.queued.len().min(self.config.max_batch.max(1));
            let batch: Vec<Payload> = self.queued.drain(..take).collect();
            if batch.len() > 1 {
                self.metrics.incr("batches");
                self.metrics.add("batched_commands", batch.len() as u64);
            }
            self.lead(now, Batch::from(batch));
        }
    }

    /// Whether fewer than `max_in_flight` own instances are proposed and uncommitted
    /// (counted only when everything led here could be one).
    fn has_room(&self) -> bool {
        let limit = self.config.max_in_flight;
        self.leading.len() < limit
            || self
                .leading
                .iter()
                .filter(|(id, l)| id.leader == self.id && !l.recovery)
                .count()
                < limit
    }
}
