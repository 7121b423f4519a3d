//! Whole-cluster helpers for the tests on the generic test host (`crate::test_host`,
//! shuffled order): building a cluster, submitting writes, checking answers and the
//! execution order.

use super::*;
use crate::check::check_execution_order;
use crate::command::Command;
use crate::id::{ClientId, RequestId};
use crate::test_host::{self, Order};
use std::time::Duration;

pub(super) const STEPS: usize = 400_000;

pub(super) type Pump = test_host::Pump<Epaxos>;

pub(super) fn new_pump(n: u16, seed: u64, config: EpaxosConfig) -> Pump {
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
pub(super) fn fast() -> EpaxosConfig {
    EpaxosConfig {
        retry_timeout: Duration::from_millis(200),
        tick: Duration::from_millis(20),
        gc_interval: Duration::from_millis(200),
        ..EpaxosConfig::default()
    }
}

pub(super) fn request(seq: u64, key: &str) -> ClientRequest {
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
pub(super) fn submit(pump: &mut Pump, first: u64, count: u64) -> Vec<RequestId> {
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

pub(super) fn answered(pump: &Pump, ids: &[RequestId]) -> bool {
    ids.iter().all(|id| pump.replies.contains_key(id))
}

pub(super) fn assert_same_order(pump: &Pump) {
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
