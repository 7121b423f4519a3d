//! Quorums by epoch (`epochs.rs`; docs/design.md, "EPaxos epochs", rule 1).

use super::epochs::Epochs;
use super::test_support::{attrs, id, outputs, payload, preaccept_ok, replica};
use super::{Epaxos, Message};
use crate::configuration::{Change, Configuration, ProposedChange};
use crate::id::NodeId;
use crate::protocol::{Member, Membership, Protocol};
use crate::request::ClientRequest;
use crate::time::Time;

fn learner(id: u16) -> Change {
    Change::AddLearner(Member {
        id: NodeId(id),
        region: "local".into(),
    })
}

/// Epoch 0 of `n` local replicas, then the configuration `change` makes from it.
fn epoch_one(n: u16, change: Change) -> Configuration {
    let initial = Configuration::initial(&Membership::local(n));
    initial
        .apply(&ProposedChange {
            from_epoch: 0,
            change,
        })
        .unwrap()
}

#[test]
fn epoch_zero_makes_every_member_a_voter() {
    let epochs = Epochs::initial(NodeId(0), &Membership::local(5));
    assert_eq!(epochs.current(), 0);
    assert_eq!((epochs.fast_quorum(0), epochs.slow_quorum(0)), (3, 3));
    assert_eq!(epochs.voter_count(0), 5);
    assert!((0..5).all(|n| epochs.counts_vote(0, NodeId(n))));
    assert!(!epochs.counts_vote(0, NodeId(5)));
    let others: Vec<u16> = epochs.other_voters(0).iter().map(|n| n.0).collect();
    assert_eq!(others, [1, 2, 3, 4]);
}

#[test]
fn an_unknown_epoch_has_quorums_nobody_reaches_and_no_voters() {
    let epochs = Epochs::initial(NodeId(0), &Membership::local(3));
    assert_eq!(epochs.fast_quorum(7), usize::MAX);
    assert_eq!(epochs.slow_quorum(7), usize::MAX);
    assert_eq!(epochs.voter_count(7), 0);
    assert!(!epochs.counts_vote(7, NodeId(0)));
    assert!(epochs.other_voters(7).is_empty());
}

/// A learner added in epoch 1 hears commits (it is a member) but votes in no epoch: not
/// in epoch 0, which it was never part of, nor in epoch 1 until promoted.
#[test]
fn a_learner_is_a_member_that_counts_in_no_quorum() {
    let mut epochs = Epochs::initial(NodeId(0), &Membership::local(3));
    epochs.enter(epoch_one(3, learner(3)));
    assert_eq!(epochs.current(), 1);
    assert!(epochs.is_member(NodeId(3)));
    assert_eq!(epochs.members().len(), 4);
    assert!(!epochs.counts_vote(0, NodeId(3)));
    assert!(!epochs.counts_vote(1, NodeId(3)));
    assert_eq!((epochs.fast_quorum(1), epochs.slow_quorum(1)), (2, 2));
}

/// A replica removed in epoch 1 still votes on epoch-0 instances (they keep their
/// quorums for life) but not on epoch-1 ones.
#[test]
fn a_removed_voter_still_counts_for_its_old_epoch_only() {
    let mut epochs = Epochs::initial(NodeId(0), &Membership::local(5));
    epochs.enter(epoch_one(5, Change::Remove(NodeId(4))));
    assert!(epochs.counts_vote(0, NodeId(4)));
    assert!(!epochs.counts_vote(1, NodeId(4)));
    assert_eq!(epochs.voter_count(1), 4);
    // Four voters are sized as five (rule 2 of "EPaxos").
    assert_eq!(epochs.fast_quorum(1), 3);
    assert!(epochs.is_member(NodeId(4)), "kept while epoch 0 is");
}

/// Replica 0 of 3 that entered epoch 1 with learner 3, leading client 1's put.
fn leading_with_a_learner() -> Epaxos {
    let mut leader = replica(3, 0, Vec::new());
    leader.replica.epochs.enter(epoch_one(3, learner(3)));
    let request = payload(1, "k");
    leader.handle_request(
        Time::ZERO,
        ClientRequest::new(request.request, request.command),
    );
    leader
}

/// Replica `from`'s unchanged reply to the leader's epoch-1 instance 0.0.
fn epoch_one_reply(leader: &mut Epaxos, from: u16) {
    let mut attributes = attrs(1, &[]);
    attributes.epoch = 1;
    preaccept_ok(leader, from, attributes);
}

/// The leader's own vote and a learner's make two replies, the size of a fast quorum of
/// three voters, but the learner's is not counted: only a voter's reply commits.
#[test]
fn a_learners_preaccept_reply_is_not_counted() {
    let mut leader = leading_with_a_learner();
    let sent = outputs(&mut leader);
    let preaccepted: Vec<u16> = sent
        .iter()
        .flat_map(|o| match o {
            crate::protocol::Output::Persist { then, .. } => then.clone(),
            _ => Vec::new(),
        })
        .filter_map(|e| match e {
            crate::protocol::Effect::Send {
                to,
                message: Message::PreAccept { attributes, .. },
            } => {
                assert_eq!(
                    attributes.epoch, 1,
                    "a new instance starts in the current epoch"
                );
                Some(to.0)
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        preaccepted,
        [1, 2],
        "PreAccepts go to the epoch's voters only"
    );
    epoch_one_reply(&mut leader, 0);
    epoch_one_reply(&mut leader, 3);
    assert!(!leader.is_committed(id(0, 0)), "a learner does not vote");
    epoch_one_reply(&mut leader, 1);
    assert!(leader.is_committed(id(0, 0)));
}
