//! Membership changes through the log (docs/design.md#membership): on a seeded pump, a
//! spare joins as a learner, catches up, is promoted, and the leader removes itself; and
//! on one core, the stall and the refusals.

use super::test_support::*;
use super::*;
use crate::configuration::{
    Change, ChangeError, ProposedChange, Role as ConfigRole, ScheduleError,
};
use crate::protocol::Member;

fn three_of_four() -> MultiPaxosConfig {
    fast().with_initial_members(vec![NodeId(0), NodeId(1), NodeId(2)])
}

fn spare(id: u16) -> Member {
    cluster(4).members[usize::from(id)].clone()
}

fn change_id(seq: u64) -> RequestId {
    RequestId {
        client: crate::id::ClientId(77),
        seq,
    }
}

/// Propose `change` at `at` and run until `at` answers it.
fn change(
    pump: &mut Pump,
    at: u16,
    seq: u64,
    change: Change,
) -> Result<Configuration, ChangeFailure> {
    let at = NodeId(at);
    pump.with_core(at, |core, now| {
        core.propose_change(now, change_id(seq), change)
    });
    for _ in 0..STEPS {
        if let Some(Some(outcome)) = pump.with_core(at, |core, _| core.poll_change_outcome()) {
            assert_eq!(outcome.request, change_id(seq));
            return outcome.result;
        }
        pump.step();
    }
    panic!("seed {}: change {seq} not answered", pump.seed);
}

/// Promote `id`, retrying while the leader says it has not caught up (or `at` has not
/// executed the change that added it yet).
fn promote(pump: &mut Pump, at: u16, first_seq: u64, id: u16) -> Configuration {
    for seq in first_seq..first_seq + 50 {
        match change(pump, at, seq, Change::Promote(NodeId(id))) {
            Ok(configuration) => return configuration,
            Err(ChangeFailure::RefusedByLeader(_) | ChangeFailure::Refused(_)) => {
                pump.run_until(2_000, |_| false);
            }
            Err(other) => panic!("seed {}: promote failed: {other}", pump.seed),
        }
    }
    panic!("seed {}: learner {id} never caught up", pump.seed);
}

/// Replace as an operator does it: a spare joins as a learner, catches up (by the log or a
/// snapshot), is promoted, and the leader then removes itself; it hands off, the others
/// go on with the new configuration, and every replica applied the same slots.
#[test]
fn a_spare_joins_is_promoted_and_the_removed_leader_hands_off() {
    for seed in 0..8 {
        let config = three_of_four().with_compaction(16, 4);
        let mut pump = new_pump(4, config, seed);
        assert!(pump.run_until(STEPS, |p| p.leader() == Some(NodeId(0))));
        submit(&mut pump, 0, 40);
        assert!(pump.run_until(STEPS, |p| answered(p, 0..40)), "seed {seed}");
        assert_eq!(
            pump.up(NodeId(3)).executed_up_to(),
            0,
            "a spare executes nothing"
        );

        let added = change(&mut pump, 1, 1, Change::AddLearner(spare(3))).expect("add");
        assert_eq!(added.epoch(), 1);
        assert_eq!(added.role_of(NodeId(3)), Some(ConfigRole::Learner));
        let promoted = promote(&mut pump, 2, 10, 3);
        assert_eq!(promoted.voter_count(), 4);
        // Promoted only once within `retained_slots` (4) of the leader.
        let caught_up = pump.up(NodeId(3)).executed_up_to();
        let leader = pump.up(NodeId(0)).executed_up_to();
        assert!(
            caught_up > 30 && caught_up + 4 >= leader,
            "seed {seed}: the learner is at {caught_up} of {leader} when promoted"
        );

        let removed = change(&mut pump, 0, 100, Change::Remove(NodeId(0))).expect("remove");
        assert_eq!(removed.role_of(NodeId(0)), None);
        assert!(
            pump.run_until(STEPS, |p| p.leader().is_some_and(|l| l != NodeId(0))),
            "seed {seed}: nobody took over from the removed leader"
        );
        assert!(!pump.up(NodeId(0)).is_leader());
        submit(&mut pump, 40, 40);
        assert!(
            pump.run_until(STEPS, |p| answered(p, 40..80)),
            "seed {seed}"
        );
        let voters: Vec<NodeId> = pump.up(NodeId(3)).configuration().voters().collect();
        assert_eq!(voters, vec![NodeId(1), NodeId(2), NodeId(3)], "seed {seed}");
        assert!(pump.up(NodeId(0)).metrics().get("hand_offs") >= 1);
        pump.assert_agreement();
    }
}

/// One change at a time: two changes proposed against epoch 0 at two replicas are both
/// ordered; the second names an epoch that is gone by its slot and is not applied.
#[test]
fn a_second_change_from_the_same_epoch_is_not_applied() {
    let mut pump = new_pump(4, three_of_four(), 3);
    assert!(pump.run_until(STEPS, |p| p.leader().is_some()));
    let (first, second) = (change_id(1), change_id(2));
    pump.with_core(NodeId(1), |core, now| {
        core.propose_change(now, first, Change::AddLearner(spare(3)))
    });
    pump.with_core(NodeId(2), |core, now| {
        core.propose_change(now, second, Change::Remove(NodeId(1)))
    });
    let mut outcomes = Vec::new();
    for _ in 0..STEPS {
        for at in [1, 2] {
            if let Some(Some(o)) = pump.with_core(NodeId(at), |c, _| c.poll_change_outcome()) {
                outcomes.push(o);
            }
        }
        if outcomes.len() == 2 {
            break;
        }
        pump.step();
    }
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    let applied = outcomes.iter().filter(|o| o.result.is_ok()).count();
    let stale = outcomes.iter().any(|o| {
        matches!(
            o.result,
            Err(ChangeFailure::NotApplied(ScheduleError::Change(
                ChangeError::StaleEpoch {
                    proposed: 0,
                    current: 1
                }
            ))) | Err(ChangeFailure::RefusedByLeader(_))
        )
    });
    assert_eq!(applied, 1, "{outcomes:?}");
    assert!(stale, "{outcomes:?}");
    assert_eq!(pump.up(NodeId(0)).configuration().epoch(), 1);
}

/// A learner cut off from everyone cannot catch up: the leader refuses its promotion
/// with a reason, and nothing changes.
#[test]
fn promoting_a_learner_that_has_not_caught_up_is_refused() {
    let mut pump = new_pump(4, three_of_four(), 5);
    assert!(pump.run_until(STEPS, |p| p.leader() == Some(NodeId(0))));
    change(&mut pump, 0, 1, Change::AddLearner(spare(3))).expect("add");
    pump.isolate(NodeId(3));
    submit(&mut pump, 0, 10);
    assert!(pump.run_until(STEPS, |p| answered(p, 0..10)));
    // Acks it sent before the cut may be known; enough slots later it is behind.
    let config = pump.up(NodeId(0)).config.clone();
    assert!(config.retained_slots > 10);
    match change(&mut pump, 0, 2, Change::Promote(NodeId(3))) {
        Err(ChangeFailure::RefusedByLeader(reason)) => {
            assert!(reason.contains("has not"), "{reason}")
        }
        Ok(configuration) => {
            // Within retained_slots of the leader it may be promoted: the rule is
            // "close behind", which 10 slots are.
            assert_eq!(configuration.voter_count(), 4);
        }
        Err(other) => panic!("{other}"),
    }
    match change(&mut pump, 0, 3, Change::Promote(NodeId(2))) {
        Err(ChangeFailure::Refused(reason)) => assert!(reason.contains("not a learner")),
        other => panic!("{other:?}"),
    }
}

/// The stall: while a change of the voters is not executed, the leader proposes nothing
/// above it; once it is, phase 1 runs again under the new configuration before anything
/// else.
#[test]
fn nothing_is_proposed_above_an_unexecuted_change() {
    let mut leader = elected_leader(
        4,
        MultiPaxosConfig::default().with_initial_members(vec![NodeId(0), NodeId(1), NodeId(2)]),
    );
    leader.propose_change(Time::ZERO, change_id(1), Change::Remove(NodeId(2)));
    let outputs = drain(&mut leader);
    let accepts: Vec<Slot> = sent_now(&outputs)
        .into_iter()
        .filter_map(|(_, m)| match m {
            Message::Accept { slot, value, .. } if value.iter().any(Proposal::is_change) => {
                Some(slot)
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        accepts,
        vec![0, 0],
        "the change goes to both voters, in slot 0"
    );
    leader.handle_request(Time::ZERO, ClientRequest::new(request_id(1), put(1)));
    let outputs = drain(&mut leader);
    assert!(
        !sent_now(&outputs)
            .iter()
            .any(|(_, m)| matches!(m, Message::Accept { .. })),
        "a command was proposed above the unexecuted change: {outputs:?}"
    );
    sync_self(&mut leader, Time::ZERO, &outputs);
    leader.handle_message(
        Time::ZERO,
        NodeId(1),
        Message::Accepted {
            ballot: ballot(1, 0),
            slot: 0,
        },
    );
    // Our own vote was released with the change's Accept; deliver it too.
    leader.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::Accepted {
            ballot: ballot(1, 0),
            slot: 0,
        },
    );
    assert_eq!(leader.configuration().epoch(), 1);
    assert_eq!(leader.metrics().get("phase1_after_change"), 1);
    assert!(!leader.is_leader(), "phase 1 runs again before slot 1");
    let prepares = sent_now(&drain(&mut leader))
        .into_iter()
        .filter(|(_, m)| matches!(m, Message::Prepare { .. }))
        .count();
    assert_eq!(prepares, 0, "the prepare waits for our promise's sync");
    // Its phase 1 may be lost: it has a deadline, and then stands again, higher.
    let ballot_after_change = leader.promised();
    let started = leader.metrics().get("elections_started");
    for _ in 0..100 {
        if leader.metrics().get("elections_started") > started {
            break;
        }
        let deadline = leader.poll_timeout().expect("a deadline while a candidate");
        leader.handle_timeout(deadline);
        drain(&mut leader);
    }
    assert!(
        leader.metrics().get("elections_started") > started,
        "a candidate whose phase 1 after a change got no answer never stood again"
    );
    assert!(leader.promised() > ballot_after_change);
    assert_eq!(
        leader
            .poll_change_outcome()
            .map(|o| o.result.map(|c| c.epoch())),
        Some(Ok(1))
    );
}

/// Slots of `Accept`s sent at once, and whether each holds a change.
fn accepts(outputs: &[Output<Message, Record>]) -> Vec<(Slot, bool)> {
    sent_now(outputs)
        .into_iter()
        .filter_map(|(_, m)| match m {
            Message::Accept { slot, value, .. } => {
                Some((slot, value.iter().any(Proposal::is_change)))
            }
            _ => None,
        })
        .collect()
}

/// Deliver the votes of `voters` (the leader's own included) for `slot` at ballot (1, 0).
fn votes(leader: &mut MultiPaxos, outputs: &[Output<Message, Record>], slot: Slot, voters: &[u16]) {
    sync_self(leader, Time::ZERO, outputs);
    for &voter in voters {
        let accepted = Message::Accepted {
            ballot: ballot(1, 0),
            slot,
        };
        leader.handle_message(Time::ZERO, NodeId(voter), accepted);
    }
}

/// A learner added keeps the voters, so the quorums above it are known: no stall, and
/// once it executes the leader goes on under its ballot (no phase 1 again).
#[test]
fn a_learner_added_does_not_stall_the_leader() {
    let mut leader = elected_leader(
        4,
        MultiPaxosConfig::default().with_initial_members(vec![NodeId(0), NodeId(1), NodeId(2)]),
    );
    leader.propose_change(Time::ZERO, change_id(1), Change::AddLearner(spare(3)));
    leader.handle_request(Time::ZERO, ClientRequest::new(request_id(1), put(1)));
    let outputs = drain(&mut leader);
    let sent = accepts(&outputs);
    assert!(sent.contains(&(0, true)), "{sent:?}");
    assert!(
        sent.contains(&(1, false)),
        "the command waits for nothing: {sent:?}"
    );
    votes(&mut leader, &outputs, 0, &[1, 0]);
    assert_eq!(leader.configuration().epoch(), 1);
    assert!(leader.is_leader(), "no phase 1 again for a learner");
    assert_eq!(leader.metrics().get("phase1_after_change"), 0);
}

/// A new leader's phase 1 covers slots up to the first change it finds, so it re-proposes
/// only up to it. If that change then executes without applying (here: it adds a voter as
/// a learner), the leader still knows nothing of what was accepted above it: it runs
/// phase 1 again rather than propose over a value that may be chosen (t24 seed 56026 with
/// the no-stall rule: replicas applied different commands in one slot).
#[test]
fn a_change_found_by_phase_1_is_followed_by_phase_1_even_if_it_does_not_apply() {
    let mut leader = node(0, 3, MultiPaxosConfig::default());
    leader.handle_timeout(Time::ZERO);
    let outputs = drain(&mut leader);
    sync_self(&mut leader, Time::ZERO, &outputs);
    let stale = ProposedChange {
        from_epoch: 0,
        change: Change::AddLearner(cluster(3).members[1].clone()),
    };
    let found = vec![
        AcceptedEntry {
            slot: 0,
            ballot: ballot(0, 2),
            value: [Proposal::change(change_id(1), NodeId(2), stale)].into(),
            committed: false,
        },
        AcceptedEntry {
            slot: 1,
            ballot: ballot(0, 2),
            value: [proposal(5, 2)].into(),
            committed: false,
        },
    ];
    let promise = Message::Promise {
        ballot: ballot(1, 0),
        accepted: found,
        lease_remaining_us: 0,
        fence: Ballot::default(),
        fences: Vec::new(),
    };
    leader.handle_message(Time::ZERO, NodeId(1), promise);
    assert!(leader.is_leader());
    leader.handle_request(Time::ZERO, ClientRequest::new(request_id(9), put(9)));
    let outputs = drain(&mut leader);
    let sent = accepts(&outputs);
    assert!(
        sent.contains(&(0, true)),
        "the change is re-proposed: {sent:?}"
    );
    assert!(sent.iter().all(|&(slot, _)| slot == 0), "{sent:?}");
    votes(&mut leader, &outputs, 0, &[1, 0]);
    assert_eq!(leader.metrics().get("changes_not_applied"), 1);
    assert_eq!(leader.configuration().epoch(), 0);
    let outputs = drain(&mut leader);
    assert!(
        accepts(&outputs).is_empty(),
        "proposed above the change without phase 1: {outputs:?}"
    );
    assert!(!leader.is_leader());
    assert_eq!(leader.metrics().get("phase1_after_change"), 1);
}

/// A replica built with a static cluster that lacks node 3 (a server replica started
/// before node 3 joined) drops node 3's messages until its configuration names node 3,
/// and answers them afterwards.
#[test]
fn a_member_outside_the_static_cluster_is_heard_once_the_configuration_names_it() {
    let ask = Message::CatchUpRequest { from_slot: 0 };
    let now = Time::from_micros(1_000);
    let mut before = node(1, 3, fast());
    before.handle_message(now, NodeId(3), ask.clone());
    let sent = sent_now(&drain(&mut before));
    assert!(sent.iter().all(|(to, _)| *to != NodeId(3)), "{sent:?}");
    assert_eq!(before.metrics().get("dropped_messages"), 1);

    let added = ProposedChange {
        from_epoch: 0,
        change: Change::AddLearner(spare(3)),
    };
    let configuration = Configuration::initial(&cluster(3)).apply(&added).unwrap();
    let snapshot = Snapshot {
        executed: 5,
        kv: Default::default(),
        sessions: Default::default(),
        configuration,
    };
    let records = vec![Record::Snapshot(Box::new(snapshot))];
    let mut after = MultiPaxos::new(NodeId(1), &cluster(3), fast(), 7, records);
    after.handle_message(now, NodeId(3), ask);
    let sent = sent_now(&drain(&mut after));
    assert!(
        sent.iter()
            .any(|(to, m)| *to == NodeId(3) && matches!(m, Message::Compacted { .. })),
        "{sent:?}"
    );
    assert_eq!(after.metrics().get("dropped_messages"), 0);
}
