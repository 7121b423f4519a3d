//! Helpers shared by the handler tests (`*_test.rs`), and the whole-cluster tests on the
//! generic test host (`crate::test_host`, shuffled order): building a cluster, submitting
//! writes, checking answers and the execution order.

use super::{Attributes, Ballot, Batch, Epaxos, EpaxosConfig, InstanceId, Message, Payload};
use super::{Protocol, Record};
use crate::check::check_execution_order;
use crate::command::Command;
use crate::id::{ClientId, NodeId, RequestId};
use crate::protocol::{Effect, Membership, Output};
pub(super) use crate::test_host::put_request as request;
use crate::test_host::{self, Order};
use crate::time::Time;
use std::time::Duration;

pub(super) fn id(leader: u16, slot: u64) -> InstanceId {
    InstanceId {
        leader: NodeId(leader),
        slot,
    }
}

/// Client 1's request `seq`: a put of `[seq]` on `key`.
pub(super) fn payload(seq: u64, key: &str) -> Payload {
    Payload {
        request: RequestId {
            client: ClientId(1),
            seq,
        },
        resend: false,
        command: Command::Put {
            key: key.into(),
            value: vec![seq as u8],
        },
        change: None,
    }
}

pub(super) fn batch(seq: u64, key: &str) -> Batch {
    Batch::single(payload(seq, key))
}

pub(super) fn attrs(seq: u64, deps: &[InstanceId]) -> Attributes {
    Attributes {
        seq,
        deps: deps.iter().copied().collect(),
        epoch: 0,
    }
}

/// Replica `from`'s PreAccept reply for instance 0.0 at its initial ballot.
pub(super) fn preaccept_ok(leader: &mut Epaxos, from: u16, attributes: Attributes) {
    let reply = Message::PreAcceptOk {
        ballot: Ballot::initial(id(0, 0)),
        instance: id(0, 0),
        attributes,
    };
    leader.handle_message(Time::ZERO, NodeId(from), reply);
}

/// Replica `me` of `n`, rebuilt from `records`, with the default options.
pub(super) fn replica(n: u16, me: u16, records: Vec<Record>) -> Epaxos {
    Epaxos::new(
        NodeId(me),
        &Membership::local(n),
        EpaxosConfig::default(),
        0,
        records,
    )
}

/// Every output so far, in order.
pub(super) fn outputs(core: &mut Epaxos) -> Vec<Output<Message, Record>> {
    std::iter::from_fn(|| core.poll_output()).collect()
}

/// Every output so far, as the records a host would make durable and the messages it
/// would then send.
pub(super) fn synced(core: &mut Epaxos) -> (Vec<Record>, Vec<(NodeId, Message)>) {
    let (mut records, mut sent) = (Vec::new(), Vec::new());
    for output in outputs(core) {
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

// ----- a recovery of instance 0.0 (led by replica 0) by replica 1 ---------------------

/// The instance recovered.
pub(super) fn instance() -> InstanceId {
    id(0, 0)
}

/// Its leader's ballot.
pub(super) fn initial() -> Ballot {
    Ballot::initial(instance())
}

/// Replica 1's recovery ballot.
pub(super) fn recovery_ballot() -> Ballot {
    Ballot {
        round: 1,
        node: NodeId(1),
    }
}

/// The recovery's Prepare.
pub(super) fn prepare() -> Message {
    Message::Prepare {
        ballot: recovery_ballot(),
        instance: instance(),
    }
}

/// The leader's PreAccept at `ballot`.
pub(super) fn preaccept(ballot: Ballot) -> Message {
    Message::PreAccept {
        ballot,
        instance: instance(),
        payload: batch(1, "k"),
        attributes: attrs(1, &[]),
        ran_everywhere: Default::default(),
    }
}

/// The leader's Accept at `ballot`.
pub(super) fn accept(ballot: Ballot) -> Message {
    Message::Accept {
        ballot,
        instance: instance(),
        payload: batch(1, "k"),
        attributes: attrs(1, &[]),
    }
}

/// Whether every message sent refuses the leader for the recovery's promise.
pub(super) fn refused(sent: &[(NodeId, Message)]) -> bool {
    sent.iter()
        .all(|(_, m)| matches!(m, Message::Nack { promised, .. } if *promised == recovery_ballot()))
        && !sent.is_empty()
}

impl Epaxos {
    /// Start recovering `id` now (as a stalled dependency would, after a few ticks).
    pub(super) fn start_recovery(&mut self, now: Time, id: InstanceId) {
        let Self {
            replica,
            leader,
            recoveries,
            ..
        } = self;
        recoveries.start(replica, leader, now, id);
    }
}

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

/// `count` writes from `first`, round-robin over the live replicas, a third of them on
/// one hot key and the rest on keys of their own.
pub(super) fn submit(pump: &mut Pump, first: u64, count: u64) -> Vec<RequestId> {
    pump.submit_puts(first, count, 3)
}

pub(super) fn answered(pump: &Pump, ids: &[RequestId]) -> bool {
    pump.answered(ids)
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

/// Submit `count` writes from `first`, `step` at a time, each batch answered before the
/// next; every request id.
pub(super) fn run_writes(pump: &mut Pump, first: u64, count: u64, step: u64) -> Vec<RequestId> {
    let mut ids = Vec::new();
    for from in (first..first + count).step_by(step as usize) {
        let batch = submit(pump, from, step.min(first + count - from));
        assert!(
            pump.run_until(STEPS, |p| answered(p, &batch)),
            "seed {}: writes from {from} not answered",
            pump.seed
        );
        ids.extend(batch);
    }
    ids
}

/// Let `duration` pass (timers fire: reports, collection, compaction).
pub(super) fn idle(pump: &mut Pump, duration: Duration) {
    let end = pump.now + duration;
    pump.run_until(STEPS, |p| p.now >= end);
}
