//! Replay tests: a restarted replica keeps its promises and resumes only what is still
//! its own to drive.

use super::test_support::{
    accept, attrs, batch, id, initial, instance, payload, preaccept, prepare, recovery_ballot,
    refused, replica, synced,
};
use super::Message;
use crate::id::NodeId;
use crate::protocol::Protocol;
use crate::request::ClientRequest;
use crate::time::Time;

/// The promised ballot of a seen instance is durable, and a restarted replica keeps
/// refusing lower ballots (docs/design.md#epaxos, rule 1).
#[test]
fn a_restarted_replica_keeps_its_promises() {
    let mut acceptor = replica(3, 2, Vec::new());
    acceptor.handle_message(Time::ZERO, NodeId(0), preaccept(initial()));
    let (mut durable, _) = synced(&mut acceptor);
    acceptor.handle_message(Time::ZERO, NodeId(1), prepare());
    durable.extend(synced(&mut acceptor).0);
    let mut restarted = replica(3, 2, durable);
    for late in [preaccept(initial()), accept(initial())] {
        restarted.handle_message(Time::ZERO, NodeId(0), late.clone());
        let (records, sent) = synced(&mut restarted);
        assert!(records.is_empty(), "{late:?} recorded: {records:?}");
        assert!(refused(&sent), "{late:?} answered {sent:?}");
    }
}

/// What a command leader sends when it restarts after leading an instance and then
/// handling `handover` (durably) from a recovering replica.
fn sent_after_restart(handover: Message) -> Vec<(NodeId, Message)> {
    let mut leader = replica(3, 0, Vec::new());
    leader.handle_request(
        Time::ZERO,
        ClientRequest::new(payload(1, "k").request, payload(1, "k").command),
    );
    let (mut durable, _) = synced(&mut leader);
    leader.handle_message(Time::ZERO, NodeId(1), handover);
    durable.extend(synced(&mut leader).0);
    let mut restarted = replica(3, 0, durable);
    restarted.handle_timeout(Time::ZERO);
    synced(&mut restarted).1
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
    let sent = sent_after_restart(prepare());
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
        payload: batch(1, "k"),
        attributes: attrs(1, &[]),
    });
    assert!(
        !drives_a_phase(&sent),
        "resumed at the recovery's ballot: {sent:?}"
    );
}

/// Replay executes committed instances in the order their commits were recorded, not in
/// instance order: a command may leave out of its dependencies an instance that every
/// replica had executed (`RanEverywhere`), so the log order alone puts that one first.
#[test]
fn replay_executes_in_the_order_commits_were_recorded() {
    use super::{InstanceRecord, Record, Status};
    let committed = |id: super::InstanceId, seq: u64| {
        Record::Instance(InstanceRecord {
            instance: id,
            payload: batch(seq, "k"),
            attributes: attrs(1, &[]),
            status: Status::Committed,
            ballot: super::Ballot::initial(id),
            promised: super::Ballot::initial(id),
            witness: false,
        })
    };
    // 2.0 (value [1]) ran first; 0.0 (value [2]) came later without naming it.
    let records = vec![committed(id(2, 0), 1), committed(id(0, 0), 2)];
    let restarted = replica(3, 1, records);
    assert_eq!(restarted.kv().read(b"k"), Some(&vec![2]));
}
