//! Reads without the log: leader leases, read indexes, follower reads, bounded staleness,
//! quorum leases and the new leader's wait for former leases; on the test host (timed
//! order: 10 ms links) and handler by handler.

use super::test_support::*;
use super::*;
use crate::command::{Command, CommandResult};
use crate::request::{Consistency, ReadReceipt, Response};
use crate::test_host::{self, Order};
use std::time::Duration;

const LEASE: Duration = Duration::from_millis(400);

fn leased() -> MultiPaxosConfig {
    MultiPaxosConfig::default()
        .with_timeouts(Duration::from_millis(20), Duration::from_millis(500))
        .with_lease(LEASE, 1_000)
}

fn timed_pump(n: u16, config: MultiPaxosConfig) -> Pump {
    let members = cluster(n);
    let build: test_host::Build<MultiPaxos> = Box::new(move |id, incarnation, records| {
        MultiPaxos::new(id, &members, config.clone(), 5 + incarnation, records)
    });
    Pump::new(
        n,
        5,
        Order::Timed {
            latency: Duration::from_millis(10),
            fsync: Duration::ZERO,
        },
        build,
    )
}

fn get(level: Consistency, seq: u64) -> ClientRequest {
    ClientRequest::new(request_id(seq), Command::Get { key: b"k".to_vec() }).with_consistency(level)
}

/// Write `seq` at node 0 and wait for it.
fn write(pump: &mut Pump, seq: u64) {
    pump.request(NodeId(0), ClientRequest::new(request_id(seq), put(seq)));
    let reply = pump.run_until_reply(request_id(seq), Duration::from_secs(5));
    assert!(matches!(reply.outcome, Ok(Response::Kv(_))), "{reply:?}");
}

/// Read at `at` and return the value read and how the read was served.
fn read(pump: &mut Pump, at: u16, level: Consistency, seq: u64) -> (Option<u64>, ReadReceipt) {
    let start = pump.now;
    pump.request(NodeId(at), get(level, seq));
    let reply = pump.run_until_reply(request_id(seq), Duration::from_secs(5));
    let Ok(Response::Read {
        result: CommandResult::Value(value),
        receipt,
    }) = reply.outcome
    else {
        panic!(
            "read {seq} at {at}: {reply:?} (after {:?})",
            pump.now.saturating_since(start)
        );
    };
    let value = value.map(|v| u64::from_le_bytes(v.try_into().expect("8 bytes")));
    (value, receipt)
}

/// A 3-cluster whose leader (node 0) has served a write and holds a confirmed round.
fn warmed(config: MultiPaxosConfig) -> Pump {
    let mut pump = timed_pump(3, config);
    pump.run_for(Duration::from_secs(1));
    write(&mut pump, 1);
    pump.run_for(Duration::from_millis(100));
    assert_eq!(pump.leader(), Some(NodeId(0)));
    pump
}

#[test]
fn the_leader_serves_lease_reads_with_no_message_and_no_log_write() {
    let mut pump = warmed(leased());
    let end = pump.up(NodeId(0)).log.end();
    let start = pump.now;
    let (value, receipt) = read(&mut pump, 0, Consistency::Lease, 2);
    assert_eq!(value, Some(1));
    assert_eq!(receipt, ReadReceipt::LeaderLease);
    assert_eq!(pump.now, start, "a lease read takes no round trip");
    assert_eq!(pump.up(NodeId(0)).log.end(), end, "no slot was used");
    assert_eq!(pump.up(NodeId(0)).metrics().get("reads_leader_lease"), 1);
}

#[test]
fn without_leases_a_lease_read_costs_one_heartbeat_round() {
    let config = leased();
    let config = MultiPaxosConfig {
        lease: None,
        ..config
    };
    let mut pump = warmed(config);
    let end = pump.up(NodeId(0)).log.end();
    let start = pump.now;
    let (value, receipt) = read(&mut pump, 0, Consistency::Lease, 2);
    assert_eq!((value, receipt), (Some(1), ReadReceipt::ReadIndex));
    // One round trip of 2 × 10 ms, no more.
    assert_eq!(pump.now.saturating_since(start), Duration::from_millis(20));
    assert_eq!(pump.up(NodeId(0)).log.end(), end, "no slot was used");
}

#[test]
fn a_read_index_waits_for_a_quorum_of_acks() {
    let mut pump = warmed(leased());
    // Node 0 alone cannot confirm: its read waits (a majority of 3 needs one ack).
    pump.isolate(NodeId(0));
    pump.request(NodeId(0), get(Consistency::ReadIndex, 2));
    pump.run_for(Duration::from_millis(100));
    assert!(!pump.replies.contains_key(&request_id(2)));
    pump.heal();
    let reply = pump.run_until_reply(request_id(2), Duration::from_secs(3));
    assert!(
        matches!(
            reply.outcome,
            Ok(Response::Read {
                receipt: ReadReceipt::ReadIndex,
                ..
            })
        ),
        "{reply:?}"
    );
}

#[test]
fn a_follower_read_asks_the_leader_and_sees_every_completed_write() {
    let mut pump = warmed(MultiPaxosConfig {
        lease: None,
        ..leased()
    });
    write(&mut pump, 2);
    let (value, receipt) = read(&mut pump, 2, Consistency::Follower, 3);
    assert_eq!(value, Some(2));
    assert!(
        matches!(
            receipt,
            ReadReceipt::Follower {
                leader: NodeId(0),
                leased: false,
                ..
            }
        ),
        "{receipt:?}"
    );
    // With a leader lease the leader answers the index without a round.
    let mut pump = warmed(leased());
    let (value, receipt) = read(&mut pump, 1, Consistency::Follower, 2);
    assert_eq!(value, Some(1));
    assert!(
        matches!(receipt, ReadReceipt::Follower { leased: true, .. }),
        "{receipt:?}"
    );
}

#[test]
fn stale_reads_are_served_only_with_a_proof_within_the_bound() {
    let mut pump = timed_pump(3, leased());
    // Before any heartbeat round a follower can prove nothing.
    pump.run_for(Duration::from_millis(1));
    pump.request(
        NodeId(1),
        get(
            Consistency::Stale {
                bound_us: 5_000_000,
            },
            10,
        ),
    );
    let reply = pump.run_until_reply(request_id(10), Duration::from_secs(1));
    assert!(
        matches!(reply.outcome, Err(RequestError::TooStale { .. })),
        "{reply:?}"
    );
    pump.run_for(Duration::from_secs(1));
    write(&mut pump, 1);
    pump.run_for(Duration::from_millis(200));
    let (value, receipt) = read(&mut pump, 1, Consistency::Stale { bound_us: 500_000 }, 11);
    assert_eq!(value, Some(1));
    let ReadReceipt::Stale { age_us } = receipt else {
        panic!("{receipt:?}");
    };
    assert!(age_us < 100_000, "heartbeats keep it fresh: {age_us}us");
    // Cut off from the leader, its proof ages past a tight bound and it refuses.
    pump.isolate(NodeId(1));
    pump.run_for(Duration::from_millis(300));
    pump.request(NodeId(1), get(Consistency::Stale { bound_us: 200_000 }, 12));
    let reply = pump.run_until_reply(request_id(12), Duration::from_secs(1));
    assert!(
        matches!(
            reply.outcome,
            Err(RequestError::TooStale {
                bound_us: 200_000,
                ..
            })
        ),
        "{reply:?}"
    );
}

#[test]
fn a_candidate_waits_out_the_leases_its_promisers_granted() {
    let mut leader = node(0, 3, leased());
    leader.handle_timeout(Time::ZERO);
    let outputs = drain(&mut leader);
    sync_self(&mut leader, Time::ZERO, &outputs);
    // Our own grant (assumed at boot) and a promiser's 300 ms both count.
    leader.handle_message(
        Time::from_millis(100),
        NodeId(1),
        Message::Promise {
            ballot: ballot(1, 0),
            accepted: Vec::new(),
            lease_remaining_us: 300_000,
            fence: Ballot::default(),
            fences: Vec::new(),
        },
    );
    drain(&mut leader);
    assert!(
        !leader.is_leader(),
        "phase 1 is done but a lease may be live"
    );
    assert_eq!(leader.metrics().get("lease_waits"), 1);
    // The later of our own (400 ms from boot) and the promiser's (300 ms from 100 ms),
    // each stretched by (1+ρ)/(1-ρ) at ρ = 0.1%.
    let own = Time::ZERO + lease::stretch(LEASE, 1_000);
    let theirs = Time::from_millis(100) + lease::stretch(Duration::from_millis(300), 1_000);
    let end = own.max(theirs);
    assert_eq!(end, Time::from_micros(400_801));
    assert_eq!(leader.poll_timeout(), Some(end));
    leader.handle_timeout(end - Duration::from_micros(1));
    assert!(!leader.is_leader());
    leader.handle_timeout(end);
    assert!(leader.is_leader());
}

#[test]
fn a_restarted_acceptor_reports_a_whole_lease_in_its_promise() {
    let mut acceptor = node(1, 3, leased());
    acceptor.handle_message(
        Time::from_millis(50),
        NodeId(2),
        Message::Prepare {
            ballot: ballot(3, 2),
            from_slot: 0,
        },
    );
    let outputs = drain(&mut acceptor);
    let promised = outputs.iter().any(|o| {
        matches!(o, Output::Persist { then, .. } if then.iter().any(|e| matches!(e,
            crate::protocol::Effect::Send { message: Message::Promise { lease_remaining_us, .. }, .. }
                if *lease_remaining_us == 400_000)))
    });
    assert!(promised, "{outputs:?}");
}

#[test]
fn a_quorum_lease_holder_reads_locally_and_writes_wait_for_it() {
    let config = leased().with_quorum_lease_holders(vec![NodeId(2)]);
    let mut pump = warmed(config);
    pump.run_for(Duration::from_millis(100));
    let start = pump.now;
    let (value, receipt) = read(&mut pump, 2, Consistency::Lease, 2);
    assert_eq!((value, receipt), (Some(1), ReadReceipt::QuorumLease));
    assert_eq!(pump.now, start, "served locally");
    // Writes need the holder's vote while its lease may be live: with the holder cut
    // off, a write waits until the leader's view of the lease has lapsed.
    pump.isolate(NodeId(2));
    let cut = pump.now;
    write(&mut pump, 3);
    let waited = pump.now.saturating_since(cut);
    assert!(
        waited >= Duration::from_millis(300),
        "the write committed after {waited:?}, inside the holder's lease"
    );
    assert!(
        pump.up(NodeId(0))
            .metrics()
            .get("commits_held_for_lease_holders")
            > 0
    );
    // The cut-off holder no longer holds a lease: its lease read asks the leader, and
    // cannot reach it.
    pump.request(NodeId(2), get(Consistency::Lease, 4));
    pump.run_for(Duration::from_millis(500));
    assert!(!pump.replies.contains_key(&request_id(4)));
    pump.heal();
    let reply = pump.run_until_reply(request_id(4), Duration::from_secs(5));
    let Ok(Response::Read { result, .. }) = reply.outcome else {
        panic!("{reply:?}");
    };
    assert_eq!(
        result,
        CommandResult::Value(Some(3u64.to_le_bytes().to_vec()))
    );
}

#[test]
fn read_levels_order_writes_like_linearizable_ones() {
    let mut pump = warmed(leased());
    pump.request(
        NodeId(1),
        ClientRequest::new(request_id(7), put(7)).with_consistency(Consistency::Lease),
    );
    let reply = pump.run_until_reply(request_id(7), Duration::from_secs(2));
    assert!(matches!(
        reply.outcome,
        Ok(Response::Kv(CommandResult::Written))
    ));
    let (value, _) = read(&mut pump, 0, Consistency::Lease, 8);
    assert_eq!(value, Some(7));
}

/// The read index covers a slot the leader committed above one it has not yet (a new
/// leader re-proposing what it took over while its own proposals commit): a replica that
/// had the slots below executed that slot and answered its client, so a read served
/// below it would miss a completed write (t23 seed 111014: a follower read returned the
/// value before a write that had returned 70 ms earlier).
#[test]
fn the_read_index_covers_a_slot_committed_above_a_gap() {
    let mut leader = elected_leader(3, MultiPaxosConfig::default());
    leader.log.commit(0, [proposal(1, 0)].into());
    leader.log.commit(2, [proposal(3, 0)].into());
    assert_eq!(leader.log.commit_point(), 1, "slot 1 is not committed yet");
    let now = Time::from_millis(1);
    leader.handle_message(
        now,
        NodeId(1),
        Message::ReadIndexRequest {
            request: request_id(9),
        },
    );
    let round = sent_now(&drain(&mut leader))
        .into_iter()
        .find_map(|(to, m)| match m {
            Message::Heartbeat { round, .. } if to == NodeId(2) => Some(round),
            _ => None,
        })
        .expect("a confirmation round");
    let ack = Message::HeartbeatAck {
        ballot: ballot(1, 0),
        round,
        at: now,
        executed: 0,
    };
    leader.handle_message(now, NodeId(2), ack);
    let index = sent_now(&drain(&mut leader))
        .into_iter()
        .find_map(|(to, m)| match m {
            Message::ReadIndexReply { index, .. } if to == NodeId(1) => Some(index),
            _ => None,
        });
    assert_eq!(
        index,
        Some(3),
        "past slot 2, which may have answered its client"
    );
}
