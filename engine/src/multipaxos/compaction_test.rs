//! Compaction, restart from a snapshot plus its tail, state transfer, and the bounded
//! session table, on the in-test pump.

use super::test_support::*;
use super::*;
use crate::command::CommandResult;
use crate::request::Response;
use crate::session::SessionLimits;

/// Compact every 20 executed slots, keep 5, transfer in 1 KiB chunks.
fn compacting() -> MultiPaxosConfig {
    fast()
        .with_compaction(20, 5)
        .with_snapshot_chunk_bytes(1_024)
}

/// `count` writes from `first` on, 20 at a time (as clients with a bounded window).
fn run_writes(pump: &mut Pump, first: u64, count: u64) {
    let end = first + count;
    for from in (first..end).step_by(20) {
        let to = (from + 20).min(end);
        submit(pump, from, to - from);
        assert!(
            pump.run_until(STEPS, |p| answered(p, from..to)),
            "seed {}: writes {from}..{to} not answered",
            pump.seed
        );
    }
    assert_all_ok(pump, first..end);
}

fn same_state_everywhere(pump: &Pump) -> bool {
    let states: Vec<_> = pump.live().map(|n| n.kv().clone()).collect();
    states.windows(2).all(|w| w[0] == w[1])
}

#[test]
fn a_long_run_compacts_and_holds_a_bounded_log_in_memory_and_on_disk() {
    for seed in 0..5 {
        let mut pump = new_pump(3, compacting(), seed);
        assert!(pump.run_until(STEPS, |p| p.leader().is_some()));
        run_writes(&mut pump, 0, 300);
        assert!(pump.run_until(STEPS, converged), "seed {seed}");
        pump.assert_agreement();
        for node in pump.live() {
            // A compaction waits for as many bytes of log as the last snapshot, which grows
            // with the 300 keys: fewer than one per 20 slots.
            assert!(node.metrics().get("compactions") >= 5, "seed {seed}");
            assert!(
                node.compacted_to() >= 300 - 20 - 5,
                "seed {seed}: {} compacted to {}",
                node.id(),
                node.compacted_to()
            );
            assert!(
                node.held_slots() <= 20 + 5,
                "seed {seed}: {} holds {} slots",
                node.id(),
                node.held_slots()
            );
        }
        for disk in &pump.disks {
            let accepted = disk
                .iter()
                .filter(|r| matches!(r, Record::Accepted { .. }))
                .count();
            // The log after the snapshot stays about as long as the snapshot, in bytes.
            let at = disk
                .iter()
                .rposition(|r| matches!(r, Record::Snapshot(_)))
                .unwrap_or(0);
            let log: u64 = disk[at + 1..]
                .iter()
                .map(crate::transfer::encoded_len)
                .sum();
            let snapshot: u64 = disk[..=at].iter().map(crate::transfer::encoded_len).sum();
            assert!(
                log <= 2 * snapshot,
                "seed {seed}: {accepted} accepted records, {log} bytes after a snapshot of {snapshot}"
            );
            assert!(
                disk.iter().any(|r| matches!(r, Record::Snapshot(_))),
                "seed {seed}: no snapshot on disk"
            );
        }
    }
}

#[test]
fn a_restart_rebuilds_the_state_from_the_snapshot_plus_the_tail() {
    let mut pump = new_pump(3, compacting(), 3);
    assert!(pump.run_until(STEPS, |p| p.leader().is_some()));
    run_writes(&mut pump, 0, 130);
    assert!(pump.run_until(STEPS, converged));
    let follower = pump
        .ids()
        .find(|&id| Some(id) != pump.leader())
        .expect("a follower");
    let before = pump.up(follower).kv().clone();
    pump.crash(follower);
    pump.restart(follower);
    let rebuilt = pump.up(follower);
    // Before any message: the snapshot alone gives the state at its frontier.
    assert!(rebuilt.executed_up_to() >= 60);
    assert_eq!(rebuilt.compacted_to(), rebuilt.executed_up_to());
    assert!(pump.run_until(STEPS, converged));
    assert_eq!(pump.up(follower).kv(), &before);
    run_writes(&mut pump, 200, 10);
    assert!(pump.run_until(STEPS, |p| converged(p) && same_state_everywhere(p)));
    pump.assert_agreement();
}

#[test]
fn a_replica_down_while_the_others_compacted_catches_up_by_state_transfer() {
    for seed in 10..16 {
        let mut pump = new_pump(3, compacting(), seed);
        pump.loss = if seed % 2 == 0 { 0.0 } else { 0.05 };
        assert!(pump.run_until(STEPS, |p| p.leader().is_some()));
        let leader = pump.leader().expect("elected");
        let down = NodeId((leader.0 + 1) % 3);
        pump.crash(down);
        run_writes(&mut pump, 0, 150);
        pump.restart(down);
        assert!(
            pump.run_until(STEPS, |p| converged(p) && same_state_everywhere(p)),
            "seed {seed}: the replica that was down did not catch up"
        );
        pump.assert_agreement();
        let metrics = pump.up(down).metrics();
        assert!(
            metrics.get("state_transfers_completed") >= 1,
            "seed {seed}: caught up without a snapshot"
        );
        assert!(
            metrics.get("state_transfer_bytes_received") > 0,
            "seed {seed}"
        );
        // The installed state is durable: a restart does not need another transfer.
        pump.crash(down);
        pump.restart(down);
        assert!(pump.up(down).executed_up_to() >= 100, "seed {seed}");
    }
}

#[test]
fn a_phase_1_or_catch_up_from_below_the_floor_is_answered_compacted() {
    let config = MultiPaxosConfig::default().with_compaction(2, 1);
    let mut leader = elected_leader(3, config);
    for seq in 0..4 {
        leader.handle_request(Time::ZERO, ClientRequest::new(request_id(seq), put(seq)));
        let outputs = drain(&mut leader);
        sync_self(&mut leader, Time::ZERO, &outputs);
        let slot = seq;
        leader.handle_message(
            Time::ZERO,
            NodeId(1),
            Message::Accepted {
                ballot: ballot(1, 0),
                slot,
            },
        );
    }
    drain(&mut leader);
    let floor = leader.compacted_to();
    assert!(floor >= 2, "floor {floor}");
    leader.handle_message(
        Time::ZERO,
        NodeId(2),
        Message::Prepare {
            ballot: ballot(5, 2),
            from_slot: 0,
        },
    );
    let outputs = drain(&mut leader);
    assert_eq!(outputs, vec![now_send(2, Message::Compacted { floor })]);
    assert!(leader.is_leader(), "a refused prepare deposes nobody");
    leader.handle_message(
        Time::ZERO,
        NodeId(2),
        Message::CatchUpRequest { from_slot: 0 },
    );
    assert_eq!(
        drain(&mut leader),
        vec![now_send(2, Message::Compacted { floor })]
    );
}

#[test]
fn an_old_retry_of_an_expired_session_is_answered_session_expired() {
    let limits = SessionLimits {
        per_client: 4,
        ..SessionLimits::default()
    };
    let mut pump = new_pump(3, fast().with_session_limits(limits), 5);
    assert!(pump.run_until(STEPS, |p| p.leader().is_some()));
    for seq in 0..10 {
        run_writes(&mut pump, seq, 1);
    }
    let leader = pump.leader().expect("elected");
    // The client retries its very first request, long after its window moved on.
    pump.replies.clear();
    pump.request(leader, ClientRequest::new(request_id(0), put(0)));
    assert!(pump.run_until(STEPS, |p| answered(p, 0..1)));
    assert_eq!(
        pump.replies[&request_id(0)].outcome,
        Err(RequestError::SessionExpired {
            request: request_id(0)
        })
    );
    // A retry inside the window gets the first result; nothing ran twice.
    pump.request(leader, ClientRequest::new(request_id(9), put(9)));
    assert!(pump.run_until(STEPS, |p| answered(p, 9..10)));
    assert_eq!(
        pump.replies[&request_id(9)].outcome,
        Ok(Response::Kv(CommandResult::Written))
    );
    pump.assert_agreement();
}

/// Seed 141 of `t22_multipaxos_bounded` with batching on: a leader installed a
/// transferred snapshot while its own slot awaited votes; the quorum then completed and
/// the leader committed the slot with the empty value its log now gave back (the slot had
/// left the log), so followers that had not learnt the slot executed nothing there while
/// one that had executed the chosen request. A covered slot leaves the pipeline instead:
/// no Commit for it, and the request it carried is proposed again and answered from the
/// session table.
#[test]
fn a_leader_never_commits_a_slot_that_an_installed_snapshot_covers() {
    use crate::state_machine::{KvStore, StateMachine};
    let mut leader = elected_leader(3, fast());
    let own = ballot(1, 0);
    leader.handle_request(Time::ZERO, ClientRequest::new(request_id(1), put(1)));
    let proposed = drain(&mut leader);
    // Meanwhile the chosen value of slot 0 (this very request) reached a peer, which
    // compacted past it; we fetch its snapshot.
    let mut kv = KvStore::default();
    kv.apply(&put(1));
    let mut sessions = crate::session::SessionTable::new();
    sessions.record(request_id(1), CommandResult::Written);
    let bytes = crate::transfer::encode(&Snapshot {
        executed: 1,
        kv,
        sessions,
        configuration: Configuration::initial(&cluster(3)),
    });
    leader.handle_message(Time::ZERO, NodeId(1), Message::Compacted { floor: 1 });
    drain(&mut leader);
    let total = bytes.len() as u64;
    leader.handle_message(
        Time::ZERO,
        NodeId(1),
        Message::SnapshotChunk {
            at: 1,
            offset: 0,
            total,
            bytes,
        },
    );
    assert_eq!(leader.metrics().get("state_transfers_completed"), 1);
    assert_eq!(leader.metrics().get("slots_covered_by_snapshot"), 1);
    let mut outputs = drain(&mut leader);
    // Slot 0's quorum completes only now: our durable vote and a peer's.
    sync_self(&mut leader, Time::ZERO, &proposed);
    leader.handle_message(
        Time::ZERO,
        NodeId(1),
        Message::Accepted {
            ballot: own,
            slot: 0,
        },
    );
    outputs.extend(drain(&mut leader));
    let commits: Vec<_> = sent_now(&outputs)
        .into_iter()
        .filter(|(_, m)| matches!(m, Message::Commit { slot: 0, .. }))
        .collect();
    assert_eq!(commits, vec![], "committed a slot the snapshot covers");
    // The request went into slot 1; once chosen it is answered from the session table.
    let again: Batch = [proposal(1, 0)].into();
    assert!(sent_now(&outputs).contains(&(
        NodeId(1),
        Message::Accept {
            ballot: own,
            slot: 1,
            value: again,
        }
    )));
    sync_self(&mut leader, Time::ZERO, &outputs);
    leader.handle_message(
        Time::ZERO,
        NodeId(2),
        Message::Accepted {
            ballot: own,
            slot: 1,
        },
    );
    let replies: Vec<_> = drain(&mut leader)
        .into_iter()
        .filter_map(|o| match o {
            Output::Now(crate::protocol::Effect::Reply(reply)) => Some(reply),
            _ => None,
        })
        .collect();
    assert_eq!(
        replies,
        vec![crate::request::ClientReply {
            id: request_id(1),
            outcome: Ok(Response::Kv(CommandResult::Written)),
        }]
    );
    assert_eq!(leader.applied().len(), 0, "the repeat must not run again");
}
