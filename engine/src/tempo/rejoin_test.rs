//! A replica that lost its disk: it votes on no command its former self could have
//! voted on, numbers its commands in a new epoch, executes in the same order as the
//! others from a peer's state, and a restart in the middle of the rejoin picks it up.

use super::dots::epoch_of;
use super::test_support::*;
use super::*;
use crate::id::NodeId;
use crate::test_host::Order;

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

fn same_state(pump: &Pump) -> bool {
    let states: Vec<_> = pump.live().map(|n| n.kv().clone()).collect();
    states.windows(2).all(|w| w[0] == w[1])
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
    let payload = Payload {
        request: crate::id::RequestId {
            client: crate::id::ClientId(77),
            seq: 1,
        },
        resend: false,
        command: crate::command::Command::Put {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        },
        quorum: vec![NodeId(0), LOST],
    };
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
        let later = submit(&mut pump, 2_000, 30, 3);
        assert!(
            pump.run_until(STEPS, |p| answered(p, &later)),
            "seed {seed}"
        );
        settle(&mut pump, seed);
        assert_same_order(&pump);
        assert!(same_state(&pump), "seed {seed}: states differ");
    }
}
