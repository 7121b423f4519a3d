//! A replica that lost its disk: it votes on no instance its former self could have
//! voted on, proposes above every slot its former self could have used, executes in the
//! same order as the others from a peer's state, and a restart in the middle of the
//! rejoin picks it up again.

use super::fence::Stage;
use super::test_support::*;
use super::*;
use std::time::Duration;

/// A window of 8 own instances (the rejoin bound's margin), compaction every 20.
fn config() -> EpaxosConfig {
    fast()
        .with_batching(1, 8)
        .with_snapshot_interval(20)
        .with_snapshot_chunk_bytes(64)
}

const LOST: NodeId = NodeId(2);

fn rejoined(pump: &Pump) -> bool {
    pump.is_up(LOST) && pump.up(LOST).fence().stage == Stage::Rejoined
}

/// The highest own slot `node` used, as the live replicas know it.
fn highest_own_slot(pump: &Pump, node: NodeId) -> Option<u64> {
    pump.live()
        .flat_map(|core| core.replica.table.instances.keys().copied())
        .chain(pump.live().flat_map(|core| {
            let prefix = core.replica.executor.executed_prefix().get(&node).copied();
            prefix
                .and_then(|p| p.checked_sub(1))
                .map(|slot| InstanceId { leader: node, slot })
        }))
        .filter(|id| id.leader == node)
        .map(|id| id.slot)
        .max()
}

#[test]
fn a_lost_disk_rejoins_above_its_bound_and_executes_in_the_same_order() {
    for seed in 0..4 {
        let mut pump = new_pump(3, seed, config());
        run_writes(&mut pump, 0, 60, 12);
        let used = highest_own_slot(&pump, LOST).expect("the lost replica led instances");
        pump.crash(LOST);
        pump.wipe(LOST);
        pump.restart_rejoining(LOST);
        assert_eq!(pump.up(LOST).fence().stage, Stage::Querying);
        assert!(
            pump.run_until(STEPS, rejoined),
            "seed {seed}: the replica did not rejoin"
        );
        let fence = pump.up(LOST).fence().clone();
        let start = fence.bounds[&LOST];
        assert!(
            start > used,
            "seed {seed}: start {start} not above slot {used}"
        );
        for peer in [NodeId(0), NodeId(1)] {
            assert!(
                fence.bounds[&peer] > 0,
                "seed {seed}: no bound for {peer:?}"
            );
        }
        // It serves again: its own new instances start at the bound (below it are its
        // former self's instances, recovered by peers, and no-ops for skipped slots).
        run_writes(&mut pump, 60, 60, 12);
        let (mut new, mut old) = (0, 0);
        for e in pump.up(LOST).executed() {
            if e.instance.leader != LOST || e.payload.is_noop() {
                continue;
            }
            if e.payload.request.seq >= 60 {
                assert!(
                    e.instance.slot >= start,
                    "seed {seed}: {} below {start}",
                    e.instance
                );
                new += 1;
            } else {
                assert!(
                    e.instance.slot <= used,
                    "seed {seed}: {} above {used}",
                    e.instance
                );
                old += 1;
            }
        }
        assert!(
            new > 0,
            "seed {seed}: the rejoined replica led nothing ({old} old)"
        );
        assert_same_order(&pump);
        // Every replica ends in the same state, and collection passes the skipped slots.
        idle(&mut pump, Duration::from_secs(5));
        let kv = pump.up(NodeId(0)).kv().clone();
        assert!(
            pump.live().all(|core| *core.kv() == kv),
            "seed {seed}: states differ"
        );
        for core in pump.live() {
            let prefix = core.replica.executor.executed_prefix().get(&LOST).copied();
            assert!(
                prefix.unwrap_or(0) > start,
                "seed {seed}: prefix {prefix:?} stuck"
            );
        }
        let metrics = pump.up(LOST).metrics();
        assert!(metrics.get("state_transfers_completed") == 1, "seed {seed}");
        assert_eq!(
            metrics.get("rejoin_margin"),
            8,
            "seed {seed}: a voter may have led"
        );
        assert!(
            metrics.get("state_transfer_bytes_received") > 64,
            "seed {seed}: one chunk"
        );
    }
}

#[test]
fn a_restart_in_the_middle_of_a_rejoin_resumes_it() {
    for seed in 0..4 {
        let mut pump = new_pump(3, seed, config());
        run_writes(&mut pump, 0, 30, 12);
        pump.crash(LOST);
        pump.wipe(LOST);
        // Replica 1 cannot hear it: the rejoin stops after replica 0's answer.
        pump.block(LOST, NodeId(1));
        pump.restart_rejoining(LOST);
        idle(&mut pump, Duration::from_secs(2));
        assert_eq!(pump.up(LOST).fence().stage, Stage::Querying, "seed {seed}");
        // A crash now (disk intact): the restart picks the rejoin up, it does not vote.
        pump.crash(LOST);
        pump.restart(LOST);
        assert_eq!(pump.up(LOST).fence().stage, Stage::Querying, "seed {seed}");
        pump.heal();
        assert!(
            pump.run_until(STEPS, rejoined),
            "seed {seed}: no rejoin after restart"
        );
        run_writes(&mut pump, 30, 30, 12);
        assert_same_order(&pump);
    }
}

/// A replica fresh from a lost disk answers no PreAccept, Accept, Prepare or
/// TryPreAccept; once fenced, it answers those at or above a leader's bound only.
#[test]
fn no_vote_on_instances_the_former_self_could_have_voted_on() {
    let mut core = replica(3, 2, Vec::new());
    core.rejoin(Time::ZERO);
    let _ = outputs(&mut core);
    for message in [
        preaccept(initial()),
        accept(initial()),
        prepare(),
        Message::TryPreAccept {
            ballot: recovery_ballot(),
            instance: instance(),
            payload: batch(1, "k"),
            attributes: attrs(1, &[]),
        },
    ] {
        core.handle_message(Time::ZERO, NodeId(0), message);
    }
    let (_, sent) = synced(&mut core);
    assert!(sent.is_empty(), "voted while rejoining: {sent:?}");
    assert_eq!(core.metrics().get("votes_withheld"), 4);
    // Fenced at slot 5 for replica 0: slot 4 is refused, slot 5 answered.
    core.replica.fence.stage = Stage::Rejoined;
    core.replica.fence.bounds.insert(NodeId(0), 5);
    let preaccept_at = |slot| Message::PreAccept {
        ballot: Ballot::initial(id(0, slot)),
        instance: id(0, slot),
        payload: batch(slot, "k"),
        attributes: attrs(1, &[]),
        ran_everywhere: Default::default(),
    };
    core.handle_message(Time::ZERO, NodeId(0), preaccept_at(4));
    core.handle_message(Time::ZERO, NodeId(0), preaccept_at(5));
    let (_, sent) = synced(&mut core);
    let answered: Vec<InstanceId> = sent
        .iter()
        .filter_map(|(_, m)| match m {
            Message::PreAcceptOk { instance, .. } => Some(*instance),
            _ => None,
        })
        .collect();
    assert_eq!(answered, vec![id(0, 5)]);
    // Nor does it take over what it may not vote on.
    core.start_recovery(Time::ZERO, id(0, 4));
    assert_eq!(core.metrics().get("recoveries_started"), 0);
}

/// The window counts slots: an own instance another replica took over still holds back
/// the slots after it, and a leader recovers it once nothing here drives it for two GC
/// ticks (else the window would close for good).
#[test]
fn an_own_instance_nobody_drives_holds_the_window_until_recovered() {
    let mut core = Epaxos::new(
        NodeId(0),
        &Membership::local(3),
        EpaxosConfig::default().with_batching(1, 2),
        0,
        Vec::new(),
    );
    for seq in 0..3 {
        core.handle_request(Time::ZERO, request(seq, &format!("k{seq}")));
    }
    // Replica 1 takes slot 0 over: one own instance in flight, but slot 2 stays queued.
    let takeover = Message::Prepare {
        ballot: Ballot {
            round: 1,
            node: NodeId(1),
        },
        instance: id(0, 0),
    };
    core.handle_message(Time::ZERO, NodeId(1), takeover);
    let (_, sent) = synced(&mut core);
    let slot_2 = |sent: &[(NodeId, Message)]| {
        sent.iter()
            .any(|(_, m)| matches!(m, Message::PreAccept { instance, .. } if *instance == id(0, 2)))
    };
    assert!(!slot_2(&sent), "proposed past the window");
    // Two GC ticks with nothing driving slot 0 here: recover it.
    core.handle_timeout(Time::from_secs(1));
    assert_eq!(core.metrics().get("own_recoveries"), 0);
    core.handle_timeout(Time::from_secs(2));
    assert_eq!(core.metrics().get("own_recoveries"), 1);
    let (_, sent) = synced(&mut core);
    assert!(sent
        .iter()
        .any(|(_, m)| matches!(m, Message::Prepare { instance, .. } if *instance == id(0, 0))));
}

/// A member that joined after this replica's rejoin has no vote bound here: on the GC
/// tick the replica asks it for its next own slot and votes from there on (t18 seed
/// 6145: a spare that rejoined never voted on a later spare's instances, and the epoch
/// they needed it for stalled). An answer to another boot's ask is dropped.
#[test]
fn a_member_without_a_vote_bound_is_asked_for_its_next_slot() {
    let mut core = replica(3, 2, Vec::new());
    core.replica.fence.stage = Stage::Rejoined;
    core.replica.fence.bounds.insert(NodeId(1), 0);
    core.replica.fence.bounds.insert(NodeId(2), 12);
    let tick = Time::ZERO + core.replica.config.gc_interval * 2;
    core.handle_timeout(tick);
    let (_, sent) = synced(&mut core);
    let asked: Vec<(NodeId, u64)> = sent
        .iter()
        .filter_map(|(to, m)| match m {
            Message::AskNextSlot { nonce, start: 12 } => Some((*to, *nonce)),
            _ => None,
        })
        .collect();
    let [(NodeId(0), nonce)] = asked[..] else {
        panic!("asked {asked:?}")
    };
    let stale = Message::NextSlot {
        nonce: nonce.wrapping_add(2),
        slot: 3,
    };
    core.handle_message(tick, NodeId(0), stale);
    assert!(!core.replica.fence.bounds.contains_key(&NodeId(0)));
    core.handle_message(tick, NodeId(0), Message::NextSlot { nonce, slot: 7 });
    assert_eq!(core.replica.fence.bounds.get(&NodeId(0)), Some(&7));
    assert!(core.fence().may_vote(id(0, 7)) && !core.fence().may_vote(id(0, 6)));
    assert_eq!(core.metrics().get("vote_bounds_learned"), 1);
}

/// A replica answers the ask with its next own slot, behind its durable records, and
/// not while it rejoins itself.
#[test]
fn the_next_slot_is_told_only_once_the_start_is_fixed() {
    let mut leader = replica(3, 0, Vec::new());
    leader.handle_message(
        Time::ZERO,
        NodeId(2),
        Message::AskNextSlot { nonce: 5, start: 0 },
    );
    let (_, sent) = synced(&mut leader);
    assert_eq!(
        sent,
        vec![(NodeId(2), Message::NextSlot { nonce: 5, slot: 0 })]
    );
    leader.rejoin(Time::ZERO);
    let _ = outputs(&mut leader);
    leader.handle_message(
        Time::ZERO,
        NodeId(2),
        Message::AskNextSlot { nonce: 5, start: 0 },
    );
    let (_, sent) = synced(&mut leader);
    assert!(
        !sent
            .iter()
            .any(|(_, m)| matches!(m, Message::NextSlot { .. })),
        "{sent:?}"
    );
}

/// A rejoin's start goes out only behind the durable fence that names it, and a restart
/// from that fence announces the same start again; a replica with nothing to fence (a
/// spare that never voted) still votes on everything once every peer recorded it (t18
/// seed 6145: the start went out before its fence was durable, a crash sent the spare
/// to fetch its peers' state again, by then as a member, and it took a 10,000-slot
/// margin that the peer after it filled with no-ops).
#[test]
fn a_restart_while_announcing_announces_the_same_start() {
    use super::fence::Fence;
    use crate::protocol::{Effect, Output};
    let me = NodeId(2);
    for (stage, rejoined_as) in [
        (Stage::AnnouncingUnfenced, Stage::Voter),
        (Stage::Announcing, Stage::Rejoined),
    ] {
        let fence = Fence {
            stage,
            lost_state: false,
            bounds: [(NodeId(0), 4), (NodeId(1), 6), (me, 9)].into(),
            starts: Default::default(),
        };
        let mut core = replica(3, me.0, vec![Record::Fence(Box::new(fence))]);
        core.handle_timeout(Time::ZERO);
        let mut announced = Vec::new();
        for output in outputs(&mut core) {
            match output {
                Output::Persist { then, .. } => announced.extend(then),
                Output::Now(effect) => assert!(
                    !matches!(
                        effect,
                        Effect::Send {
                            message: Message::RejoinStart { .. },
                            ..
                        }
                    ),
                    "{stage:?}: a start announced ahead of the durable fence"
                ),
                Output::Compact { .. } => {}
            }
        }
        let start = |to| Effect::Send {
            to: NodeId(to),
            message: Message::RejoinStart { start: 9 },
        };
        assert_eq!(announced, vec![start(0), start(1)], "{stage:?}");
        for peer in [0, 1] {
            let started = Message::RejoinStarted { start: 9 };
            core.handle_message(Time::ZERO, NodeId(peer), started);
        }
        assert_eq!(core.fence().stage, rejoined_as);
        assert!(core.fence().may_vote(id(0, 0)) == (rejoined_as == Stage::Voter));
    }
}

/// Every ask of one rejoin (one start) is told the same slot, durable before it is told
/// and kept across a restart and a compaction; a later rejoin (a later start) is told
/// the slot of the moment, and an ask naming an earlier start than one told gets
/// nothing. Before, a rejoined replica that lost a learned bound in a crash asked again
/// and was told a later slot, and never voted on the member's instances in between.
#[test]
fn every_ask_of_one_rejoin_is_told_the_same_slot() {
    let asker = NodeId(2);
    let ask = |start| Message::AskNextSlot { nonce: 5, start };
    let told = |slot| vec![(asker, Message::NextSlot { nonce: 5, slot })];
    let mut member = replica(3, 0, Vec::new());
    member.handle_message(Time::ZERO, asker, ask(40));
    let (records, sent) = synced(&mut member);
    let first = Record::BoundTold {
        asker,
        start: 40,
        slot: 0,
    };
    assert_eq!(records, vec![first.clone()]);
    assert_eq!(sent, told(0));
    // The member leads instances meanwhile: its next own slot moves on.
    for seq in 0..3 {
        member.handle_request(Time::ZERO, crate::test_host::put_request(seq, "k"));
    }
    let (mut log, _) = synced(&mut member);
    assert!(member.leader.next_slot() > 0);
    member.handle_message(Time::ZERO, asker, ask(40));
    assert_eq!(synced(&mut member), (Vec::new(), told(0)));
    // Restarted from its log, and from a compaction of it: the same answer.
    log.insert(0, first);
    let mut restarted = replica(3, 0, log);
    let next = restarted.leader.next_slot();
    assert!(next > 0);
    restarted.handle_message(Time::ZERO, asker, ask(40));
    assert_eq!(synced(&mut restarted).1, told(0));
    restarted.compact();
    let snapshot = outputs(&mut restarted)
        .into_iter()
        .find_map(|output| match output {
            Output::Compact { snapshot } => Some(snapshot),
            _ => None,
        })
        .expect("a compaction");
    let mut compacted = replica(3, 0, snapshot);
    compacted.handle_message(Time::ZERO, asker, ask(40));
    assert_eq!(synced(&mut compacted).1, told(0));
    // A later rejoin is told the slot of the moment; the earlier one no longer anything.
    compacted.handle_message(Time::ZERO, asker, ask(90));
    let (records, sent) = synced(&mut compacted);
    assert_eq!(
        records,
        vec![Record::BoundTold {
            asker,
            start: 90,
            slot: next
        }]
    );
    assert_eq!(sent, told(next));
    compacted.handle_message(Time::ZERO, asker, ask(40));
    assert_eq!(synced(&mut compacted), (Vec::new(), Vec::new()));
}
