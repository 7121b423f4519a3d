//! Handler tests: one input, then the exact drained outputs (openraft style).
//! References: Lamport, "Paxos Made Simple" (2001) §2.2 (phase 1/2 rules), §3 (Multi-Paxos).

use super::*;
use crate::command::Command;
use crate::id::{ClientId, RequestId};
use crate::protocol::Effect;

fn node(id: u16, config: MultiPaxosConfig) -> MultiPaxos {
    MultiPaxos::new(NodeId(id), &ClusterConfig::local(3), config, 7, Vec::new())
}

fn drain(core: &mut MultiPaxos) -> Vec<Output<Message, Record>> {
    std::iter::from_fn(|| core.poll_output()).collect()
}

fn ballot(round: u64, node: u16) -> Ballot {
    Ballot {
        round,
        node: NodeId(node),
    }
}

fn proposal(seq: u64) -> Proposal {
    Proposal {
        request: RequestId {
            client: ClientId(9),
            seq,
        },
        origin: NodeId(0),
        command: Command::Put {
            key: b"k".to_vec(),
            value: vec![seq as u8],
        },
    }
}

/// Paxos Made Simple §2.2: an acceptor that promised `n` ignores lower-numbered accepts.
#[test]
fn acceptor_refuses_an_accept_below_its_promise() {
    let mut acceptor = node(1, MultiPaxosConfig::default());
    acceptor.handle_message(
        Time::ZERO,
        NodeId(2),
        Message::Prepare {
            ballot: ballot(5, 2),
            from_slot: 0,
        },
    );
    drain(&mut acceptor);
    acceptor.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::Accept {
            ballot: ballot(3, 0),
            slot: 0,
            value: vec![proposal(1)],
        },
    );
    assert_eq!(
        drain(&mut acceptor),
        vec![Output::Now(Effect::Send {
            to: NodeId(0),
            message: Message::Nack {
                promised: ballot(5, 2)
            }
        })]
    );
}

/// Durability: the promise and the accepted value are persisted before Accepted leaves.
#[test]
fn acceptor_persists_before_replying_accepted() {
    let mut acceptor = node(1, MultiPaxosConfig::default());
    let value = vec![proposal(1)];
    acceptor.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::Accept {
            ballot: ballot(1, 0),
            slot: 0,
            value: value.clone(),
        },
    );
    assert_eq!(
        drain(&mut acceptor),
        vec![Output::Persist {
            records: vec![
                Record::Promised(ballot(1, 0)),
                Record::Accepted {
                    slot: 0,
                    ballot: ballot(1, 0),
                    value
                }
            ],
            then: vec![Effect::Send {
                to: NodeId(0),
                message: Message::Accepted {
                    ballot: ballot(1, 0),
                    slot: 0
                }
            }],
        }]
    );
}

/// Paxos Made Simple §2.2 (phase 2a): the new leader proposes the value of the
/// highest-numbered proposal among the promises, not its own.
#[test]
fn new_leader_adopts_the_highest_ballot_value_from_promises() {
    let mut candidate = node(0, MultiPaxosConfig::default());
    candidate.handle_timeout(Time::ZERO); // first boot: node 0 is the initial leader
    let outputs = drain(&mut candidate);
    let Some(Output::Persist { records, .. }) = outputs.first() else {
        panic!("candidate must persist its promise first: {outputs:?}");
    };
    let own = ballot(1, 0);
    assert_eq!(records, &vec![Record::Promised(own)]);
    let old = AcceptedEntry {
        slot: 0,
        ballot: ballot(0, 1),
        value: vec![proposal(1)],
        committed: false,
    };
    let newer = AcceptedEntry {
        slot: 0,
        ballot: ballot(0, 2),
        value: vec![proposal(2)],
        committed: false,
    };
    candidate.handle_message(
        Time::ZERO,
        NodeId(1),
        Message::Promise {
            ballot: own,
            accepted: vec![old],
        },
    );
    candidate.handle_message(
        Time::ZERO,
        NodeId(2),
        Message::Promise {
            ballot: own,
            accepted: vec![newer],
        },
    );
    assert!(candidate.is_leader());
    let accepts: Vec<_> = drain(&mut candidate)
        .into_iter()
        .filter_map(|o| match o {
            Output::Now(Effect::Send {
                message: Message::Accept { slot, value, .. },
                ..
            }) => Some((slot, value)),
            _ => None,
        })
        .collect();
    assert_eq!(
        accepts,
        vec![(0, vec![proposal(2)]), (0, vec![proposal(2)])]
    );
}

/// The leader's own vote counts only once its own accept is durable (a self-send
/// released after the sync), and it commits at a majority.
#[test]
fn leader_commits_at_a_majority_counting_its_own_durable_vote() {
    let mut leader = node(0, MultiPaxosConfig::default());
    leader.handle_timeout(Time::ZERO);
    drain(&mut leader);
    let own = ballot(1, 0);
    leader.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::OwnPromiseDurable { ballot: own },
    );
    leader.handle_message(
        Time::ZERO,
        NodeId(1),
        Message::Promise {
            ballot: own,
            accepted: vec![],
        },
    );
    assert!(leader.is_leader());
    drain(&mut leader);
    let request = ClientRequest::new(proposal(1).request, proposal(1).command);
    leader.handle_request(Time::ZERO, request);
    let outputs = drain(&mut leader);
    assert!(
        matches!(&outputs[0], Output::Persist { then, .. }
            if then == &vec![Effect::Send { to: NodeId(0), message: Message::Accepted { ballot: own, slot: 0 } }]),
        "own vote must wait for the sync: {outputs:?}"
    );
    // One peer's vote alone is not a majority of 3 without the leader's durable vote.
    leader.handle_message(
        Time::ZERO,
        NodeId(1),
        Message::Accepted {
            ballot: own,
            slot: 0,
        },
    );
    assert!(
        drain(&mut leader)
            .iter()
            .all(|o| !matches!(o, Output::Now(Effect::Reply(_)))),
        "replied before a majority was durable"
    );
    leader.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::Accepted {
            ballot: own,
            slot: 0,
        },
    );
    let outputs = drain(&mut leader);
    assert!(outputs.contains(&Output::Now(Effect::Reply(ClientReply {
        id: proposal(1).request,
        outcome: Ok(Response::Kv(CommandResult::Written)),
    }))));
    assert_eq!(leader.applied().len(), 1);
}

/// A duplicated message that would order the same request twice executes it once.
#[test]
fn a_request_ordered_twice_executes_once() {
    let mut follower = node(1, MultiPaxosConfig::default());
    follower.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::Commit {
            slot: 0,
            value: vec![proposal(1)],
        },
    );
    follower.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::Commit {
            slot: 1,
            value: vec![proposal(1)],
        },
    );
    assert_eq!(follower.executed_up_to(), 2);
    assert_eq!(follower.applied().len(), 1);
}

/// Peer input never panics: catch-up requests beyond what we know are ignored.
#[test]
fn catch_up_request_beyond_the_commit_point_is_ignored() {
    let mut follower = node(1, MultiPaxosConfig::default());
    follower.handle_message(
        Time::ZERO,
        NodeId(2),
        Message::CatchUpRequest { from_slot: 1_000 },
    );
    assert!(drain(&mut follower).is_empty());
}
