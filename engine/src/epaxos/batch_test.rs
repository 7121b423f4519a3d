//! Batching handler tests: requests queue only while the window is full, a batch is one
//! instance, and every client gets its own answer.

use super::{Attributes, Ballot, Batch, Epaxos, EpaxosConfig, InstanceId, KeyIndex, Message};
use super::{Payload, Protocol};
use crate::command::{Command, CommandResult};
use crate::id::{ClientId, NodeId, RequestId};
use crate::protocol::{Effect, Membership, Output};
use crate::request::{ClientReply, ClientRequest, Response};
use crate::time::Time;

fn leader(config: EpaxosConfig) -> Epaxos {
    Epaxos::new(NodeId(0), &Membership::local(3), config, 0, Vec::new())
}

fn request(client: u64, command: Command) -> ClientRequest {
    ClientRequest::new(
        RequestId {
            client: ClientId(client),
            seq: 1,
        },
        command,
    )
}

fn put(value: &str) -> Command {
    Command::Put {
        key: b"k".to_vec(),
        value: value.as_bytes().to_vec(),
    }
}

fn cas(expected: &str, new: &str) -> Command {
    Command::Cas {
        key: b"k".to_vec(),
        expected: Some(expected.as_bytes().to_vec()),
        new: new.as_bytes().to_vec(),
    }
}

/// Effects released by the outputs so far, as a host would release them once synced.
fn released(core: &mut Epaxos) -> Vec<Effect<Message>> {
    let mut effects = Vec::new();
    while let Some(output) = core.poll_output() {
        match output {
            Output::Persist { then, .. } => effects.extend(then),
            Output::Now(effect) => effects.push(effect),
            Output::Compact { .. } => {}
        }
    }
    effects
}

/// The PreAccepts sent to replica 1, as `(instance, commands, attributes)`.
fn preaccepts(effects: &[Effect<Message>]) -> Vec<(InstanceId, Vec<RequestId>, Attributes)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send {
                to: NodeId(1),
                message:
                    Message::PreAccept {
                        instance,
                        payload,
                        attributes,
                        ..
                    },
            } => Some((
                *instance,
                payload.commands().iter().map(|p| p.request).collect(),
                attributes.clone(),
            )),
            _ => None,
        })
        .collect()
}

/// Deliver the leader's own reply (its host does, after the sync) and an unchanged one
/// from replica 1: a fast-path commit. Returns what that released.
fn fast_commit(
    core: &mut Epaxos,
    effects: Vec<Effect<Message>>,
    instance: InstanceId,
    attributes: Attributes,
) -> Vec<Effect<Message>> {
    for effect in effects {
        if let Effect::Send {
            to: NodeId(0),
            message,
        } = effect
        {
            core.handle_message(Time::ZERO, NodeId(0), message);
        }
    }
    let ballot = Ballot {
        round: 0,
        node: NodeId(0),
    };
    core.handle_message(
        Time::ZERO,
        NodeId(1),
        Message::PreAcceptOk {
            ballot,
            instance,
            attributes,
        },
    );
    released(core)
}

fn replies(effects: &[Effect<Message>]) -> Vec<(u64, CommandResult)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Reply(ClientReply {
                id,
                outcome: Ok(Response::Kv(result)),
            }) => Some((id.client.0, result.clone())),
            _ => None,
        })
        .collect()
}

/// With a window of one instance, requests arriving while it is uncommitted queue; its
/// commit puts all of them (up to the batch size) into the next instance, which commits
/// as one and answers each client with its own result, in batch order.
#[test]
fn queued_requests_commit_as_one_instance_with_an_answer_each() {
    let mut core = leader(EpaxosConfig::default().with_batching(8, 1));
    core.handle_request(Time::ZERO, request(1, put("1")));
    let first = released(&mut core);
    let sent = preaccepts(&first);
    assert_eq!(sent.len(), 1, "proposed at once: {first:?}");
    for (client, command) in [(2, cas("1", "2")), (3, Command::Get { key: b"k".to_vec() })] {
        core.handle_request(Time::ZERO, request(client, command));
        assert!(released(&mut core).is_empty(), "window full: queued");
    }
    core.handle_request(Time::ZERO, request(4, cas("1", "3")));
    assert!(released(&mut core).is_empty(), "window full: queued");

    let (instance, _, attributes) = sent[0].clone();
    let after_first = fast_commit(&mut core, first, instance, attributes);
    assert_eq!(replies(&after_first), vec![(1, CommandResult::Written)]);
    let batch = preaccepts(&after_first);
    let [(instance, requests, attributes)] = &batch[..] else {
        panic!("one instance for the queued requests: {batch:?}");
    };
    let clients: Vec<u64> = requests.iter().map(|r| r.client.0).collect();
    assert_eq!(clients, vec![2, 3, 4]);

    let after_batch = fast_commit(&mut core, after_first, *instance, attributes.clone());
    assert!(core.is_committed(*instance));
    assert_eq!(
        replies(&after_batch),
        vec![
            (
                2,
                CommandResult::Cas {
                    applied: true,
                    previous: Some(b"1".to_vec())
                }
            ),
            (3, CommandResult::Value(Some(b"2".to_vec()))),
            (
                4,
                CommandResult::Cas {
                    applied: false,
                    previous: Some(b"2".to_vec())
                }
            ),
        ]
    );
    assert_eq!(core.metrics().get("batches"), 1);
}

/// Off by default: every request gets its own instance in the input that brings it.
#[test]
fn without_batching_every_request_is_proposed_at_once() {
    let mut core = leader(EpaxosConfig::default());
    for client in 1..=3 {
        core.handle_request(Time::ZERO, request(client, put("v")));
        let sent = preaccepts(&released(&mut core));
        assert_eq!(sent.len(), 1, "request {client}");
        assert_eq!(sent[0].1.len(), 1);
    }
}

/// A batch depends on whatever any of its commands depends on.
#[test]
fn a_batch_interferes_through_any_of_its_commands() {
    let on = |key: &str| Payload {
        request: RequestId {
            client: ClientId(1),
            seq: 1,
        },
        resend: false,
        command: Command::Put {
            key: key.as_bytes().to_vec(),
            value: Vec::new(),
        },
        change: None,
    };
    let mut index = KeyIndex::default();
    let earlier = InstanceId {
        leader: NodeId(1),
        slot: 0,
    };
    index.insert_batch(earlier, &Batch::single(on("b")), 4);
    let batch = Batch::from(vec![on("a"), on("b")]);
    let attributes = index.attributes_for_batch(
        InstanceId {
            leader: NodeId(0),
            slot: 0,
        },
        &batch,
        &Default::default(),
    );
    assert_eq!(attributes.seq, 5);
    assert!(attributes.deps.contains(&earlier));
    assert!(batch.interferes(&Batch::single(on("b"))));
    assert!(!batch.interferes(&Batch::single(on("c"))));
}

/// EPaxos orders a command only against commands on its key, so a linearizable range
/// read is refused (saying why); a local one reads this replica's state.
#[test]
fn range_reads_are_refused_unless_local() {
    let mut core = leader(EpaxosConfig::default());
    let scan = Command::Scan {
        prefix: Vec::new(),
        after: None,
        limit: 10,
    };
    core.handle_request(Time::ZERO, request(1, scan.clone()));
    core.handle_request(
        Time::ZERO,
        request(2, scan).with_consistency(crate::request::Consistency::LocalRead),
    );
    let replies: Vec<_> = released(&mut core)
        .into_iter()
        .filter_map(|e| match e {
            Effect::Reply(reply) => Some(reply.outcome),
            _ => None,
        })
        .collect();
    match replies.as_slice() {
        [Err(crate::request::RequestError::Invalid(text)), Ok(local)] => {
            assert!(text.contains("linearizable only on Multi-Paxos"), "{text}");
            let empty = CommandResult::Entries {
                entries: Vec::new(),
                more: false,
            };
            assert_eq!(*local, Response::Kv(empty));
        }
        other => panic!("{other:?}"),
    }
}

/// Adaptive batching (`max_batch` above 1): the requests of one burst share an instance, each
/// answered on its own; a burst of one is proposed at the burst's end, and nothing is
/// proposed before it.
#[test]
fn a_burst_shares_an_instance_and_a_lone_request_goes_at_once() {
    let mut core = leader(EpaxosConfig::default().with_batching(256, 10_000));
    core.begin_burst();
    core.handle_request(Time::ZERO, request(1, put("1")));
    core.handle_request(Time::ZERO, request(2, cas("1", "2")));
    core.handle_request(Time::ZERO, request(3, Command::Get { key: b"k".to_vec() }));
    assert!(released(&mut core).is_empty(), "held to the burst's end");
    core.end_burst(Time::ZERO);
    let first = released(&mut core);
    let sent = preaccepts(&first);
    let [(instance, requests, attributes)] = &sent[..] else {
        panic!("one instance for the burst: {sent:?}");
    };
    let clients: Vec<u64> = requests.iter().map(|r| r.client.0).collect();
    assert_eq!(clients, vec![1, 2, 3]);
    let after = fast_commit(&mut core, first.clone(), *instance, attributes.clone());
    assert_eq!(
        replies(&after),
        vec![
            (1, CommandResult::Written),
            (
                2,
                CommandResult::Cas {
                    applied: true,
                    previous: Some(b"1".to_vec())
                }
            ),
            (3, CommandResult::Value(Some(b"2".to_vec()))),
        ]
    );
    core.begin_burst();
    core.handle_request(Time::ZERO, request(4, put("4")));
    core.end_burst(Time::ZERO);
    let lone = preaccepts(&released(&mut core));
    assert_eq!(lone.len(), 1);
    assert_eq!(lone[0].1.len(), 1);
    assert_eq!(core.metrics().get("instances_led"), 2);
    assert_eq!(core.metrics().get("commands_led"), 4);
}
