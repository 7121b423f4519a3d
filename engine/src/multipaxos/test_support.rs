//! Test helpers: message builders, and Multi-Paxos views of the generic test host
//! (`crate::test_host`, shuffled order: a seeded bag of in-flight messages, records
//! durable at once, crashes that drop the node and the messages to it, restarts from its
//! records).

use super::*;
use crate::command::Command;
use crate::id::ClientId;
use crate::protocol::Effect;
use crate::request::Response;
use crate::test_host::{self, Order};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

pub(super) fn cluster(n: u16) -> Membership {
    Membership::local(n)
}

pub(super) fn node(id: u16, n: u16, config: MultiPaxosConfig) -> MultiPaxos {
    MultiPaxos::new(NodeId(id), &cluster(n), config, 7, Vec::new())
}

pub(super) fn drain(core: &mut MultiPaxos) -> Vec<Output<Message, Record>> {
    std::iter::from_fn(|| core.poll_output()).collect()
}

pub(super) fn ballot(round: u64, node: u16) -> Ballot {
    Ballot {
        round,
        node: NodeId(node),
    }
}

pub(super) fn request_id(seq: u64) -> RequestId {
    RequestId {
        client: ClientId(9),
        seq,
    }
}

pub(super) fn put(seq: u64) -> Command {
    Command::Put {
        key: b"k".to_vec(),
        value: seq.to_le_bytes().to_vec(),
    }
}

pub(super) fn proposal(seq: u64, origin: u16) -> Proposal {
    Proposal::command(request_id(seq), NodeId(origin), put(seq))
}

pub(super) fn send(to: u16, message: Message) -> Effect<Message> {
    Effect::Send {
        to: NodeId(to),
        message,
    }
}

pub(super) fn now_send(to: u16, message: Message) -> Output<Message, Record> {
    Output::Now(send(to, message))
}

/// Every message a drained output list sends now (not after a sync), in order.
pub(super) fn sent_now(outputs: &[Output<Message, Record>]) -> Vec<(NodeId, Message)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Now(Effect::Send { to, message }) => Some((*to, message.clone())),
            _ => None,
        })
        .collect()
}

/// Deliver every self-send released by the `Persist` outputs (the sync completed).
pub(super) fn sync_self(core: &mut MultiPaxos, now: Time, outputs: &[Output<Message, Record>]) {
    let own = core.id();
    for output in outputs {
        if let Output::Persist { then, .. } = output {
            for effect in then {
                if let Effect::Send { to, message } = effect {
                    if *to == own {
                        core.handle_message(now, own, message.clone());
                    }
                }
            }
        }
    }
}

/// Node 0 of an `n`-cluster, leading ballot (1, 0) after promises from nodes 1..q1.
pub(super) fn elected_leader(n: u16, config: MultiPaxosConfig) -> MultiPaxos {
    let mut leader = node(0, n, config);
    leader.handle_timeout(Time::ZERO);
    let outputs = drain(&mut leader);
    sync_self(&mut leader, Time::ZERO, &outputs);
    let mut peer = 1;
    while !leader.is_leader() {
        leader.handle_message(
            Time::ZERO,
            NodeId(peer),
            Message::Promise {
                ballot: ballot(1, 0),
                accepted: Vec::new(),
                lease_remaining_us: 0,
                fence: Ballot::default(),
                fences: Vec::new(),
            },
        );
        peer += 1;
    }
    drain(&mut leader);
    leader
}

/// A deterministic in-memory cluster of Multi-Paxos replicas (the generic test host, in
/// its shuffled order: seeded delivery, optional loss and duplication).
pub(super) type Pump = test_host::Pump<MultiPaxos>;

/// `n` replicas with `config`; election jitter seeds derive from `seed`, the node id and
/// its incarnation.
pub(super) fn new_pump(n: u16, config: MultiPaxosConfig, seed: u64) -> Pump {
    let members = cluster(n);
    let build: test_host::Build<MultiPaxos> = Box::new(move |id, incarnation, records| {
        let node_seed = seed
            .wrapping_mul(31)
            .wrapping_add(u64::from(id.0))
            .wrapping_add(incarnation << 32);
        MultiPaxos::new(id, &members, config.clone(), node_seed, records)
    });
    Pump::new(n, seed, Order::Shuffled, build)
}

/// Multi-Paxos views of a pumped cluster.
pub(super) trait MultiPaxosPump {
    /// The live leader with the highest ballot.
    fn leader(&self) -> Option<NodeId>;
    /// Safety: every live replica applied the same requests in every slot it applied
    /// (the same sequence, some lagging, some with a snapshot's gap), and no request twice.
    fn check_agreement(&self) -> Result<(), String>;
    /// [`check_agreement`](Self::check_agreement) or panic.
    fn assert_agreement(&self);
}

impl MultiPaxosPump for Pump {
    fn leader(&self) -> Option<NodeId> {
        self.live()
            .filter(|n| n.is_leader())
            .max_by_key(|n| n.ballot())
            .map(|n| n.id())
    }

    fn check_agreement(&self) -> Result<(), String> {
        // Per slot, the requests each replica applied there; a replica that installed a
        // snapshot has a gap, so replicas are compared slot by slot where both applied.
        let mut reference: BTreeMap<Slot, Vec<RequestId>> = BTreeMap::new();
        for (i, node) in self.live().enumerate() {
            let mut view: BTreeMap<Slot, Vec<RequestId>> = BTreeMap::new();
            for entry in node.applied() {
                view.entry(entry.slot).or_default().push(entry.request);
            }
            let distinct: BTreeSet<_> = node.applied().iter().map(|e| e.request).collect();
            if distinct.len() != node.applied().len() {
                return Err(format!(
                    "seed {}: replica {i} applied a request twice",
                    self.seed
                ));
            }
            for (slot, requests) in view {
                let expected = reference.entry(slot).or_insert_with(|| requests.clone());
                if *expected != requests {
                    return Err(format!(
                        "seed {}: replica {i} applied a different sequence at slot {slot}",
                        self.seed
                    ));
                }
            }
        }
        Ok(())
    }

    fn assert_agreement(&self) {
        if let Err(divergence) = self.check_agreement() {
            panic!("{divergence}");
        }
    }
}

pub(super) const STEPS: usize = 200_000;

pub(super) fn fast() -> MultiPaxosConfig {
    MultiPaxosConfig::default()
        .with_timeouts(Duration::from_millis(10), Duration::from_millis(100))
        .with_forward_retry(Duration::from_millis(300), 50)
}

/// Submit `count` writes round-robin over the live replicas, starting at `first_seq`.
pub(super) fn submit(pump: &mut Pump, first_seq: u64, count: u64) {
    let live: Vec<NodeId> = (0..pump.nodes.len() as u16)
        .map(NodeId)
        .filter(|&id| pump.node(id).is_some())
        .collect();
    for seq in first_seq..first_seq + count {
        let at = live[(seq as usize) % live.len()];
        pump.request(at, ClientRequest::new(request_id(seq), put(seq)));
    }
}

pub(super) fn answered(pump: &Pump, seqs: std::ops::Range<u64>) -> bool {
    seqs.clone()
        .all(|seq| pump.replies.contains_key(&request_id(seq)))
}

pub(super) fn assert_all_ok(pump: &Pump, seqs: std::ops::Range<u64>) {
    for seq in seqs {
        let reply = &pump.replies[&request_id(seq)];
        assert!(
            matches!(reply.outcome, Ok(Response::Kv(_))),
            "seed {}: {reply:?}",
            pump.seed
        );
    }
}

/// Every live replica has executed everything committed at the leader.
pub(super) fn converged(pump: &Pump) -> bool {
    let points: Vec<Slot> = pump
        .nodes
        .iter()
        .flatten()
        .map(|n| n.executed_up_to())
        .collect();
    points.iter().all(|&p| p == points[0] && p > 0)
}
