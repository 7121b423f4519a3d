//! Leader election: phase 1 with a fresh ballot after the leader falls silent.

use super::leader::Leadership;
use super::messages::{AcceptedEntry, Ballot, Batch, Message, Record, Slot};
use super::{MultiPaxos, Role};
use crate::id::NodeId;
use crate::protocol::Effect;
use crate::quorum::VoteSet;
use crate::time::Time;
use std::collections::BTreeMap;

pub(super) struct Candidacy {
    pub(super) ballot: Ballot,
    pub(super) from_slot: Slot,
    votes: VoteSet,
    /// Per slot, the value with the highest ballot reported so far (or a chosen one).
    best: BTreeMap<Slot, (Ballot, bool, Batch)>,
}

impl MultiPaxos {
    /// Stand for election with a ballot above anything seen.
    pub(super) fn start_election(&mut self, now: Time) {
        let ballot = Ballot {
            round: self.promised.round + 1,
            node: self.id,
        };
        self.promised = ballot;
        self.leader_hint = None;
        self.metrics.incr("elections_started");
        self.reset_election_deadline(now);
        let from_slot = self.log.commit_point();
        self.role = Role::Candidate(Candidacy {
            ballot,
            from_slot,
            votes: VoteSet::new(self.quorums.phase1),
            best: BTreeMap::new(),
        });
        if self.config.unsafe_skip_phase1 {
            // Deliberately broken (tests only): lead with what this replica alone
            // accepted, without learning what a quorum accepted.
            let own = self.log.accepted_from(from_slot);
            if let Role::Candidate(candidacy) = &mut self.role {
                for entry in own {
                    candidacy
                        .best
                        .insert(entry.slot, (entry.ballot, entry.committed, entry.value));
                }
            }
            self.outbox
                .persist(vec![Record::Promised(ballot)], Vec::new());
            self.become_leader(now);
            return;
        }
        self.outbox.persist(
            vec![Record::Promised(ballot)],
            vec![Effect::Send {
                to: self.id,
                message: Message::OwnPromiseDurable { ballot },
            }],
        );
        self.broadcast(Message::Prepare { ballot, from_slot });
    }

    /// Phase 1b arrived (or our own durable promise).
    pub(super) fn on_promise(
        &mut self,
        now: Time,
        from: NodeId,
        ballot: Ballot,
        accepted: Vec<AcceptedEntry>,
    ) {
        let Role::Candidate(candidacy) = &mut self.role else {
            return;
        };
        if candidacy.ballot != ballot {
            return;
        }
        for entry in accepted {
            if entry.slot < candidacy.from_slot {
                continue;
            }
            let better = match candidacy.best.get(&entry.slot) {
                None => true,
                Some((_, true, _)) => false,
                Some((best_ballot, false, _)) => entry.committed || entry.ballot > *best_ballot,
            };
            if better {
                candidacy
                    .best
                    .insert(entry.slot, (entry.ballot, entry.committed, entry.value));
            }
        }
        if candidacy.votes.add(from) {
            self.become_leader(now);
        }
    }

    /// Phase 1 succeeded: re-propose every slot that may hold a chosen value, fill gaps
    /// with no-ops, then serve.
    pub(super) fn become_leader(&mut self, now: Time) {
        let Role::Candidate(candidacy) = std::mem::replace(&mut self.role, Role::Follower) else {
            return;
        };
        let end = candidacy
            .best
            .keys()
            .next_back()
            .map_or(candidacy.from_slot, |s| s + 1)
            .max(if self.config.unsafe_skip_phase1 {
                self.log.end()
            } else {
                candidacy.from_slot
            });
        self.role = Role::Leader(Leadership::new(candidacy.ballot, end));
        self.leader_hint = Some(self.id);
        self.metrics.incr("elections_won");
        for slot in candidacy.from_slot..end {
            if self.log.is_committed(slot) {
                continue;
            }
            let value = candidacy
                .best
                .get(&slot)
                .map(|(_, _, v)| v.clone())
                .unwrap_or_default();
            self.propose_in(now, slot, value);
        }
        self.send_heartbeats(now);
        self.release_waiting(now);
    }
}
