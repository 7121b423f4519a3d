//! Membership switches (docs/design.md, "EPaxos epochs"): a switch is a barrier whose
//! execution makes the next epoch; replicas past an instance's epoch refuse to compute
//! its attributes, and its leader restarts the commands in the new epoch.

use super::test_support::{
    assert_same_order, attrs, fast, id, idle, outputs, payload, replica, Pump, STEPS,
};
use super::{Batch, Epaxos, Message};
use crate::configuration::{Change, ChangeFailure, Configuration, ProposedChange};
use crate::id::{NodeId, RequestId};
use crate::protocol::{Effect, Member, Membership, Output, Protocol};
use crate::request::ClientRequest;
use crate::test_host::{self, Order};
use crate::time::Time;
use std::time::Duration;

/// Four replicas of which 0, 1 and 2 form epoch 0 and 3 is a spare.
fn pump_with_spare(seed: u64) -> Pump {
    let members = Membership::local(4);
    let config = fast().with_initial_members(vec![NodeId(0), NodeId(1), NodeId(2)]);
    let build: test_host::Build<Epaxos> = Box::new(move |id, incarnation, records| {
        let node_seed = seed ^ (u64::from(id.0) << 32) ^ (incarnation << 48);
        Epaxos::new(id, &members, config.clone(), node_seed, records)
    });
    Pump::new(4, seed, Order::Shuffled, build)
}

fn operator(seq: u64) -> RequestId {
    RequestId {
        client: crate::id::ClientId(u64::MAX),
        seq,
    }
}

fn learner(id: u16) -> Change {
    Change::AddLearner(Member {
        id: NodeId(id),
        region: "local".into(),
    })
}

/// Propose `change` at `at` (operator request `seq`).
fn propose(pump: &mut Pump, at: u16, seq: u64, change: Change) {
    pump.with_core(NodeId(at), |core, now| {
        core.propose_change(now, operator(seq), change)
    });
}

/// Run until `nodes` all executed the switch to `epoch` (an operator asks the next
/// change of a replica that knows the last one).
fn reach_epoch(pump: &mut Pump, nodes: &[u16], epoch: u64) {
    let reached = |p: &Pump| {
        nodes
            .iter()
            .all(|&n| p.up(NodeId(n)).configuration().epoch() >= epoch)
    };
    assert!(
        pump.run_until(STEPS, reached),
        "seed {}: epoch {epoch}",
        pump.seed
    );
}

/// Promote `learner` at `at` (operator requests from `seq`), again while it is refused
/// because the learner has not caught up.
fn promote(pump: &mut Pump, at: u16, seq: u64, learner: u16) -> Configuration {
    for attempt in 0..200 {
        propose(pump, at, seq + attempt, Change::Promote(NodeId(learner)));
        match outcome(pump, at) {
            Ok(configuration) => return configuration,
            // Not caught up yet: let the cluster run (messages too, not only timers).
            Err(ChangeFailure::RefusedByLeader(_)) => idle(pump, Duration::from_millis(100)),
            Err(other) => panic!("seed {}: promote failed: {other}", pump.seed),
        }
    }
    panic!("seed {}: learner {learner} never caught up", pump.seed)
}

/// Run until `at` reports how its change ended.
fn outcome(pump: &mut Pump, at: u16) -> Result<Configuration, ChangeFailure> {
    let node = NodeId(at);
    let ended = pump.run_until(STEPS, |p| !p.up(node).replica.change_outcomes.is_empty());
    assert!(ended, "seed {}: the change at {at} never ended", pump.seed);
    let ended = pump.with_core(node, |core, _| core.poll_change_outcome());
    ended.flatten().expect("an outcome").result
}

/// Puts `first..first + count` through `nodes` in turn, a third on one hot key.
fn puts(pump: &mut Pump, nodes: &[u16], first: u64, count: u64) -> Vec<(RequestId, String)> {
    let nodes: Vec<NodeId> = nodes.iter().copied().map(NodeId).collect();
    pump.puts_through(&nodes, first, count, 3)
}

/// Run until every write is answered; the ones that failed.
fn failed_writes(
    pump: &mut Pump,
    writes: &[(RequestId, String)],
) -> Vec<(RequestId, crate::request::RequestError)> {
    let ids: Vec<RequestId> = writes.iter().map(|(id, _)| *id).collect();
    assert!(
        pump.run_until(STEPS, |p| p.answered(&ids)),
        "seed {}: writes not answered",
        pump.seed
    );
    ids.iter()
        .filter_map(|id| pump.replies[id].outcome.clone().err().map(|e| (*id, e)))
        .collect()
}

fn all_answered(pump: &mut Pump, writes: &[(RequestId, String)]) {
    let failed = failed_writes(pump, writes);
    assert!(failed.is_empty(), "seed {}: {failed:?}", pump.seed);
}

/// Every write answered: a success, or (sent to a replica a switch removed) an unknown
/// outcome for what it had proposed and a refusal for what it had not.
fn all_answered_some_through_removed(pump: &mut Pump, writes: &[(RequestId, String)]) {
    let failed = failed_writes(pump, writes);
    let removal = |e: &crate::request::RequestError| match e {
        crate::request::RequestError::Timeout => true,
        crate::request::RequestError::Rejected(reason) => reason.contains("removed"),
        _ => false,
    };
    assert!(
        failed.iter().all(|(_, e)| removal(e)),
        "seed {}: {failed:?}",
        pump.seed
    );
}

/// Every live replica executed interfering commands in one order and holds the same
/// configurations.
fn assert_agreement(pump: &Pump) {
    assert_same_order(pump);
    // Replicas may lag (a spare never added holds epoch 0 only); none may disagree.
    let histories: Vec<&[Configuration]> = pump
        .live()
        .map(|core| core.replica.executor.configurations())
        .collect();
    let longest = histories
        .iter()
        .max_by_key(|h| h.len())
        .copied()
        .unwrap_or(&[]);
    assert!(
        histories.iter().all(|h| longest.starts_with(h)),
        "seed {}: configurations differ: {histories:?}",
        pump.seed
    );
}

/// Replace as the design says: add 3 as a learner, promote it while writes run, remove
/// voter 0 while writes run. Every write is answered, every replica executes
/// interfering writes in one order and ends in epoch 3, the new voter holds every key,
/// and the removed one stopped executing at its removal (commands after it may leave
/// out what it never executed) and waits, holding nothing, to be added again.
#[test]
fn a_replace_adds_promotes_and_removes_under_load() {
    for seed in 0..40 {
        let mut pump = pump_with_spare(seed);
        propose(&mut pump, 0, 1, learner(3));
        let added = outcome(&mut pump, 0).expect("learner added");
        assert_eq!(added.epoch(), 1);
        reach_epoch(&mut pump, &[0, 1, 2, 3], 1);
        let mut writes = puts(&mut pump, &[0, 1, 2], 1, 30);
        writes.extend(puts(&mut pump, &[0, 1, 2], 31, 30));
        let promoted = promote(&mut pump, 1, 2, 3);
        assert_eq!(promoted.voter_count(), 4);
        reach_epoch(&mut pump, &[0, 1, 2, 3], 2);
        writes.extend(puts(&mut pump, &[1, 2, 3], 61, 30));
        propose(&mut pump, 2, 1_000, Change::Remove(NodeId(0)));
        writes.extend(puts(&mut pump, &[1, 2, 3], 91, 30));
        let removed = outcome(&mut pump, 2).expect("voter removed");
        assert_eq!(removed.voters().collect::<Vec<_>>(), [1, 2, 3].map(NodeId));
        writes.extend(puts(&mut pump, &[1, 2, 3], 121, 30));
        all_answered(&mut pump, &writes);
        let done = |p: &Pump| {
            p.live().all(|c| {
                let keys = if c.replica.id == NodeId(0) {
                    0
                } else {
                    writes_keys(&writes)
                };
                c.configuration().epoch() == 3 && c.kv().len() == keys
            })
        };
        let finished = pump.run_until(STEPS, done);
        let states: Vec<(u64, usize, u64, u64)> = pump
            .live()
            .map(|c| {
                let m = c.metrics();
                let epoch = c.configuration().epoch();
                (
                    epoch,
                    c.kv().len(),
                    m.get("execution_waiting"),
                    m.get("dependencies_missing"),
                )
            })
            .collect();
        assert!(
            finished,
            "seed {}: not every replica executed all {} keys: (epoch, keys, waiting, missing) {states:?}",
            pump.seed,
            writes_keys(&writes)
        );
        assert_agreement(&pump);
        assert!(pump.up(NodeId(1)).metrics().get("switches_executed") >= 3);
        assert_eq!(pump.up(NodeId(3)).metrics().get("rejoining"), 0);
        assert!(pump.up(NodeId(0)).metrics().get("removed_here") >= 1);
    }
}

fn writes_keys(writes: &[(RequestId, String)]) -> usize {
    let keys: std::collections::BTreeSet<&String> = writes.iter().map(|(_, k)| k).collect();
    keys.len()
}

/// Two switches from the same epoch: both execute, in one order everywhere; the first
/// applies and the second is answered `NotApplied` (one change at a time).
#[test]
fn of_two_switches_from_one_epoch_one_applies() {
    for seed in 0..40 {
        let mut pump = pump_with_spare(seed);
        let writes = puts(&mut pump, &[0, 1, 2], 1, 10);
        propose(&mut pump, 0, 1, learner(3));
        propose(&mut pump, 1, 2, Change::Remove(NodeId(2)));
        let first = outcome(&mut pump, 0);
        let second = outcome(&mut pump, 1);
        let applied = [&first, &second].iter().filter(|r| r.is_ok()).count();
        assert_eq!(applied, 1, "seed {seed}: {first:?} {second:?}");
        let failed = [first, second].into_iter().find_map(Result::err);
        assert!(
            matches!(failed, Some(ChangeFailure::NotApplied(_))),
            "seed {seed}: {failed:?}"
        );
        all_answered_some_through_removed(&mut pump, &writes);
        let members: Vec<u16> = pump
            .up(NodeId(0))
            .configuration()
            .members()
            .iter()
            .map(|m| m.id.0)
            .collect();
        reach_epoch(&mut pump, &members, 1);
        assert_agreement(&pump);
    }
}

/// A change that does not apply to the current configuration is refused at once.
#[test]
fn a_change_that_does_not_apply_is_refused() {
    let mut core = replica(3, 0, Vec::new());
    core.propose_change(Time::ZERO, operator(1), Change::Promote(NodeId(1)));
    let refused = core.poll_change_outcome().expect("answered").result;
    assert!(
        matches!(refused, Err(ChangeFailure::Refused(_))),
        "{refused:?}"
    );
    assert_eq!(core.configuration().epoch(), 0);
}

/// Replica 0 of 3 after it executed a switch to epoch 1 (its own voters unchanged but
/// one learner more).
fn in_epoch_one(me: u16) -> Epaxos {
    let mut core = replica(3, me, Vec::new());
    let next = core
        .configuration()
        .apply(&ProposedChange {
            from_epoch: 0,
            change: learner(3),
        })
        .unwrap();
    core.replica.epochs.enter(next);
    core
}

fn sends(core: &mut Epaxos) -> Vec<(NodeId, Message)> {
    outputs(core)
        .into_iter()
        .flat_map(|o| match o {
            Output::Persist { then, .. } => then,
            Output::Now(effect) => vec![effect],
            _ => Vec::new(),
        })
        .filter_map(|e| match e {
            Effect::Send { to, message } => Some((to, message)),
            _ => None,
        })
        .collect()
}

/// Rule 3: a replica past an instance's epoch computes no attributes for it (at any
/// ballot) and says the epoch moved.
#[test]
fn a_preaccept_of_an_ended_epoch_is_refused_naming_the_new_one() {
    let mut acceptor = in_epoch_one(1);
    let preaccept = Message::PreAccept {
        ballot: super::Ballot::initial(id(0, 0)),
        instance: id(0, 0),
        payload: Batch::single(payload(1, "k")),
        attributes: attrs(1, &[]),
        ran_everywhere: Default::default(),
    };
    acceptor.handle_message(Time::ZERO, NodeId(0), preaccept);
    let sent = sends(&mut acceptor);
    assert_eq!(
        sent,
        [(
            NodeId(0),
            Message::EpochMoved {
                instance: id(0, 0),
                epoch: 1
            }
        )]
    );
    assert!(
        acceptor.replica.table.get(id(0, 0)).is_none(),
        "nothing recorded"
    );
}

/// A replica one epoch behind (it missed the switch's commit) that is sent a PreAccept
/// of the next epoch records nothing and asks the sender for the dependencies it never
/// saw committed, the switch among them: a switch that executed above a gap in its
/// leader's slots is named by no executed-prefix report (t18 seed 137163).
#[test]
fn a_preaccept_of_an_epoch_ahead_asks_the_sender_for_unknown_dependencies() {
    let mut behind = replica(3, 1, Vec::new());
    let (switch, other) = (id(2, 7), id(2, 3));
    let mut attributes = attrs(1, &[switch, other]);
    attributes.epoch = 1;
    let preaccept = Message::PreAccept {
        ballot: super::Ballot::initial(id(0, 0)),
        instance: id(0, 0),
        payload: Batch::single(payload(1, "k")),
        attributes,
        ran_everywhere: Default::default(),
    };
    behind.handle_message(Time::ZERO, NodeId(0), preaccept);
    let mut sent = sends(&mut behind);
    sent.sort_by_key(|(_, m)| match m {
        Message::Inquire { instance } => Some(*instance),
        _ => None,
    });
    assert_eq!(
        sent,
        [
            (NodeId(0), Message::Inquire { instance: other }),
            (NodeId(0), Message::Inquire { instance: switch }),
        ]
    );
    assert!(
        behind.replica.table.get(id(0, 0)).is_none(),
        "nothing recorded"
    );
    assert_eq!(behind.metrics().get("epoch_behind_inquiries"), 2);
}

/// Found by t18 seed 165143: the switch adding a spare committed while one voter was cut
/// off, above a gap in the spare's slots (its slots start at 10,000), so no executed
/// prefix ever named it; idle after the heal, no PreAccept of the new epoch came either,
/// and the voter never answered the spare's rejoin queries. A peer's report now names the
/// last switch it executed, and a replica that does not know it committed asks for it.
#[test]
fn a_report_naming_an_unknown_switch_asks_the_reporter_for_it() {
    let mut behind = replica(3, 1, Vec::new());
    let switch = id(2, 10_000);
    let report = |last_switch| Message::Executed {
        prefix: vec![(NodeId(0), 0)],
        last_switch,
    };
    behind.handle_message(Time::ZERO, NodeId(2), report(Some(switch)));
    assert_eq!(
        sends(&mut behind),
        [(NodeId(2), Message::Inquire { instance: switch })]
    );
    assert_eq!(behind.metrics().get("switches_asked"), 1);
    // A report without a switch, or naming one known committed here, asks nothing.
    behind.handle_message(Time::ZERO, NodeId(2), report(None));
    assert_eq!(sends(&mut behind), []);
    let commit = Message::Commit {
        instance: switch,
        payload: Batch::single(payload(1, "k")),
        attributes: attrs(1, &[]),
    };
    behind.handle_message(Time::ZERO, NodeId(2), commit);
    sends(&mut behind);
    behind.handle_message(Time::ZERO, NodeId(0), report(Some(switch)));
    assert_eq!(sends(&mut behind), []);
    assert_eq!(behind.metrics().get("switches_asked"), 1);
}

/// Rule 4: refused before a majority of its epoch answered, the leader commits its
/// instance as a no-op through Accept and, once that committed, proposes the command
/// again in the epoch it is in now.
#[test]
fn a_refused_leader_accepts_a_noop_and_restarts_the_command() {
    let mut leader = replica(3, 0, Vec::new());
    let request = payload(1, "k");
    leader.handle_request(
        Time::ZERO,
        ClientRequest::new(request.request, request.command.clone()),
    );
    outputs(&mut leader);
    let next = leader
        .configuration()
        .apply(&ProposedChange {
            from_epoch: 0,
            change: learner(3),
        })
        .unwrap();
    leader.replica.epochs.enter(next);
    let moved = Message::EpochMoved {
        instance: id(0, 0),
        epoch: 1,
    };
    leader.handle_message(Time::ZERO, NodeId(1), moved);
    let sent = sends(&mut leader);
    let noop_accepted = sent.iter().any(|(_, m)| {
        matches!(m, Message::Accept { instance, payload, attributes, .. }
            if *instance == id(0, 0) && payload.is_noop() && *attributes == attrs(1, &[]))
    });
    assert!(noop_accepted, "{sent:?}");
    assert!(
        !sent
            .iter()
            .any(|(_, m)| matches!(m, Message::PreAccept { .. })),
        "nothing proposed again before the no-op commits: {sent:?}"
    );
    let accept_ok = Message::AcceptOk {
        ballot: super::Ballot::initial(id(0, 0)),
        instance: id(0, 0),
    };
    leader.handle_message(Time::ZERO, NodeId(0), accept_ok.clone());
    leader.handle_message(Time::ZERO, NodeId(1), accept_ok);
    assert!(leader.is_committed(id(0, 0)));
    let sent = sends(&mut leader);
    let restarted = sent.iter().find_map(|(_, m)| match m {
        Message::PreAccept {
            instance,
            payload,
            attributes,
            ..
        } if *instance == id(0, 1) => Some((payload.clone(), attributes.epoch)),
        _ => None,
    });
    assert_eq!(restarted, Some((Batch::single(request), 1)));
}

/// A spare boots as a replica that lost its disk does (rejoining: it votes on nothing
/// and executes nothing until a peer's state arrives). Added after its peers ran and
/// collected writes, its queries are answered once it is a member, it executes from
/// their state, and after a promote and the removal of voter 0 every replica holds every
/// key.
#[test]
fn a_rejoining_spare_added_after_collection_catches_up() {
    for seed in 0..10 {
        let mut pump = pump_with_spare(seed);
        assert!(pump.up(NodeId(3)).metrics().get("rejoining") == 1);
        let mut writes = puts(&mut pump, &[0, 1, 2], 1, 60);
        all_answered(&mut pump, &writes);
        let collected = |p: &Pump| p.up(NodeId(0)).metrics().get("instances_collected") > 0;
        assert!(
            pump.run_until(STEPS, collected),
            "seed {seed}: nothing collected before the add"
        );
        propose(&mut pump, 0, 1, learner(3));
        outcome(&mut pump, 0).expect("learner added");
        reach_epoch(&mut pump, &[0, 1, 2, 3], 1);
        writes.extend(puts(&mut pump, &[0, 1, 2], 61, 30));
        promote(&mut pump, 1, 2, 3);
        reach_epoch(&mut pump, &[0, 1, 2, 3], 2);
        writes.extend(puts(&mut pump, &[1, 2, 3], 91, 30));
        propose(&mut pump, 2, 1_000, Change::Remove(NodeId(0)));
        outcome(&mut pump, 2).expect("voter removed");
        writes.extend(puts(&mut pump, &[1, 2, 3], 121, 30));
        all_answered(&mut pump, &writes);
        let keys = writes_keys(&writes);
        let done = |p: &Pump| {
            p.live().all(|c| {
                let held = if c.replica.id == NodeId(0) { 0 } else { keys };
                c.configuration().epoch() == 3 && c.kv().len() == held
            })
        };
        assert!(pump.run_until(STEPS, done), "seed {seed}: not caught up");
        let joined = pump.up(NodeId(3)).metrics();
        assert!(joined.get("state_transfers_completed") >= 1);
        // Never a voter, it led nothing: no margin, so no peer fills skipped slots.
        assert_eq!(joined.get("rejoin_margin"), 0, "seed {seed}");
        assert_eq!(joined.get("rejoin_start"), 0, "seed {seed}");
        let gaps: u64 = pump
            .live()
            .map(|c| c.metrics().get("rejoin_gap_recoveries"))
            .sum();
        assert_eq!(gaps, 0, "seed {seed}: gap recoveries of a spare's slots");
        assert_eq!(
            joined.get("rejoining"),
            0,
            "seed {seed}: the new voter proposes"
        );
        assert_agreement(&pump);
    }
}

/// A voter removed and cut off stops holding collection back; its peers forget what
/// they all executed meanwhile. It stopped executing at its own removal (later commands
/// may leave out what it never executed: t18 seed 53241 diverged when it did not).
/// Added again, it fetches the peers' state (found by t18, seed 5080: such a replica was
/// promoted and never caught up). After the promote it votes, proposes and holds every
/// key.
#[test]
fn a_removed_voter_added_again_behind_collection_fetches_state() {
    for seed in 0..10 {
        let mut pump = pump_with_spare(seed);
        propose(&mut pump, 0, 1, learner(3));
        outcome(&mut pump, 0).expect("learner added");
        promote(&mut pump, 0, 2, 3);
        reach_epoch(&mut pump, &[0, 1, 2, 3], 2);
        propose(&mut pump, 1, 100, Change::Remove(NodeId(0)));
        outcome(&mut pump, 1).expect("voter removed");
        reach_epoch(&mut pump, &[0, 1, 2, 3], 3);
        pump.isolate(NodeId(0));
        let mut writes = puts(&mut pump, &[1, 2, 3], 1, 90);
        all_answered(&mut pump, &writes);
        let collected = |p: &Pump| {
            let floor = p.up(NodeId(1)).gc.floor(&p.up(NodeId(1)).replica);
            floor.get(&NodeId(2)).is_some_and(|&slot| slot > 20)
        };
        assert!(
            pump.run_until(STEPS, collected),
            "seed {seed}: nothing collected without the removed replica"
        );
        pump.heal();
        propose(&mut pump, 1, 101, learner(0));
        outcome(&mut pump, 1).expect("added again");
        reach_epoch(&mut pump, &[1, 2, 3], 4);
        promote(&mut pump, 2, 200, 0);
        reach_epoch(&mut pump, &[0, 1, 2, 3], 5);
        writes.extend(puts(&mut pump, &[0, 1, 2, 3], 91, 30));
        all_answered(&mut pump, &writes);
        let keys = writes_keys(&writes);
        let done = |p: &Pump| {
            p.live()
                .all(|c| c.configuration().epoch() == 5 && c.kv().len() == keys)
        };
        assert!(pump.run_until(STEPS, done), "seed {seed}: not caught up");
        let back = pump.up(NodeId(0)).metrics();
        assert!(back.get("removed_here") >= 1, "seed {seed}");
        assert!(back.get("state_transfers_completed") >= 1, "seed {seed}");
        assert_eq!(back.get("rejoining"), 0, "seed {seed}: it proposes again");
        assert_agreement(&pump);
    }
}

/// Replica 0's initial PreAccept of instance 0.0: a switch making `change` from `epoch`.
fn preaccept_switch(epoch: u64, change: Change) -> Message {
    let mut attributes = attrs(1, &[]);
    attributes.epoch = epoch;
    let change = ProposedChange {
        from_epoch: epoch,
        change,
    };
    Message::PreAccept {
        ballot: super::Ballot::initial(id(0, 0)),
        instance: id(0, 0),
        payload: Batch::single(super::Payload::switch(operator(1), change)),
        attributes,
        ran_everywhere: Default::default(),
    }
}

/// A peer tells a rejoining replica whether its former self may have led instances (and
/// so whether its start needs a margin): not for a learner, yes once the peer holds a
/// switch promoting it, even before executing it (the former self may have executed it
/// and led; the switch was recorded by a quorum of the epoch before, so some peer
/// asked holds it).
#[test]
fn a_held_promotion_tells_a_rejoining_learner_it_may_have_led() {
    let mut peer = in_epoch_one(1);
    assert!(
        !peer.rejoin_state(NodeId(3)).may_have_led,
        "a learner led nothing"
    );
    assert!(
        peer.rejoin_state(NodeId(0)).may_have_led,
        "a voter may have led"
    );
    let promote = preaccept_switch(1, Change::Promote(NodeId(3)));
    peer.handle_message(Time::ZERO, NodeId(0), promote);
    assert!(peer.replica.table.get(id(0, 0)).is_some(), "pre-accepted");
    assert!(!peer.replica.executor.is_executed(id(0, 0)), "not executed");
    assert!(peer.rejoin_state(NodeId(3)).may_have_led);
}

/// A switch pre-accepted here whose leader went silent is recovered after two GC ticks
/// with nothing driving it, even with no command after it to depend on it (t18 retiring
/// seed 85621: a replica removed itself, executed the switch and was stopped before its
/// commit reached anyone).
#[test]
fn a_stuck_switch_is_recovered_without_a_command_after_it() {
    let mut peer = replica(3, 1, Vec::new());
    let remove = preaccept_switch(0, Change::Remove(NodeId(0)));
    peer.handle_message(Time::ZERO, NodeId(0), remove);
    let _ = sends(&mut peer);
    let gc = peer.replica.config.gc_interval;
    peer.handle_timeout(Time::ZERO + gc);
    assert_eq!(peer.metrics().get("switch_recoveries"), 0, "one tick only");
    peer.handle_timeout(Time::ZERO + gc * 2);
    assert_eq!(peer.metrics().get("switch_recoveries"), 1);
    let sent = sends(&mut peer);
    assert!(
        sent.iter()
            .any(|(_, m)| matches!(m, Message::Prepare { instance, .. } if *instance == id(0, 0))),
        "{sent:?}"
    );
}
