//! Recovery handler tests: promises bind every later phase message; a recovery that finds
//! a majority holding the leader's attributes does not wait for the failed leader; only
//! fast-path witnesses count as evidence of a fast commit (docs/design.md#epaxos, rule 2).

use super::instance::{Ballot, Status};
use super::messages::InstanceReport;
use super::test_support::{
    accept, attrs, batch, id, initial, instance, preaccept, prepare, recovery_ballot, refused,
    replica, synced,
};
use super::{Epaxos, Message};
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

/// What replica `core` reports to a Prepare at `ballot` for the recovered instance.
fn report_to_prepare(core: &mut Epaxos, ballot: Ballot) -> Option<InstanceReport> {
    core.handle_message(
        Time::ZERO,
        NodeId(1),
        Message::Prepare {
            ballot,
            instance: instance(),
        },
    );
    synced(core).1.into_iter().find_map(|(_, m)| match m {
        Message::PrepareOk { report, .. } => report,
        _ => None,
    })
}

/// A replica that pre-accepts the leader's attributes unchanged at its initial ballot is
/// a fast-path witness; one that adds a dependency is not (seed 1176 of the amnesia
/// suite: an extended reply passed for the leader's attributes).
#[test]
fn only_an_unchanged_initial_preaccept_is_a_witness() {
    let mut unchanged = replica(5, 2, Vec::new());
    unchanged.handle_message(Time::ZERO, NodeId(0), preaccept(initial()));
    synced(&mut unchanged);
    let report = report_to_prepare(&mut unchanged, recovery_ballot()).expect("a report");
    assert!(report.witness, "{report:?}");

    let mut extended = replica(5, 2, Vec::new());
    // An interfering instance of replica 3 arrives first: the reply adds it.
    extended.handle_message(
        Time::ZERO,
        NodeId(3),
        Message::PreAccept {
            ballot: Ballot::initial(id(3, 0)),
            instance: id(3, 0),
            payload: batch(7, "k"),
            attributes: attrs(1, &[]),
            ran_everywhere: Default::default(),
        },
    );
    extended.handle_message(Time::ZERO, NodeId(0), preaccept(initial()));
    synced(&mut extended);
    let report = report_to_prepare(&mut extended, recovery_ballot()).expect("a report");
    assert!(report.attributes.deps.contains(&id(3, 0)), "{report:?}");
    assert!(!report.witness, "an extended reply passed for a witness");
}

/// A replica whose initial-ballot record a recovery's TryPreAccept overwrote is still a
/// witness for the next recovery (seed 1295 of the 5-replica chaos suite), at the
/// TryPreAccept's ballot.
#[test]
fn a_try_preaccept_keeps_the_witness() {
    let mut member = replica(5, 2, Vec::new());
    member.handle_message(Time::ZERO, NodeId(0), preaccept(initial()));
    let mut records = synced(&mut member).0;
    member.handle_message(
        Time::ZERO,
        NodeId(1),
        Message::TryPreAccept {
            ballot: recovery_ballot(),
            instance: instance(),
            payload: batch(1, "k"),
            attributes: attrs(1, &[]),
        },
    );
    let recorded = synced(&mut member).0;
    assert!(!recorded.is_empty(), "the TryPreAccept was not recorded");
    records.extend(recorded);
    let later = Ballot {
        round: 2,
        node: NodeId(3),
    };
    let report = report_to_prepare(&mut member, later).expect("a report");
    assert!(
        report.witness && report.accepted_in == recovery_ballot(),
        "{report:?}"
    );
    let mut restarted = replica(5, 2, records);
    let report = report_to_prepare(&mut restarted, later).expect("a report");
    assert!(report.witness, "the witness mark did not survive a restart");
}

/// A recovery whose majority holds a single witness left by an earlier recovery's
/// TryPreAccept (5 replicas: ⌊(F+1)/2⌋ = 1) tries the witnessed attributes again instead
/// of running Phase 1 with new dependencies.
#[test]
fn a_recovery_that_meets_one_witness_tries_its_attributes() {
    let mut recoverer = replica(5, 3, Vec::new());
    let ballot = Ballot {
        round: 1,
        node: NodeId(3),
    };
    recoverer.start_recovery(Time::ZERO, instance());
    let (_, sent) = synced(&mut recoverer);
    let prepare_ballot = sent
        .iter()
        .find_map(|(_, m)| match m {
            Message::Prepare { ballot, .. } => Some(*ballot),
            _ => None,
        })
        .expect("a Prepare");
    assert!(prepare_ballot >= ballot, "{prepare_ballot:?}");
    // Its own answer (nothing seen) came back through the self-send above; the others:
    // replica 4 saw nothing, replica 2 holds the witness at an earlier recovery's ballot.
    for (to, message) in sent {
        if to == NodeId(3) {
            recoverer.handle_message(Time::ZERO, NodeId(3), message);
        }
    }
    synced(&mut recoverer);
    let witnessed = InstanceReport {
        payload: batch(1, "k"),
        attributes: attrs(1, &[]),
        status: Status::PreAccepted,
        accepted_in: recovery_ballot(),
        witness: true,
    };
    for (from, report) in [(NodeId(4), None), (NodeId(2), Some(witnessed))] {
        recoverer.handle_message(
            Time::ZERO,
            from,
            Message::PrepareOk {
                ballot: prepare_ballot,
                instance: instance(),
                report,
            },
        );
    }
    let (_, sent) = synced(&mut recoverer);
    assert!(
        sent.iter().any(|(_, m)| matches!(m,
            Message::TryPreAccept { attributes, .. } if *attributes == attrs(1, &[]))),
        "no TryPreAccept of the witnessed attributes: {sent:?}"
    );
    assert!(
        !sent
            .iter()
            .any(|(_, m)| matches!(m, Message::PreAccept { .. })),
        "Phase 1 again: {sent:?}"
    );
}

/// A leader cut off while a recovery committed its instance keeps retransmitting at its
/// old ballot: a replica that knows the decision answers with it, not with a refusal, so
/// the leader learns the outcome at once instead of after its own recovery.
#[test]
fn a_stale_driver_of_a_committed_instance_learns_the_decision() {
    let mut acceptor = replica(3, 2, Vec::new());
    // A recovery at a higher ballot decided the instance here.
    acceptor.handle_message(Time::ZERO, NodeId(1), prepare());
    acceptor.handle_message(
        Time::ZERO,
        NodeId(1),
        Message::Commit {
            instance: instance(),
            payload: batch(1, "k"),
            attributes: attrs(1, &[]),
        },
    );
    synced(&mut acceptor);
    for late in [preaccept(initial()), accept(initial())] {
        acceptor.handle_message(Time::ZERO, NodeId(0), late.clone());
        let (_, sent) = synced(&mut acceptor);
        assert!(
            matches!(sent.as_slice(), [(to, Message::Commit { instance: i, .. })]
                if *to == NodeId(0) && *i == instance()),
            "{late:?} answered {sent:?}"
        );
    }
}

/// A dependency execution waits on, which a peer reported executing, is a commit this
/// replica missed (it was cut off): the next tick asks that peer for it, without waiting
/// a retry timeout per link of a chain of missed commits (t11 seed 106001: a read after
/// a 16 s partition healed waited over its client's 2 s timeout). Without such a report
/// the dependency is asked about only once it has waited a retry timeout.
#[test]
fn a_missed_commit_a_peer_executed_is_asked_for_at_the_next_tick() {
    for reported in [true, false] {
        let mut core = replica(3, 0, Vec::new());
        let start = Time::from_millis(10_000);
        let commit = Message::Commit {
            instance: id(1, 5),
            payload: batch(1, "k"),
            attributes: attrs(1, &[id(1, 4)]),
        };
        core.handle_message(start, NodeId(1), commit);
        if reported {
            let report = Message::Executed {
                prefix: vec![(NodeId(1), 10)],
                last_switch: None,
            };
            core.handle_message(start, NodeId(2), report);
        }
        synced(&mut core);
        let tick = crate::epaxos::EpaxosConfig::default().tick;
        core.handle_timeout(start + tick);
        let (_, sent) = synced(&mut core);
        let asked: Vec<NodeId> = sent
            .iter()
            .filter(|(_, m)| matches!(m, Message::Inquire { instance } if *instance == id(1, 4)))
            .map(|(to, _)| *to)
            .collect();
        let expected = if reported {
            vec![NodeId(2)]
        } else {
            Vec::new()
        };
        assert_eq!(asked, expected, "reported {reported}: {sent:?}");
    }
}
