//! Peer and client input never panic a core. A peer message crosses a process boundary:
//! the server decodes whatever bytes a peer sent and hands the message to the core (and
//! a client's request likewise). Peers are
//! authenticated, and safety assumes they follow the protocol, so a core may drop,
//! refuse or even misjudge a message that makes no sense; it must never panic (a panic
//! would take down every keyspace the process hosts).
//!
//! For every protocol: three cores run a few writes on a perfect network, every message
//! they send is kept (encoded); then, round after round, one kept message with a few
//! bytes changed is decoded as the server decodes a peer frame and, when it decodes,
//! delivered to a core from a member or from a node outside the cluster, while the cores
//! keep exchanging their own messages, taking requests (some of them mutated the same
//! way) and firing timers. Debug builds
//! check arithmetic, so an overflow on a nonsensical ballot, slot or counter panics here.

use crate::dynamo::{Dynamo, DynamoConfig};
use crate::epaxos::{Epaxos, EpaxosConfig};
use crate::id::NodeId;
use crate::multipaxos::{MultiPaxos, MultiPaxosConfig};
use crate::protocol::{Effect, Membership, Output, Protocol};
use crate::request::{ClientRequest, Consistency, Level};
use crate::tempo::{Tempo, TempoConfig};
use crate::test_host::put_request;
use crate::time::Time;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;

const NODES: u16 = 3;
const HEALTHY_STEPS: usize = 20_000;
const FUZZ_ROUNDS: usize = 10_000;

/// Three cores, the messages in flight between them, and every message ever sent.
struct Net<P: Protocol> {
    cores: Vec<P>,
    in_flight: VecDeque<(NodeId, NodeId, P::Message)>,
    sent: Vec<Vec<u8>>,
    now: Time,
}

impl<P: Protocol> Net<P> {
    fn new(make: impl Fn(NodeId) -> P) -> Self {
        Self {
            cores: (0..NODES).map(|i| make(NodeId(i))).collect(),
            in_flight: VecDeque::new(),
            sent: Vec::new(),
            now: Time::ZERO,
        }
    }

    /// Every output of core `at`; records are durable at once, so `Persist` effects run
    /// now too.
    fn drain(&mut self, at: usize) {
        let from = self.cores[at].id();
        while let Some(output) = self.cores[at].poll_output() {
            let effects = match output {
                Output::Persist { then, .. } => then,
                Output::Now(effect) => vec![effect],
                Output::Compact { .. } => Vec::new(),
            };
            for effect in effects {
                if let Effect::Send { to, message } = effect {
                    if let Ok(bytes) = postcard::to_stdvec(&message) {
                        self.sent.push(bytes);
                    }
                    self.in_flight.push_back((from, to, message));
                }
            }
        }
    }

    fn tick(&mut self) {
        self.now = self.now + std::time::Duration::from_millis(1);
        for at in 0..self.cores.len() {
            if self.cores[at].poll_timeout().is_some_and(|t| t <= self.now) {
                self.cores[at].handle_timeout(self.now);
                self.drain(at);
            }
        }
    }

    /// Deliver up to `count` messages in flight, in order.
    fn deliver(&mut self, count: usize) {
        for _ in 0..count {
            let Some((from, to, message)) = self.in_flight.pop_front() else {
                return;
            };
            let Some(at) = self.cores.iter().position(|c| c.id() == to) else {
                continue;
            };
            self.cores[at].handle_message(self.now, from, message);
            self.drain(at);
        }
    }

    fn request(&mut self, at: usize, request: ClientRequest) {
        self.cores[at].handle_request(self.now, request);
        self.drain(at);
    }
}

/// `bytes` with one to three bytes replaced, or cut short, or grown.
fn mutate(bytes: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut out = bytes.to_vec();
    match rng.gen_range(0..4) {
        0 if !out.is_empty() => out.truncate(rng.gen_range(0..out.len())),
        1 => out.extend((0..rng.gen_range(1..9)).map(|_| rng.gen::<u8>())),
        _ => {
            for _ in 0..rng.gen_range(1..4) {
                if out.is_empty() {
                    break;
                }
                let at = rng.gen_range(0..out.len());
                out[at] = match rng.gen_range(0..3) {
                    0 => 0xff,
                    1 => 0,
                    _ => rng.gen(),
                };
            }
        }
    }
    out
}

/// Run the healthy phase, then the fuzzing rounds; returns how many mutated messages
/// decoded and were delivered.
fn fuzz<P: Protocol>(
    make: impl Fn(NodeId) -> P,
    request: impl Fn(u64) -> ClientRequest,
    seed: u64,
) -> usize {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut net = Net::new(make);
    for seq in 0..30 {
        net.request(seq as usize % net.cores.len(), request(seq));
    }
    for _ in 0..HEALTHY_STEPS {
        net.deliver(4);
        net.tick();
    }
    assert!(
        net.sent.len() > 50,
        "the healthy run sent {} messages: nothing to mutate",
        net.sent.len()
    );
    let corpus = net.sent.clone();
    let (mut delivered, mut requests) = (0, 0);
    for round in 0..FUZZ_ROUNDS {
        let original = &corpus[rng.gen_range(0..corpus.len())];
        let bytes = mutate(original, &mut rng);
        if let Ok(message) = postcard::from_bytes::<P::Message>(&bytes) {
            let at = rng.gen_range(0..net.cores.len());
            // Members, and a node the cluster does not have.
            let from = NodeId(rng.gen_range(0..NODES + 1));
            net.cores[at].handle_message(net.now, from, message);
            net.drain(at);
            delivered += 1;
        }
        if round % 16 == 0 {
            let seq = 1_000 + round as u64;
            net.request(rng.gen_range(0..net.cores.len()), request(seq));
        }
        // A client's request crosses a process boundary too.
        if round % 4 == 0 {
            let valid = postcard::to_stdvec(&request(2_000_000 + round as u64)).unwrap_or_default();
            if let Ok(odd) = postcard::from_bytes::<ClientRequest>(&mutate(&valid, &mut rng)) {
                net.request(rng.gen_range(0..net.cores.len()), odd);
                requests += 1;
            }
        }
        net.deliver(8);
        net.tick();
        // Answers to nonsense may multiply: keep the backlog bounded.
        net.in_flight.truncate(10_000);
    }
    assert!(
        requests > FUZZ_ROUNDS / 40,
        "only {requests} mutated client requests decoded"
    );
    delivered
}

fn cluster() -> Membership {
    Membership::local(NODES)
}

fn check_delivered(protocol: &str, delivered: usize) {
    assert!(
        delivered > FUZZ_ROUNDS / 10,
        "{protocol}: only {delivered} of {FUZZ_ROUNDS} mutated messages decoded: the test \
         no longer exercises the core"
    );
}

#[test]
fn mutated_peer_messages_never_panic_epaxos() {
    let delivered = fuzz(
        |id| Epaxos::new(id, &cluster(), EpaxosConfig::default(), 1, Vec::new()),
        |seq| put_request(seq, if seq % 3 == 0 { "hot" } else { "cold" }),
        11,
    );
    check_delivered("epaxos", delivered);
}

#[test]
fn mutated_peer_messages_never_panic_multipaxos() {
    let delivered = fuzz(
        |id| MultiPaxos::new(id, &cluster(), MultiPaxosConfig::default(), 2, Vec::new()),
        |seq| put_request(seq, "k"),
        12,
    );
    check_delivered("multipaxos", delivered);
}

#[test]
fn mutated_peer_messages_never_panic_tempo() {
    let delivered = fuzz(
        |id| Tempo::new(id, &cluster(), TempoConfig::default(), 3, Vec::new()),
        |seq| put_request(seq, if seq % 3 == 0 { "hot" } else { "cold" }),
        13,
    );
    check_delivered("tempo", delivered);
}

#[test]
fn mutated_peer_messages_never_panic_dynamo() {
    let delivered = fuzz(
        |id| Dynamo::new(id, &cluster(), DynamoConfig::default(), 4, Vec::new()),
        |seq| {
            let mut request = put_request(seq, if seq % 2 == 0 { "a" } else { "b" });
            request.consistency = Consistency::Dynamo(Level::Quorum);
            request
        },
        14,
    );
    check_delivered("dynamo", delivered);
}
