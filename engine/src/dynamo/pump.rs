//! A small deterministic host for scenario tests: fixed link latency, a disk that syncs
//! after a fixed delay (effects in `Persist` wait for it), crashes that lose unsynced
//! records, restarts from the durable log, and directional link blocks.

use super::{Dynamo, DynamoConfig, Message, Record};
use crate::command::Command;
use crate::id::{ClientId, NodeId, RequestId};
use crate::protocol::{Effect, Membership, Output, Protocol};
use crate::request::{ClientReply, ClientRequest, Consistency, Level};
use crate::time::Time;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

enum Event {
    Deliver {
        to: NodeId,
        from: NodeId,
        message: Message,
    },
    Synced {
        node: NodeId,
        incarnation: u64,
        records: Vec<Record>,
        replace: bool,
        then: Vec<Effect<Message>>,
    },
}

pub(super) struct Pump {
    pub(super) now: Time,
    cluster: Membership,
    config: DynamoConfig,
    nodes: Vec<Option<Dynamo>>,
    /// Durable records per node.
    pub(super) disks: Vec<Vec<Record>>,
    incarnations: Vec<u64>,
    queue: BTreeMap<(Time, u64), Event>,
    seq: u64,
    latency: Duration,
    fsync: Duration,
    blocked: BTreeSet<(NodeId, NodeId)>,
    pub(super) replies: BTreeMap<RequestId, ClientReply>,
    next_request: u64,
    seed: u64,
}

impl Pump {
    pub(super) fn new(cluster: Membership, config: DynamoConfig, seed: u64) -> Self {
        let n = cluster.len();
        let mut pump = Self {
            now: Time::ZERO,
            nodes: Vec::new(),
            disks: vec![Vec::new(); n],
            incarnations: vec![0; n],
            queue: BTreeMap::new(),
            seq: 0,
            latency: Duration::from_millis(1),
            fsync: Duration::from_micros(100),
            blocked: BTreeSet::new(),
            replies: BTreeMap::new(),
            next_request: 0,
            seed,
            cluster,
            config,
        };
        for i in 0..n {
            let node = pump.build(NodeId(i as u16));
            pump.nodes.push(Some(node));
        }
        pump
    }

    fn build(&self, id: NodeId) -> Dynamo {
        let seed = self.seed ^ (u64::from(id.0) << 32) ^ (self.incarnations[id.index()] << 48);
        Dynamo::new(
            id,
            &self.cluster,
            self.config.clone(),
            seed,
            self.disks[id.index()].clone(),
        )
    }

    pub(super) fn node(&self, id: NodeId) -> &Dynamo {
        self.nodes[id.index()].as_ref().expect("node is up")
    }

    pub(super) fn is_up(&self, id: NodeId) -> bool {
        self.nodes[id.index()].is_some()
    }

    /// Stop a node: unsynced records and unreleased effects are lost.
    pub(super) fn crash(&mut self, id: NodeId) {
        self.nodes[id.index()] = None;
        self.incarnations[id.index()] += 1;
    }

    /// Rebuild a crashed node from its durable records.
    pub(super) fn restart(&mut self, id: NodeId) {
        self.incarnations[id.index()] += 1;
        let node = self.build(id);
        self.nodes[id.index()] = Some(node);
        self.drain(id);
    }

    /// Lose a crashed node's disk.
    pub(super) fn wipe(&mut self, id: NodeId) {
        assert!(!self.is_up(id), "wipe a crashed node");
        self.disks[id.index()].clear();
    }

    /// Drop every message from `a` to `b`.
    pub(super) fn block(&mut self, a: NodeId, b: NodeId) {
        self.blocked.insert((a, b));
    }

    /// Cut `node` off from everyone, both ways.
    pub(super) fn isolate(&mut self, node: NodeId) {
        for other in self.cluster.ids().collect::<Vec<_>>() {
            if other != node {
                self.blocked.insert((node, other));
                self.blocked.insert((other, node));
            }
        }
    }

    pub(super) fn heal(&mut self) {
        self.blocked.clear();
    }

    /// Send a request to `node` now.
    pub(super) fn request(
        &mut self,
        node: NodeId,
        command: Command,
        level: Level,
        context: Vec<u8>,
        sloppy: Option<bool>,
    ) -> RequestId {
        self.next_request += 1;
        let id = RequestId {
            client: ClientId(1),
            seq: self.next_request,
        };
        let request = ClientRequest {
            id,
            command,
            consistency: Consistency::Dynamo(level),
            context,
            sloppy,
        };
        let now = self.now;
        if let Some(core) = self.nodes[node.index()].as_mut() {
            core.handle_request(now, request);
        }
        self.drain(node);
        id
    }

    /// Run until `id` is answered (or `limit` passes).
    pub(super) fn run_until_reply(&mut self, id: RequestId, limit: Duration) -> ClientReply {
        let end = self.now + limit;
        while !self.replies.contains_key(&id) && self.now < end {
            if !self.step(end) {
                break;
            }
        }
        self.replies
            .get(&id)
            .cloned()
            .unwrap_or_else(|| panic!("no reply to {id} within {limit:?}"))
    }

    pub(super) fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        while self.step(end) {}
        self.now = end;
    }

    /// Process the next event or timer due before `end`; false when none is.
    fn step(&mut self, end: Time) -> bool {
        let next_event = self.queue.keys().next().map(|(t, _)| *t);
        let next_timer = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().and_then(|n| n.poll_timeout()).map(|t| (t, i)))
            .min();
        let timer_first = match (next_timer, next_event) {
            (Some((t, _)), Some(e)) => t <= e,
            (Some(_), None) => true,
            _ => false,
        };
        if timer_first {
            let (at, index) = next_timer.expect("checked");
            if at > end {
                return false;
            }
            self.now = self.now.max(at);
            let now = self.now;
            if let Some(core) = self.nodes[index].as_mut() {
                core.handle_timeout(now);
            }
            self.drain(NodeId(index as u16));
            return true;
        }
        let Some((&(at, seq), _)) = self.queue.iter().next() else {
            return false;
        };
        if at > end {
            return false;
        }
        let event = self.queue.remove(&(at, seq)).expect("present");
        self.now = self.now.max(at);
        match event {
            Event::Deliver { to, from, message } => self.deliver(to, from, message),
            Event::Synced {
                node,
                incarnation,
                records,
                replace,
                then,
            } => {
                if self.incarnations[node.index()] != incarnation {
                    return true;
                }
                if replace {
                    self.disks[node.index()] = records;
                } else {
                    self.disks[node.index()].extend(records);
                }
                for effect in then {
                    self.perform(node, effect);
                }
            }
        }
        true
    }

    fn deliver(&mut self, to: NodeId, from: NodeId, message: Message) {
        let now = self.now;
        if let Some(core) = self.nodes[to.index()].as_mut() {
            core.handle_message(now, from, message);
            self.drain(to);
        }
    }

    fn push(&mut self, at: Time, event: Event) {
        self.seq += 1;
        self.queue.insert((at, self.seq), event);
    }

    fn drain(&mut self, node: NodeId) {
        loop {
            let Some(core) = self.nodes[node.index()].as_mut() else {
                return;
            };
            let Some(output) = core.poll_output() else {
                return;
            };
            let incarnation = self.incarnations[node.index()];
            let at = self.now + self.fsync;
            match output {
                Output::Now(effect) => self.perform(node, effect),
                Output::Persist { records, then } => self.push(
                    at,
                    Event::Synced {
                        node,
                        incarnation,
                        records,
                        replace: false,
                        then,
                    },
                ),
                Output::Compact { snapshot } => self.push(
                    at,
                    Event::Synced {
                        node,
                        incarnation,
                        records: snapshot,
                        replace: true,
                        then: Vec::new(),
                    },
                ),
            }
        }
    }

    fn perform(&mut self, node: NodeId, effect: Effect<Message>) {
        match effect {
            Effect::Send { to, message } => {
                if to == node {
                    self.push(
                        self.now,
                        Event::Deliver {
                            to,
                            from: node,
                            message,
                        },
                    );
                } else if !self.blocked.contains(&(node, to)) {
                    let at = self.now + self.latency;
                    self.push(
                        at,
                        Event::Deliver {
                            to,
                            from: node,
                            message,
                        },
                    );
                }
            }
            Effect::Reply(reply) => {
                self.replies.insert(reply.id, reply);
            }
            Effect::Committed { .. } => {}
        }
    }
}
