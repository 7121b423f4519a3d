//! Announcements persist only clocks no other record restores: a clock raised by a
//! proposal or a commit is announced without a `Clocks` record, and a restart from the
//! records alone announces the same clock.

use super::coordinator_test::ack;
use super::test_support::*;
use super::*;
use crate::id::NodeId;
use std::time::Duration;

/// The clock on `k` in the announcements among `sent`, if any.
fn announced(sent: &[(NodeId, Message)]) -> Option<u64> {
    sent.iter().find_map(|(_, m)| match m {
        Message::Promises { keys } => keys.iter().find(|p| p.key == b"k").map(|p| p.clock),
        _ => None,
    })
}

#[test]
fn clocks_raised_by_proposals_and_commits_are_announced_without_a_clocks_record() {
    let mut core = replica(5, 0, 1);
    core.handle_request(Time::ZERO, request(1, "k"));
    let (mut log, sent) = synced(&mut core);
    let dot = sent
        .iter()
        .find_map(|(to, m)| match m {
            Message::ProposeAck { dot, .. } if *to == NodeId(0) => Some(*dot),
            _ => None,
        })
        .expect("own proposal");
    for (from, ts) in [(0, 1), (1, 1), (2, 7)] {
        ack(&mut core, from, dot, ts);
    }
    let (records, _) = synced(&mut core);
    assert!(matches!(records[..], [Record::Committed { ts: 7, .. }]));
    log.extend(records);
    // Two promise rounds: the first announces the clock the commit raised, the second
    // has nothing new; neither writes a record.
    for (round, expected) in [(5, Some(7)), (10, None)] {
        core.handle_timeout(Time::ZERO + Duration::from_millis(round));
        let (records, sent) = synced(&mut core);
        assert!(records.is_empty(), "round {round}: {records:?}");
        assert_eq!(announced(&sent), expected, "round {round}");
    }
    // The records alone restore the announced clock.
    let members = Membership::local(5);
    let mut restarted = Tempo::new(NodeId(0), &members, config(1), 0, log);
    restarted.handle_timeout(Time::ZERO + Duration::from_millis(5));
    let (records, sent) = synced(&mut restarted);
    assert!(records.is_empty(), "{records:?}");
    assert_eq!(announced(&sent), Some(7));
}
