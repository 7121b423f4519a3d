use crate::client::{Client, ClientError, ClientOptions};
use crate::test_support::{lone_transport, next_client_request, TestCa};
use crate::wire::{ReplyFrame, RequestFrame};
use meridian_engine::{ClientReply, CommandResult, Response};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::timeout;

/// The value a Get of `key` answers: the key itself, so each caller can tell its own.
fn echo(frame: &RequestFrame) -> ReplyFrame {
    ReplyFrame::from(ClientReply {
        id: frame.request.id,
        outcome: Ok(Response::Kv(CommandResult::Value(Some(
            frame.request.command.key().clone(),
        )))),
    })
}

/// Concurrent requests of one client, answered by the node in the reverse order, each
/// reach their own caller; with protocol 4 and with a stream per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_reach_their_callers_whatever_the_answer_order() {
    for stream_per_request in [false, true] {
        let ca = TestCa::new();
        let (transport, mut rx) = lone_transport(&ca);
        let options = ClientOptions {
            stream_per_request,
            ..ClientOptions::default()
        };
        let addr = transport.local_addr().expect("address");
        let client = Arc::new(
            Client::connect_with(addr, &ca.client(), options)
                .await
                .expect("connect"),
        );
        let callers: Vec<_> = (0u8..4)
            .map(|k| {
                let client = Arc::clone(&client);
                tokio::spawn(async move { (k, client.get("ks", &[k], None).await) })
            })
            .collect();
        let mut asked = Vec::new();
        for _ in 0..4 {
            asked.push(next_client_request(&mut rx).await);
        }
        for (frame, reply) in asked.into_iter().rev() {
            reply.send(echo(&frame)).expect("the client waits");
        }
        for caller in callers {
            let (k, reply) = caller.await.expect("caller");
            let reply = reply.expect("an answer");
            assert_eq!(
                reply.outcome,
                Ok(Response::Kv(CommandResult::Value(Some(vec![k])))),
                "stream per request: {stream_per_request}"
            );
        }
    }
}

/// A request the replica lets go of fails its caller with a connection error (outcome
/// unknown), and the client's next request is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_request_fails_its_caller_and_the_client_goes_on() {
    let ca = TestCa::new();
    let (transport, mut rx) = lone_transport(&ca);
    let addr = transport.local_addr().expect("address");
    let client = Arc::new(Client::connect(addr, &ca.client()).await.expect("connect"));
    let first = {
        let client = Arc::clone(&client);
        tokio::spawn(async move { client.get("ks", b"a", None).await })
    };
    drop(next_client_request(&mut rx).await);
    match first.await.expect("caller") {
        Err(ClientError::Connection { message, .. }) => {
            assert!(message.contains("without a reply"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let second = {
        let client = Arc::clone(&client);
        tokio::spawn(async move { client.get("ks", b"b", None).await })
    };
    let (frame, reply) = next_client_request(&mut rx).await;
    reply.send(echo(&frame)).expect("the client waits");
    let reply = second.await.expect("caller").expect("an answer");
    assert_eq!(
        reply.outcome,
        Ok(Response::Kv(CommandResult::Value(Some(b"b".to_vec()))))
    );
}

/// When the replica goes away, a waiting caller hears of it at once, not at its
/// timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_waiting_on_a_replica_that_goes_away_fails_promptly() {
    let ca = TestCa::new();
    let (transport, mut rx) = lone_transport(&ca);
    let addr = transport.local_addr().expect("address");
    let options = ClientOptions {
        timeout: Duration::from_secs(60),
        ..ClientOptions::default()
    };
    let client = Arc::new(
        Client::connect_with(addr, &ca.client(), options)
            .await
            .expect("connect"),
    );
    let waiting = {
        let client = Arc::clone(&client);
        tokio::spawn(async move { client.get("ks", b"a", None).await })
    };
    let _held = next_client_request(&mut rx).await;
    transport.shutdown();
    let outcome = timeout(Duration::from_secs(10), waiting)
        .await
        .expect("failed well before the 60 s timeout")
        .expect("caller");
    assert!(
        matches!(outcome, Err(ClientError::Connection { .. })),
        "{outcome:?}"
    );
}
