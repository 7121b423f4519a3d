//! Consistency-level arithmetic.
//! Reference: Cassandra's consistency levels (ONE..ALL, LOCAL_*, EACH_QUORUM) and Dynamo
//! §4.5 (R and W of N); "never downgrade" is this project's rule (docs/design.md#dynamo).

use super::level::{Op, Requirement};
use crate::id::NodeId;
use crate::request::{Level, RequestError};
use std::collections::BTreeSet;

/// Owners n0 n1 (region "va"), n2 n3 (region "ie"), n4 ("jp").
fn owners() -> Vec<NodeId> {
    (0..5).map(NodeId).collect()
}

fn region(n: NodeId) -> String {
    match n.0 {
        0 | 1 => "va",
        2 | 3 => "ie",
        _ => "jp",
    }
    .to_owned()
}

fn req(level: Level, op: Op) -> Result<Requirement, RequestError> {
    Requirement::new(level, op, &owners(), region, "va")
}

fn set(ids: &[u16]) -> BTreeSet<NodeId> {
    ids.iter().copied().map(NodeId).collect()
}

#[test]
fn counted_levels_need_that_many_distinct_owners() {
    for (level, needed) in [
        (Level::One, 1),
        (Level::Two, 2),
        (Level::Three, 3),
        (Level::Quorum, 3),
        (Level::All, 5),
        (Level::Session, 1),
    ] {
        let r = req(level, Op::Write).expect("valid");
        let below: Vec<u16> = (0..needed as u16 - 1).collect();
        let exact: Vec<u16> = (0..needed as u16).collect();
        assert!(
            !r.is_met(&set(&below)),
            "{level} with {} answers",
            below.len()
        );
        assert!(r.is_met(&set(&exact)), "{level} with {needed} answers");
        assert_eq!(
            r.progress(&set(&below)),
            (below.len() as u32, needed as u32)
        );
    }
}

#[test]
fn explicit_levels_use_r_for_reads_and_w_for_writes() {
    let level = Level::Explicit { r: 1, w: 4 };
    assert!(req(level, Op::Read).unwrap().is_met(&set(&[3])));
    assert!(!req(level, Op::Write).unwrap().is_met(&set(&[0, 1, 2])));
    assert!(req(level, Op::Write).unwrap().is_met(&set(&[0, 1, 2, 4])));
    assert!(matches!(
        req(Level::Explicit { r: 0, w: 1 }, Op::Read),
        Err(RequestError::Invalid(_))
    ));
}

#[test]
fn local_levels_count_only_the_coordinators_region() {
    let local_one = req(Level::LocalOne, Op::Read).unwrap();
    assert!(
        !local_one.is_met(&set(&[2, 3, 4])),
        "ie and jp answers do not count"
    );
    assert!(local_one.is_met(&set(&[1])));
    let local_quorum = req(Level::LocalQuorum, Op::Write).unwrap();
    assert!(
        !local_quorum.is_met(&set(&[0, 2, 3, 4])),
        "needs both va owners"
    );
    assert!(local_quorum.is_met(&set(&[0, 1])));
    assert_eq!(local_quorum.progress(&set(&[0, 4])), (1, 2));
}

#[test]
fn each_quorum_needs_a_majority_in_every_region() {
    let r = req(Level::EachQuorum, Op::Write).unwrap();
    assert!(!r.is_met(&set(&[0, 1, 2, 3])), "jp missing");
    assert!(!r.is_met(&set(&[0, 2, 3, 4])), "va needs 2 of 2");
    assert!(r.is_met(&set(&[0, 1, 2, 3, 4])));
    assert_eq!(r.progress(&set(&[0, 2, 3, 4])), (4, 5));
}

#[test]
fn a_level_the_placement_cannot_meet_is_unavailable_not_downgraded() {
    let two_owners = [NodeId(0), NodeId(1)];
    let three = Requirement::new(Level::Three, Op::Write, &two_owners, region, "va");
    assert!(
        matches!(
            three,
            Err(RequestError::Unavailable {
                needed: 3,
                replied: 0,
                ..
            })
        ),
        "{three:?}"
    );
    let nowhere = Requirement::new(Level::LocalOne, Op::Read, &owners(), region, "sa");
    match nowhere {
        Err(RequestError::Unavailable { detail, .. }) => {
            assert!(
                detail.contains("no replica of this key is in region \"sa\""),
                "{detail}"
            )
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[test]
fn answers_from_non_owners_never_count() {
    let r = req(Level::One, Op::Read).unwrap();
    assert!(!r.is_met(&set(&[9])));
    assert!(r.shortfall(&set(&[9])).contains("counted: none"));
}
