//! Membership changes of a Dynamo keyspace: adopting ring states (from an operator or by
//! gossip), rebuilding what depends on the ring, and answering operators
//! (docs/design.md#dynamo-membership).
//!
//! ```text
//!  operator ─▶ propose_change at any member ─▶ RingState::apply ─▶ adopt (epoch+1)
//!  heartbeat ─▶ Ring{state} to every peer ─▶ a newer state is adopted
//!  adopt: rebuild read/write rings, re-index ranges and Merkle trees, restart
//!         anti-entropy (its RangeIds are the old ring's), recompute foreign keys,
//!         (re)start the bootstrap if joining; persist the state
//!  outcome: AddLearner when the joiner is a member, Promote when it is normal (it
//!           promotes itself once bootstrapped), Remove when the node left the ring
//! ```

use crate::configuration::{Change, ChangeError, ChangeFailure, ChangeOutcome};
use crate::dynamo::messages::{Message, Record};
use crate::dynamo::ring::{RangeId, Ring};
use crate::dynamo::ring_state::{MemberStatus, RingState};
use crate::dynamo::{Dynamo, MerkleIndex};
use crate::id::{NodeId, RequestId};
use crate::time::Time;

/// Operator changes remembered while waiting for their outcome.
const PENDING_CHANGES: usize = 64;

/// Every `(range, other owner)` pair of the ranges `id` owns in `ring`.
pub(crate) fn exchange_pairs(ring: &Ring, id: NodeId) -> Vec<(RangeId, NodeId)> {
    ring.ranges_of(id)
        .into_iter()
        .flat_map(|range| {
            ring.preference(range)
                .iter()
                .copied()
                .filter(move |&p| p != id)
                .map(move |p| (range, p))
                .collect::<Vec<_>>()
        })
        .collect()
}

impl Dynamo {
    /// The versioned ring membership.
    pub fn ring_state(&self) -> &RingState {
        &self.state
    }

    /// The ring of the owners after the move in progress (the read ring when none is).
    pub fn write_ring(&self) -> &Ring {
        self.next_ring.as_ref().unwrap_or(&self.ring)
    }

    /// Whether this node is pulling its future ranges from the current owners.
    pub fn is_bootstrapping(&self) -> bool {
        self.moves.bootstrapping()
    }

    /// Keys held that this node does not own after the move (still to hand off).
    pub fn foreign_keys(&self) -> usize {
        self.moves.foreign.len()
    }

    /// Rebuild everything derived from the ring state (no records, no messages).
    pub(crate) fn rebuild_rings(&mut self) {
        let (vnodes, replicas) = (self.config.vnodes, self.config.replicas);
        self.ring = Ring::new(&self.state.read_membership(), vnodes, replicas);
        self.next_ring = self
            .state
            .in_transition()
            .then(|| Ring::new(&self.state.write_membership(), vnodes, replicas));
        let ring = &self.ring;
        self.store.reindex(|key| ring.range_of(key));
        self.merkle = MerkleIndex::new(self.config.merkle_fanout, self.config.merkle_depth);
        for (key, entry) in self.store.iter() {
            self.merkle
                .update(entry.range, key, None, Some(entry.digest));
        }
        self.anti_entropy.reset(exchange_pairs(&self.ring, self.id));
        if let Some(region) = self.state.region_of(self.id) {
            self.region = region.to_owned();
        }
        let foreign = self
            .store
            .iter()
            .map(|(key, _)| key.clone())
            .filter(|key| !self.owns_next(key))
            .collect();
        self.moves.foreign = foreign;
        let joining = self.state.status_of(self.id) == Some(MemberStatus::Joining);
        let sources = joining.then(|| {
            self.ring
                .members()
                .filter(|&m| m != self.id)
                .collect::<Vec<_>>()
        });
        self.moves.reset(self.state.epoch(), sources);
    }

    /// Adopt `state` (newer than the current one): rebuild, persist, tell the peers.
    pub(crate) fn set_state(&mut self, now: Time, state: RingState) {
        self.state = state;
        self.rebuild_rings();
        for member in self.state.members() {
            self.detector.watch(member.id, now);
        }
        self.metrics.incr("ring_changes");
        self.persist(
            vec![Record::Ring {
                state: self.state.clone(),
            }],
            Vec::new(),
        );
        self.check_changes();
        self.gossip();
    }

    /// The heartbeat: a plain ping while the ring never changed (every node built the
    /// same one), the whole ring state once it has.
    pub(crate) fn gossip(&mut self) {
        let message = if self.state.epoch() == 0 {
            Message::Ping
        } else {
            Message::Ring {
                state: self.state.clone(),
            }
        };
        for peer in self.peers() {
            self.outbox.send(peer, message.clone());
        }
    }

    /// Every node this one talks to: the static cluster and the ring's members.
    pub(crate) fn peers(&self) -> Vec<NodeId> {
        let mut peers: Vec<NodeId> = self
            .cluster
            .ids()
            .chain(self.state.members().iter().map(|m| m.id))
            .filter(|&p| p != self.id)
            .collect();
        peers.sort();
        peers.dedup();
        peers
    }

    /// A peer's ring state: adopt it if newer.
    pub(crate) fn on_ring(&mut self, now: Time, state: RingState) {
        if state.is_newer_than(&self.state) {
            self.set_state(now, state);
        }
    }

    /// An operator's change (see the module doc).
    pub(crate) fn propose_ring_change(&mut self, now: Time, request: RequestId, change: Change) {
        if let Change::Promote(id) = change {
            let result = match self.state.status_of(id) {
                Some(MemberStatus::Normal) => Ok(self.state.to_configuration()),
                Some(MemberStatus::Joining) => Err(ChangeFailure::RefusedByLeader(format!(
                    "node {} is still streaming its ranges from the current owners; it \
                     becomes an owner by itself once they are in",
                    id.0
                ))),
                Some(MemberStatus::Leaving) => Err(ChangeError::NotLearner(id).into()),
                None => Err(ChangeError::NotMember(id).into()),
            };
            return self.outcomes.push_back(ChangeOutcome { request, result });
        }
        match self.state.apply(&change) {
            Err(failure) => self.outcomes.push_back(ChangeOutcome {
                request,
                result: Err(failure),
            }),
            Ok(next) => {
                if self.changes.len() >= PENDING_CHANGES {
                    self.changes.remove(0);
                }
                self.changes.push((request, change));
                self.set_state(now, next);
            }
        }
    }

    /// Answer every pending change the current state fulfils.
    fn check_changes(&mut self) {
        let state = &self.state;
        let (done, pending): (Vec<_>, Vec<_>) =
            self.changes
                .drain(..)
                .partition(|(_, change)| match change {
                    Change::AddLearner(member) => state.contains(member.id),
                    Change::Remove(id) => !state.contains(*id),
                    Change::Promote(id) => state.status_of(*id) == Some(MemberStatus::Normal),
                });
        self.changes = pending;
        for (request, _) in done {
            self.outcomes.push_back(ChangeOutcome {
                request,
                result: Ok(self.state.to_configuration()),
            });
        }
    }
}
