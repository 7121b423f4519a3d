//! Membership changes: an operator's change becomes a switch, a command on the switch
//! lane whose execution makes the next configuration and ends its epoch's range of
//! timestamps (docs/design.md#tempo-epochs-the-rule-and-why-it-is-safe).

use super::coordinator::{self, Drives};
use super::gc::Collector;
use super::messages::Payload;
use super::replica::Replica;
use crate::configuration::{Change, ChangeFailure, ChangeOutcome, ProposedChange};
use crate::id::RequestId;
use crate::time::Time;

/// Retry timeouts a change may take before its outcome is reported unknown.
const CHANGE_TIMEOUT_ROUNDS: u32 = 20;

/// Propose `change` from this replica's configuration: refused at once if it does not
/// apply there, else a switch whose outcome is reported once it executed here.
pub(super) fn propose_change(
    (r, drives, collector): (&mut Replica, &mut Drives, &Collector),
    now: Time,
    request: RequestId,
    change: Change,
) {
    let current = r.configuration();
    let proposed = ProposedChange {
        from_epoch: current.epoch(),
        change,
    };
    let refusal = if !current.counts_vote(r.id) {
        Some(ChangeFailure::Refused(format!(
            "this replica is not a voter of epoch {}: ask a voter",
            current.epoch()
        )))
    } else if !r.fence.may_propose() {
        Some(ChangeFailure::Refused(
            "this replica is rejoining after a lost disk".to_owned(),
        ))
    } else if let Some(refusal) = refusal_by_rule(r, &proposed) {
        Some(refusal)
    } else if let Change::Promote(learner) = proposed.change {
        // Liveness, not safety: a learner still fetching state would vote on nothing.
        (!collector.caught_up(learner, &r.collected)).then(|| {
            ChangeFailure::RefusedByLeader(format!(
                "learner {learner} has not caught up yet (no report of executing what its \
                 peers collected)"
            ))
        })
    } else {
        None
    };
    if let Some(failure) = refusal {
        r.change_outcomes.push_back(ChangeOutcome {
            request,
            result: Err(failure),
        });
        return;
    }
    let switch = Payload::switch(request, proposed, r.fast_quorum.clone());
    let dot = coordinator::start(r, drives, now, switch);
    let deadline = now + r.config.retry_timeout * CHANGE_TIMEOUT_ROUNDS;
    r.pending_changes.insert(request, (dot, deadline));
    r.metrics.incr("switches_proposed");
}

/// Why `proposed` may not be ordered in this replica's configuration, if it may not.
fn refusal_by_rule(r: &Replica, proposed: &ProposedChange) -> Option<ChangeFailure> {
    let current = r.configuration();
    let next = match current.apply(proposed) {
        Ok(next) => next,
        Err(error) => return Some(ChangeFailure::from(error)),
    };
    if r.config.check(next.voter_count()).is_err() {
        return Some(ChangeFailure::Refused(format!(
            "Tempo with f = {} needs at least {} voters; this change would leave {}",
            r.config.f,
            2 * r.config.f + 1,
            next.voter_count()
        )));
    }
    None
}

/// Report the changes proposed here that have not ended by their deadline as unknown.
pub(super) fn give_up_late_changes(r: &mut Replica, now: Time) {
    let late: Vec<RequestId> = r
        .pending_changes
        .iter()
        .filter(|(_, (_, deadline))| now >= *deadline)
        .map(|(&request, _)| request)
        .collect();
    for request in late {
        r.pending_changes.remove(&request);
        r.change_outcomes.push_back(ChangeOutcome {
            request,
            result: Err(ChangeFailure::Timeout),
        });
    }
}
