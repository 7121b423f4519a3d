//! The recovery rule (`recovery::choose`), and a recovery end to end on one replica's
//! handlers.

use super::recovery::choose;
use super::*;
use crate::command::Command;
use crate::id::{ClientId, NodeId, RequestId};
use std::collections::BTreeMap;

fn payload() -> Payload {
    Payload {
        request: RequestId {
            client: ClientId(1),
            seq: 1,
        },
        resend: false,
        command: Command::Get { key: b"k".to_vec() },
        // Coordinator 0, fast quorum {0, 1, 2} (n = 5, f = 1).
        quorum: vec![NodeId(0), NodeId(1), NodeId(2)],
        config_epoch: 0,
        change: None,
    }
}

fn dot() -> Dot {
    Dot {
        node: NodeId(0),
        seq: 1,
    }
}

fn report(proposal: u64, in_recovery: bool) -> RecReport {
    RecReport {
        proposal,
        in_recovery,
        accepted: Ballot::ZERO,
        accepted_ts: 0,
    }
}

fn acks(reports: &[(u16, RecReport)]) -> BTreeMap<NodeId, RecReport> {
    reports.iter().map(|&(n, r)| (NodeId(n), r)).collect()
}

#[test]
fn a_possibly_fast_committed_timestamp_is_kept_from_the_fast_quorum_members() {
    // 0 crashed; 1 and 2 proposed in the fast path (7 may have been committed fast); 3
    // and 4 proposed for the recovery with higher clocks.
    let acks = acks(&[
        (1, report(7, false)),
        (2, report(5, false)),
        (3, report(9, true)),
        (4, report(12, true)),
    ]);
    assert_eq!(choose(&acks, &payload(), dot()), 7);
}

#[test]
fn when_the_fast_path_is_ruled_out_the_highest_proposal_is_taken() {
    // A fast-quorum member proposed only for the recovery: it never answered the
    // coordinator, so the fast path was not taken.
    let ruled_out = acks(&[
        (1, report(7, false)),
        (2, report(5, true)),
        (3, report(9, true)),
        (4, report(12, true)),
    ]);
    assert_eq!(choose(&ruled_out, &payload(), dot()), 12);
    // The coordinator itself answered: it did not commit, and never will on the fast
    // path (it promised the recovery's ballot).
    let coordinator = acks(&[
        (0, report(1, false)),
        (1, report(7, false)),
        (3, report(9, true)),
        (4, report(12, true)),
    ]);
    assert_eq!(choose(&coordinator, &payload(), dot()), 12);
}

#[test]
fn an_accepted_timestamp_of_the_highest_ballot_wins() {
    let mut low = report(7, false);
    low.accepted = Ballot {
        round: 1,
        node: NodeId(0),
    };
    low.accepted_ts = 8;
    let mut high = report(3, true);
    high.accepted = Ballot {
        round: 2,
        node: NodeId(3),
    };
    high.accepted_ts = 11;
    let acks = acks(&[
        (1, low),
        (2, report(5, false)),
        (3, high),
        (4, report(20, true)),
    ]);
    assert_eq!(choose(&acks, &payload(), dot()), 11);
}
