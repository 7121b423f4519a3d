//! Garbage-collection tests.

use super::gc::is_report;
use super::test_support::{attrs, batch, id, outputs, replica};
use super::Message;
use crate::id::NodeId;
use crate::protocol::{Output, Protocol};
use crate::time::Time;

/// Garbage collection: the executed prefix a replica reports only leaves after the commit
/// records behind it are durable, so no peer forgets an instance a crash could still take
/// away from the reporter.
#[test]
fn the_executed_report_waits_for_the_commit_records_it_covers() {
    let mut follower = replica(3, 1, Vec::new());
    follower.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::Commit {
            instance: id(0, 0),
            payload: batch(1, "k"),
            attributes: attrs(1, &[]),
        },
    );
    // The GC timer sends the report, with or without work in flight.
    follower.handle_timeout(Time::from_millis(5_000));
    let outputs = outputs(&mut follower);
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

/// Issue 17: an idle replica (nothing in flight, nothing waiting) still reports its
/// executed prefix on every GC interval, so peers collect and a replica that missed
/// commits hears what it missed without further load.
#[test]
fn an_idle_replica_reports_on_its_own_timer() {
    let mut core = replica(3, 1, Vec::new());
    let interval = crate::epaxos::EpaxosConfig::default().gc_interval;
    let mut now = Time::ZERO;
    for round in 1..=3 {
        let due = core.poll_timeout().expect("the GC timer is always armed");
        assert!(due <= now + interval, "round {round}: next report at {due}");
        now = due;
        core.handle_timeout(now);
        let reports: usize = outputs(&mut core)
            .iter()
            .map(|o| match o {
                Output::Persist { then, .. } => then.iter().filter(|e| is_report(e)).count(),
                Output::Now(effect) => usize::from(is_report(effect)),
                _ => 0,
            })
            .sum();
        assert_eq!(reports, 2, "round {round}: one report per peer");
    }
}

/// Collection waits for every member of the current configuration, and for a removed
/// replica only while it keeps reporting: one that keeps running can be added again
/// without a gap, one that was stopped no longer holds collection back.
#[test]
fn a_removed_replica_holds_collection_back_only_while_it_reports() {
    use crate::configuration::{Change, ProposedChange};
    let mut core = with_five_commits();
    let report = |prefix: u64| Message::Executed {
        prefix: vec![(NodeId(0), prefix)],
        last_switch: None,
    };
    let floor = |core: &super::Epaxos| core.gc.floor(&core.replica).get(&NodeId(0)).copied();
    core.handle_message(Time::ZERO, NodeId(1), report(5));
    assert_eq!(floor(&core), None, "replica 2, a member, has not reported");
    core.handle_message(Time::ZERO, NodeId(2), report(2));
    assert_eq!(floor(&core), Some(2));
    let removed = core
        .configuration()
        .apply(&ProposedChange {
            from_epoch: 0,
            change: Change::Remove(NodeId(2)),
        })
        .unwrap();
    core.replica.epochs.enter(removed);
    assert_eq!(floor(&core), Some(2), "removed, but still reporting");
    for _ in 0..11 {
        core.gc.report_executed(&mut core.replica);
        core.handle_message(Time::ZERO, NodeId(1), report(5));
    }
    outputs(&mut core);
    assert_eq!(
        floor(&core),
        Some(5),
        "silent for 11 rounds: no longer waited for"
    );
}

/// An inquiry about an instance this replica forgot because every member executed it is
/// answered `Collected` (the asker fell behind the collection); one about an instance it
/// executed but has not collected (its peers may still wait for it: state installed from
/// a peer holds many such) is not (t18 seed 14138: voters sent into needless rejoins).
#[test]
fn only_an_instance_collected_here_is_answered_collected() {
    let mut core = with_five_commits();
    let answers = |core: &mut super::Epaxos, slot: u64| -> Vec<Message> {
        core.handle_message(
            Time::ZERO,
            NodeId(2),
            Message::Inquire {
                instance: id(0, slot),
            },
        );
        sent(outputs(core))
    };
    let report = |prefix: u64| Message::Executed {
        prefix: vec![(NodeId(0), prefix)],
        last_switch: None,
    };
    core.handle_message(Time::ZERO, NodeId(1), report(5));
    core.handle_message(Time::ZERO, NodeId(2), report(3));
    outputs(&mut core);
    assert_eq!(core.gc.floor(&core.replica).get(&NodeId(0)), Some(&3));
    assert!(
        matches!(answers(&mut core, 1)[..], [Message::Collected { instance }] if instance == id(0, 1)),
        "slot 1 was collected"
    );
    assert!(
        matches!(answers(&mut core, 3)[..], [Message::Commit { .. }]),
        "slot 3 is still held: its decision is told"
    );
    core.replica.table.forget_below(NodeId(0), 5);
    assert!(
        answers(&mut core, 4).is_empty(),
        "slot 4 was executed and dropped here, but not collected: no answer"
    );
}

/// The messages `outputs` send, at once or behind a sync.
fn sent(outputs: Vec<Output<Message, super::messages::Record>>) -> Vec<Message> {
    let mut messages = Vec::new();
    for output in outputs {
        match output {
            Output::Now(crate::protocol::Effect::Send { message, .. }) => messages.push(message),
            Output::Persist { then, .. } => {
                for effect in then {
                    if let crate::protocol::Effect::Send { message, .. } = effect {
                        messages.push(message);
                    }
                }
            }
            _ => {}
        }
    }
    messages
}

/// Replica 0 of three, told by replica 1 of five independent commits of its own slots
/// 0 to 4 (executed here, nothing reported yet).
fn with_five_commits() -> super::Epaxos {
    let mut core = replica(3, 0, Vec::new());
    for slot in 0..5 {
        let commit = Message::Commit {
            instance: id(0, slot),
            payload: batch(slot + 1, &format!("k{slot}")),
            attributes: attrs(1, &[]),
        };
        core.handle_message(Time::ZERO, NodeId(1), commit);
    }
    outputs(&mut core);
    core
}
