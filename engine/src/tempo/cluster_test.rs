//! Whole-cluster tests on the generic test host: commands commit and execute everywhere;
//! conflicting commands execute in one order on every replica (under reordering, loss,
//! duplication, crashes and restarts); a crashed coordinator's commands are recovered so
//! that they do not block execution. A failing run prints its seed.

use super::test_support::*;
use super::*;
use crate::id::{NodeId, RequestId};
use crate::test_host::Order;
use std::time::Duration;

#[test]
fn with_f1_a_command_commits_on_the_fast_path_and_executes_everywhere() {
    let mut pump = new_pump(5, 1, timed(), config(1));
    let ids = submit(&mut pump, 0, 1, 1_000);
    let reply = pump.run_until_reply(ids[0], Duration::from_secs(1));
    assert!(reply.outcome.is_ok(), "{reply:?}");
    // One round trip (20 ms) plus two syncs, and execution follows at once: the fast
    // quorum's answers carry the promises that make the timestamp stable.
    assert!(
        pump.now < Time::ZERO + Duration::from_millis(25),
        "{:?}",
        pump.now
    );
    pump.run_for(Duration::from_millis(200));
    for core in pump.live() {
        assert_eq!(core.executed().len(), 1);
    }
    let fast: u64 = pump.live().map(|c| c.metrics().get("fast_path")).sum();
    assert_eq!(fast, 1);
}

#[test]
fn with_f1_every_command_commits_fast_even_when_all_conflict() {
    let mut pump = new_pump(5, 2, timed(), config(1));
    let ids = submit(&mut pump, 0, 20, 1);
    pump.run_for(Duration::from_secs(2));
    assert!(answered(&pump, &ids));
    let metric = |name| pump.live().map(|c| c.metrics().get(name)).sum::<u64>();
    assert_eq!(metric("fast_path"), 20);
    assert_eq!(metric("slow_path"), 0);
    assert_same_order(&pump);
    for core in pump.live() {
        assert_eq!(core.executed().len(), 20);
    }
}

#[test]
fn conflicting_commands_execute_in_one_order_on_every_replica() {
    for f in [1, 2] {
        for seed in 0..10 {
            let mut pump = new_pump(5, seed, Order::Shuffled, config(f));
            let ids = submit(&mut pump, 0, 60, 3);
            assert!(
                pump.run_until(STEPS, |p| answered(p, &ids)),
                "f {f} seed {seed}: not every request was answered"
            );
            assert_same_order(&pump);
        }
    }
}

#[test]
fn f2_takes_the_slow_path_under_conflicts_and_stays_in_one_order() {
    let mut slow = 0;
    for seed in 0..6 {
        let mut pump = new_pump(5, seed, Order::Shuffled, config(2));
        let ids = submit(&mut pump, 0, 40, 1);
        assert!(pump.run_until(STEPS, |p| answered(p, &ids)), "seed {seed}");
        assert_same_order(&pump);
        slow += pump
            .live()
            .map(|c| c.metrics().get("slow_path"))
            .sum::<u64>();
    }
    assert!(
        slow > 0,
        "40 commands on one key never took the slow path with f = 2"
    );
}

#[test]
fn one_order_under_loss_and_duplication() {
    for seed in 0..10 {
        let mut pump = new_pump(5, seed, Order::Shuffled, config(1));
        pump.loss = 0.05;
        pump.duplicate = 0.05;
        let ids = submit(&mut pump, 0, 60, 3);
        pump.run_until(STEPS, |p| answered(p, &ids));
        pump.loss = 0.0;
        pump.duplicate = 0.0;
        assert!(
            pump.run_until(STEPS, |p| answered(p, &ids)),
            "seed {seed}: {} of {} answered",
            ids.iter()
                .filter(|id| pump.replies.contains_key(id))
                .count(),
            ids.len()
        );
        assert_same_order(&pump);
    }
}

#[test]
fn a_crashed_replica_rebuilt_from_its_records_agrees_and_the_rest_finish() {
    for seed in 0..8 {
        let mut pump = new_pump(3, seed, Order::Shuffled, config(1));
        let first = submit(&mut pump, 0, 20, 3);
        for _ in 0..200 {
            pump.step();
        }
        let victim = NodeId((seed % 3) as u16);
        pump.crash(victim);
        let survivors: Vec<RequestId> = first
            .iter()
            .enumerate()
            .filter(|(i, _)| *i % 3 != victim.index())
            .map(|(_, id)| *id)
            .collect();
        let later = submit(&mut pump, 100, 12, 3);
        assert!(
            pump.run_until(STEPS, |p| answered(p, &survivors) && answered(p, &later)),
            "seed {seed}: the others did not finish without {victim}"
        );
        pump.restart(victim);
        let after = submit(&mut pump, 200, 9, 3);
        assert!(
            pump.run_until(STEPS, |p| answered(p, &after)),
            "seed {seed}: requests after the restart of {victim} did not finish"
        );
        assert_same_order(&pump);
    }
}

#[test]
fn a_coordinator_that_crashed_mid_proposal_does_not_block_the_key() {
    let mut recovered = 0;
    for seed in 0..8 {
        let mut pump = new_pump(5, seed, Order::Shuffled, config(1));
        // Replica 0 proposes on the hot key and crashes before anything is answered.
        let lost = submit(&mut pump, 0, 1, 1);
        for _ in 0..(seed as usize * 3) {
            pump.step();
        }
        pump.crash(NodeId(0));
        let later = submit(&mut pump, 1, 20, 1);
        assert!(
            pump.run_until(STEPS, |p| answered(p, &later)),
            "seed {seed}: the hot key stayed blocked behind the crashed coordinator"
        );
        // Recovered (committed by another replica) or not, the survivors agree on it.
        pump.run_until(20_000, |_| false);
        let ran: Vec<bool> = pump
            .live()
            .map(|c| c.executed().iter().any(|e| e.request == lost[0]))
            .collect();
        assert!(ran.iter().all(|&r| r == ran[0]), "seed {seed}: {ran:?}");
        recovered += pump
            .live()
            .map(|c| c.metrics().get("recovered"))
            .sum::<u64>();
        assert_same_order(&pump);
    }
    assert!(recovered > 0, "no seed needed a recovery");
}

#[test]
fn a_resend_gets_its_first_result_within_the_key_window_and_never_runs_again() {
    for seed in 0..4 {
        let config = TempoConfig {
            key_session_window: 3,
            ..config(1)
        };
        let mut pump = new_pump(3, seed, Order::Shuffled, config);
        crate::test_host::check_key_resends(&mut pump, 3, Tempo::kv);
    }
}

#[test]
fn a_coordinator_stops_proposing_to_a_fast_quorum_member_that_went_silent() {
    let mut pump = new_pump(5, 3, timed(), config(1));
    let nearest = pump.up(NodeId(0)).fast_quorum().to_vec();
    let dead = *nearest.iter().find(|&&n| n != NodeId(0)).expect("a peer");
    pump.crash(dead);
    let first = request(1, "a");
    let first_id = first.id;
    pump.request(NodeId(0), first);
    let reply = pump.run_until_reply(first_id, Duration::from_secs(5));
    assert!(reply.outcome.is_ok(), "{reply:?}");
    let quorum = pump.up(NodeId(0)).fast_quorum().to_vec();
    assert!(!quorum.contains(&dead), "{dead:?} still in {quorum:?}");
    assert_eq!(quorum.len(), nearest.len());
    // Later commands commit in one round trip, without a recovery.
    let fast_before = pump.up(NodeId(0)).metrics().get("fast_path");
    let recovered_before: u64 = pump.live().map(|c| c.metrics().get("recovered")).sum();
    for seq in 2..12 {
        let put = request(seq, "b");
        let id = put.id;
        pump.request(NodeId(0), put);
        let reply = pump.run_until_reply(id, Duration::from_secs(1));
        assert!(reply.outcome.is_ok(), "{reply:?}");
    }
    assert_eq!(
        pump.up(NodeId(0)).metrics().get("fast_path") - fast_before,
        10
    );
    let recovered: u64 = pump.live().map(|c| c.metrics().get("recovered")).sum();
    assert_eq!(recovered, recovered_before);
    // Heard again once it is back: the nearest quorum returns.
    pump.restart(dead);
    pump.run_for(Duration::from_millis(200));
    assert_eq!(pump.up(NodeId(0)).fast_quorum(), nearest.as_slice());
}
