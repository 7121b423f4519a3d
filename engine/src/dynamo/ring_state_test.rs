use super::*;
use crate::configuration::Role;

fn cluster() -> Membership {
    Membership {
        members: ["a", "b", "a", "c"]
            .iter()
            .enumerate()
            .map(|(i, r)| Member {
                id: NodeId(i as u16),
                region: (*r).to_owned(),
            })
            .collect(),
        rtt_us: Vec::new(),
    }
}

fn ids(m: &Membership) -> Vec<u16> {
    m.ids().map(|n| n.0).collect()
}

fn member(id: u16) -> Member {
    Member {
        id: NodeId(id),
        region: "c".to_owned(),
    }
}

#[test]
fn a_join_then_a_leave_move_one_member_at_a_time() {
    let s0 = RingState::initial(&cluster(), &[NodeId(0), NodeId(1), NodeId(2)]);
    assert_eq!((s0.epoch(), ids(&s0.read_membership())), (0, vec![0, 1, 2]));
    assert!(!s0.in_transition());

    let s1 = s0.apply(&Change::AddLearner(member(3))).unwrap();
    assert_eq!(s1.epoch(), 1);
    assert_eq!(s1.status_of(NodeId(3)), Some(MemberStatus::Joining));
    assert_eq!(ids(&s1.read_membership()), vec![0, 1, 2]);
    assert_eq!(ids(&s1.write_membership()), vec![0, 1, 2, 3]);
    assert_eq!(
        s1.to_configuration().role_of(NodeId(3)),
        Some(Role::Learner)
    );
    // One movement at a time.
    assert!(matches!(
        s1.apply(&Change::Remove(NodeId(0))),
        Err(ChangeFailure::Refused(_))
    ));

    let s2 = s1.finish_join(NodeId(3)).unwrap();
    assert_eq!((s2.epoch(), s2.in_transition()), (2, false));
    let s3 = s2.apply(&Change::Remove(NodeId(0))).unwrap();
    assert_eq!(ids(&s3.read_membership()), vec![0, 1, 2, 3]);
    assert_eq!(ids(&s3.write_membership()), vec![1, 2, 3]);
    let s4 = s3.finish_leave(NodeId(0)).unwrap();
    assert_eq!((s4.epoch(), ids(&s4.read_membership())), (4, vec![1, 2, 3]));
    assert!(s4.finish_leave(NodeId(0)).is_none());
}

#[test]
fn operators_cannot_promote_or_remove_the_last_owner() {
    let s0 = RingState::initial(&cluster(), &[NodeId(0)]);
    assert!(s0.apply(&Change::Remove(NodeId(0))).is_err());
    assert!(s0.apply(&Change::Promote(NodeId(0))).is_err());
    assert!(s0.apply(&Change::AddLearner(member(0))).is_err());
    assert!(s0.apply(&Change::Remove(NodeId(9))).is_err());
    // Removing a joining member cancels its join.
    let s1 = s0.apply(&Change::AddLearner(member(3))).unwrap();
    let s2 = s1.apply(&Change::Remove(NodeId(3))).unwrap();
    assert!(!s2.contains(NodeId(3)) && !s2.in_transition());
}

#[test]
fn states_of_one_epoch_converge_on_the_higher_digest() {
    let s0 = RingState::initial(&cluster(), &[NodeId(0), NodeId(1)]);
    let x = s0.apply(&Change::AddLearner(member(2))).unwrap();
    let y = s0.apply(&Change::AddLearner(member(3))).unwrap();
    assert_ne!(x.is_newer_than(&y), y.is_newer_than(&x));
    assert!(!x.is_newer_than(&x));
    assert!(x.is_newer_than(&s0) && !s0.is_newer_than(&x));
}
