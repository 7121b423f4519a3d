//! Observability: latency histograms, per-keyspace snapshots and a Prometheus text
//! endpoint.
//!
//! ```text
//!  keyspace hosts ──snapshot on request──▶ render() ──▶ GET /metrics (tiny HTTP/1.1 responder)
//!  transport / WAN socket atomics ─────────┘
//! ```
//!
//! Metric names (all labelled `node`, and `keyspace` where it applies):
//! `meridian_requests_total{op}`, `meridian_replies_total{outcome}`,
//! `meridian_request_latency_seconds` and `meridian_commit_latency_seconds` (histograms,
//! measured on the replica the client contacted), `meridian_fsync_latency_seconds`,
//! `meridian_host_events_total{event}`, `meridian_protocol{name}` (the core's own
//! counters and gauges: live instances or slots, instances collected, session and
//! key-index entries, state transfers), `meridian_storage{name}` (log and snapshot
//! bytes, time since the last compaction), `meridian_incarnation`, `meridian_transport_total{event}`, `meridian_wan_datagrams_total{event}`.

use crate::transport::endpoint::TransportStats;
use crate::transport::wan::WanStats;
use meridian_engine::{Metrics, NodeId};
use std::collections::BTreeMap;
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
}

/// Render a node's metrics in the Prometheus text exposition format (0.0.4).
pub fn render(
    node: NodeId,
    keyspaces: &[KeyspaceMetrics],
    transport: Option<&TransportStats>,
    wan: Option<&WanStats>,
) -> String {
    let mut out = String::new();
    let node = node.0;
    let families: [(&str, &str, &str); 7] = [
        (
            "meridian_requests_total",
            "counter",
            "Client requests received, by operation.",
        ),
        (
            "meridian_replies_total",
            "counter",
            "Replies sent, by outcome.",
        ),
        (
            "meridian_host_events_total",
            "counter",
            "Keyspace host events.",
        ),
        (
            "meridian_protocol",
            "untyped",
            "Protocol core counters and gauges.",
        ),
        (
            "meridian_pending_requests",
            "gauge",
            "Requests waiting for a reply.",
        ),
        (
            "meridian_storage",
            "gauge",
            "The keyspace's log: log_bytes, snapshot_bytes, snapshot_records, seconds_since_compaction.",
        ),
        (
            "meridian_request_latency_seconds",
            "histogram",
            "Request latency on the contacted replica.",
        ),
    ];
    for (name, kind, help) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for ks in keyspaces {
            let labels = format!("node=\"{node}\",keyspace=\"{}\"", escape(&ks.keyspace));
            match name {
                "meridian_requests_total" => {
                    for (op, value) in &ks.requests {
                        let _ = writeln!(out, "{name}{{{labels},op=\"{op}\"}} {value}");
                    }
                }
                "meridian_replies_total" => {
                    for (outcome, value) in &ks.replies {
                        let _ = writeln!(out, "{name}{{{labels},outcome=\"{outcome}\"}} {value}");
                    }
                }
                "meridian_host_events_total" => {
                    for (event, value) in &ks.events {
                        let _ = writeln!(out, "{name}{{{labels},event=\"{event}\"}} {value}");
                    }
                }
                "meridian_protocol" => {
                    for (counter, value) in ks.protocol_counters.iter() {
                        let _ = writeln!(
                            out,
                            "{name}{{{labels},protocol=\"{}\",name=\"{}\"}} {value}",
                            ks.protocol,
                            escape(counter)
                        );
                    }
                }
                "meridian_pending_requests" => {
                    let _ = writeln!(out, "{name}{{{labels}}} {}", ks.pending_requests);
                }
                "meridian_storage" => {
                    for (gauge, value) in &ks.storage {
                        let _ = writeln!(out, "{name}{{{labels},name=\"{gauge}\"}} {value}");
                    }
                }
                _ => ks.request_latency.render(&mut out, name, &labels),
            }
        }
    }
    for (name, help, pick) in [
        (
            "meridian_commit_latency_seconds",
            "Request arrival to commit on the contacted replica.",
            (|ks: &KeyspaceMetrics| &ks.commit_latency) as fn(&KeyspaceMetrics) -> &Histogram,
        ),
        (
            "meridian_fsync_latency_seconds",
            "Group-commit fsync duration.",
            |ks: &KeyspaceMetrics| &ks.fsync_latency,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for ks in keyspaces {
            let labels = format!("node=\"{node}\",keyspace=\"{}\"", escape(&ks.keyspace));
            pick(ks).render(&mut out, name, &labels);
        }
    }
    if let Some(t) = transport {
        let name = "meridian_transport_total";
        let _ = writeln!(
            out,
            "# HELP {name} Transport events.\n# TYPE {name} counter"
        );
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
        ] {
            let value = value.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}{{node=\"{node}\",event=\"{event}\"}} {value}");
        }
    }
    if let Some(w) = wan {
        let name = "meridian_wan_datagrams_total";
        let _ = writeln!(
            out,
            "# HELP {name} Emulated WAN datagrams.\n# TYPE {name} counter"
        );
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
    }
    out
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Produces the metrics page on demand.
pub type RenderFn = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = String> + Send>> + Send + Sync>;

/// Largest request head read from a metrics client.
const REQUEST_HEAD_MAX: usize = 8 * 1024;

/// Serve `GET /metrics` on `listener` until the task is dropped.
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
        (Some(b"GET"), Some(b"/metrics" | b"/")) => ("200 OK", render().await),
        _ => ("404 Not Found", "try GET /metrics\n".to_owned()),
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
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(test)]
#[path = "metrics_test.rs"]
mod tests;
