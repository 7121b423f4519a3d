//! A replica that lost its disk: it votes on no command its former self could have
//! voted on, numbers its commands in a new epoch, executes in the same order as the
//! others from a peer's state, and a restart in the middle of the rejoin picks it up.

use super::dots::epoch_of;
use super::test_support::*;
use super::*;
use crate::id::NodeId;
use crate::test_host::Order;
use std::time::Duration;

const LOST: NodeId = NodeId(2);

/// Compaction every 20 commands, answers in 64-byte chunks.
fn rejoining() -> TempoConfig {
    config(1)
        .with_snapshot_interval(20)
        .with_snapshot_chunk_bytes(64)
}

fn rejoined(pump: &Pump) -> bool {
    pump.is_up(LOST) && pump.up(LOST).fence().stage == Stage::Rejoined
}

/// A client's put on `k`, coordinated by the first of `quorum`, in epoch 0.
fn put_on_k(quorum: Vec<NodeId>) -> Payload {
    Payload {
        request: RequestId {
            client: crate::id::ClientId(77),
            seq: 1,
        },
        resend: false,
        command: crate::command::Command::Put {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        },
        quorum,
        config_epoch: 0,
        change: None,
    }
}

fn same_state(pump: &Pump) -> bool {
    let states: Vec<_> = pump.live().map(|n| n.kv().clone()).collect();
    states.windows(2).all(|w| w[0] == w[1])
}

/// More writes are answered, and every replica executed in one order to one state.
fn serves_and_agrees(pump: &mut Pump, seed: u64) {
    let later = submit(pump, 2_000, 30, 3);
    assert!(
        pump.run_until(STEPS, |p| answered(p, &later)),
        "seed {seed}"
    );
    settle(pump, seed);
    assert_same_order(pump);
    assert!(same_state(pump), "seed {seed}: states differ");
}

#[test]
fn a_lost_disk_rejoins_in_a_new_epoch_and_executes_in_the_same_order() {
    for seed in 0..4 {
        let mut pump = new_pump(3, seed, Order::Shuffled, rejoining());
        let ids = submit(&mut pump, 0, 60, 3);
        assert!(pump.run_until(STEPS, |p| answered(p, &ids)), "seed {seed}");
        pump.crash(LOST);
        pump.wipe(LOST);
        pump.restart_rejoining(LOST);
        assert_eq!(pump.up(LOST).fence().stage, Stage::Querying);
        // Load while it rejoins: it withholds its votes, the others go on.
        let during = submit(&mut pump, 1_000, 30, 3);
        assert!(pump.run_until(STEPS, rejoined), "seed {seed}: no rejoin");
        let fence = pump.up(LOST).fence().clone();
        assert!(
            fence.epoch >= 1 && !fence.lost_state,
            "seed {seed}: {fence:?}"
        );
        for peer in [NodeId(0), NodeId(1)] {
            assert_eq!(pump.up(peer).fence().starts.get(&LOST), Some(&fence.epoch));
        }
        let later = submit(&mut pump, 2_000, 30, 3);
        let all: Vec<_> = during.iter().chain(&later).copied().collect();
        assert!(pump.run_until(STEPS, |p| answered(p, &all)), "seed {seed}");
        settle(&mut pump, seed);
        assert_same_order(&pump);
        assert!(same_state(&pump), "seed {seed}: states differ");
        let own = pump
            .up(LOST)
            .executed()
            .iter()
            .filter(|e| e.dot.node == LOST)
            .map(|e| epoch_of(e.dot.seq))
            .max();
        assert_eq!(own, Some(fence.epoch), "seed {seed}: own commands' epoch");
        let metrics = pump.up(LOST).metrics();
        assert!(metrics.get("state_transfer_bytes_received") > 0);
        assert_eq!(metrics.get("rejoins_completed"), 1);
    }
}

#[test]
fn a_rejoining_replica_answers_no_vote_and_proposes_nothing() {
    let mut pump = new_pump(3, 9, Order::Shuffled, rejoining());
    let ids = submit(&mut pump, 0, 20, 2);
    assert!(pump.run_until(STEPS, |p| answered(p, &ids)));
    pump.crash(LOST);
    pump.wipe(LOST);
    // Its peers cannot answer it: it stays in its first phase.
    pump.isolate(LOST);
    pump.restart_rejoining(LOST);
    let mut core = pump.nodes[LOST.index()].take().expect("up");
    let _ = synced(&mut core);
    let dot = Dot {
        node: NodeId(0),
        seq: 1,
    };
    let payload = put_on_k(vec![NodeId(0), LOST]);
    let now = pump.now;
    core.handle_message(
        now,
        NodeId(0),
        Message::Propose {
            dot,
            payload: payload.clone(),
            ts: 1,
        },
    );
    let ballot = Ballot {
        round: 2,
        node: NodeId(1),
    };
    core.handle_message(
        now,
        NodeId(1),
        Message::Rec {
            dot,
            ballot,
            payload,
        },
    );
    let (_, sent) = synced(&mut core);
    assert!(
        sent.iter().all(|(_, m)| !matches!(
            m,
            Message::ProposeAck { .. } | Message::RecAck { .. } | Message::ConsensusAck { .. }
        )),
        "{sent:?}"
    );
    assert_eq!(core.metrics().get("votes_withheld"), 2);
    core.handle_request(now, crate::test_host::put_request(5, "x"));
    let (records, sent) = synced(&mut core);
    assert!(
        records.is_empty() && sent.is_empty(),
        "{records:?} {sent:?}"
    );
}

#[test]
fn a_restart_in_the_middle_of_a_rejoin_picks_it_up() {
    for seed in 0..4 {
        let mut pump = new_pump(3, seed, Order::Shuffled, rejoining());
        let ids = submit(&mut pump, 0, 40, 3);
        assert!(pump.run_until(STEPS, |p| answered(p, &ids)), "seed {seed}");
        pump.crash(LOST);
        pump.wipe(LOST);
        pump.restart_rejoining(LOST);
        for _ in 0..(50 + seed * 40) {
            pump.step();
        }
        pump.crash(LOST);
        pump.restart(LOST);
        assert!(pump.run_until(STEPS, rejoined), "seed {seed}: no rejoin");
        serves_and_agrees(&mut pump, seed);
    }
}

/// Found by t17 seed 163036: a rejoining replica installed the first peer's state in
/// memory, executed commits on top of it (their `Executed` marks durable), and crashed
/// before the rejoin finished (its durable fence still said the state was lost). On
/// restart it ran those commands again on the empty state its records rebuild; the final
/// state came right once a peer's state was installed again, but the execution log had
/// them twice, out of order. They now wait for the install, like any commit learned
/// while the state is lost.
#[test]
fn a_restart_before_the_installed_state_is_durable_runs_nothing_on_an_incomplete_state() {
    const UNREACHABLE: NodeId = NodeId(4);
    for seed in 0..4 {
        let no_compaction = config(1)
            .with_snapshot_interval(10_000)
            .with_snapshot_chunk_bytes(64);
        let mut pump = new_pump(5, seed, Order::Shuffled, no_compaction);
        let ids = submit(&mut pump, 0, 40, 3);
        assert!(pump.run_until(STEPS, |p| answered(p, &ids)), "seed {seed}");
        pump.crash(LOST);
        pump.wipe(LOST);
        pump.restart_rejoining(LOST);
        // Once it fetches, one peer no longer answers: the rejoin installs a state but
        // cannot finish.
        let fetching = |p: &Pump| p.up(LOST).fence().stage == Stage::Fetching;
        assert!(pump.run_until(STEPS, fetching), "seed {seed}: no fetch");
        pump.block(LOST, UNREACHABLE);
        pump.block(UNREACHABLE, LOST);
        // Load while it rejoins (what it was sent itself is lost in its crash below).
        submit(&mut pump, 1_000, 40, 3);
        let ran_on_installed_state =
            |p: &Pump| !p.up(LOST).fence().lost_state && p.up(LOST).executed().len() >= 5;
        assert!(
            pump.run_until(STEPS, ran_on_installed_state),
            "seed {seed}: nothing executed on an installed state"
        );
        pump.run_for(Duration::from_secs(1));
        assert_eq!(pump.up(LOST).fence().stage, Stage::Fetching, "seed {seed}");
        pump.crash(LOST);
        pump.restart(LOST);
        let lost = pump.up(LOST);
        assert!(
            lost.fence().lost_state,
            "seed {seed}: the install was not durable"
        );
        assert!(
            lost.executed().is_empty(),
            "seed {seed}: ran again on an incomplete state: {:?}",
            lost.executed().iter().map(|e| e.dot).collect::<Vec<_>>()
        );
        pump.heal();
        assert!(pump.run_until(STEPS, rejoined), "seed {seed}: no rejoin");
        serves_and_agrees(&mut pump, seed);
    }
}

/// Found by t19 seed 3031: two members rejoining at once (a spare just added and a
/// replica added again) each waited for the other's answer forever. A rejoining replica
/// answers the query at once and the fetch once it chose its epoch, with no state; each
/// installs the state of a peer that has one.
#[test]
fn two_replicas_that_lost_their_disks_at_once_both_rejoin() {
    const OTHER: NodeId = NodeId(3);
    for seed in 0..4 {
        let mut pump = new_pump(5, seed, Order::Shuffled, rejoining());
        let ids = submit(&mut pump, 0, 40, 3);
        assert!(pump.run_until(STEPS, |p| answered(p, &ids)), "seed {seed}");
        for lost in [LOST, OTHER] {
            pump.crash(lost);
            pump.wipe(lost);
            pump.restart_rejoining(lost);
        }
        let both = |p: &Pump| {
            [LOST, OTHER]
                .iter()
                .all(|&n| p.is_up(n) && p.up(n).fence().stage == Stage::Rejoined)
        };
        assert!(pump.run_until(STEPS, both), "seed {seed}: no rejoin");
        for lost in [LOST, OTHER] {
            let fence = pump.up(lost).fence();
            assert!(!fence.lost_state, "seed {seed}: {fence:?}");
        }
        serves_and_agrees(&mut pump, seed);
    }
}

/// Found by t19 seed 4164: a replica removed while it was down came back not knowing it,
/// was added again, and counted the members' promises, which left out a command they had
/// collected without it: it ran later commands on the key first. A peer's promises count
/// only where everything the peer collected was executed; otherwise the replica fetches
/// the members' state.
#[test]
fn promises_of_a_peer_that_collected_what_was_not_run_here_start_a_rejoin() {
    let mut core = replica(3, 0, 1);
    let missed = Dot {
        node: NodeId(1),
        seq: 3,
    };
    let announced = Message::Promises {
        keys: vec![promise(9, Vec::new())].into(),
        collected: vec![(missed.node, missed.seq)],
    };
    core.handle_message(Time::ZERO, NodeId(1), announced);
    assert_eq!(core.fence().stage, Stage::QueryingWithRecords);
    assert!(core.fence().lost_state);
    assert_eq!(core.metrics().get("behind_collection"), 1);
    let (_, sent) = synced(&mut core);
    assert!(
        sent.iter()
            .any(|(_, m)| matches!(m, Message::RejoinQuery { .. })),
        "{sent:?}"
    );
}

/// Found by t19 seed 220128: two voters of an epoch, removed and added again one after
/// the other, stayed silent about a command of that epoch once they fenced themselves,
/// so its recovery never had `n - f` answers and the hole it left held the next switch
/// back for good. A replica that fences itself with its records intact votes as before
/// on what they cover: here it answers a recovery with the proposal it made earlier.
#[test]
fn a_replica_left_behind_answers_the_recovery_of_a_command_it_voted_on() {
    let mut core = replica(3, 0, 1);
    let dot = Dot {
        node: NodeId(2),
        seq: 1,
    };
    let payload = put_on_k(vec![NodeId(2), NodeId(0)]);
    let propose = Message::Propose {
        dot,
        payload: payload.clone(),
        ts: 1,
    };
    core.handle_message(Time::ZERO, NodeId(2), propose);
    let (_, sent) = synced(&mut core);
    let proposed = sent
        .iter()
        .find_map(|(_, m)| match m {
            Message::ProposeAck { ts, .. } => Some(*ts),
            _ => None,
        })
        .expect("a proposal");
    let behind = Message::Promises {
        keys: vec![promise(9, Vec::new())].into(),
        collected: vec![(NodeId(1), 3)],
    };
    core.handle_message(Time::ZERO, NodeId(1), behind);
    assert_eq!(core.fence().stage, Stage::QueryingWithRecords);
    let ballot = Ballot {
        round: 2,
        node: NodeId(1),
    };
    let rec = Message::Rec {
        dot,
        ballot,
        payload,
    };
    core.handle_message(Time::ZERO, NodeId(1), rec);
    let (_, sent) = synced(&mut core);
    let report = sent
        .iter()
        .find_map(|(to, m)| match m {
            Message::RecAck { report, .. } if *to == NodeId(1) => Some(*report),
            _ => None,
        })
        .expect("an answer to the recovery");
    assert_eq!(report.proposal, proposed);
    assert!(!report.in_recovery);
}
