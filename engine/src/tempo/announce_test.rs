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
        Message::Promises { keys, .. } => keys.iter().find(|p| p.key == b"k").map(|p| p.clock),
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

/// The members asked to announce again among `sent`, and the keys asked for.
fn asked(sent: &[(NodeId, Message)]) -> Vec<(u16, Vec<Vec<u8>>)> {
    sent.iter()
        .filter_map(|(to, m)| match m {
            Message::AskPromises { keys } => Some((to.0, keys.clone())),
            _ => None,
        })
        .collect()
}

/// Replica 0 of 5 with a command on `k` committed at timestamp 7 whose members' promises
/// it has not all heard: 1 announced clock 1, 2 clock 7, the others nothing.
fn waiting_for_promises() -> Tempo {
    let mut core = replica(5, 0, 1);
    core.handle_request(Time::ZERO, request(1, "k"));
    let (_, sent) = synced(&mut core);
    let dot = sent
        .iter()
        .find_map(|(_, m)| match m {
            Message::ProposeAck { dot, .. } => Some(*dot),
            _ => None,
        })
        .expect("own proposal");
    for (from, ts) in [(0, 1), (1, 1), (2, 7)] {
        ack(&mut core, from, dot, ts);
    }
    synced(&mut core);
    core.handle_message(Time::ZERO, NodeId(0), Message::Durable { dot });
    synced(&mut core);
    core
}

#[test]
fn a_command_waiting_a_resend_period_asks_the_members_whose_promises_are_missing() {
    let mut core = waiting_for_promises();
    // The first look only notes what waits; the second, a period later, asks every
    // member whose clock on `k` is below 7 (itself included: its own announcement may
    // be lost too), not member 2.
    core.handle_timeout(Time::ZERO + Duration::from_millis(100));
    let (_, sent) = synced(&mut core);
    assert_eq!(asked(&sent), vec![]);
    core.handle_timeout(Time::ZERO + Duration::from_millis(200));
    let (_, sent) = synced(&mut core);
    let k = b"k".to_vec();
    let expected: Vec<_> = [0, 1, 3, 4].map(|m| (m, vec![k.clone()])).into();
    assert_eq!(asked(&sent), expected);
}

#[test]
fn nothing_is_asked_once_the_promises_arrive() {
    let mut core = waiting_for_promises();
    core.handle_timeout(Time::ZERO + Duration::from_millis(100));
    for from in [0, 1, 3] {
        let keys = vec![promise(7, Vec::new())].into();
        core.handle_message(
            Time::ZERO,
            NodeId(from),
            Message::Promises {
                keys,
                collected: Vec::new(),
            },
        );
    }
    assert_eq!(
        core.executed().len(),
        1,
        "stable once a majority promised 7"
    );
    synced(&mut core);
    core.handle_timeout(Time::ZERO + Duration::from_millis(200));
    let (_, sent) = synced(&mut core);
    assert_eq!(asked(&sent), vec![]);
}

#[test]
fn an_ask_is_answered_with_the_promises_on_its_keys_to_the_asker_only() {
    let mut core = waiting_for_promises();
    let keys = vec![b"k".to_vec()];
    core.handle_message(Time::ZERO, NodeId(3), Message::AskPromises { keys });
    let (_, sent) = synced(&mut core);
    let answers: Vec<_> = sent
        .iter()
        .filter(|(_, m)| matches!(m, Message::Promises { .. }))
        .collect();
    assert_eq!(answers.len(), 1, "{sent:?}");
    assert_eq!(answers[0].0, NodeId(3));
    assert_eq!(announced(&sent), Some(7));
}
