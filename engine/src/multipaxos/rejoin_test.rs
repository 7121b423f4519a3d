//! A replica that lost its disk: it votes for nothing until a quorum of peers promised its
//! rejoin ballot, and a promise its former self sent is void once a fence is known.

use super::test_support::*;
use super::*;
use crate::protocol::Effect;

fn rejoining(id: u16, n: u16) -> MultiPaxos {
    let mut core = node(id, n, MultiPaxosConfig::default());
    core.rejoin(Time::ZERO);
    core
}

fn promise(round: u64, node: u16, fence: Ballot, fences: Vec<(NodeId, Ballot)>) -> Message {
    Message::Promise {
        ballot: ballot(round, node),
        accepted: Vec::new(),
        lease_remaining_us: 0,
        fence,
        fences,
    }
}

#[test]
fn a_rejoining_replica_votes_for_nothing_and_a_restart_keeps_it_rejoining() {
    let mut core = rejoining(1, 3);
    let outputs = drain(&mut core);
    assert_eq!(
        outputs,
        vec![Output::Persist {
            records: vec![Record::Rejoining],
            then: Vec::new()
        }]
    );
    assert!(core.is_rejoining());
    let prepare = Message::Prepare {
        ballot: ballot(1, 0),
        from_slot: 0,
    };
    core.handle_message(Time::ZERO, NodeId(0), prepare);
    let accept = Message::Accept {
        ballot: ballot(1, 0),
        slot: 0,
        value: [proposal(1, 0)].into(),
    };
    core.handle_message(Time::ZERO, NodeId(0), accept);
    let outputs = drain(&mut core);
    assert!(
        outputs.iter().all(|o| match o {
            Output::Persist { then, .. } => then.iter().all(|e| !matches!(
                e,
                Effect::Send {
                    message: Message::Promise { .. } | Message::Accepted { .. },
                    ..
                }
            )),
            Output::Now(Effect::Send { message, .. }) => !matches!(
                message,
                Message::Promise { .. } | Message::Accepted { .. } | Message::Nack { .. }
            ),
            _ => true,
        }),
        "{outputs:?}"
    );
    assert_eq!(core.metrics().get("votes_withheld"), 2);
    // A crash before the rejoin finished: the restart resumes it.
    let rebuilt = MultiPaxos::new(
        NodeId(1),
        &cluster(3),
        MultiPaxosConfig::default(),
        7,
        vec![Record::Rejoining, Record::Promised(ballot(4, 1))],
    );
    assert!(rebuilt.is_rejoining());
}

#[test]
fn a_rejoin_needs_promises_from_peers_and_then_leads_at_its_fence() {
    let mut core = rejoining(1, 3);
    drain(&mut core);
    core.handle_timeout(Time::ZERO);
    let outputs = drain(&mut core);
    let prepares: Vec<_> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Persist { records, then } => Some((records.clone(), then.clone())),
            _ => None,
        })
        .collect();
    let fence = ballot(1, 1);
    assert_eq!(
        prepares,
        vec![(
            vec![Record::Promised(fence)],
            vec![
                send(
                    0,
                    Message::RejoinPrepare {
                        ballot: fence,
                        from_slot: 0
                    }
                ),
                send(
                    2,
                    Message::RejoinPrepare {
                        ballot: fence,
                        from_slot: 0
                    }
                ),
            ]
        )]
    );
    // Its own promise does not count: one peer is not enough in a cluster of 3.
    core.handle_message(
        Time::ZERO,
        NodeId(0),
        promise(1, 1, Ballot::default(), vec![]),
    );
    assert!(core.is_rejoining() && !core.is_leader());
    core.handle_message(
        Time::ZERO,
        NodeId(2),
        promise(1, 1, Ballot::default(), vec![]),
    );
    assert!(!core.is_rejoining() && core.is_leader());
    let outputs = drain(&mut core);
    assert!(outputs.contains(&Output::Persist {
        records: vec![Record::Fence {
            node: NodeId(1),
            ballot: fence
        }],
        then: Vec::new()
    }));
}

#[test]
fn a_peer_promises_a_rejoin_ballot_and_remembers_the_fence_durably() {
    let mut peer = node(0, 3, MultiPaxosConfig::default());
    let fence = ballot(3, 1);
    peer.handle_message(
        Time::ZERO,
        NodeId(1),
        Message::RejoinPrepare {
            ballot: fence,
            from_slot: 0,
        },
    );
    let outputs = drain(&mut peer);
    assert!(outputs.contains(&Output::Persist {
        records: vec![
            Record::Promised(fence),
            Record::Fence {
                node: NodeId(1),
                ballot: fence
            }
        ],
        then: vec![send(
            1,
            promise(3, 1, Ballot::default(), vec![(NodeId(1), fence)])
        )],
    }));
    // Rebuilt from those records, it still reports the fence in its promises.
    let mut rebuilt = MultiPaxos::new(
        NodeId(0),
        &cluster(3),
        MultiPaxosConfig::default(),
        7,
        vec![
            Record::Promised(fence),
            Record::Fence {
                node: NodeId(1),
                ballot: fence,
            },
        ],
    );
    rebuilt.handle_message(
        Time::ZERO,
        NodeId(2),
        Message::Prepare {
            ballot: ballot(4, 2),
            from_slot: 0,
        },
    );
    let outputs = drain(&mut rebuilt);
    assert!(outputs.iter().any(|o| matches!(
        o,
        Output::Persist { then, .. } if then == &vec![send(2, promise(4, 2, Ballot::default(), vec![(NodeId(1), fence)]))]
    )));
}

/// The unsafe interleaving the fence exists for: node 1's former self promised ballot
/// (5, 0) before losing its disk; node 1 then rejoined at (3, 1) through nodes 2, 3 and 4.
/// A promise from node 3 made after that carries the fence, so node 0 must not count the
/// former self's promise.
#[test]
fn a_promise_from_before_the_disk_was_lost_does_not_count_once_a_fence_is_known() {
    let mut candidate = node(0, 5, MultiPaxosConfig::default());
    let rejoin = ballot(3, 1);
    candidate.handle_timeout(Time::ZERO);
    candidate.handle_message(
        Time::ZERO,
        NodeId(0),
        Message::OwnPromiseDurable {
            ballot: ballot(1, 0),
        },
    );
    // Stale: node 1's former self (no fence).
    candidate.handle_message(
        Time::ZERO,
        NodeId(1),
        promise(1, 0, Ballot::default(), vec![]),
    );
    assert!(!candidate.is_leader());
    // Node 3 knows node 1 rejoined: the stale promise is void, two valid of three.
    candidate.handle_message(
        Time::ZERO,
        NodeId(3),
        promise(1, 0, Ballot::default(), vec![(NodeId(1), rejoin)]),
    );
    assert!(!candidate.is_leader(), "counted a void promise");
    candidate.handle_message(
        Time::ZERO,
        NodeId(4),
        promise(1, 0, Ballot::default(), vec![]),
    );
    assert!(candidate.is_leader());
}

#[test]
fn a_wiped_replica_rejoins_a_running_cluster_and_converges() {
    for seed in 0..10 {
        let mut pump = new_pump(3, fast().with_compaction(20, 5), seed);
        assert!(pump.run_until(STEPS, |p| p.leader().is_some()));
        for from in (0..60).step_by(20) {
            submit(&mut pump, from, 20);
            assert!(
                pump.run_until(STEPS, |p| answered(p, from..from + 20)),
                "seed {seed}"
            );
        }
        let wiped = NodeId((seed % 3) as u16);
        pump.crash(wiped);
        pump.wipe(wiped);
        pump.restart_rejoining(wiped);
        assert!(pump.up(wiped).is_rejoining());
        submit(&mut pump, 100, 30);
        assert!(
            pump.run_until(STEPS, |p| answered(p, 100..130)
                && !p.up(wiped).is_rejoining()
                && converged(p)),
            "seed {seed}: the wiped replica did not rejoin"
        );
        pump.assert_agreement();
        let kv = pump.up(wiped).kv().clone();
        assert!(pump.live().all(|n| n.kv() == &kv), "seed {seed}");
    }
}
