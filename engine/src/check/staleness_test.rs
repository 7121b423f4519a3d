//! The staleness checker: a bounded-staleness read may return a state up to its bound
//! old, never older; writes and linearizable reads keep their intervals.

use super::bounded_staleness_history_of;
use crate::check::{check_kv, CheckConfig, OpRecord, Verdict};
use crate::command::{Command, CommandResult};
use crate::id::{ClientId, NodeId, RequestId};
use crate::request::{ClientReply, ClientRequest, Consistency, ReadReceipt, Response};
use crate::time::Time;
use std::time::Duration;

fn record(
    seq: u64,
    command: Command,
    level: Consistency,
    call: u64,
    ret: u64,
    response: Response,
) -> OpRecord {
    let id = RequestId {
        client: ClientId(seq),
        seq,
    };
    OpRecord {
        client: ClientId(seq),
        region: 0,
        node: NodeId(0),
        request: ClientRequest::new(id, command).with_consistency(level),
        call: Time::from_millis(call),
        commit: None,
        ret: Some(Time::from_millis(ret)),
        reply: Some(ClientReply {
            id,
            outcome: Ok(response),
        }),
        timed_out: false,
    }
}

fn put(seq: u64, value: &str, call: u64, ret: u64) -> OpRecord {
    let command = Command::Put {
        key: b"k".to_vec(),
        value: value.as_bytes().to_vec(),
    };
    let written = Response::Kv(CommandResult::Written);
    record(seq, command, Consistency::Linearizable, call, ret, written)
}

fn read(seq: u64, level: Consistency, value: &str, call: u64, ret: u64) -> OpRecord {
    let command = Command::Get { key: b"k".to_vec() };
    let response = Response::Read {
        result: CommandResult::Value(Some(value.as_bytes().to_vec())),
        receipt: ReadReceipt::Stale { age_us: 0 },
    };
    record(seq, command, level, call, ret, response)
}

fn linearizable(records: &[OpRecord]) -> bool {
    let history = bounded_staleness_history_of(records, Duration::from_secs(1));
    matches!(
        check_kv(&history, &CheckConfig::default()).verdict,
        Verdict::Linearizable
    )
}

const STALE_1S: Consistency = Consistency::Stale {
    bound_us: 1_000_000,
};

#[test]
fn a_stale_read_within_its_bound_passes_and_one_beyond_it_is_caught() {
    // "a" is overwritten by "b" at 1.0–1.1 s.
    let writes = [put(1, "a", 0, 100), put(2, "b", 1_000, 1_100)];
    // Read at 1.8 s with a 1 s bound: "a" was current at 0.8 s, inside the bound.
    let within = [
        writes[0].clone(),
        writes[1].clone(),
        read(3, STALE_1S, "a", 1_800, 1_810),
    ];
    assert!(linearizable(&within));
    // Read at 2.5 s: "a" was overwritten by 1.1 s, more than 1 s before the call.
    let beyond = [
        writes[0].clone(),
        writes[1].clone(),
        read(3, STALE_1S, "a", 2_500, 2_510),
    ];
    assert!(!linearizable(&beyond));
    // A linearizable read of "a" at 1.8 s is caught even though a stale one passes.
    let strict = [
        writes[0].clone(),
        writes[1].clone(),
        read(3, Consistency::Lease, "a", 1_800, 1_810),
    ];
    assert!(!linearizable(&strict));
}

#[test]
fn local_reads_promise_nothing_and_are_left_out() {
    let records = [
        put(1, "a", 0, 100),
        put(2, "b", 1_000, 1_100),
        read(3, Consistency::LocalRead, "a", 9_000, 9_010),
    ];
    assert!(linearizable(&records));
}
