//! The client path's floor: what a write costs the transport alone (QUIC on loopback,
//! mutual TLS, client protocol 4, the replica's request sink and the reply's oneshot),
//! answered at once with no protocol, disk or peer behind it. 48 writers, one request in
//! flight each, either on a connection each (the bench's `--clients 16` on `lan-3`) or
//! 16 to a connection on 3 connections (`--clients 1 --outstanding 16`).
//!
//! Clients and replica share one current-thread runtime, as each runs on one in the bench
//! and its local replicas, and loopback delivers a datagram inside `sendmsg`, so the thread
//! never waits for the network: the time per write is the CPU both ends spend on it, the
//! part of a replica's CPU per write (docs/design.md, "Bench") that no protocol change
//! can remove.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures_util::future::join_all;
use meridian_engine::{ClientReply, CommandResult, NodeId, Response};
use meridian_server::client::Client;
use meridian_server::tls::{CertAuthority, TlsIdentity};
use meridian_server::transport::endpoint::{Inbound, InboundSink, Transport, TransportConfig};
use meridian_server::wire::ReplyFrame;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// Writers in every configuration, as in the issue's closed loop.
const WRITERS: usize = 48;

/// Answers every client request `Written` in the task that read it.
struct AnswerAtOnce;

impl InboundSink for AnswerAtOnce {
    fn offer(&self, message: Inbound) -> Option<Inbound> {
        match message {
            Inbound::Client { frame, reply } => {
                let written = ClientReply {
                    id: frame.request.id,
                    outcome: Ok(Response::Kv(CommandResult::Written)),
                };
                // A writer that gave up has dropped its receiver: nothing to answer.
                let _ = reply.send(ReplyFrame::from(written));
                None
            }
            other => Some(other),
        }
    }
}

fn identity(ca: &CertAuthority, pair: meridian_server::tls::PemPair) -> TlsIdentity {
    TlsIdentity::from_pem(
        ca.pem().cert.as_bytes(),
        pair.cert.as_bytes(),
        pair.key.as_bytes(),
    )
    .expect("identity from freshly issued certificates")
}

/// A replica-side transport that answers at once, and `connections` clients of it.
async fn start(connections: usize) -> (Transport, Vec<Client>) {
    let ca = CertAuthority::generate("client path bench").expect("generate a CA");
    let node = identity(&ca, ca.issue_node(NodeId(0)).expect("node certificate"));
    let client = identity(&ca, ca.issue_client("bench").expect("client certificate"));
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let socket = std::net::UdpSocket::bind(listen).expect("bind loopback");
    let config = TransportConfig::new(NodeId(0), listen, BTreeMap::new(), node);
    let (transport, _inbound) = Transport::start_with_socket(config, socket).expect("start");
    transport.set_sink(Arc::new(AnswerAtOnce));
    let addr = transport.local_addr().expect("bound address");
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections {
        clients.push(Client::connect(addr, &client).await.expect("connect"));
    }
    (transport, clients)
}

/// One write from each of the `WRITERS`, spread evenly over `clients`.
async fn round(clients: &[Client], value: &[u8]) {
    let per_client = WRITERS / clients.len();
    let writes = clients.iter().flat_map(|client| {
        (0..per_client).map(move |writer| async move {
            let key = [b'k', writer as u8];
            client
                .put("bench", &key, value, None)
                .await
                .expect("answered at once")
        })
    });
    join_all(writes).await;
}

fn client_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let value = [b'v'; 16];
    let mut group = c.benchmark_group("client_path_48_writers");
    group.throughput(Throughput::Elements(WRITERS as u64));
    for connections in [WRITERS, 3] {
        let (_transport, clients) = runtime.block_on(start(connections));
        runtime.block_on(round(&clients, &value));
        group.bench_with_input(
            BenchmarkId::new("connections", connections),
            &clients,
            |b, clients| b.iter(|| runtime.block_on(round(clients, &value))),
        );
    }
    group.finish();
}

criterion_group!(benches, client_path);
criterion_main!(benches);
