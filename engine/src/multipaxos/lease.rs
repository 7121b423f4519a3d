//! Leases and confirmation rounds (docs/design.md#leases).
//!
//! ```text
//!  holder (leader, or quorum-lease holder) ── round r at local t ──▶ every peer
//!  grantor: ballot is what it follows ─▶ granted_until = now + D ─▶ ack / grant
//!  holder: a phase-2-sized quorum granted r ─▶ lease until t + D·(1-ρ)/(1+ρ)
//!  candidate: every promise says how long its grant may still be held (r);
//!             it leads only after now + r·(1+ρ)/(1-ρ)
//! ```
//! Only durations measured on one clock are compared: an offset between clocks is
//! harmless, a rate error within the drift bound ρ is absorbed by the two factors. A
//! restarted replica forgot its grants, so at its first input it assumes it granted one a
//! moment ago. A round also confirms leadership: no phase-1 quorum of a higher ballot
//! existed when it was sent, which is what read indexes and freshness proofs rest on.

use super::messages::{Ballot, Slot};
use super::MultiPaxos;
use crate::id::{NodeId, RequestId};
use crate::time::Time;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// Open rounds a holder keeps (older unconfirmed ones are forgotten: a later round
/// confirms more).
const MAX_OPEN_ROUNDS: usize = 32;
/// Freshness claims a follower keeps while it executes up to them.
const MAX_CLAIMS: usize = 64;

/// `d` shortened so that, on a clock running up to ρ slow, it still ends before `d` of a
/// clock running up to ρ fast ends: `d·(1-ρ)/(1+ρ)`.
pub(super) fn shrink(d: Duration, ppm: u32) -> Duration {
    let ppm = u128::from(ppm);
    let us = d.as_micros() * (1_000_000 - ppm) / (1_000_000 + ppm);
    Duration::from_micros(u64::try_from(us).unwrap_or(u64::MAX))
}

/// `d` lengthened the other way: `d·(1+ρ)/(1-ρ)`, rounded up.
pub(super) fn stretch(d: Duration, ppm: u32) -> Duration {
    let ppm = u128::from(ppm.min(999_999));
    let num = d.as_micros() * (1_000_000 + ppm);
    let den = 1_000_000 - ppm;
    Duration::from_micros(u64::try_from(num.div_ceil(den)).unwrap_or(u64::MAX))
}

/// A read waiting for a leader round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Waiter {
    /// One of the leader's own reads.
    Local(RequestId),
    /// A follower's request for a read index.
    Remote(NodeId, RequestId),
}

/// One confirmation round a holder sent.
#[derive(Clone, Debug)]
pub(super) struct Round {
    pub(super) ballot: Ballot,
    pub(super) sent_at: Time,
    /// The holder's read index when it sent the round (leader rounds).
    pub(super) index: Slot,
    /// Per peer, its clock at its last ack before the round left (leader rounds).
    pub(super) echoes: BTreeMap<NodeId, Time>,
    votes: BTreeSet<NodeId>,
    /// Quorum-lease rounds: the leader's next free slot, once it granted.
    pub(super) log_end: Option<Slot>,
}

/// The rounds of one holder.
#[derive(Clone, Debug, Default)]
pub(super) struct Rounds {
    next: u64,
    open: BTreeMap<u64, Round>,
    /// The latest confirmed round.
    pub(super) confirmed: Option<(u64, Round)>,
}

impl Rounds {
    /// Open a round; `self_id` votes at once.
    pub(super) fn open(
        &mut self,
        self_id: NodeId,
        ballot: Ballot,
        now: Time,
        index: Slot,
        echoes: BTreeMap<NodeId, Time>,
    ) -> u64 {
        self.next += 1;
        let round = self.next;
        self.open.insert(
            round,
            Round {
                ballot,
                sent_at: now,
                index,
                echoes,
                votes: BTreeSet::from([self_id]),
                log_end: None,
            },
        );
        while self.open.len() > MAX_OPEN_ROUNDS {
            self.open.pop_first();
        }
        round
    }

    /// The open round sent at `now`, if any (reads arriving together share one).
    pub(super) fn sent_now(&self, now: Time) -> Option<u64> {
        self.open
            .iter()
            .next_back()
            .filter(|(_, r)| r.sent_at == now)
            .map(|(&n, _)| n)
    }

    /// Count `from`'s vote for `round` under `ballot`; the round once confirmed by
    /// `needed` voters (and by `required`, if set, with its `log_end`). Confirming a round
    /// also closes every older one.
    pub(super) fn vote(
        &mut self,
        round: u64,
        ballot: Ballot,
        from: NodeId,
        needed: usize,
        required: Option<NodeId>,
        log_end: Option<Slot>,
    ) -> Option<Round> {
        let open = self.open.get_mut(&round)?;
        if open.ballot != ballot {
            return None;
        }
        open.votes.insert(from);
        if log_end.is_some() && Some(from) == required {
            open.log_end = log_end;
        }
        let complete =
            open.votes.len() >= needed && required.is_none_or(|_| open.log_end.is_some());
        if !complete {
            return None;
        }
        let done = open.clone();
        self.open = self.open.split_off(&(round + 1));
        if self.confirmed.as_ref().is_none_or(|(r, _)| *r < round) {
            self.confirmed = Some((round, done.clone()));
        }
        Some(done)
    }
}

/// A quorum lease this replica holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct HeldLease {
    pub(super) ballot: Ballot,
    pub(super) until: Time,
    /// Serve only once every slot below is executed.
    pub(super) log_end: Slot,
}

/// Lease state every replica keeps (grantor, quorum-lease holder, freshness).
#[derive(Clone, Debug, Default)]
pub(super) struct Leases {
    /// The latest end of a grant this replica gave (own clock).
    pub(super) granted_until: Time,
    /// Quorum-lease rounds this replica sent as a holder.
    pub(super) rounds: Rounds,
    /// The quorum lease held, if any.
    pub(super) held: Option<HeldLease>,
    /// Freshness claims `(index, at)` not yet executed up to.
    claims: VecDeque<(Slot, Time)>,
    /// This replica's state is proven to contain every write completed before this time
    /// (own clock).
    pub(super) fresh_as_of: Option<Time>,
}

impl Leases {
    /// A claim that every write completed before `at` is below `index`.
    pub(super) fn claim(&mut self, index: Slot, at: Time) {
        if self.claims.len() >= MAX_CLAIMS {
            self.claims.pop_front();
        }
        self.claims.push_back((index, at));
    }

    /// Claims now covered by the executed prefix raise the freshness proof. In place:
    /// it runs after every input, and rebuilding the queue allocated each time.
    pub(super) fn settle(&mut self, executed: Slot) {
        let mut fresh = self.fresh_as_of;
        self.claims.retain(|&(index, at)| {
            let covered = executed >= index;
            if covered {
                fresh = Some(fresh.map_or(at, |f| f.max(at)));
            }
            !covered
        });
        self.fresh_as_of = fresh;
    }
}

impl MultiPaxos {
    /// Grant a lease from now (to whoever asked: the grant only says "until then I count
    /// as holding a lease someone may be using").
    pub(super) fn grant(&mut self, now: Time) {
        if let Some(length) = self.config.lease {
            self.leases.granted_until = self.leases.granted_until.max(now + length);
        }
    }

    /// How long a grant of ours may still be in use, in microseconds of our clock.
    pub(super) fn lease_remaining_us(&self, now: Time) -> u64 {
        let left = self.leases.granted_until.saturating_since(now);
        u64::try_from(left.as_micros()).unwrap_or(u64::MAX)
    }

    /// Until when a candidate that heard `remaining_us` now must wait before leading.
    pub(super) fn lease_wait_end(&self, now: Time, remaining_us: u64) -> Time {
        if remaining_us == 0 {
            return now;
        }
        now + stretch(
            Duration::from_micros(remaining_us),
            self.config.clock_drift_ppm,
        )
    }

    /// A lease confirmed by a round sent at `sent_at` lasts until this time.
    pub(super) fn lease_end(&self, sent_at: Time) -> Option<Time> {
        let length = self.config.lease?;
        Some(sent_at + shrink(length, self.config.clock_drift_ppm))
    }

    /// The freshness proof at `now`: how old (local microseconds) the state may be.
    pub(super) fn proven_age_us(&self, now: Time) -> Option<u64> {
        let since = self.leases.fresh_as_of?;
        u64::try_from(now.saturating_since(since).as_micros()).ok()
    }

    /// Whether a staleness bound of `bound_us` real microseconds covers `age_us` local
    /// ones (a slow clock under-counts real time by up to ρ).
    pub(super) fn within_bound(&self, age_us: u64, bound_us: u64) -> bool {
        let ppm = u64::from(self.config.clock_drift_ppm);
        let allowed = u128::from(bound_us) * u128::from(1_000_000 - ppm.min(999_999)) / 1_000_000;
        u128::from(age_us) <= allowed
    }

    /// We just promised a candidate that must wait out our grant: do not stand against
    /// it before it could have led (liveness only: a lease longer than the election
    /// timeout would otherwise let followers depose every waiting candidate).
    pub(super) fn hold_off_election(&mut self, now: Time) {
        let remaining = self.lease_remaining_us(now);
        if remaining == 0 || !self.timers.is_armed(super::Timer::Election) {
            return;
        }
        let wait = self.lease_wait_end(now, remaining) + self.config.election_timeout;
        if self
            .timers
            .deadline(super::Timer::Election)
            .is_some_and(|d| d < wait)
        {
            self.timers.set(super::Timer::Election, wait);
        }
    }

    /// Whether this replica holds quorum leases at all.
    pub(super) fn is_lease_holder(&self) -> bool {
        self.config.lease.is_some() && self.config.quorum_lease_holders.contains(&self.id)
    }
}
