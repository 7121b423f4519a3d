//! Range reads on Multi-Paxos (docs/design.md#range-reads): a linearizable scan or count
//! is a command in the log, so it answers exactly the state after the slots before its
//! own, whichever replica it reached; `local` answers from the contacted replica's
//! state; the levels served outside the log are refused for range reads.

use super::test_support::*;
use super::*;
use crate::command::{Command, CommandResult};
use crate::protocol::Effect;
use crate::request::{ClientReply, Consistency, RequestError, Response};
use crate::state_machine::{KvStore, StateMachine};
use std::time::Duration;

fn scan(prefix: &str, limit: u32) -> Command {
    Command::Scan {
        prefix: prefix.into(),
        after: None,
        limit,
    }
}

/// Seq `seq` of a mixed workload: writes and deletes under `a/` and `b/`, scans (some
/// cut short by their limit) and counts of `a/`.
fn command(seq: u64) -> Command {
    let key = |prefix: &str, n: u64| format!("{prefix}{n}").into_bytes();
    match seq % 12 {
        0 | 6 => scan("a/", 100),
        3 => Command::Count {
            prefix: b"a/".to_vec(),
        },
        9 => scan("a/", 2),
        7 => Command::Delete {
            key: key("a/", seq % 7),
        },
        1 | 4 | 10 => Command::Put {
            key: key("a/", seq % 7),
            value: seq.to_le_bytes().to_vec(),
        },
        _ => Command::Put {
            key: key("b/", seq % 5),
            value: seq.to_le_bytes().to_vec(),
        },
    }
}

/// Scans and counts sent to every replica among concurrent writes, 20 seeded delivery
/// orders (10 of them losing and repeating messages): each answer equals the range read of the state after every command applied
/// before it in the log (replayed from the agreed sequence).
#[test]
fn range_reads_answer_the_state_of_their_place_in_the_log() {
    const N: u64 = 72;
    let (mut nonempty, mut truncated) = (0, 0);
    for seed in 0..20 {
        let mut pump = new_pump(3, fast(), seed);
        assert!(
            pump.run_until(STEPS, |p| p.leader().is_some()),
            "seed {seed}"
        );
        if seed >= 10 {
            // Lost and repeated messages: forwards retried, proposals ordered twice.
            pump.loss = 0.05;
            pump.duplicate = 0.05;
        }
        for seq in 0..N {
            let at = NodeId((seq / 2 % 3) as u16);
            pump.request(at, ClientRequest::new(request_id(seq), command(seq)));
            if seq % 6 == 5 {
                // Waves: later scans see earlier writes, and writes still in flight.
                pump.run_for(Duration::from_millis(2 + seq % 5));
            }
        }
        assert!(
            pump.run_until(STEPS, |p| answered(p, 0..N)),
            "seed {seed}: not every request answered"
        );
        pump.loss = 0.0;
        pump.duplicate = 0.0;
        assert!(pump.run_until(STEPS, converged), "seed {seed}");
        pump.assert_agreement();
        let applied = pump.up(NodeId(0)).applied().clone();
        assert_eq!(applied.len() as u64, N, "seed {seed}: applied once each");
        let mut kv = KvStore::new();
        for entry in applied {
            if entry.command.prefix().is_some() {
                let expected = kv.read_only(&entry.command).expect("a read");
                let reply = &pump.replies[&entry.request];
                assert_eq!(
                    reply.outcome,
                    Ok(Response::Kv(expected.clone())),
                    "seed {seed}: {:?} at slot {}",
                    entry.command,
                    entry.slot
                );
                if let CommandResult::Entries { entries, more } = expected {
                    nonempty += usize::from(!entries.is_empty());
                    truncated += usize::from(more);
                }
            }
            kv.apply(&entry.command);
        }
    }
    assert!(nonempty > 20, "scans found entries {nonempty} times");
    assert!(truncated > 5, "the limit cut scans short {truncated} times");
}

/// `local` serves a scan from the contacted replica's applied state at once.
#[test]
fn a_local_scan_reads_the_contacted_replica() {
    let mut pump = new_pump(3, fast(), 7);
    assert!(pump.run_until(STEPS, |p| p.leader().is_some()));
    for seq in 0..6 {
        let put = Command::Put {
            key: format!("a/{seq}").into_bytes(),
            value: b"v".to_vec(),
        };
        pump.request(NodeId(0), ClientRequest::new(request_id(100 + seq), put));
    }
    assert!(pump.run_until(STEPS, |p| answered(p, 100..106)));
    assert!(pump.run_until(STEPS, converged));
    let id = request_id(200);
    let local = ClientRequest::new(id, scan("a/", 3)).with_consistency(Consistency::LocalRead);
    pump.request(NodeId(2), local);
    let reply = pump.run_until_reply(id, Duration::from_secs(1));
    let expected = pump.up(NodeId(2)).kv().scan(b"a/", None, 3);
    let CommandResult::Entries { entries, more } = &expected else {
        panic!("{expected:?}");
    };
    assert_eq!(entries.len(), 3);
    assert!(more);
    assert_eq!(reply.outcome, Ok(Response::Kv(expected)));
}

/// The read levels served outside the log are per-key: a range read is refused there.
#[test]
fn range_reads_at_levels_outside_the_log_are_refused() {
    let levels = [
        Consistency::Lease,
        Consistency::ReadIndex,
        Consistency::Follower,
        Consistency::Stale { bound_us: 1_000 },
    ];
    let mut core = node(1, 3, MultiPaxosConfig::default());
    for (seq, level) in levels.into_iter().enumerate() {
        let id = request_id(seq as u64);
        let request = ClientRequest::new(id, scan("", 10)).with_consistency(level);
        core.handle_request(Time::ZERO, request);
        match drain(&mut core).as_slice() {
            [Output::Now(Effect::Reply(ClientReply {
                id: replied,
                outcome: Err(RequestError::Invalid(text)),
            }))] => {
                assert_eq!(*replied, id);
                assert!(text.contains("linearizable (ordered in the log)"), "{text}");
            }
            other => panic!("{level}: {other:?}"),
        }
    }
    assert_eq!(core.pending_requests(), 0);
}
