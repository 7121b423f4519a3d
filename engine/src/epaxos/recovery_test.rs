//! Recovery handler tests: promises bind every later phase message; a recovery that finds
//! a majority holding the leader's attributes does not wait for the failed leader.

use super::test_support::{
    accept, initial, instance, preaccept, prepare, recovery_ballot, refused, replica, synced,
};
use super::Message;
use crate::id::NodeId;
use crate::protocol::Protocol;
use crate::time::Time;

/// A replica that promised a recovery ballot for an instance it had not seen yet must
/// refuse the original leader's late PreAccept or Accept, otherwise the leader commits on
/// the fast path what the recovery replaces by a no-op.
#[test]
fn a_promise_for_an_unseen_instance_refuses_lower_ballots() {
    for late in [preaccept(initial()), accept(initial())] {
        let mut acceptor = replica(3, 2, Vec::new());
        acceptor.handle_message(Time::ZERO, NodeId(1), prepare());
        synced(&mut acceptor);
        acceptor.handle_message(Time::ZERO, NodeId(0), late.clone());
        let (records, sent) = synced(&mut acceptor);
        assert!(records.is_empty(), "{late:?} recorded: {records:?}");
        assert!(refused(&sent), "{late:?} answered {sent:?}");
    }
}

/// Found by the model check (a leader fails for good, a message is lost): when the
/// replicas holding the leader's original attributes are a majority by themselves, the
/// recovery must not wait for the failed leader's answer to a TryPreAccept.
#[test]
fn a_majority_of_identical_preaccepts_is_accepted_without_the_failed_leader() {
    let mut recoverer = replica(3, 1, Vec::new());
    let mut peer = replica(3, 2, Vec::new());
    for core in [&mut recoverer, &mut peer] {
        core.handle_message(Time::ZERO, NodeId(0), preaccept(initial()));
        synced(core);
    }
    recoverer.start_recovery(Time::ZERO, instance());
    // Its own promise comes back to it once durable; the peer's over the network.
    let (_, sent) = synced(&mut recoverer);
    for (to, message) in sent {
        if to == NodeId(1) {
            recoverer.handle_message(Time::ZERO, NodeId(1), message);
        } else if to == NodeId(2) {
            peer.handle_message(Time::ZERO, NodeId(1), message);
        }
    }
    for (_, reply) in synced(&mut peer).1 {
        recoverer.handle_message(Time::ZERO, NodeId(2), reply);
    }
    let (_, sent) = synced(&mut recoverer);
    assert!(
        sent.iter().any(|(to, m)| *to == NodeId(2)
            && matches!(m, Message::Accept { ballot, .. } if *ballot == recovery_ballot())),
        "no Accept at the recovery ballot: {sent:?}"
    );
}
