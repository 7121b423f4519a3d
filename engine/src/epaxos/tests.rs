//! Handler and executor tests. References: Moraru et al., SOSP'13 — §4.3 (fast quorum,
//! Figure 2 phases), §4.4 (execution algorithm).

use super::execution::Executor;
use super::*;
use crate::command::Command;
use crate::id::{ClientId, RequestId};
use std::collections::BTreeSet;

fn id(leader: u16, slot: u64) -> InstanceId {
    InstanceId {
        leader: NodeId(leader),
        slot,
    }
}

fn payload(seq: u64, key: &str) -> Payload {
    Payload {
        request: RequestId {
            client: ClientId(1),
            seq,
        },
        command: Command::Put {
            key: key.into(),
            value: vec![seq as u8],
        },
    }
}

fn batch(seq: u64, key: &str) -> Batch {
    Batch::single(payload(seq, key))
}

fn attrs(seq: u64, deps: &[InstanceId]) -> Attributes {
    Attributes {
        seq,
        deps: deps.iter().copied().collect::<BTreeSet<_>>(),
    }
}

fn order(executor: &Executor) -> Vec<InstanceId> {
    executor.order().iter().map(|e| e.instance).collect()
}

/// §4.4: a cycle runs as one component, ordered by sequence number.
#[test]
fn a_dependency_cycle_executes_by_sequence_number() {
    let mut executor = Executor::new(true);
    let (a, b) = (id(0, 0), id(1, 0));
    assert!(
        executor
            .commit(Time::ZERO, a, batch(1, "k"), attrs(2, &[b]))
            .is_empty(),
        "b not committed yet"
    );
    let done = executor.commit(Time::ZERO, b, batch(2, "k"), attrs(1, &[a]));
    assert_eq!(done.len(), 2);
    assert_eq!(
        order(&executor),
        vec![b, a],
        "lower seq first inside the component"
    );
}

/// A commit that arrives before its dependency waits; unrelated instances do not.
#[test]
fn an_uncommitted_dependency_blocks_only_its_dependents() {
    let mut executor = Executor::new(true);
    let (missing, blocked, independent) = (id(2, 0), id(0, 0), id(1, 0));
    executor.commit(Time::ZERO, blocked, batch(1, "k"), attrs(2, &[missing]));
    executor.commit(Time::ZERO, independent, batch(2, "other"), attrs(1, &[]));
    assert_eq!(order(&executor), vec![independent]);
    assert_eq!(executor.stalled(Time::ZERO), vec![missing]);
    executor.commit(Time::ZERO, missing, batch(3, "k"), attrs(1, &[]));
    assert_eq!(order(&executor), vec![independent, missing, blocked]);
    assert!(!executor.has_blocked());
}

/// Dependencies always run first, through long chains (iterative Tarjan, no recursion).
#[test]
fn a_long_chain_committed_in_reverse_executes_in_dependency_order() {
    let mut executor = Executor::new(true);
    let n = 5_000;
    for slot in (0..n).rev() {
        let deps: Vec<InstanceId> = if slot == 0 {
            vec![]
        } else {
            vec![id(0, slot - 1)]
        };
        executor.commit(
            Time::ZERO,
            id(0, slot),
            batch(slot, "k"),
            attrs(slot + 1, &deps),
        );
    }
    let expected: Vec<InstanceId> = (0..n).map(|s| id(0, s)).collect();
    assert_eq!(order(&executor), expected);
}

fn replica(n: u16, me: u16) -> Epaxos {
    Epaxos::new(
        NodeId(me),
        &Membership::local(n),
        EpaxosConfig::default(),
        0,
        Vec::new(),
    )
}

fn drain(core: &mut Epaxos) -> Vec<Output<Message, Record>> {
    std::iter::from_fn(|| core.poll_output()).collect()
}

/// Durability: a PreAcceptOk leaves only after the replica's record of the instance.
#[test]
fn preaccept_reply_is_persisted_before_it_is_sent() {
    let mut acceptor = replica(3, 1);
    let leader_ballot = Ballot {
        round: 0,
        node: NodeId(0),
    };
    acceptor.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::PreAccept {
            ballot: leader_ballot,
            instance: id(0, 0),
            payload: batch(1, "k"),
            attributes: attrs(1, &[]),
        },
    );
    let outputs = drain(&mut acceptor);
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    let Output::Persist { records, then } = &outputs[0] else {
        panic!("reply not gated by a persist: {outputs:?}");
    };
    assert!(
        matches!(&records[0], Record::Instance(r) if r.instance == id(0, 0)),
        "{records:?}"
    );
    assert_eq!(
        then,
        &vec![Effect::Send {
            to: NodeId(0),
            message: Message::PreAcceptOk {
                ballot: leader_ballot,
                instance: id(0, 0),
                attributes: attrs(1, &[])
            }
        }]
    );
}

/// A replica that already knows an interfering instance adds it to the dependencies.
#[test]
fn preaccept_adds_known_interfering_instances() {
    let mut acceptor = replica(3, 1);
    let ballot = |n| Ballot {
        round: 0,
        node: NodeId(n),
    };
    acceptor.handle_message(
        Time::ZERO,
        NodeId(2),
        Message::PreAccept {
            ballot: ballot(2),
            instance: id(2, 0),
            payload: batch(1, "k"),
            attributes: attrs(1, &[]),
        },
    );
    drain(&mut acceptor);
    acceptor.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::PreAccept {
            ballot: ballot(0),
            instance: id(0, 0),
            payload: batch(2, "k"),
            attributes: attrs(1, &[]),
        },
    );
    let outputs = drain(&mut acceptor);
    let replied = outputs.iter().find_map(|o| match o {
        Output::Persist { then, .. } => then.iter().find_map(|e| match e {
            Effect::Send {
                message: Message::PreAcceptOk { attributes, .. },
                ..
            } => Some(attributes.clone()),
            _ => None,
        }),
        _ => None,
    });
    assert_eq!(replied, Some(attrs(2, &[id(2, 0)])));
}

/// §4.3: with N = 5 the fast quorum is 3 (leader included): two unchanged replies plus
/// the leader's own durable one commit on the fast path.
#[test]
fn fast_path_commits_with_a_fast_quorum_of_unchanged_replies() {
    let mut leader = replica(5, 0);
    leader.handle_request(
        Time::ZERO,
        ClientRequest::new(payload(1, "k").request, payload(1, "k").command),
    );
    let outputs = drain(&mut leader);
    let Some(Output::Persist { then, .. }) = outputs.first() else {
        panic!("leader must persist before sending: {outputs:?}");
    };
    let preaccepts = then
        .iter()
        .filter(|e| {
            matches!(
                e,
                Effect::Send {
                    message: Message::PreAccept { .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(preaccepts, 4);
    let ballot = Ballot {
        round: 0,
        node: NodeId(0),
    };
    let ok = |attributes| Message::PreAcceptOk {
        ballot,
        instance: id(0, 0),
        attributes,
    };
    leader.handle_message(Time::ZERO, NodeId(0), ok(attrs(1, &[])));
    leader.handle_message(Time::ZERO, NodeId(1), ok(attrs(1, &[])));
    assert!(
        !leader.is_committed(id(0, 0)),
        "two of five is not a fast quorum"
    );
    leader.handle_message(Time::ZERO, NodeId(2), ok(attrs(1, &[])));
    assert!(leader.is_committed(id(0, 0)));
    assert_eq!(leader.metrics().get("fast_path"), 1);
}

/// Changed attributes force the slow path with their union.
#[test]
fn changed_attributes_take_the_slow_path_with_the_union() {
    let mut leader = replica(5, 0);
    leader.handle_request(
        Time::ZERO,
        ClientRequest::new(payload(1, "k").request, payload(1, "k").command),
    );
    drain(&mut leader);
    let ballot = Ballot {
        round: 0,
        node: NodeId(0),
    };
    let ok = |attributes| Message::PreAcceptOk {
        ballot,
        instance: id(0, 0),
        attributes,
    };
    leader.handle_message(Time::ZERO, NodeId(0), ok(attrs(1, &[])));
    leader.handle_message(Time::ZERO, NodeId(1), ok(attrs(3, &[id(3, 0)])));
    leader.handle_message(Time::ZERO, NodeId(2), ok(attrs(1, &[])));
    let outputs = drain(&mut leader);
    let accept = outputs.iter().find_map(|o| match o {
        Output::Persist { then, .. } => then.iter().find_map(|e| match e {
            Effect::Send {
                message: Message::Accept { attributes, .. },
                ..
            } => Some(attributes.clone()),
            _ => None,
        }),
        _ => None,
    });
    assert_eq!(accept, Some(attrs(3, &[id(3, 0)])));
}

/// Garbage collection: the executed prefix a replica reports only leaves after the commit
/// records behind it are durable, so no peer forgets an instance a crash could still take
/// away from the reporter.
#[test]
fn the_executed_report_waits_for_the_commit_records_it_covers() {
    let mut follower = replica(3, 1);
    follower.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::Commit {
            instance: id(0, 0),
            payload: batch(1, "k"),
            attributes: attrs(1, &[]),
        },
    );
    // An instance of its own in flight keeps the timer armed; its tick sends the report.
    follower.handle_request(
        Time::ZERO,
        ClientRequest::new(payload(2, "other").request, payload(2, "other").command),
    );
    follower.handle_timeout(Time::from_millis(5_000));
    let outputs = drain(&mut follower);
    let is_report = |e: &Effect<Message>| {
        matches!(
            e,
            Effect::Send {
                message: Message::Executed { .. },
                ..
            }
        )
    };
    let commit_at = outputs
        .iter()
        .position(|o| matches!(o, Output::Persist { records, .. } if !records.is_empty()))
        .expect("the commit is persisted");
    let mut reports = 0;
    for (at, output) in outputs.iter().enumerate() {
        match output {
            Output::Now(effect) => assert!(!is_report(effect), "report sent before any sync"),
            Output::Persist { then, .. } => {
                let here = then.iter().filter(|e| is_report(e)).count();
                assert!(
                    here == 0 || at > commit_at,
                    "report ahead of the commit record"
                );
                reports += here;
            }
            _ => {}
        }
    }
    assert_eq!(reports, 2, "one report per peer: {outputs:?}");
}

/// A replica catching up runs a client's newer requests (on other keys) before its older
/// ones; the older ones must still run (a per-client dedup window skipped them).
#[test]
fn old_requests_committed_after_thousands_of_newer_ones_still_execute() {
    let mut executor = Executor::new(false);
    let request = |seq: u64| Payload {
        request: RequestId {
            client: ClientId(9),
            seq,
        },
        command: Command::Put {
            key: format!("k{seq}").into_bytes(),
            value: b"v".to_vec(),
        },
    };
    for seq in (0..3_000).rev() {
        executor.commit(
            Time::ZERO,
            id(0, seq),
            Batch::single(request(seq)),
            attrs(1, &[]),
        );
    }
    assert_eq!(executor.kv().len(), 3_000, "every write applied");
}
