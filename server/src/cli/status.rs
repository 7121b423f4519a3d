//! Operator views of a running replica: `meridian status` and `meridian member list`.
//!
//! ```text
//!  --addr, --certs ─▶ connect (mutual TLS, client certificate) ─▶ AdminRequest::Status
//!     ─▶ NodeStatus ─▶ status: a report per keyspace      (text, or --json)
//!                   └▶ member list: one line per member   (text, or --json)
//! ```
//!
//! Exit codes as the key-value commands: 0 answered; 2 usage (unreadable certificates,
//! bad address); 3 the replica is unreachable or the connection failed; 4 the replica
//! refused the request (for example it speaks another admin version).
//!
//! `member list` prints, per member of each keyspace, one line of space-separated fields
//! in this order: keyspace, id, region, address (`-` if unknown), role, state,
//! configuration epoch. Values the replica does not track are never printed as numbers:
//! text shows `n/a (reason)`, JSON shows `null` and the reason under `omitted`.

use crate::kv::{self, Failure, EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE};
use clap::{Args, Subcommand};
use meridian_server::admin::{
    AdminRequest, AdminResponse, KeyspaceStatus, MemberStatus, NodeStatus, PeerStatus, Reported,
    SnapshotStatus,
};
use meridian_server::tls::TlsPaths;
use serde_json::{json, Map, Value as Json};
use std::fmt::Display;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// Which replica an operator command asks, and how it answers.
#[derive(Args)]
pub struct AdminTarget {
    /// Replica address, host:port (host names are resolved; IPv4 addresses first).
    #[arg(long)]
    pub(crate) addr: String,
    /// Directory with ca.pem, client.pem and client.key (`cluster up` puts them in
    /// DIR/certs).
    #[arg(long)]
    pub(crate) certs: PathBuf,
    /// Deadline for the whole command in milliseconds, connecting included (default
    /// 5000; 60000 for `member add` and `member remove`).
    #[arg(long)]
    pub(crate) timeout_ms: Option<u64>,
    /// One JSON object on stdout (errors included) instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `meridian member ...`
#[derive(Subcommand)]
pub enum MemberCommand {
    /// Every member of every keyspace as the replica sees it: one line per member
    /// (keyspace, id, region, address, role, state, configuration epoch).
    List {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Add a replica to every keyspace whose protocol changes membership (or to one): it
    /// joins as a learner, catches up, and is promoted to voter. Returns once that is
    /// committed (exit 0) or failed.
    Add {
        #[command(flatten)]
        target: AdminTarget,
        #[command(flatten)]
        change: crate::member::AddArgs,
    },
    /// Remove a replica from every keyspace whose protocol changes membership (or from
    /// one). Returns once that is committed (exit 0) or failed.
    Remove {
        #[command(flatten)]
        target: AdminTarget,
        #[command(flatten)]
        change: crate::member::RemoveArgs,
    },
}

/// What to print from the replica's status.
#[derive(Clone, Copy)]
pub enum View {
    /// The whole report (`meridian status`).
    Status,
    /// One line per member (`meridian member list`).
    Members,
}

/// Ask the replica and print `view`; returns the exit code.
pub async fn run(target: AdminTarget, view: View) -> i32 {
    let json = target.json;
    ask(target, 5_000, AdminRequest::Status, |answer| {
        let AdminResponse::Status(status) = answer else {
            return Err(unexpected());
        };
        let printed = match (view, json) {
            (View::Status, false) => status_text(&status),
            (View::Status, true) => format!("{}\n", status_json(&status)),
            (View::Members, false) => members_text(&status),
            (View::Members, true) => format!("{}\n", members_json(&status)),
        };
        kv::emit(&printed);
        Ok(EXIT_OK)
    })
    .await
}

/// The failure of an answer that does not fit the request.
pub(crate) fn unexpected() -> Failure {
    Failure {
        code: EXIT_REFUSED,
        kind: "refused",
        message: "the replica answered another request".to_owned(),
    }
}

/// Ask the replica `target` names `request` (deadline: `--timeout-ms`, else
/// `default_ms`), hand the answer to `show`, and print any failure; returns the exit code.
pub(crate) async fn ask(
    target: AdminTarget,
    default_ms: u64,
    request: AdminRequest,
    show: impl FnOnce(AdminResponse) -> Result<i32, Failure>,
) -> i32 {
    let deadline = Duration::from_millis(target.timeout_ms.unwrap_or(default_ms));
    let json = target.json;
    // Operator commands present the operator certificate when the directory has one.
    let paths = TlsPaths::operator_or_client(&target.certs);
    // Connecting has the whole deadline, per address (a dead one fails as "connecting to ..."),
    // the request what is left of it: one timer for both raced the connect's own, and a
    // loaded machine then reported a dead address as a request without an answer.
    let started = tokio::time::Instant::now();
    let outcome = kv::with_client_at(&target.addr, &paths, deadline, |client| async move {
        let left = deadline.saturating_sub(started.elapsed());
        let answer = tokio::time::timeout(left, client.admin(&request))
            .await
            .map_err(|_| Failure {
                code: EXIT_UNAVAILABLE,
                kind: "timeout",
                message: format!("no answer within {deadline:?} (--timeout-ms)"),
            })?
            .map_err(Failure::client)?;
        show(answer.map_err(|e| Failure {
            code: EXIT_REFUSED,
            kind: "refused",
            message: e.to_string(),
        })?)
    })
    .await;
    match outcome {
        Ok(code) => code,
        Err(failure) => report(&failure, json),
    }
}

/// Print `failure` (to stderr, or as a JSON object on stdout); returns its exit code.
pub(crate) fn report(failure: &Failure, json: bool) -> i32 {
    if json {
        kv::emit_json(&json!({
            "error": { "kind": failure.kind, "message": failure.message },
            "exit_code": failure.code,
        }));
    } else {
        eprintln!("error: {}", failure.message);
    }
    failure.code
}

/// `value` as text, or `n/a (reason)`.
fn text<T>(reported: &Reported<T>, show: impl FnOnce(&T) -> String) -> String {
    match reported {
        Reported::Value(value) => show(value),
        Reported::Omitted(reason) => format!("n/a ({reason})"),
    }
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1e3)
}

/// The whole report, for people.
pub fn status_text(status: &NodeStatus) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "node {} (region {}, {}), incarnation {}, up {}{}",
        status.node.0,
        status.region,
        status.address,
        text(&status.incarnation, u64::to_string),
        seconds(status.uptime_ms),
        if status.draining { ", DRAINING" } else { "" }
    );
    let _ = writeln!(out, "peers:");
    for peer in &status.peers {
        let _ = writeln!(out, "  {}", peer_text(peer));
    }
    for keyspace in &status.keyspaces {
        keyspace_text(&mut out, keyspace);
    }
    out
}

fn peer_text(peer: &PeerStatus) -> String {
    let state = if peer.connected {
        "connected"
    } else {
        "disconnected"
    };
    format!(
        "{} {} {} {state} for {}, last heard {} ago, rtt {}",
        peer.id.0,
        peer.region,
        peer.address,
        text(&peer.since_ms, |&ms| seconds(ms)),
        text(&peer.last_heard_ms, |&ms| seconds(ms)),
        text(&peer.rtt_us, |&us| format!("{:.2} ms", us as f64 / 1e3)),
    )
}

fn keyspace_text(out: &mut String, keyspace: &KeyspaceStatus) {
    let _ = writeln!(
        out,
        "keyspace {} ({}), configuration epoch {} ({})",
        keyspace.name,
        keyspace.protocol,
        keyspace.epoch,
        keyspace.config_source.as_str()
    );
    let _ = writeln!(out, "  members:");
    for member in &keyspace.members {
        let _ = writeln!(
            out,
            "    {} {} {} {} {}",
            member.id.0,
            member.region,
            text(&member.address, ToString::to_string),
            member.role.as_str(),
            member.state.as_str()
        );
    }
    let number = |n: &u64| n.to_string();
    let lines = [
        ("leader", text(&keyspace.leader, |id| id.0.to_string())),
        ("next to execute", text(&keyspace.next_to_execute, number)),
        ("newest known", text(&keyspace.newest_known, number)),
        (
            "waiting execution",
            text(&keyspace.waiting_execution, number),
        ),
        (
            "serving",
            keyspace
                .not_serving
                .as_ref()
                .map_or_else(|| "yes".to_owned(), |why| format!("no ({why})")),
        ),
        ("pending requests", keyspace.pending_requests.to_string()),
        ("log bytes", text(&keyspace.log_bytes, number)),
        ("last snapshot", text(&keyspace.snapshot, snapshot_text)),
    ];
    for (name, value) in lines {
        let _ = writeln!(out, "  {name}: {value}");
    }
}

fn snapshot_text(snapshot: &SnapshotStatus) -> String {
    format!(
        "position {}, {} bytes, {} records, {} s ago",
        text(&snapshot.position, u64::to_string),
        snapshot.bytes,
        snapshot.records,
        snapshot.age_secs
    )
}

/// One line per member of each keyspace: keyspace id region address role state epoch.
pub fn members_text(status: &NodeStatus) -> String {
    let mut out = String::new();
    for keyspace in &status.keyspaces {
        for member in &keyspace.members {
            let address = member
                .address
                .value()
                .map_or_else(|| "-".to_owned(), ToString::to_string);
            let _ = writeln!(
                out,
                "{} {} {} {address} {} {} {}",
                keyspace.name,
                member.id.0,
                member.region,
                member.role.as_str(),
                member.state.as_str(),
                keyspace.epoch
            );
        }
    }
    out
}

/// Collects JSON fields: a reported value, or `null` and its reason under `omitted`.
#[derive(Default)]
struct Fields {
    values: Map<String, Json>,
    omitted: Map<String, Json>,
}

impl Fields {
    fn put(mut self, name: &str, value: impl Into<Json>) -> Self {
        self.values.insert(name.to_owned(), value.into());
        self
    }

    fn reported<T>(
        mut self,
        name: &str,
        reported: &Reported<T>,
        show: impl Fn(&T) -> Json,
    ) -> Self {
        match reported {
            Reported::Value(value) => {
                self.values.insert(name.to_owned(), show(value));
            }
            Reported::Omitted(reason) => {
                self.values.insert(name.to_owned(), Json::Null);
                self.omitted.insert(name.to_owned(), json!(reason));
            }
        }
        self
    }

    fn done(mut self) -> Json {
        if !self.omitted.is_empty() {
            self.values
                .insert("omitted".to_owned(), Json::Object(self.omitted));
        }
        Json::Object(self.values)
    }
}

fn number(n: &u64) -> Json {
    json!(n)
}

fn shown(value: &impl Display) -> Json {
    json!(value.to_string())
}

fn member_json(member: &MemberStatus) -> Fields {
    Fields::default()
        .put("id", member.id.0)
        .put("region", member.region.clone())
        .reported("address", &member.address, shown)
        .put("role", member.role.as_str())
        .put("state", member.state.as_str())
}

/// The whole report as one JSON object.
pub fn status_json(status: &NodeStatus) -> Json {
    let peers: Vec<Json> = status
        .peers
        .iter()
        .map(|peer| {
            Fields::default()
                .put("id", peer.id.0)
                .put("region", peer.region.clone())
                .put("address", peer.address.to_string())
                .put("connected", peer.connected)
                .reported("since_ms", &peer.since_ms, number)
                .reported("last_heard_ms", &peer.last_heard_ms, number)
                .reported("rtt_us", &peer.rtt_us, number)
                .done()
        })
        .collect();
    let keyspaces: Vec<Json> = status.keyspaces.iter().map(keyspace_json).collect();
    Fields::default()
        .put("node", status.node.0)
        .put("region", status.region.clone())
        .put("address", status.address.to_string())
        .reported("incarnation", &status.incarnation, number)
        .put("uptime_ms", status.uptime_ms)
        .put("draining", status.draining)
        .put("peers", peers)
        .put("keyspaces", keyspaces)
        .done()
}

fn keyspace_json(keyspace: &KeyspaceStatus) -> Json {
    let members: Vec<Json> = keyspace
        .members
        .iter()
        .map(|m| member_json(m).done())
        .collect();
    let snapshot = |s: &SnapshotStatus| {
        Fields::default()
            .reported("position", &s.position, number)
            .put("bytes", s.bytes)
            .put("records", s.records)
            .put("age_secs", s.age_secs)
            .done()
    };
    Fields::default()
        .put("name", keyspace.name.clone())
        .put("protocol", keyspace.protocol.clone())
        .put("epoch", keyspace.epoch)
        .put("config_source", keyspace.config_source.as_str())
        .put("members", members)
        .reported("leader", &keyspace.leader, |id| json!(id.0))
        .reported("next_to_execute", &keyspace.next_to_execute, number)
        .reported("newest_known", &keyspace.newest_known, number)
        .reported("waiting_execution", &keyspace.waiting_execution, number)
        .put("serving", keyspace.not_serving.is_none())
        .put("not_serving_reason", keyspace.not_serving.clone())
        .put("pending_requests", keyspace.pending_requests)
        .reported("log_bytes", &keyspace.log_bytes, number)
        .reported("snapshot", &keyspace.snapshot, snapshot)
        .done()
}

/// Every member of every keyspace as one JSON object: `{"node": N, "members": [...]}`.
pub fn members_json(status: &NodeStatus) -> Json {
    let members: Vec<Json> = status
        .keyspaces
        .iter()
        .flat_map(|keyspace| {
            keyspace.members.iter().map(|member| {
                member_json(member)
                    .put("keyspace", keyspace.name.clone())
                    .put("epoch", keyspace.epoch)
                    .done()
            })
        })
        .collect();
    json!({ "node": status.node.0, "members": members })
}

#[cfg(test)]
#[path = "status_test.rs"]
mod tests;
