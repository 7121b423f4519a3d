//! Observability: latency histograms, per-keyspace snapshots, readiness and a
//! Prometheus text endpoint.
//!
//! ```text
//!  keyspace hosts ──snapshot on request──▶ render() ──▶ GET /metrics (tiny HTTP/1.1 responder)
//!  transport atomics, peer links ──────────┤
//!                                          └─ readiness() ──▶ GET /health: 200, or 503 naming
//!                                                             each keyspace not served
//! ```
//!
//! Every family has a `# TYPE`; counters end in `_total` and are reported from zero
//! (every operation, outcome, host event and protocol counter this release knows);
//! durations are in seconds. Labels: `node` everywhere, `keyspace` where it applies.
//! The families are listed in docs/deployment.md ("Metrics and health").

use crate::transport::endpoint::TransportStats;
use crate::transport::wan::WanStats;
use meridian_engine::configuration::Configuration;
use meridian_engine::{Metrics, NodeId};
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Bucket upper bounds, in microseconds: 100 µs to 10 s.
const BOUNDS_US: &[u64] = &[
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 75_000, 100_000, 150_000, 200_000,
    300_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// A cumulative latency histogram with fixed buckets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last slot is `+Inf`.
    counts: Vec<u64>,
    sum_us: u64,
    count: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BOUNDS_US.len() + 1],
            sum_us: 0,
            count: 0,
        }
    }
}

impl Histogram {
    /// Record one observation.
    pub fn observe(&mut self, value: Duration) {
        let us = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        let slot = BOUNDS_US
            .iter()
            .position(|&bound| us <= bound)
            .unwrap_or(BOUNDS_US.len());
        self.counts[slot] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
        self.count += 1;
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of observations.
    pub fn sum(&self) -> Duration {
        Duration::from_micros(self.sum_us)
    }

    /// Append this histogram in Prometheus text format.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, &bound) in BOUNDS_US.iter().enumerate() {
            cumulative += self.counts[i];
            let le = bound as f64 / 1e6;
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum_us as f64 / 1e6);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// One keyspace's numbers, as its host sees them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KeyspaceMetrics {
    /// Keyspace name.
    pub keyspace: String,
    /// Protocol name.
    pub protocol: String,
    /// Client requests received, by operation.
    pub requests: BTreeMap<&'static str, u64>,
    /// Replies sent, by outcome (`ok`, `unavailable`, `timeout`, `invalid`, `rejected`).
    pub replies: BTreeMap<&'static str, u64>,
    /// Host events (syncs, records persisted, malformed peer messages, ...).
    pub events: BTreeMap<&'static str, u64>,
    /// The core's own counters.
    pub protocol_counters: Metrics,
    /// Request arrival to reply, on the contacted replica.
    pub request_latency: Histogram,
    /// Request arrival to commit, on the contacted replica.
    pub commit_latency: Histogram,
    /// Duration of each group-commit fsync.
    pub fsync_latency: Histogram,
    /// Requests waiting for a reply.
    pub pending_requests: u64,
    /// The keyspace's log on disk: `log_bytes` (file size now), `snapshot_bytes` and
    /// `snapshot_records` (what the last compaction wrote), `seconds_since_compaction`.
    pub storage: BTreeMap<&'static str, u64>,
    /// The core's configuration (`None`: the static membership, epoch 0).
    pub configuration: Option<Configuration>,
}

/// Client operations, reported from zero.
const OPS: &[&str] = &["get", "put", "delete", "cas", "scan", "count"];
/// Reply outcomes, reported from zero.
const OUTCOMES: &[&str] = &[
    "ok",
    "unavailable",
    "timeout",
    "invalid",
    "rejected",
    "session_expired",
    "too_stale",
];
/// Keyspace host events, reported from zero.
const HOST_EVENTS: &[&str] = &[
    "burst_inputs",
    "bursts",
    "commits",
    "compactions",
    "fsyncs",
    "malformed_peer_messages",
    "message_encode_errors",
    "records_after_compaction",
    "records_persisted",
    "records_recovered",
    "records_synced",
    "replies_unmatched",
    "requests_abandoned",
    "requests_given_up_at_shutdown",
];

pub use protocol_names::protocol_names;

/// What a node knows besides its keyspaces' snapshots.
#[derive(Clone, Copy, Debug)]
pub struct NodeView<'a> {
    /// This node.
    pub node: NodeId,
    /// Every peer and whether its link is up.
    pub links: &'a BTreeMap<NodeId, bool>,
    /// Transport counters.
    pub transport: Option<&'a TransportStats>,
    /// WAN emulation counters.
    pub wan: Option<&'a WanStats>,
    /// Peer messages the router dropped.
    pub router_dropped: u64,
    /// The data directory's incarnation, if the node was started through its identity.
    pub incarnation: Option<u64>,
}

/// Whether keyspace `ks` can serve through this node: a majority of the cluster (this
/// node and the peers it has a link to) is reachable, and on Multi-Paxos a leader is
/// known (this node, or a peer it has a link to) and this replica is not rejoining after
/// a disk loss. The error says what is missing.
pub fn readiness(view: &NodeView<'_>, ks: &KeyspaceMetrics) -> Result<(), String> {
    let cluster = view.links.len() + 1;
    let reachable = 1 + view.links.values().filter(|&&up| up).count();
    let majority = cluster / 2 + 1;
    if reachable < majority {
        return Err(format!(
            "keyspace {}: {reachable} of {cluster} replicas reachable, {majority} needed",
            ks.keyspace
        ));
    }
    if ks.protocol == "multipaxos" {
        let counters = &ks.protocol_counters;
        if counters.get("rejoining") != 0 {
            return Err(format!(
                "keyspace {}: rejoining after a disk loss",
                ks.keyspace
            ));
        }
        let leader = u16::try_from(counters.get("leader")).ok().map(NodeId);
        match leader.filter(|_| counters.get("leader_known") != 0) {
            None => return Err(format!("keyspace {}: no leader known", ks.keyspace)),
            Some(leader) if leader != view.node && view.links.get(&leader) != Some(&true) => {
                return Err(format!(
                    "keyspace {}: leader {} unreachable",
                    ks.keyspace, leader.0
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Every keyspace that cannot serve, with the reason.
pub fn unready(view: &NodeView<'_>, keyspaces: &[KeyspaceMetrics]) -> Vec<String> {
    keyspaces
        .iter()
        .filter_map(|ks| readiness(view, ks).err())
        .collect()
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// `known` names at zero unless counted, then the counted ones the lists do not know.
fn with_zeros<'a>(
    known: &'a [&'a str],
    counted: impl Iterator<Item = (&'a str, u64)>,
    skip: &'a [&'a str],
) -> Vec<(&'a str, u64)> {
    let mut all: BTreeMap<&str, u64> = known.iter().map(|&k| (k, 0)).collect();
    for (name, value) in counted {
        if !skip.contains(&name) {
            all.insert(name, value);
        }
    }
    all.into_iter().collect()
}

/// Render a node's metrics in the Prometheus text exposition format (0.0.4).
pub fn render(view: &NodeView<'_>, keyspaces: &[KeyspaceMetrics]) -> String {
    let mut out = String::new();
    let node = view.node.0;
    let labels =
        |ks: &KeyspaceMetrics| format!("node=\"{node}\",keyspace=\"{}\"", escape(&ks.keyspace));
    family(
        &mut out,
        "meridian_requests_total",
        "counter",
        "Client requests received, by operation.",
    );
    for ks in keyspaces {
        let counted = ks.requests.iter().map(|(&k, &v)| (k, v));
        for (op, value) in with_zeros(OPS, counted, &[]) {
            let _ = writeln!(
                out,
                "meridian_requests_total{{{},op=\"{op}\"}} {value}",
                labels(ks)
            );
        }
    }
    family(
        &mut out,
        "meridian_replies_total",
        "counter",
        "Replies sent, by outcome.",
    );
    for ks in keyspaces {
        let counted = ks.replies.iter().map(|(&k, &v)| (k, v));
        for (outcome, value) in with_zeros(OUTCOMES, counted, &[]) {
            let _ = writeln!(
                out,
                "meridian_replies_total{{{},outcome=\"{outcome}\"}} {value}",
                labels(ks)
            );
        }
    }
    family(
        &mut out,
        "meridian_host_events_total",
        "counter",
        "Keyspace host events.",
    );
    for ks in keyspaces {
        let counted = ks.events.iter().map(|(&k, &v)| (k, v));
        for (event, value) in with_zeros(HOST_EVENTS, counted, &[]) {
            let _ = writeln!(
                out,
                "meridian_host_events_total{{{},event=\"{event}\"}} {value}",
                labels(ks)
            );
        }
    }
    family(
        &mut out,
        "meridian_protocol_events_total",
        "counter",
        "Protocol core counters.",
    );
    for ks in keyspaces {
        let (counters, gauges) = protocol_names(&ks.protocol);
        let counted = ks.protocol_counters.iter();
        for (name, value) in with_zeros(counters, counted, gauges) {
            let _ = writeln!(
                out,
                "meridian_protocol_events_total{{{},protocol=\"{}\",name=\"{}\"}} {value}",
                labels(ks),
                ks.protocol,
                escape(name)
            );
        }
    }
    family(
        &mut out,
        "meridian_protocol_state",
        "gauge",
        "Protocol core gauges.",
    );
    for ks in keyspaces {
        let (_, gauges) = protocol_names(&ks.protocol);
        let set: BTreeSet<&str> = gauges.iter().copied().collect();
        for (name, value) in ks.protocol_counters.iter().filter(|(n, _)| set.contains(n)) {
            let _ = writeln!(
                out,
                "meridian_protocol_state{{{},protocol=\"{}\",name=\"{}\"}} {value}",
                labels(ks),
                ks.protocol,
                escape(name)
            );
        }
    }
    family(
        &mut out,
        "meridian_pending_requests",
        "gauge",
        "Requests waiting for a reply.",
    );
    for ks in keyspaces {
        let _ = writeln!(
            out,
            "meridian_pending_requests{{{}}} {}",
            labels(ks),
            ks.pending_requests
        );
    }
    family(
        &mut out,
        "meridian_storage_state",
        "gauge",
        "The keyspace's log: log_bytes, snapshot_bytes, snapshot_records, seconds_since_compaction.",
    );
    for ks in keyspaces {
        for (name, value) in &ks.storage {
            let _ = writeln!(
                out,
                "meridian_storage_state{{{},name=\"{name}\"}} {value}",
                labels(ks)
            );
        }
    }
    if let Some(incarnation) = view.incarnation {
        family(
            &mut out,
            "meridian_incarnation",
            "gauge",
            "When this node's data directory state began (ms since the Unix epoch; raised by --rejoin).",
        );
        let _ = writeln!(out, "meridian_incarnation{{node=\"{node}\"}} {incarnation}");
    }
    family(
        &mut out,
        "meridian_keyspace_ready",
        "gauge",
        "1 if the keyspace can serve through this node (GET /health says why not).",
    );
    for ks in keyspaces {
        let ready = u8::from(readiness(view, ks).is_ok());
        let _ = writeln!(out, "meridian_keyspace_ready{{{}}} {ready}", labels(ks));
    }
    family(
        &mut out,
        "meridian_multipaxos_leader",
        "gauge",
        "The Multi-Paxos leader this replica knows (-1: none).",
    );
    for ks in keyspaces.iter().filter(|ks| ks.protocol == "multipaxos") {
        let counters = &ks.protocol_counters;
        let leader = if counters.get("leader_known") != 0 {
            i64::try_from(counters.get("leader")).unwrap_or(-1)
        } else {
            -1
        };
        let _ = writeln!(out, "meridian_multipaxos_leader{{{}}} {leader}", labels(ks));
    }
    for (name, help, pick) in [
        (
            "meridian_request_latency_seconds",
            "Request latency on the contacted replica.",
            (|ks: &KeyspaceMetrics| &ks.request_latency) as fn(&KeyspaceMetrics) -> &Histogram,
        ),
        (
            "meridian_commit_latency_seconds",
            "Request arrival to commit on the contacted replica.",
            |ks: &KeyspaceMetrics| &ks.commit_latency,
        ),
        (
            "meridian_fsync_latency_seconds",
            "Group-commit fsync duration.",
            |ks: &KeyspaceMetrics| &ks.fsync_latency,
        ),
    ] {
        family(&mut out, name, "histogram", help);
        for ks in keyspaces {
            pick(ks).render(&mut out, name, &labels(ks));
        }
    }
    family(
        &mut out,
        "meridian_peer_connected",
        "gauge",
        "1 while the link to the peer is up.",
    );
    for (peer, &up) in view.links {
        let _ = writeln!(
            out,
            "meridian_peer_connected{{node=\"{node}\",peer=\"{}\"}} {}",
            peer.0,
            u8::from(up)
        );
    }
    family(
        &mut out,
        "meridian_peers_connected",
        "gauge",
        "Peers with a link up.",
    );
    let up = view.links.values().filter(|&&up| up).count();
    let _ = writeln!(out, "meridian_peers_connected{{node=\"{node}\"}} {up}");
    if let Some(t) = view.transport {
        let name = "meridian_transport_total";
        family(&mut out, name, "counter", "Transport events.");
        for (event, value) in [
            ("frames_sent", &t.frames_sent),
            ("frames_received", &t.frames_received),
            ("frames_dropped_queue_full", &t.frames_dropped_queue_full),
            (
                "frames_dropped_unknown_peer",
                &t.frames_dropped_unknown_peer,
            ),
            ("frames_dropped_oversized", &t.frames_dropped_oversized),
            ("malformed_frames", &t.malformed_frames),
            ("peer_connections", &t.peer_connections),
            ("client_connections", &t.client_connections),
            ("refused_connections", &t.refused_connections),
            ("client_requests", &t.client_requests),
            ("version_refused", &t.version_refused),
            ("duplicate_refused", &t.duplicate_refused),
            ("dial_failures", &t.dial_failures),
        ] {
            let value = value.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}{{node=\"{node}\",event=\"{event}\"}} {value}");
        }
    }
    family(
        &mut out,
        "meridian_router_dropped_total",
        "counter",
        "Peer messages dropped by the router.",
    );
    let _ = writeln!(
        out,
        "meridian_router_dropped_total{{node=\"{node}\"}} {}",
        view.router_dropped
    );
    if let Some(w) = view.wan {
        let name = "meridian_wan_datagrams_total";
        family(&mut out, name, "counter", "Emulated WAN datagrams.");
        for (event, value) in [
            ("sent", w.sent.load(Ordering::Relaxed)),
            (
                "dropped_queue_full",
                w.dropped_queue_full.load(Ordering::Relaxed),
            ),
            ("send_errors", w.send_errors.load(Ordering::Relaxed)),
        ] {
            let _ = writeln!(out, "{name}{{node=\"{node}\",event=\"{event}\"}} {value}");
        }
        let name = "meridian_wan_release_offset_us_total";
        family(
            &mut out,
            name,
            "counter",
            "Microseconds emulated WAN datagrams were sent after (late) or before (early) their release time, summed.",
        );
        for (side, value) in [
            ("late", w.late_us.load(Ordering::Relaxed)),
            ("early", w.early_us.load(Ordering::Relaxed)),
        ] {
            let _ = writeln!(out, "{name}{{node=\"{node}\",side=\"{side}\"}} {value}");
        }
    }
    out
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// What the endpoint serves, taken from one snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// The Prometheus text.
    pub metrics: String,
    /// Each keyspace that cannot serve, with the reason (empty: healthy).
    pub unready: Vec<String>,
}

/// Produces the page on demand.
pub type RenderFn = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Page> + Send>> + Send + Sync>;

/// Largest request head read from a metrics client.
const REQUEST_HEAD_MAX: usize = 8 * 1024;

/// Serve `GET /metrics` and `GET /health` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, render: RenderFn) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let render = render.clone();
        tokio::spawn(async move {
            let answered =
                tokio::time::timeout(Duration::from_secs(5), respond(stream, render)).await;
            if !matches!(answered, Ok(Ok(()))) {
                tracing::debug!(%peer, "metrics request failed or timed out");
            }
        });
    }
}

/// Bind `addr` and serve metrics from a spawned task.
pub async fn spawn(
    addr: SocketAddr,
    render: RenderFn,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tracing::info!(%local, "metrics endpoint listening");
    Ok((local, tokio::spawn(serve(listener, render))))
}

async fn respond(mut stream: tokio::net::TcpStream, render: RenderFn) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() + n > REQUEST_HEAD_MAX {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, path) = (parts.next(), parts.next());
    let (status, body) = match (method, path) {
        (Some(b"GET"), Some(b"/metrics")) => ("200 OK", render().await.metrics),
        (Some(b"GET"), Some(b"/health")) => {
            let page = render().await;
            if page.unready.is_empty() {
                ("200 OK", "serving every keyspace\n".to_owned())
            } else {
                let mut body = String::new();
                for reason in &page.unready {
                    let _ = writeln!(body, "{reason}");
                }
                ("503 Service Unavailable", body)
            }
        }
        _ => (
            "404 Not Found",
            "not found: GET /metrics or /health\n".to_owned(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// The Prometheus text a node's metrics endpoint at `addr` serves (`GET /metrics` over
/// plain HTTP/1.0, response headers included), as a scraper sees it: for the benchmark
/// and tests.
pub fn fetch(addr: SocketAddr) -> std::io::Result<String> {
    get(addr, "/metrics")
}

/// The whole response (status line, headers, body) to `GET path` from a node's metrics
/// endpoint at `addr` (e.g. `/health`).
pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(text)
}

mod protocol_names;

#[cfg(test)]
#[path = "metrics_test.rs"]
mod tests;
