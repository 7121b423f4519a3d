//! Command-leader tests. Reference: Moraru et al., SOSP'13 — §4.3 (fast quorum, Figure 2
//! phases).

use super::test_support::{attrs, id, outputs, payload, preaccept_ok as reply, replica};
use super::{Epaxos, Message};
use crate::protocol::{Effect, Output, Protocol};
use crate::request::ClientRequest;
use crate::time::Time;

/// Replica 0 of `n`, leading client 1's put on `k` as instance 0.0.
fn proposing(n: u16) -> Epaxos {
    let mut leader = replica(n, 0, Vec::new());
    let request = payload(1, "k");
    leader.handle_request(
        Time::ZERO,
        ClientRequest::new(request.request, request.command),
    );
    leader
}

/// §4.3: with N = 5 the fast quorum is 3 (leader included): two unchanged replies plus
/// the leader's own durable one commit on the fast path.
#[test]
fn fast_path_commits_with_a_fast_quorum_of_unchanged_replies() {
    let mut leader = proposing(5);
    let outputs = outputs(&mut leader);
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
    reply(&mut leader, 0, attrs(1, &[]));
    reply(&mut leader, 1, attrs(1, &[]));
    assert!(
        !leader.is_committed(id(0, 0)),
        "two of five is not a fast quorum"
    );
    reply(&mut leader, 2, attrs(1, &[]));
    assert!(leader.is_committed(id(0, 0)));
    assert_eq!(leader.metrics().get("fast_path"), 1);
}

/// The host hears that its client's command committed at the decision, before the
/// commit record is durable (as a Multi-Paxos leader reports it): the command is chosen
/// once the quorum's votes are durable, and commit latency should not include one more
/// fsync for one protocol than for another. The Commit to peers still waits for the
/// record.
#[test]
fn the_host_hears_of_a_commit_at_the_decision() {
    let mut leader = proposing(3);
    outputs(&mut leader);
    reply(&mut leader, 0, attrs(1, &[]));
    reply(&mut leader, 1, attrs(1, &[]));
    let after = outputs(&mut leader);
    let committed = after
        .iter()
        .position(|o| matches!(o, Output::Now(Effect::Committed { .. })))
        .expect("the host hears of the commit");
    let record = after
        .iter()
        .position(|o| {
            matches!(o, Output::Persist { then, .. } if then.iter().any(|e| matches!(
                e,
                Effect::Send { message: Message::Commit { .. }, .. }
            )))
        })
        .expect("the commit record, then the Commit to peers");
    assert!(committed < record, "{after:?}");
}

/// Changed attributes force the slow path with their union.
#[test]
fn changed_attributes_take_the_slow_path_with_the_union() {
    let mut leader = proposing(5);
    outputs(&mut leader);
    reply(&mut leader, 0, attrs(1, &[]));
    reply(&mut leader, 1, attrs(3, &[id(3, 0)]));
    reply(&mut leader, 2, attrs(1, &[]));
    let outputs = outputs(&mut leader);
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

/// Four replicas take the fast quorum of five (`quorum::epaxos_fast_quorum`): 3, not the
/// 2 the N = 2F + 1 formula gave with F = 1 (two disjoint pairs could both commit
/// interfering commands without either depending on the other).
#[test]
fn four_replicas_need_three_unchanged_replies_for_the_fast_path() {
    let mut leader = proposing(4);
    outputs(&mut leader);
    reply(&mut leader, 0, attrs(1, &[]));
    reply(&mut leader, 1, attrs(1, &[]));
    assert!(
        !leader.is_committed(id(0, 0)),
        "two of four is not a fast quorum"
    );
    reply(&mut leader, 2, attrs(1, &[]));
    assert!(leader.is_committed(id(0, 0)));
    assert_eq!(leader.metrics().get("fast_path"), 1);
}
