use super::*;
use meridian_engine::command::{Command, CommandResult};
use meridian_engine::{ClientId, ClientReply, ClientRequest, NodeId, RequestError, RequestId};
use meridian_engine::{Response, Time};

/// A put called at `call_ms` that returned after `latency_ms`, or failed (`None`).
fn op(call_ms: u64, latency_ms: Option<u64>) -> OpRecord {
    let id = RequestId {
        client: ClientId(1),
        seq: call_ms,
    };
    let call = Time::from_micros(call_ms * 1000);
    let outcome = match latency_ms {
        Some(_) => Ok(Response::Kv(CommandResult::Written)),
        None => Err(RequestError::Timeout),
    };
    OpRecord {
        client: ClientId(1),
        region: 0,
        node: NodeId(0),
        request: ClientRequest::new(
            id,
            Command::Put {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
            },
        ),
        call,
        commit: None,
        ret: latency_ms.map(|l| call + Duration::from_millis(l)),
        reply: Some(ClientReply { id, outcome }),
        timed_out: false,
    }
}

#[test]
fn requests_fall_into_the_bucket_of_their_call() {
    let mut timeline = Timeline::new(Duration::from_secs(2));
    for i in 0..100 {
        timeline.record(&op(i * 10, Some(70)));
    }
    // Called at 3 s, answered at 8 s: counted at 2..4 s, where the wait began.
    timeline.record(&op(3_000, Some(5_000)));
    timeline.record(&op(5_500, None));
    let rows = timeline.rows();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].start_s, 0.0);
    assert_eq!(rows[0].ops_per_s, 50.0);
    assert!((rows[0].p50_ms - 70.0).abs() < 0.1, "{:?}", rows[0]);
    assert_eq!(rows[0].failed, 0);
    assert_eq!(rows[1].start_s, 2.0);
    assert_eq!(rows[1].ops_per_s, 0.5);
    assert!((rows[1].max_ms - 5_000.0).abs() < 5.0, "{:?}", rows[1]);
    assert_eq!(rows[2].ops_per_s, 0.0);
    assert_eq!(rows[2].failed, 1);
}

#[test]
fn the_report_carries_the_bucket_length_and_the_changes() {
    let mut timeline = Timeline::new(Duration::from_millis(500));
    timeline.record(&op(1_200, Some(10)));
    let change = ChangeRecord {
        change: "add:CA@1".into(),
        start_s: 1.0,
        end_s: 2.5,
        node: Some(5),
        outcome: "ok".into(),
    };
    let report = timeline.report(vec![change]);
    assert_eq!(report.bucket_s, 0.5);
    assert_eq!(report.rows.len(), 3);
    assert_eq!(report.rows[2].ops_per_s, 2.0);
    assert_eq!(report.changes[0].node, Some(5));
}
