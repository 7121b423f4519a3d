//! Handler tests: one input, then the exact drained outputs (openraft style).
//! Reference: DeCandia et al., "Dynamo" (SOSP 2007) §4.5 (coordinator writes locally,
//! sends to the N-1 others, replies after W-1 acks), §5 (read repair); durability rule
//! from docs/design.md#durability (persist before acknowledging).

use super::*;
use crate::command::Command;
use crate::id::{ClientId, RequestId};
use crate::request::{
    ClientReply, Consistency, Level, ReadRepair, Receipt, ReceiptReplica, RequestError, Response,
    VersionedResponse,
};
use std::time::Duration;

const T0: Time = Time::from_millis(1);

fn cluster(n: u16) -> Membership {
    Membership::local(n)
}

/// A started node with its start-up outputs drained.
fn node(id: u16, n: u16) -> Dynamo {
    let mut node = Dynamo::new(
        NodeId(id),
        &cluster(n),
        DynamoConfig::default(),
        9,
        Vec::new(),
    );
    node.handle_timeout(T0);
    drain(&mut node);
    node
}

fn drain(core: &mut Dynamo) -> Vec<Output<Message, Record>> {
    std::iter::from_fn(|| core.poll_output()).collect()
}

fn request(seq: u64, command: Command, level: Level) -> ClientRequest {
    ClientRequest {
        id: RequestId {
            client: ClientId(5),
            seq,
        },
        command,
        consistency: Consistency::Dynamo(level),
        context: Vec::new(),
        sloppy: None,
        resend: false,
    }
}

fn put(value: &[u8]) -> Command {
    Command::Put {
        key: b"k".to_vec(),
        value: value.to_vec(),
    }
}

fn op(node: &Dynamo, seq: u64) -> OpId {
    OpId {
        boot: node.boot,
        seq,
    }
}

fn written(node: &Dynamo, counter: u64, value: &[u8], at: Time) -> Object {
    Object::new().update(
        &VersionVector::new(),
        Dot {
            actor: Actor {
                node: node.id,
                epoch: node.epoch,
            },
            counter,
        },
        Sibling {
            value: Some(value.to_vec()),
            timestamp_us: at.as_micros(),
        },
    )
}

fn reply(seq: u64, outcome: Result<Response, RequestError>) -> Output<Message, Record> {
    Output::Now(Effect::Reply(ClientReply {
        id: RequestId {
            client: ClientId(5),
            seq,
        },
        outcome,
    }))
}

fn send(to: u16, message: Message) -> Effect<Message> {
    Effect::Send {
        to: NodeId(to),
        message,
    }
}

/// Every boot persists its new epoch before anything else it writes.
#[test]
fn a_fresh_node_persists_its_epoch_then_pings_its_peers() {
    let mut node = Dynamo::new(
        NodeId(0),
        &cluster(3),
        DynamoConfig::default(),
        9,
        Vec::new(),
    );
    assert_eq!(node.poll_timeout(), Some(Time::ZERO));
    node.handle_timeout(T0);
    assert_eq!(
        drain(&mut node),
        vec![
            Output::Persist {
                records: vec![Record::Epoch { epoch: node.epoch }],
                then: vec![],
            },
            Output::Now(send(1, Message::Ping)),
            Output::Now(send(2, Message::Ping)),
        ]
    );
}

/// §4.5: the coordinator (an owner) persists the new version and counts itself once it
/// is durable (a self-send released by the sync); the whole object goes to the other
/// owners at once, in parallel with the local fsync.
#[test]
fn a_write_at_an_owner_counts_itself_only_once_its_copy_is_durable() {
    let mut coordinator = node(0, 3);
    coordinator.handle_request(T0, request(1, put(b"v"), Level::One));
    let object = written(&coordinator, 1, b"v", T0);
    let op = op(&coordinator, 1);
    let store = |to| {
        Output::Now(send(
            to,
            Message::Store {
                op,
                key: b"k".to_vec(),
                object: object.clone(),
                hint_for: None,
            },
        ))
    };
    assert_eq!(
        drain(&mut coordinator),
        vec![
            Output::Persist {
                records: vec![Record::Object {
                    key: b"k".to_vec(),
                    object: object.clone()
                }],
                then: vec![send(
                    0,
                    Message::Stored {
                        op,
                        key: b"k".to_vec(),
                        hint_for: None
                    }
                )],
            },
            store(1),
            store(2),
        ]
    );
    coordinator.handle_message(
        T0,
        NodeId(0),
        Message::Stored {
            op,
            key: b"k".to_vec(),
            hint_for: None,
        },
    );
    assert_eq!(
        drain(&mut coordinator),
        vec![reply(
            1,
            Ok(Response::Versioned(VersionedResponse {
                siblings: vec![Some(b"v".to_vec())],
                context: object.context().encode(),
                receipt: Receipt {
                    requested: "ONE".into(),
                    met: true,
                    answered: vec![ReceiptReplica {
                        node: NodeId(0),
                        region: "local".into(),
                        fallback: false
                    }],
                    hints_written: 0,
                    read_repair: ReadRepair::NotNeeded,
                },
            }))
        )]
    );
}

/// Durability: a replica acknowledges a version only inside the Persist that stores it.
#[test]
fn a_replica_acknowledges_a_store_only_after_persisting_it() {
    let coordinator = node(0, 3);
    let mut replica = node(1, 3);
    let object = written(&coordinator, 1, b"v", T0);
    let op = op(&coordinator, 1);
    replica.handle_message(
        T0,
        NodeId(0),
        Message::Store {
            op,
            key: b"k".to_vec(),
            object: object.clone(),
            hint_for: None,
        },
    );
    assert_eq!(
        drain(&mut replica),
        vec![Output::Persist {
            records: vec![Record::Object {
                key: b"k".to_vec(),
                object: object.clone()
            }],
            then: vec![send(
                0,
                Message::Stored {
                    op,
                    key: b"k".to_vec(),
                    hint_for: None
                }
            )],
        }]
    );
    assert_eq!(replica.stored(b"k"), Some(&object));
}

/// §4.6: a fallback keeps the object as a durable hint naming the owner, and acks after.
#[test]
fn a_fallback_persists_a_hint_before_acknowledging_and_deletes_it_on_delivery() {
    let probe = node(0, 5);
    let owners = probe.preference_list(b"k");
    let fallback = (0..5u16)
        .find(|n| !owners.contains(&NodeId(*n)))
        .expect("2 non-owners");
    let mut fallback_node = node(fallback, 5);
    let object = written(&probe, 1, b"v", T0);
    let op = OpId { boot: 1, seq: 1 };
    fallback_node.handle_message(
        T0,
        owners[0],
        Message::Store {
            op,
            key: b"k".to_vec(),
            object: object.clone(),
            hint_for: Some(owners[1]),
        },
    );
    assert_eq!(
        drain(&mut fallback_node),
        vec![Output::Persist {
            records: vec![Record::Hint {
                seq: 1,
                owner: owners[1],
                key: b"k".to_vec(),
                object: object.clone()
            }],
            then: vec![Effect::Send {
                to: owners[0],
                message: Message::Stored {
                    op,
                    key: b"k".to_vec(),
                    hint_for: Some(owners[1])
                }
            }],
        }]
    );
    assert_eq!(fallback_node.hint_count(), 1);
    assert_eq!(fallback_node.stored(b"k"), None, "a hint is not a replica");
    fallback_node.handle_message(
        T0,
        owners[1],
        Message::HintAck {
            key: b"k".to_vec(),
            seq: 1,
        },
    );
    assert_eq!(
        drain(&mut fallback_node),
        vec![Output::Persist {
            records: vec![Record::HintRemoved {
                owner: owners[1],
                key: b"k".to_vec(),
                seq: 1
            }],
            then: vec![],
        }]
    );
    assert_eq!(fallback_node.hint_count(), 0);
}

/// §5: the read waits for the repair of the stale owner it counted, then replies.
#[test]
fn a_quorum_read_repairs_a_stale_owner_before_replying() {
    let mut coordinator = node(0, 3);
    coordinator.handle_request(T0, request(1, put(b"v"), Level::One));
    drain(&mut coordinator);
    let object = written(&coordinator, 1, b"v", T0);
    coordinator.handle_request(
        T0,
        request(2, Command::Get { key: b"k".to_vec() }, Level::Quorum),
    );
    let read_op = op(&coordinator, 2);
    let read = |to| {
        Output::Now(send(
            to,
            Message::Read {
                op: read_op,
                key: b"k".to_vec(),
                hint_for: None,
            },
        ))
    };
    assert_eq!(drain(&mut coordinator), vec![read(1), read(2)]);
    coordinator.handle_message(
        T0,
        NodeId(1),
        Message::ReadReply {
            op: read_op,
            key: b"k".to_vec(),
            object: None,
        },
    );
    assert_eq!(
        drain(&mut coordinator),
        vec![Output::Now(send(
            1,
            Message::Repair {
                op: read_op,
                key: b"k".to_vec(),
                object: object.clone()
            }
        ))],
        "QUORUM met by n0 and n1, but n1 is stale: repair first"
    );
    coordinator.handle_message(
        T0,
        NodeId(1),
        Message::Repaired {
            op: read_op,
            key: b"k".to_vec(),
        },
    );
    let answered = |n| ReceiptReplica {
        node: NodeId(n),
        region: "local".into(),
        fallback: false,
    };
    assert_eq!(
        drain(&mut coordinator),
        vec![reply(
            2,
            Ok(Response::Versioned(VersionedResponse {
                siblings: vec![Some(b"v".to_vec())],
                context: object.context().encode(),
                receipt: Receipt {
                    requested: "QUORUM".into(),
                    met: true,
                    answered: vec![answered(0), answered(1)],
                    hints_written: 0,
                    read_repair: ReadRepair::Blocking,
                },
            }))
        )]
    );
}

/// A write that has not met its level by the deadline fails with the counts.
#[test]
fn an_unmet_write_fails_at_the_deadline() {
    let mut coordinator = node(0, 3);
    coordinator.handle_request(T0, request(1, put(b"v"), Level::All));
    drain(&mut coordinator);
    let op = op(&coordinator, 1);
    coordinator.handle_message(
        T0,
        NodeId(0),
        Message::Stored {
            op,
            key: b"k".to_vec(),
            hint_for: None,
        },
    );
    assert_eq!(drain(&mut coordinator), vec![]);
    let deadline = T0 + Duration::from_secs(1);
    assert!(coordinator.poll_timeout() <= Some(deadline));
    coordinator.handle_timeout(deadline);
    let outputs = drain(&mut coordinator);
    let failure = outputs.iter().find_map(|o| match o {
        Output::Now(Effect::Reply(r)) => Some(r.outcome.clone()),
        _ => None,
    });
    match failure {
        Some(Err(RequestError::Unavailable {
            replied: 1,
            needed: 3,
            detail,
        })) => assert!(detail.contains("ALL needs 3"), "{detail}"),
        other => panic!("expected Unavailable 1 of 3, got {other:?}"),
    }
}

#[test]
fn consensus_only_requests_are_invalid_on_a_dynamo_keyspace() {
    let mut coordinator = node(0, 3);
    let cas = Command::Cas {
        key: b"k".to_vec(),
        expected: None,
        new: b"v".to_vec(),
    };
    coordinator.handle_request(T0, request(1, cas, Level::Quorum));
    let mut linearizable = request(2, put(b"v"), Level::One);
    linearizable.consistency = Consistency::Linearizable;
    coordinator.handle_request(T0, linearizable);
    let mut local = request(3, Command::Get { key: b"k".to_vec() }, Level::One);
    local.consistency = Consistency::LocalRead;
    coordinator.handle_request(T0, local);
    let mut garbage = request(4, put(b"v"), Level::One);
    garbage.context = vec![7, 7];
    coordinator.handle_request(T0, garbage);
    let scan = Command::Scan {
        prefix: Vec::new(),
        after: None,
        limit: 10,
    };
    coordinator.handle_request(T0, request(5, scan, Level::Quorum));
    let count = Command::Count { prefix: Vec::new() };
    coordinator.handle_request(T0, request(6, count, Level::One));
    let outputs = drain(&mut coordinator);
    assert_eq!(outputs.len(), 6);
    for (output, needle) in outputs.iter().zip([
        "compare-and-set needs consensus",
        "linearizable consistency need a consensus keyspace",
        "local reads need a consensus keyspace",
        "bad causal context",
        "scan and keys are not served by Dynamo",
        "scan and keys are not served by Dynamo",
    ]) {
        match output {
            Output::Now(Effect::Reply(ClientReply {
                outcome: Err(RequestError::Invalid(text)),
                ..
            })) => assert!(text.contains(needle), "{text}"),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }
    assert_eq!(coordinator.stored(b"k"), None);
}

/// Peer input never panics: messages from non-members and for unknown operations are
/// dropped and counted.
#[test]
fn stray_messages_are_dropped_and_counted() {
    let mut coordinator = node(0, 3);
    coordinator.handle_message(T0, NodeId(9), Message::Ping);
    coordinator.handle_message(
        T0,
        NodeId(1),
        Message::Stored {
            op: OpId { boot: 0, seq: 99 },
            key: b"k".to_vec(),
            hint_for: None,
        },
    );
    assert_eq!(drain(&mut coordinator), vec![]);
    assert_eq!(coordinator.metrics().get("dropped_messages"), 1);
    assert_eq!(coordinator.metrics().get("late_replies"), 1);
}

/// Tombstone GC: only the range's first owner may make others forget a key, and only a
/// tombstone its context covers is dropped.
#[test]
fn forget_drops_only_a_covered_tombstone_and_only_from_the_range_leader() {
    let probe = node(0, 3);
    let leader = probe.ring().preference_for(b"k")[0];
    let follower = probe.ring().preference_for(b"k")[1];
    let mut replica = node(follower.0, 3);
    let value = written(&probe, 1, b"v", T0);
    let tombstone = value.update(
        value.context(),
        Dot {
            actor: Actor {
                node: NodeId(0),
                epoch: probe.epoch,
            },
            counter: 2,
        },
        Sibling {
            value: None,
            timestamp_us: 0,
        },
    );
    let store = |object: &Object| Message::Store {
        op: OpId { boot: 1, seq: 1 },
        key: b"k".to_vec(),
        object: object.clone(),
        hint_for: None,
    };
    let forget = |context: &VersionVector| Message::Forget {
        key: b"k".to_vec(),
        context: context.clone(),
    };
    replica.handle_message(T0, leader, store(&value));
    drain(&mut replica);
    replica.handle_message(T0, leader, forget(value.context()));
    assert!(replica.stored(b"k").is_some(), "not a tombstone: kept");
    replica.handle_message(T0, leader, store(&tombstone));
    drain(&mut replica);
    replica.handle_message(T0, leader, forget(value.context()));
    assert!(
        replica.stored(b"k").is_some(),
        "the tombstone is newer than the context"
    );
    let other = (0..3)
        .map(NodeId)
        .find(|n| *n != leader && *n != follower)
        .unwrap();
    replica.handle_message(T0, other, forget(tombstone.context()));
    assert!(replica.stored(b"k").is_some(), "only the leader decides");
    assert_eq!(drain(&mut replica), vec![]);
    replica.handle_message(T0, leader, forget(tombstone.context()));
    assert_eq!(
        drain(&mut replica),
        vec![Output::Persist {
            records: vec![Record::ObjectRemoved { key: b"k".to_vec() }],
            then: vec![],
        }]
    );
    assert_eq!(replica.stored(b"k"), None);
    assert_eq!(replica.metrics().get("forget_refused"), 2);
}
