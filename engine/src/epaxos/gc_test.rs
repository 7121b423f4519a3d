//! Garbage-collection tests.

use super::gc::is_report;
use super::test_support::{attrs, batch, id, outputs, payload, replica};
use super::Message;
use crate::id::NodeId;
use crate::protocol::{Output, Protocol};
use crate::request::ClientRequest;
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
    // An instance of its own in flight keeps the timer armed; its tick sends the report.
    follower.handle_request(
        Time::ZERO,
        ClientRequest::new(payload(2, "other").request, payload(2, "other").command),
    );
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
