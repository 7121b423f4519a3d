//! Ordered delivery: release times from the RTT estimates, and a leader that keeps its
//! own instance out of its index and votes on it at the release time.

use super::test_support::{batch, id, synced};
use super::{Ballot, Epaxos, EpaxosConfig, Holds, Message, Protocol};
use crate::id::NodeId;
use crate::protocol::{Member, Membership};
use crate::request::ClientRequest;
use crate::time::Time;
use std::time::Duration;

/// Five replicas on a line at 0, 10, 30, 50 and 70 ms (one way) from the first.
fn line() -> Membership {
    let at = [0u64, 10, 30, 50, 70];
    Membership {
        members: (0..5)
            .map(|i| Member {
                id: NodeId(i),
                region: format!("r{i}"),
            })
            .collect(),
        rtt_us: at
            .iter()
            .map(|a| at.iter().map(|b| 2 * a.abs_diff(*b) * 1_000).collect())
            .collect(),
    }
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

fn first_preaccept(leader: u16, slot: u64, key: &str) -> Message {
    let instance = id(leader, slot);
    Message::PreAccept {
        ballot: Ballot::initial(instance),
        instance,
        payload: batch(slot + 10, key),
        attributes: Default::default(),
        ran_everywhere: Default::default(),
    }
}

#[test]
fn a_first_preaccept_is_held_until_the_leaders_farthest_fast_quorum_member_gets_it() {
    // Leader 0's fast quorum is 0, 1 and 2; its PreAccept reaches 2 after 30 ms.
    let at = |me: u16| Holds::new(NodeId(me), &line(), 3, true);
    assert_eq!(at(0).own_delay(NodeId(0)), ms(30));
    let preaccept = first_preaccept(0, 0, "k");
    assert_eq!(at(1).delay_for(NodeId(0), &preaccept), ms(20));
    assert_eq!(at(2).delay_for(NodeId(0), &preaccept), ms(0));
    assert_eq!(
        at(4).delay_for(NodeId(0), &preaccept),
        ms(0),
        "late already"
    );
    // Leader 1's fast quorum is 1, 0 and 2 (20 ms away): 0 holds its PreAccepts 10 ms.
    assert_eq!(
        at(0).delay_for(NodeId(1), &first_preaccept(1, 0, "k")),
        ms(10)
    );
    // Only a first round is held.
    let Message::PreAccept { instance, .. } = preaccept.clone() else {
        unreachable!()
    };
    let retry = Message::PreAccept {
        ballot: Ballot {
            round: 1,
            node: NodeId(3),
        },
        instance,
        payload: batch(10, "k"),
        attributes: Default::default(),
        ran_everywhere: Default::default(),
    };
    assert_eq!(at(1).delay_for(NodeId(0), &retry), ms(0));
    // Off, or without RTT estimates: nothing is held.
    assert_eq!(
        Holds::new(NodeId(1), &line(), 3, false).delay_for(NodeId(0), &preaccept),
        ms(0)
    );
    let local = Holds::new(NodeId(1), &Membership::local(5), 3, true);
    assert_eq!(local.delay_for(NodeId(0), &preaccept), ms(0));
    assert_eq!(local.own_delay(NodeId(1)), ms(0));
}

#[test]
fn held_messages_are_released_in_release_order() {
    let mut holds = Holds::new(NodeId(1), &line(), 3, true);
    let at = |ms: u64| Time::ZERO + Duration::from_millis(ms);
    holds.hold(at(20), NodeId(0), first_preaccept(0, 0, "a"));
    holds.hold(at(10), NodeId(2), first_preaccept(2, 0, "b"));
    assert_eq!(holds.next(), Some(at(10)));
    assert!(holds.pop_due(at(9)).is_none());
    assert_eq!(holds.pop_due(at(25)).map(|(from, _)| from), Some(NodeId(2)));
    assert_eq!(holds.pop_due(at(25)).map(|(from, _)| from), Some(NodeId(0)));
    assert!(holds.pop_due(at(25)).is_none());
}

/// The deps replica 0 answered for instance `of` among `sent`.
fn answered_deps(
    sent: &[(NodeId, Message)],
    of: super::InstanceId,
) -> Option<Vec<super::InstanceId>> {
    sent.iter().find_map(|(_, m)| match m {
        Message::PreAcceptOk {
            instance,
            attributes,
            ..
        } if *instance == of => Some(attributes.deps.iter().copied().collect()),
        _ => None,
    })
}

/// Replica 0 leads X (0.0) on `k` at time 0; leader 1's Y (1.0) on `k` reaches it at
/// 5 ms. Returns what replica 0 answered for Y and for X (its own vote).
fn x_then_y(ordered: bool) -> (Vec<super::InstanceId>, Vec<super::InstanceId>) {
    let config = EpaxosConfig::default().with_ordered_delivery(ordered);
    let mut core = Epaxos::new(NodeId(0), &line(), config, 0, Vec::new());
    let x = super::test_support::payload(1, "k");
    core.handle_request(Time::ZERO, ClientRequest::new(x.request, x.command));
    let (_, mut sent) = synced(&mut core);
    let y = id(1, 0);
    core.handle_message(Time::ZERO + ms(5), NodeId(1), first_preaccept(1, 0, "k"));
    let mut now = Time::ZERO + ms(5);
    while let Some(next) = core.poll_timeout().filter(|&t| t <= Time::ZERO + ms(40)) {
        now = next.max(now);
        core.handle_timeout(now);
    }
    sent.extend(synced(&mut core).1);
    let for_y = answered_deps(&sent, y).expect("an answer for Y");
    let for_x = answered_deps(&sent, id(0, 0)).expect("its own vote on X");
    (for_y, for_x)
}

#[test]
fn the_leader_orders_its_own_instance_at_its_release_time_like_everyone() {
    // Ordered: Y (released at 15 ms) goes before X (released at 30 ms) here as at the
    // other replicas: Y does not depend on X, and replica 0's own vote on X names Y.
    assert_eq!(x_then_y(true), (vec![], vec![id(1, 0)]));
    // Without: X is indexed when proposed, so Y depends on X and X's vote (cast at once)
    // does not name Y.
    assert_eq!(x_then_y(false), (vec![id(0, 0)], vec![]));
}

#[test]
fn a_leader_that_promised_a_recovery_before_the_release_time_does_not_vote() {
    let config = EpaxosConfig::default().with_ordered_delivery(true);
    let mut core = Epaxos::new(NodeId(0), &line(), config, 0, Vec::new());
    let x = super::test_support::payload(1, "k");
    core.handle_request(Time::ZERO, ClientRequest::new(x.request, x.command));
    synced(&mut core);
    let ballot = Ballot {
        round: 1,
        node: NodeId(2),
    };
    let prepare = Message::Prepare {
        ballot,
        instance: id(0, 0),
    };
    core.handle_message(Time::ZERO + ms(5), NodeId(2), prepare);
    core.handle_timeout(Time::ZERO + ms(40));
    let (_, sent) = synced(&mut core);
    assert_eq!(answered_deps(&sent, id(0, 0)), None, "{sent:?}");
    // Its instance is indexed all the same: a later command depends on it.
    let y = super::test_support::payload(2, "k");
    core.handle_request(
        Time::ZERO + ms(50),
        ClientRequest::new(y.request, y.command),
    );
    let (_, sent) = synced(&mut core);
    let deps = sent.iter().find_map(|(_, m)| match m {
        Message::PreAccept {
            instance,
            attributes,
            ..
        } if *instance == id(0, 1) => Some(attributes.deps.clone()),
        _ => None,
    });
    assert!(deps.is_some_and(|d| d.contains(&id(0, 0))));
}
