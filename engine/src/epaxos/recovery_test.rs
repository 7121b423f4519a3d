//! Recovery handler tests: promises bind every later phase message, across restarts.

use super::*;
use crate::command::Command;
use crate::id::{ClientId, RequestId};

fn instance() -> InstanceId {
    InstanceId {
        leader: NodeId(0),
        slot: 0,
    }
}

fn payload() -> Payload {
    Payload {
        request: RequestId {
            client: ClientId(1),
            seq: 1,
        },
        command: Command::Put {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        },
    }
}

fn initial() -> Ballot {
    Ballot {
        round: 0,
        node: NodeId(0),
    }
}

fn recovery_ballot() -> Ballot {
    Ballot {
        round: 1,
        node: NodeId(1),
    }
}

fn replica(me: u16, records: Vec<Record>) -> Epaxos {
    Epaxos::new(
        NodeId(me),
        &Membership::local(3),
        EpaxosConfig::default(),
        0,
        records,
    )
}

/// Every output, with the records a host would make durable collected apart.
fn drain(core: &mut Epaxos) -> (Vec<Record>, Vec<(NodeId, Message)>) {
    let (mut records, mut sent) = (Vec::new(), Vec::new());
    while let Some(output) = core.poll_output() {
        let effects = match output {
            Output::Persist { records: r, then } => {
                records.extend(r);
                then
            }
            Output::Now(effect) => vec![effect],
            Output::Compact { .. } => Vec::new(),
        };
        for effect in effects {
            if let Effect::Send { to, message } = effect {
                sent.push((to, message));
            }
        }
    }
    (records, sent)
}

fn preaccept(ballot: Ballot) -> Message {
    Message::PreAccept {
        ballot,
        instance: instance(),
        payload: Batch::single(payload()),
        attributes: Attributes {
            seq: 1,
            deps: Default::default(),
        },
    }
}

fn accept(ballot: Ballot) -> Message {
    Message::Accept {
        ballot,
        instance: instance(),
        payload: Batch::single(payload()),
        attributes: Attributes {
            seq: 1,
            deps: Default::default(),
        },
    }
}

fn refused(sent: &[(NodeId, Message)]) -> bool {
    sent.iter()
        .all(|(_, m)| matches!(m, Message::Nack { promised, .. } if *promised == recovery_ballot()))
        && !sent.is_empty()
}

/// A replica that promised a recovery ballot for an instance it had not seen yet must refuse the original leader's late PreAccept or Accept,
/// otherwise the leader commits on the fast path what the recovery replaces by a no-op.
#[test]
fn a_promise_for_an_unseen_instance_refuses_lower_ballots() {
    for late in [preaccept(initial()), accept(initial())] {
        let mut acceptor = replica(2, Vec::new());
        acceptor.handle_message(
            Time::ZERO,
            NodeId(1),
            Message::Prepare {
                ballot: recovery_ballot(),
                instance: instance(),
            },
        );
        drain(&mut acceptor);
        acceptor.handle_message(Time::ZERO, NodeId(0), late.clone());
        let (records, sent) = drain(&mut acceptor);
        assert!(records.is_empty(), "{late:?} recorded: {records:?}");
        assert!(refused(&sent), "{late:?} answered {sent:?}");
    }
}

/// The promised ballot of a seen instance is durable, and a restarted replica keeps refusing lower ballots (DESIGN.md EPaxos item 1).
#[test]
fn a_restarted_replica_keeps_its_promises() {
    let mut acceptor = replica(2, Vec::new());
    acceptor.handle_message(Time::ZERO, NodeId(0), preaccept(initial()));
    let (mut durable, _) = drain(&mut acceptor);
    acceptor.handle_message(
        Time::ZERO,
        NodeId(1),
        Message::Prepare {
            ballot: recovery_ballot(),
            instance: instance(),
        },
    );
    durable.extend(drain(&mut acceptor).0);
    let mut restarted = replica(2, durable);
    for late in [preaccept(initial()), accept(initial())] {
        restarted.handle_message(Time::ZERO, NodeId(0), late.clone());
        let (records, sent) = drain(&mut restarted);
        assert!(records.is_empty(), "{late:?} recorded: {records:?}");
        assert!(refused(&sent), "{late:?} answered {sent:?}");
    }
}

/// What a command leader sends when it restarts after leading an instance and then
/// handling `handover` (durably) from a recovering replica.
fn sent_after_restart(handover: Message) -> Vec<(NodeId, Message)> {
    let mut leader = replica(0, Vec::new());
    leader.handle_request(
        Time::ZERO,
        ClientRequest::new(payload().request, payload().command),
    );
    let (mut durable, _) = drain(&mut leader);
    leader.handle_message(Time::ZERO, NodeId(1), handover);
    durable.extend(drain(&mut leader).0);
    let mut restarted = replica(0, durable);
    restarted.handle_timeout(Time::ZERO);
    drain(&mut restarted).1
}

fn drives_a_phase(sent: &[(NodeId, Message)]) -> bool {
    sent.iter()
        .any(|(_, m)| matches!(m, Message::PreAccept { .. } | Message::Accept { .. }))
}

/// A command leader that promised a recovery ballot for its own instance and restarts
/// must not resume it at its initial ballot (the recovery may already have chosen other
/// attributes).
#[test]
fn a_restarted_leader_does_not_resume_an_instance_it_handed_over() {
    let sent = sent_after_restart(Message::Prepare {
        ballot: recovery_ballot(),
        instance: instance(),
    });
    assert!(
        !drives_a_phase(&sent),
        "resumed at the initial ballot: {sent:?}"
    );
}

/// Found by the model check (3 replicas, one crash, one reordering): a leader that
/// pre-accepted a recovery's TryPreAccept for its own instance, then restarted, resumed
/// the instance at the recovering replica's ballot; two replicas drove one ballot and
/// committed different attributes.
#[test]
fn a_restarted_leader_does_not_resume_at_a_recovery_ballot() {
    let sent = sent_after_restart(Message::TryPreAccept {
        ballot: recovery_ballot(),
        instance: instance(),
        payload: Batch::single(payload()),
        attributes: Attributes {
            seq: 1,
            deps: Default::default(),
        },
    });
    assert!(
        !drives_a_phase(&sent),
        "resumed at the recovery's ballot: {sent:?}"
    );
}

/// Found by the model check (a leader fails for good, a message is lost): when the
/// replicas holding the leader's original attributes are a majority by themselves, the
/// recovery must not wait for the failed leader's answer to a TryPreAccept.
#[test]
fn a_majority_of_identical_preaccepts_is_accepted_without_the_failed_leader() {
    let mut recoverer = replica(1, Vec::new());
    let mut peer = replica(2, Vec::new());
    for core in [&mut recoverer, &mut peer] {
        core.handle_message(Time::ZERO, NodeId(0), preaccept(initial()));
        drain(core);
    }
    recoverer.start_recovery(Time::ZERO, instance());
    // Its own promise comes back to it once durable; the peer's over the network.
    let (_, sent) = drain(&mut recoverer);
    for (to, message) in sent {
        if to == NodeId(1) {
            recoverer.handle_message(Time::ZERO, NodeId(1), message);
        } else if to == NodeId(2) {
            peer.handle_message(Time::ZERO, NodeId(1), message);
        }
    }
    for (_, reply) in drain(&mut peer).1 {
        recoverer.handle_message(Time::ZERO, NodeId(2), reply);
    }
    let (_, sent) = drain(&mut recoverer);
    assert!(
        sent.iter().any(|(to, m)| *to == NodeId(2)
            && matches!(m, Message::Accept { ballot, .. } if *ballot == recovery_ballot())),
        "no Accept at the recovery ballot: {sent:?}"
    );
}
