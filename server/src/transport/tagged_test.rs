use super::*;
use crate::test_support::{lone_transport, next_client_request, TestCa};
use crate::tls::{ALPN_CLIENT_V4, CLUSTER_SERVER_NAME};
use crate::transport::endpoint::Transport;
use crate::transport::link::CLOSE_MALFORMED;
use crate::wire::RequestFrame;
use meridian_engine::{
    ClientId, ClientReply, ClientRequest, Command, CommandResult, RequestError, RequestId, Response,
};
use std::time::Duration;
use tokio::time::timeout;

const MAX: usize = 1 << 20;

/// A client connection speaking protocol 4 (checked), and one stream on it.
async fn tagged_stream(
    ca: &TestCa,
    transport: &Transport,
) -> (Connection, quinn::SendStream, quinn::RecvStream) {
    let mut endpoint = quinn::Endpoint::client(std::net::SocketAddr::from((
        std::net::Ipv4Addr::LOCALHOST,
        0,
    )))
    .expect("client endpoint");
    endpoint.set_default_client_config(quinn::ClientConfig::new(
        ca.client()
            .quic_client_offering(&[ALPN_CLIENT_V4, tls::ALPN_CLIENT])
            .expect("client crypto"),
    ));
    let conn = endpoint
        .connect(
            transport.local_addr().expect("address"),
            CLUSTER_SERVER_NAME,
        )
        .expect("connect")
        .await
        .expect("handshake");
    let protocol = tls::negotiated_alpn(&conn);
    assert_eq!(protocol.as_deref(), Some(ALPN_CLIENT_V4));
    let (send, recv) = conn.open_bi().await.expect("a stream");
    (conn, send, recv)
}

fn put(seq: u64) -> TaggedRequest {
    let id = RequestId {
        client: ClientId(9),
        seq,
    };
    TaggedRequest {
        tag: 100 + seq,
        frame: ClientFrame::Request(RequestFrame {
            keyspace: "ks".into(),
            request: ClientRequest::new(
                id,
                Command::Put {
                    key: seq.to_be_bytes().to_vec(),
                    value: b"v".to_vec(),
                },
            ),
            default_consistency: true,
        }),
    }
}

fn written(frame: &RequestFrame) -> ReplyFrame {
    ReplyFrame::from(ClientReply {
        id: frame.request.id,
        outcome: Ok(Response::Kv(CommandResult::Written)),
    })
}

/// Three requests on one stream reach the node before any is answered; answers come back
/// in the order the node gives them, each with its request's tag; the replica finishes
/// the stream once the client finished its side and every answer is out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_completion_order_with_their_tags() {
    let ca = TestCa::new();
    let (transport, mut rx) = lone_transport(&ca);
    let (_conn, mut send, mut recv) = tagged_stream(&ca, &transport).await;
    for seq in 1..=3 {
        frame::write(&mut send, &put(seq), MAX)
            .await
            .expect("write");
    }
    send.finish().expect("finish");
    let mut asked = Vec::new();
    for _ in 0..3 {
        asked.push(next_client_request(&mut rx).await);
    }
    for (frame, reply) in asked.into_iter().rev() {
        let answer = written(&frame);
        reply.send(answer.clone()).expect("the stream waits");
        let got: TaggedReply = timeout(Duration::from_secs(10), frame::read(&mut recv, MAX))
            .await
            .expect("in time")
            .expect("readable")
            .expect("an answer");
        assert_eq!(got.tag, 100 + frame.request.id.seq);
        assert_eq!(got.answer, Answer::Reply(answer));
    }
    let end = timeout(
        Duration::from_secs(10),
        frame::read::<TaggedReply, _>(&mut recv, MAX),
    )
    .await
    .expect("in time")
    .expect("a clean end");
    assert_eq!(end, None, "the stream ends after the last answer");
    assert_eq!(
        transport
            .stats()
            .client_requests
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
}

/// A request the node lets go of (its reply sender dropped) is answered `Dropped`, and
/// the stream goes on serving the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_node_drops_is_answered_dropped_and_the_stream_goes_on() {
    let ca = TestCa::new();
    let (transport, mut rx) = lone_transport(&ca);
    let (_conn, mut send, mut recv) = tagged_stream(&ca, &transport).await;
    frame::write(&mut send, &put(1), MAX).await.expect("write");
    drop(next_client_request(&mut rx).await);
    let got: TaggedReply = frame::read(&mut recv, MAX)
        .await
        .expect("read")
        .expect("an answer");
    assert_eq!((got.tag, got.answer), (101, Answer::Dropped));
    frame::write(&mut send, &put(2), MAX).await.expect("write");
    let (frame, reply) = next_client_request(&mut rx).await;
    reply.send(written(&frame)).expect("the stream waits");
    let got: TaggedReply = frame::read(&mut recv, MAX)
        .await
        .expect("read")
        .expect("an answer");
    assert_eq!((got.tag, got.answer), (102, Answer::Reply(written(&frame))));
}

/// A malformed request after good ones closes the connection as malformed, and counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_request_mid_stream_closes_the_connection() {
    let ca = TestCa::new();
    let (transport, mut rx) = lone_transport(&ca);
    let (conn, mut send, _recv) = tagged_stream(&ca, &transport).await;
    frame::write(&mut send, &put(1), MAX).await.expect("write");
    let _first = next_client_request(&mut rx).await;
    // A length prefix of 3 and three bytes that are no TaggedRequest.
    send.write_all(&[3, 0, 0, 0, 0xff, 0xff, 0xff])
        .await
        .expect("write");
    let closed = timeout(Duration::from_secs(10), conn.closed())
        .await
        .expect("closed in time");
    match closed {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code.into_inner(), u64::from(CLOSE_MALFORMED))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        transport
            .stats()
            .malformed_frames
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

/// A reply over the frame limit is answered with a tagged `Rejected` reply saying so.
#[test]
fn an_oversized_tagged_reply_becomes_a_rejection() {
    let id = RequestId {
        client: ClientId(1),
        seq: 2,
    };
    let big = ReplyFrame::from(ClientReply {
        id,
        outcome: Ok(Response::Kv(CommandResult::Value(Some(vec![7; 10_000])))),
    });
    let decode = |bytes: Vec<u8>| -> TaggedReply {
        frame::decode(&bytes, MAX)
            .expect("a frame")
            .expect("complete")
            .0
    };
    let fits = decode(encode_tagged(5, Answer::Reply(big.clone()), MAX).expect("fits"));
    assert_eq!(
        fits,
        TaggedReply {
            tag: 5,
            answer: Answer::Reply(big.clone())
        }
    );
    let refused = decode(encode_tagged(5, Answer::Reply(big), 1_000).expect("the rejection fits"));
    assert_eq!(refused.tag, 5);
    match refused.answer {
        Answer::Reply(ReplyFrame {
            reply:
                ClientReply {
                    id: got,
                    outcome: Err(RequestError::Rejected(text)),
                },
            ..
        }) => {
            assert_eq!(got, id);
            assert!(text.contains("max_frame_bytes of 1000"), "{text}");
        }
        other => panic!("{other:?}"),
    }
}
