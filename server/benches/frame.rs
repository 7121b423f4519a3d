//! Frame codec hot path: a client request frame and a peer frame carrying an EPaxos
//! PreAccept (the payload every command leader sends to every replica), encoded and
//! decoded with 16-byte and 1 KiB values.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use meridian_engine::epaxos::{Attributes, Ballot, Batch, Deps, InstanceId, Message, Payload};
use meridian_engine::{ClientId, ClientRequest, Command, NodeId, RequestId};
use meridian_server::transport::frame::{decode, encode, DEFAULT_MAX_FRAME_BYTES};
use meridian_server::wire::{ClientFrame, PeerFrame, RequestFrame};

fn request(value_size: usize) -> ClientRequest {
    ClientRequest::new(
        RequestId {
            client: ClientId(42),
            seq: 7,
        },
        Command::Put {
            key: b"user:12345".to_vec(),
            value: vec![b'x'; value_size],
        },
    )
}

fn preaccept(value_size: usize) -> PeerFrame {
    let message = Message::PreAccept {
        ballot: Ballot {
            round: 0,
            node: NodeId(1),
        },
        instance: InstanceId {
            leader: NodeId(1),
            slot: 1_000_000,
        },
        payload: Batch::single(Payload {
            request: request(value_size).id,
            resend: false,
            command: request(value_size).command,
            change: None,
        }),
        attributes: Attributes {
            seq: 123_456,
            deps: (0..5)
                .map(|leader| InstanceId {
                    leader: NodeId(leader),
                    slot: 999_000 + u64::from(leader),
                })
                .collect::<Deps>(),
            epoch: 0,
        },
        ran_everywhere: std::sync::Arc::new(
            (0..5).map(|leader| (NodeId(leader), 998_000)).collect(),
        ),
    };
    PeerFrame {
        keyspace: "epaxos".into(),
        payload: postcard::to_allocvec(&message).expect("encodes"),
    }
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    for value_size in [16usize, 1024] {
        let client = ClientFrame::Request(RequestFrame {
            keyspace: "epaxos".into(),
            request: request(value_size),
            default_consistency: true,
        });
        let peer = preaccept(value_size);
        let client_bytes = encode(&client, DEFAULT_MAX_FRAME_BYTES).expect("encodes");
        let peer_bytes = encode(&peer, DEFAULT_MAX_FRAME_BYTES).expect("encodes");
        group.throughput(Throughput::Bytes(peer_bytes.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("encode_peer_preaccept", value_size),
            &peer,
            |b, peer| b.iter(|| encode(peer, DEFAULT_MAX_FRAME_BYTES).expect("encodes")),
        );
        group.bench_with_input(
            BenchmarkId::new("decode_peer_preaccept", value_size),
            &peer_bytes,
            |b, bytes| {
                b.iter(|| {
                    let (frame, _): (PeerFrame, usize) = decode(bytes, DEFAULT_MAX_FRAME_BYTES)
                        .expect("decodes")
                        .expect("whole frame");
                    let message: Message = postcard::from_bytes(&frame.payload).expect("decodes");
                    message
                })
            },
        );
        group.throughput(Throughput::Bytes(client_bytes.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("encode_client_request", value_size),
            &client,
            |b, client| b.iter(|| encode(client, DEFAULT_MAX_FRAME_BYTES).expect("encodes")),
        );
        group.bench_with_input(
            BenchmarkId::new("decode_client_request", value_size),
            &client_bytes,
            |b, bytes| {
                b.iter(|| {
                    decode::<ClientFrame>(bytes, DEFAULT_MAX_FRAME_BYTES)
                        .expect("decodes")
                        .expect("whole frame")
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
