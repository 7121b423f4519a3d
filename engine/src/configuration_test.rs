use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

fn member(id: u16) -> Member {
    Member {
        id: NodeId(id),
        region: format!("r{id}"),
    }
}

fn change(from_epoch: u64, change: Change) -> ProposedChange {
    ProposedChange { from_epoch, change }
}

fn three() -> Configuration {
    Configuration::initial(&Membership::local(3))
}

/// Two quorums of sizes `a` of `old` and `b` of `new` always intersect iff the smallest
/// possible intersection, `a + b - |old ∪ new|`, is positive.
fn majorities_intersect(old: &Configuration, new: &Configuration) -> bool {
    let union: BTreeSet<NodeId> = old.voters().chain(new.voters()).collect();
    old.majority() + new.majority() > union.len()
}

#[test]
fn initial_configuration_is_epoch_zero_with_every_member_a_voter() {
    let config = three();
    assert_eq!(config.epoch(), 0);
    assert_eq!(config.voters().collect::<Vec<_>>(), [0, 1, 2].map(NodeId));
    assert_eq!(config.majority(), 2);
    assert_eq!(config.epaxos_fast_quorum(), 2);
    assert_eq!(config.role_of(NodeId(1)).map(Role::as_str), Some("voter"));
}

#[test]
fn a_learner_is_a_member_whose_vote_does_not_count_until_promoted() {
    let config = three();
    let added = config
        .apply(&change(0, Change::AddLearner(member(3))))
        .expect("add");
    assert_eq!(added.epoch(), 1);
    assert_eq!(added.role_of(NodeId(3)), Some(Role::Learner));
    assert!(!added.counts_vote(NodeId(3)));
    assert_eq!(added.voter_count(), 3);
    assert_eq!(added.majority(), 2, "a learner does not grow the quorum");

    let promoted = added
        .apply(&change(1, Change::Promote(NodeId(3))))
        .expect("promote");
    assert_eq!(promoted.epoch(), 2);
    assert!(promoted.counts_vote(NodeId(3)));
    assert_eq!(promoted.majority(), 3);
}

#[test]
fn two_changes_from_the_same_epoch_cannot_both_apply() {
    let config = three();
    let first = change(0, Change::AddLearner(member(3)));
    let concurrent = change(0, Change::Remove(NodeId(0)));
    let next = config.apply(&first).expect("first change");
    assert_eq!(
        next.apply(&concurrent),
        Err(ChangeError::StaleEpoch {
            proposed: 0,
            current: 1
        })
    );
}

#[test]
fn invalid_changes_are_refused_with_the_reason() {
    let config = three();
    assert_eq!(
        config.apply(&change(0, Change::AddLearner(member(2)))),
        Err(ChangeError::AlreadyMember(NodeId(2)))
    );
    assert_eq!(
        config.apply(&change(0, Change::Promote(NodeId(1)))),
        Err(ChangeError::NotLearner(NodeId(1)))
    );
    assert_eq!(
        config.apply(&change(0, Change::Promote(NodeId(9)))),
        Err(ChangeError::NotMember(NodeId(9)))
    );
    assert_eq!(
        config.apply(&change(0, Change::Remove(NodeId(9)))),
        Err(ChangeError::NotMember(NodeId(9)))
    );
    let one = Configuration::initial(&Membership::local(1));
    assert_eq!(
        one.apply(&change(0, Change::Remove(NodeId(0)))),
        Err(ChangeError::LastVoter(NodeId(0)))
    );
    let message = ChangeError::StaleEpoch {
        proposed: 3,
        current: 4,
    }
    .to_string();
    assert!(message.contains("one change at a time"), "{message}");
}

#[test]
fn replace_never_has_fewer_voters_than_before() {
    let mut config = three();
    let steps = [
        Change::AddLearner(member(7)),
        Change::Promote(NodeId(7)),
        Change::Remove(NodeId(1)),
    ];
    for step in steps {
        let next = config
            .apply(&change(config.epoch(), step))
            .expect("replace step");
        assert!(next.voter_count() >= 3);
        assert!(majorities_intersect(&config, &next));
        config = next;
    }
    assert_eq!(config.voters().collect::<Vec<_>>(), [0, 2, 7].map(NodeId));
    assert_eq!(config.epoch(), 3);
}

#[test]
fn the_intersection_check_has_teeth_two_voters_added_at_once_do_not_intersect() {
    let old = three();
    let jump = Configuration::initial(&Membership::local(5));
    assert!(!majorities_intersect(&old, &jump));
}

proptest! {
    /// Any sequence of changes `apply` accepts keeps the majorities of each pair of
    /// consecutive configurations intersecting, and bumps the epoch by one per change.
    #[test]
    fn accepted_changes_keep_consecutive_majorities_intersecting(
        steps in proptest::collection::vec((0u8..3, 0u16..8), 1..40)
    ) {
        let mut config = three();
        for (kind, id) in steps {
            let step = match kind {
                0 => Change::AddLearner(member(id)),
                1 => Change::Promote(NodeId(id)),
                _ => Change::Remove(NodeId(id)),
            };
            if let Ok(next) = config.apply(&change(config.epoch(), step)) {
                prop_assert_eq!(next.epoch(), config.epoch() + 1);
                prop_assert!(next.voter_count() >= 1);
                prop_assert!(majorities_intersect(&config, &next));
                config = next;
            }
        }
    }
}

#[test]
fn a_change_in_slot_i_governs_the_slots_after_i() {
    let mut schedule = ConfigSchedule::new(three());
    schedule
        .record(10, &change(0, Change::AddLearner(member(3))))
        .expect("record");
    assert_eq!(schedule.at_slot(0).epoch(), 0);
    assert_eq!(schedule.at_slot(10).epoch(), 0, "the change's own slot");
    assert_eq!(schedule.at_slot(11).epoch(), 1);
    schedule
        .record(11, &change(1, Change::Promote(NodeId(3))))
        .expect("the next slot may hold the next change");
    assert_eq!(schedule.at_slot(11).epoch(), 1);
    assert_eq!(schedule.at_slot(12).epoch(), 2);
    assert_eq!(schedule.at_slot(u64::MAX).majority(), 3);
    assert_eq!(schedule.current().epoch(), 2);
}

#[test]
fn the_schedule_refuses_a_change_not_after_the_one_in_effect_or_from_an_old_epoch() {
    let mut schedule = ConfigSchedule::new(three());
    schedule
        .record(5, &change(0, Change::AddLearner(member(3))))
        .expect("record");
    assert_eq!(
        schedule.record(4, &change(1, Change::Promote(NodeId(3)))),
        Err(ScheduleError::NotAfter {
            slot: 4,
            in_effect_from: 6
        })
    );
    assert_eq!(
        schedule.record(8, &change(0, Change::Remove(NodeId(2)))),
        Err(ScheduleError::Change(ChangeError::StaleEpoch {
            proposed: 0,
            current: 1
        }))
    );
    assert_eq!(schedule.current().epoch(), 1, "refusals change nothing");
}

#[test]
fn forgetting_below_a_floor_keeps_the_configuration_that_governs_it() {
    let mut schedule = ConfigSchedule::new(three());
    schedule
        .record(5, &change(0, Change::AddLearner(member(3))))
        .expect("record");
    schedule
        .record(9, &change(1, Change::Promote(NodeId(3))))
        .expect("record");
    schedule.forget_below(7);
    assert_eq!(schedule.at_slot(7).epoch(), 1);
    assert_eq!(schedule.at_slot(10).epoch(), 2);
    schedule.forget_below(100);
    assert_eq!(schedule.at_slot(100).epoch(), 2);
    assert_eq!(schedule.current().epoch(), 2);
}

#[test]
fn a_leader_proposes_nothing_above_an_unchosen_change() {
    assert!(ConfigSchedule::may_propose(12, None));
    assert!(ConfigSchedule::may_propose(12, Some(12)));
    assert!(ConfigSchedule::may_propose(11, Some(12)));
    assert!(!ConfigSchedule::may_propose(13, Some(12)));
}
