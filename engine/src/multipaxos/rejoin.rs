//! A replica that lost its disk (docs/design.md#rejoin-rule).
//!
//! Its former self may have promised ballots and accepted values it no longer remembers;
//! voting as if it had not would let two values be chosen. So it votes for nothing and
//! instead stands, like a candidate, with a ballot `F` above everything a quorum of its
//! peers promised, without counting its own promise:
//!
//! ```text
//!  rejoin ─▶ persist Rejoining (a restart resumes this) ─▶ RejoinPrepare{F} ─▶ peers
//!  peer: F >= promised? persist Promised(F), Fence{node, F}; Promise{F, accepted, fences}
//!        (below its compaction point: Compacted, and the rejoiner fetches a snapshot)
//!  rejoiner: max(phase-1 quorum, n - phase-1 quorum + 1) promises from peers ─▶ persist
//!        Fence{self, F}; lead at F like any new leader (adopt the highest-ballot values)
//! ```
//! Every promise carries the promiser's own fence and the fences it knows; a candidate
//! counts a promise only from a replica's latest incarnation, so a promise the former
//! self sent before the disk was lost cannot complete a phase 1 after the rejoin.

use super::election::Candidacy;
use super::messages::{Ballot, Message, Record, Slot};
use super::{MultiPaxos, Role};
use crate::id::NodeId;
use crate::protocol::Effect;
use crate::time::Time;

impl MultiPaxos {
    /// The host rebuilt us without records because the disk was lost.
    pub(super) fn begin_rejoin(&mut self, now: Time) {
        let _ = now;
        if self.config.unsafe_rejoin_without_fence {
            self.metrics.incr("rejoin_rule_skipped");
            return;
        }
        self.rejoining = true;
        self.fresh = false;
        self.metrics.incr("rejoins");
        self.outbox.persist(vec![Record::Rejoining], Vec::new());
    }

    /// This replica's own fence (`Ballot::default()` if it never lost its disk).
    pub(super) fn own_fence(&self) -> Ballot {
        self.fences.get(&self.id).copied().unwrap_or_default()
    }

    /// Promises a rejoin needs from peers: a phase-1 quorum, and enough to meet every
    /// phase-1 quorum in a replica other than us (with flexible quorums, two phase-1
    /// quorums need not meet).
    fn rejoin_quorum(&self) -> usize {
        let n = self.configuration().voter_count();
        let q1 = self.quorums.phase1;
        q1.max(n + 1 - q1).min(n.saturating_sub(1)).max(1)
    }

    /// Stand (again) for the rejoin with a ballot above anything seen. The ballot is
    /// durable before its prepare leaves, like any candidate's (never reused), but our
    /// in-memory promise stays where it was: a rejoining replica follows the leader it
    /// hears and nacks nobody until it has rejoined.
    pub(super) fn start_rejoin(&mut self, now: Time) {
        let ballot = Ballot {
            round: self.promised.max(self.highest_seen).round + 1,
            node: self.id,
        };
        self.highest_seen = ballot;
        self.metrics.incr("rejoin_rounds");
        self.reset_election_deadline(now);
        self.timers
            .set(super::Timer::Election, now + self.config.election_timeout);
        let from_slot = self.log.commit_point();
        self.role = Role::Candidate(Candidacy::new(
            ballot,
            from_slot,
            self.rejoin_quorum(),
            self.fences.clone(),
            true,
        ));
        let then = self
            .peers()
            .map(|to| Effect::Send {
                to,
                message: Message::RejoinPrepare { ballot, from_slot },
            })
            .collect();
        self.outbox.persist(vec![Record::Promised(ballot)], then);
    }

    /// A peer that lost its disk asks us to promise its rejoin ballot and to remember
    /// that its earlier votes are void.
    pub(super) fn on_rejoin_prepare(
        &mut self,
        now: Time,
        from: NodeId,
        ballot: Ballot,
        from_slot: Slot,
    ) {
        if from != ballot.node || from == self.id {
            self.drop_message(true);
            return;
        }
        if self.rejoining {
            self.metrics.incr("votes_withheld");
            return;
        }
        if ballot < self.promised {
            self.nack(from);
            return;
        }
        if self.refuse_below_floor(from, from_slot) {
            return;
        }
        let mut records = Vec::new();
        if ballot > self.promised {
            self.observe_higher_ballot(now, ballot);
            self.promised = ballot;
            records.push(Record::Promised(ballot));
        }
        let fence = self.fences.entry(from).or_default();
        if ballot > *fence {
            *fence = ballot;
            records.push(Record::Fence { node: from, ballot });
        }
        self.promise(now, from, ballot, from_slot, records);
    }

    /// A quorum of peers promised our rejoin ballot: from now on we are the incarnation
    /// fenced at it, and vote again.
    pub(super) fn finish_rejoin(&mut self, ballot: Ballot) {
        self.rejoining = false;
        self.promised = self.promised.max(ballot);
        self.fences.insert(self.id, ballot);
        self.metrics.incr("rejoins_completed");
        self.outbox.persist(
            vec![Record::Fence {
                node: self.id,
                ballot,
            }],
            Vec::new(),
        );
    }
}
