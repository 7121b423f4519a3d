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
