//! Whole-cluster tests on the generic test host (`crate::test_host`, shuffled order):
//! seeded delivery order, loss and duplication, crashes and rebuilds from durable
//! records. Safety: interfering commands execute in the same order on every replica
//! (`check::check_execution_order`). Liveness: every request is answered once the
//! network is reliable again. A failing run prints its seed.

use super::*;
use crate::check::check_execution_order;
use crate::command::Command;
use crate::id::{ClientId, RequestId};
use crate::test_host::{self, Order};
use std::time::Duration;

const STEPS: usize = 400_000;

type Pump = test_host::Pump<Epaxos>;

fn new_pump(n: u16, seed: u64, config: EpaxosConfig) -> Pump {
    let members = Membership::local(n);
    let build: test_host::Build<Epaxos> = Box::new(move |id, incarnation, records| {
        let node_seed = seed ^ (u64::from(id.0) << 32) ^ (incarnation << 48);
        Epaxos::new(id, &members, config.clone(), node_seed, records)
    });
    Pump::new(n, seed, Order::Shuffled, build)
}

/// Timers well above the pump's delivery delays. (With a 20 ms retry timeout the
/// shuffled order, whose delays grow with the messages in flight, drives recoveries into
/// a livelock: every retry adds traffic that delays the next round further. EPaxos
/// recovery has no randomized backoff; see docs/design.md#epaxos.)
fn fast() -> EpaxosConfig {
    EpaxosConfig {
        retry_timeout: Duration::from_millis(200),
        tick: Duration::from_millis(20),
        gc_interval: Duration::from_millis(200),
        ..EpaxosConfig::default()
    }
}

fn request(seq: u64, key: &str) -> ClientRequest {
    let id = RequestId {
        client: ClientId(1 + seq % 7),
        seq,
    };
    ClientRequest::new(
        id,
        Command::Put {
            key: key.as_bytes().to_vec(),
            value: seq.to_le_bytes().to_vec(),
        },
    )
}

/// `count` writes from `first`, round-robin over the live replicas, a third of them on
/// one hot key and the rest on keys of their own.
fn submit(pump: &mut Pump, first: u64, count: u64) -> Vec<RequestId> {
    let live: Vec<NodeId> = pump.ids().filter(|&id| pump.is_up(id)).collect();
    (first..first + count)
        .map(|seq| {
            let key = if seq % 3 == 0 {
                "hot".to_owned()
            } else {
                format!("k{seq}")
            };
            let request = request(seq, &key);
            let id = request.id;
            pump.request(live[seq as usize % live.len()], request);
            id
        })
        .collect()
}

fn answered(pump: &Pump, ids: &[RequestId]) -> bool {
    ids.iter().all(|id| pump.replies.contains_key(id))
}

fn assert_same_order(pump: &Pump) {
    let sequences: Vec<Vec<(InstanceId, Command)>> = pump
        .live()
        .map(|core| {
            core.executed()
                .iter()
                .map(|e| (e.instance, e.payload.command.clone()))
                .collect()
        })
        .collect();
    if let Err(divergence) = check_execution_order(&sequences) {
        panic!("seed {}: {divergence}", pump.seed);
    }
}

#[test]
fn interfering_commands_execute_in_one_order_under_loss_and_duplication() {
    for seed in 0..12 {
        let mut pump = new_pump(5, seed, fast());
        pump.loss = 0.05;
        pump.duplicate = 0.05;
        let ids = submit(&mut pump, 0, 60);
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
