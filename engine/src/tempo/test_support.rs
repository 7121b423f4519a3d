//! Helpers shared by Tempo's handler tests and whole-cluster tests on the generic test
//! host (`crate::test_host`).

use super::messages::KeyPromise;
use super::{Dot, Message, Protocol, Record, Tempo, TempoConfig};
use crate::check::check_execution_order;
use crate::command::Command;
use crate::id::{NodeId, RequestId};
use crate::protocol::{Effect, Membership, Output};
pub(super) use crate::test_host::put_request as request;
use crate::test_host::{self, Order};
use std::time::Duration;

pub(super) const STEPS: usize = 400_000;

pub(super) type Pump = test_host::Pump<Tempo>;

/// Timers well above the shuffled pump's delivery delays.
pub(super) fn config(f: usize) -> TempoConfig {
    TempoConfig {
        f,
        retry_timeout: Duration::from_millis(200),
        recovery_timeout: Duration::from_millis(600),
        tick: Duration::from_millis(20),
        gc_interval: Duration::from_millis(200),
        ..TempoConfig::default()
    }
}

pub(super) fn new_pump(n: u16, seed: u64, order: Order, config: TempoConfig) -> Pump {
    let members = Membership::local(n);
    let build: test_host::Build<Tempo> = Box::new(move |id, incarnation, records| {
        let node_seed = seed ^ (u64::from(id.0) << 32) ^ (incarnation << 48);
        Tempo::new(id, &members, config.clone(), node_seed, records)
    });
    Pump::new(n, seed, order, build)
}

/// Fixed 10 ms links and 1 ms syncs.
pub(super) fn timed() -> Order {
    Order::Timed {
        latency: Duration::from_millis(10),
        fsync: Duration::from_millis(1),
    }
}

/// Replica `me` of `n` with no records.
pub(super) fn replica(n: u16, me: u16, f: usize) -> Tempo {
    Tempo::new(NodeId(me), &Membership::local(n), config(f), 0, Vec::new())
}

/// `count` writes from `first`, round-robin over the live replicas; every `hot_every`-th
/// on one hot key, the rest on keys of their own.
pub(super) fn submit(pump: &mut Pump, first: u64, count: u64, hot_every: u64) -> Vec<RequestId> {
    pump.submit_puts(first, count, hot_every)
}

pub(super) fn answered(pump: &Pump, ids: &[RequestId]) -> bool {
    pump.answered(ids)
}

pub(super) fn assert_same_order(pump: &Pump) {
    let sequences: Vec<Vec<(Dot, Command)>> = pump
        .live()
        .map(|core| {
            core.executed()
                .iter()
                .map(|e| (e.dot, e.command.clone()))
                .collect()
        })
        .collect();
    if let Err(divergence) = check_execution_order(&sequences) {
        panic!("seed {}: {divergence}", pump.seed);
    }
}

/// Every output so far, as the records a host would make durable and the messages it
/// would then send.
pub(super) fn synced(core: &mut Tempo) -> (Vec<Record>, Vec<(NodeId, Message)>) {
    let (mut records, mut sent) = (Vec::new(), Vec::new());
    while let Some(output) = core.poll_output() {
        let effects = match output {
            Output::Persist { records: r, then } => {
                records.extend(r);
                then
            }
            Output::Now(effect) => vec![effect],
            Output::Compact { .. } => Vec::new(),
        };
        for effect in effects {
            if let Effect::Send { to, message } = effect {
                sent.push((to, message));
            }
        }
    }
    (records, sent)
}

/// Run until every replica executed and forgot every command.
pub(super) fn settle(pump: &mut Pump, seed: u64) {
    let idle = pump.run_until(STEPS, |p| p.live().all(|c| c.live_commands() == 0));
    assert!(idle, "seed {seed}: commands still live");
}

/// A replica's promise on key `k`: its clock and attached promises.
pub(super) fn promise(clock: u64, attached: Vec<(u64, Dot)>) -> KeyPromise {
    KeyPromise {
        key: b"k".to_vec(),
        clock,
        attached,
        since: None,
        lineage: 0,
        epoch: 0,
    }
}

/// A replica's promise on the switch lane: its highest clock, no switch proposed.
pub(super) fn lane(clock: u64) -> KeyPromise {
    KeyPromise {
        key: super::SWITCH_LANE.to_vec(),
        clock,
        attached: Vec::new(),
        since: None,
        lineage: 0,
        epoch: 0,
    }
}
