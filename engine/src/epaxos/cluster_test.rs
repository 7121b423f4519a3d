//! Whole-cluster tests on the generic test host (`crate::test_host`, shuffled order):
//! seeded delivery order, loss and duplication, crashes and rebuilds from durable
//! records. Safety: interfering commands execute in the same order on every replica
//! (`check::check_execution_order`). Liveness: every request is answered once the
//! network is reliable again. A failing run prints its seed.

use super::test_support::*;
use super::*;
use crate::id::RequestId;

/// `n` replicas, 60 puts on one key under 5 % loss and duplication, then a reliable
/// network: every request is answered and the puts ran in one order everywhere.
fn one_order_under_loss_and_duplication(n: u16, seed: u64) {
    let mut pump = new_pump(n, seed, fast());
    pump.loss = 0.05;
    pump.duplicate = 0.05;
    let ids = submit(&mut pump, 0, 60);
    pump.run_until(STEPS, |p| answered(p, &ids));
    pump.loss = 0.0;
    pump.duplicate = 0.0;
    assert!(
        pump.run_until(STEPS, |p| answered(p, &ids)),
        "n {n} seed {seed}: {} of {} answered",
        ids.iter()
            .filter(|id| pump.replies.contains_key(id))
            .count(),
        ids.len()
    );
    assert_same_order(&pump);
}

#[test]
fn interfering_commands_execute_in_one_order_under_loss_and_duplication() {
    for seed in 0..12 {
        one_order_under_loss_and_duplication(5, seed);
    }
}

#[test]
fn a_crashed_replica_rebuilt_from_its_records_agrees_and_the_rest_finish() {
    for seed in 0..8 {
        let mut pump = new_pump(3, seed, fast());
        let first = submit(&mut pump, 0, 20);
        // Crash a replica mid-stream: its clients' requests die with it, the others'
        // must finish on the remaining majority.
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
        let later = submit(&mut pump, 100, 12);
        assert!(
            pump.run_until(STEPS, |p| answered(p, &survivors) && answered(p, &later)),
            "seed {seed}: the majority did not finish without {victim}"
        );
        pump.restart(victim);
        let after = submit(&mut pump, 200, 9);
        assert!(
            pump.run_until(STEPS, |p| answered(p, &after)),
            "seed {seed}: requests after the restart of {victim} did not finish"
        );
        assert_same_order(&pump);
    }
}

#[test]
fn a_resend_gets_its_first_result_within_the_key_window_and_never_runs_again() {
    for seed in 0..4 {
        let config = EpaxosConfig {
            key_session_window: 3,
            ..fast()
        };
        let mut pump = new_pump(3, seed, config);
        crate::test_host::check_key_resends(&mut pump, 3, Epaxos::kv);
    }
}

/// Two and four replicas take the fast quorums of three and five (2 and 3,
/// `quorum::epaxos_fast_quorum`); with the N = 2F + 1 formula's 0 and 2 this failed at
/// seed 0 (two puts executed in opposite orders).
#[test]
fn an_even_voter_count_keeps_interfering_commands_in_one_order() {
    for n in [2, 4] {
        for seed in 0..12 {
            one_order_under_loss_and_duplication(n, seed);
        }
    }
}
