//! Acceptor handler tests: replies are persisted first and extend the leader's attributes.

use super::test_support::{attrs, batch, id, outputs};
use super::{Attributes, Ballot, Message, Record};
use crate::id::NodeId;
use crate::protocol::{Effect, Output, Protocol};
use crate::time::Time;

fn replica(n: u16, me: u16) -> super::Epaxos {
    super::test_support::replica(n, me, Vec::new())
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
            ran_everywhere: Default::default(),
        },
    );
    let outputs = outputs(&mut acceptor);
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

/// What the acceptor replies to leader 0's PreAccept of a second command on `k` after it
/// pre-accepted 2.0 on `k`, when the leader says `ran_everywhere`.
fn reply_after_an_earlier_write(ran_everywhere: super::RanEverywhere) -> Option<Attributes> {
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
            ran_everywhere: Default::default(),
        },
    );
    outputs(&mut acceptor);
    acceptor.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::PreAccept {
            ballot: ballot(0),
            instance: id(0, 0),
            payload: batch(2, "k"),
            attributes: attrs(1, &[]),
            ran_everywhere: ran_everywhere.into(),
        },
    );
    let outputs = outputs(&mut acceptor);
    outputs.iter().find_map(|o| match o {
        Output::Persist { then, .. } => then.iter().find_map(|e| match e {
            Effect::Send {
                message: Message::PreAcceptOk { attributes, .. },
                ..
            } => Some(attributes.clone()),
            _ => None,
        }),
        _ => None,
    })
}

/// A replica that already knows an interfering instance adds it to the dependencies.
#[test]
fn preaccept_adds_known_interfering_instances() {
    assert_eq!(
        reply_after_an_earlier_write(Default::default()),
        Some(attrs(2, &[id(2, 0)]))
    );
}

/// ...unless the leader knows it ran on every replica: the leader left it out (its own
/// index may have pruned it already), and adding it back would cost the fast path of
/// every command on a key rewritten after a while.
#[test]
fn preaccept_leaves_out_what_the_leader_knows_ran_everywhere() {
    let ran_everywhere = [(NodeId(2), 1)].into_iter().collect();
    assert_eq!(
        reply_after_an_earlier_write(ran_everywhere),
        Some(attrs(1, &[]))
    );
    // A floor of another leader, or below the instance, leaves it in.
    for ran_everywhere in [[(NodeId(0), 5)], [(NodeId(2), 0)]] {
        assert_eq!(
            reply_after_an_earlier_write(ran_everywhere.into_iter().collect()),
            Some(attrs(2, &[id(2, 0)]))
        );
    }
}
