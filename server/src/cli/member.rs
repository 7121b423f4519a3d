//! `meridian member add` and `meridian member remove`: ask one replica to change the
//! membership of every keyspace whose protocol can (or of one, `--keyspace`), and wait
//! for the outcome.
//!
//! ```text
//!  --addr, --certs ─▶ AdminRequest::MemberAdd{id, region, address} / MemberRemove{id}
//!     ─▶ per keyspace: changed (epoch) | skipped (protocol) | failed | timed out
//! ```
//!
//! Text: one line per keyspace, `KEYSPACE changed epoch E`, `KEYSPACE skipped: REASON`,
//! `KEYSPACE failed: REASON` or `KEYSPACE timed-out: REASON`; `--json`:
//! `{"keyspaces": [{"keyspace", "protocol", "outcome", "epoch" | "reason"}]}`.
//! Exit codes: 0 every keyspace attempted changed (skipped ones are named, never counted
//! as done); 3 the replica could not be reached, or a change has no outcome in time (it
//! may or may not take effect); 4 a change failed or was refused, or no keyspace could
//! change (nothing happened there); 2 usage.

use crate::kv::{self, Failure, EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE};
use crate::status::{self, AdminTarget};
use clap::Args;
use meridian_engine::NodeId;
use meridian_server::admin::{AdminRequest, AdminResponse, ChangeReport, KeyspaceChange};
use serde_json::json;
use std::fmt::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};

/// Default deadline of a membership change (a learner's catch-up included).
const DEFAULT_TIMEOUT_MS: u64 = 60_000;

/// `member add` options.
#[derive(Args)]
pub struct AddArgs {
    /// The new replica's node id (its certificate's).
    #[arg(long)]
    id: u16,
    /// Its region.
    #[arg(long)]
    region: String,
    /// The address its peers dial (its config's `listen`), host:port.
    #[arg(long)]
    peer_addr: String,
    /// Only this keyspace (default: every keyspace whose protocol changes membership).
    #[arg(long)]
    keyspace: Option<String>,
}

/// `member remove` options.
#[derive(Args)]
pub struct RemoveArgs {
    /// The replica's node id.
    #[arg(long)]
    id: u16,
    /// Only this keyspace (default: every keyspace whose protocol changes membership).
    #[arg(long)]
    keyspace: Option<String>,
}

/// `member add`; returns the exit code.
pub async fn add(target: AdminTarget, args: AddArgs) -> i32 {
    let address = match resolve(&args.peer_addr) {
        Ok(address) => address,
        Err(message) => return usage(&target, message),
    };
    let request = AdminRequest::MemberAdd {
        id: NodeId(args.id),
        region: args.region,
        address,
        keyspace: args.keyspace,
        timeout_ms: wait_ms(&target),
    };
    change(target, request).await
}

/// `member remove`; returns the exit code.
pub async fn remove(target: AdminTarget, args: RemoveArgs) -> i32 {
    let request = AdminRequest::MemberRemove {
        id: NodeId(args.id),
        keyspace: args.keyspace,
        timeout_ms: wait_ms(&target),
    };
    change(target, request).await
}

/// How long the replica may take: the command's deadline less a margin for the answer.
fn wait_ms(target: &AdminTarget) -> u64 {
    let total = target.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    total.saturating_sub((total / 10).min(2_000))
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("--peer-addr {addr}: {e}"))?
        .min_by_key(SocketAddr::is_ipv6)
        .ok_or_else(|| format!("--peer-addr {addr}: the name has no address"))
}

fn usage(target: &AdminTarget, message: String) -> i32 {
    status::report(&Failure::usage(message), target.json)
}

async fn change(target: AdminTarget, request: AdminRequest) -> i32 {
    let json = target.json;
    status::ask(target, DEFAULT_TIMEOUT_MS, request, |answer| {
        let AdminResponse::MemberChange(changes) = answer else {
            return Err(status::unexpected());
        };
        if json {
            kv::emit_json(&changes_json(&changes));
        } else {
            kv::emit(&changes_text(&changes));
        }
        Ok(exit_code(&changes))
    })
    .await
}

/// The exit code of a change's answer.
pub fn exit_code(changes: &[KeyspaceChange]) -> i32 {
    let outcomes = || changes.iter().map(|c| &c.outcome);
    if outcomes().any(|o| matches!(o, ChangeReport::Failed(_))) {
        EXIT_REFUSED
    } else if outcomes().any(|o| matches!(o, ChangeReport::TimedOut(_))) {
        EXIT_UNAVAILABLE
    } else if outcomes().any(|o| matches!(o, ChangeReport::Changed { .. })) {
        EXIT_OK
    } else {
        EXIT_REFUSED
    }
}

/// One line per keyspace.
pub fn changes_text(changes: &[KeyspaceChange]) -> String {
    let mut out = String::new();
    for change in changes {
        let _ = match &change.outcome {
            ChangeReport::Changed { epoch } => {
                writeln!(out, "{} changed epoch {epoch}", change.keyspace)
            }
            ChangeReport::Skipped(reason) => writeln!(out, "{} skipped: {reason}", change.keyspace),
            ChangeReport::Failed(reason) => writeln!(out, "{} failed: {reason}", change.keyspace),
            ChangeReport::TimedOut(reason) => {
                writeln!(out, "{} timed-out: {reason}", change.keyspace)
            }
        };
    }
    if changes.is_empty() {
        out.push_str("no keyspace\n");
    }
    out
}

/// `{"keyspaces": [...]}`.
pub fn changes_json(changes: &[KeyspaceChange]) -> serde_json::Value {
    let keyspaces: Vec<serde_json::Value> = changes
        .iter()
        .map(|change| {
            let (outcome, detail) = match &change.outcome {
                ChangeReport::Changed { epoch } => ("changed", json!({ "epoch": epoch })),
                ChangeReport::Skipped(reason) => ("skipped", json!({ "reason": reason })),
                ChangeReport::Failed(reason) => ("failed", json!({ "reason": reason })),
                ChangeReport::TimedOut(reason) => ("timed-out", json!({ "reason": reason })),
            };
            let mut object = json!({
                "keyspace": change.keyspace,
                "protocol": change.protocol,
                "outcome": outcome,
            });
            if let (Some(object), Some(detail)) = (object.as_object_mut(), detail.as_object()) {
                object.extend(detail.clone());
            }
            object
        })
        .collect();
    json!({ "keyspaces": keyspaces })
}

#[cfg(test)]
#[path = "member_test.rs"]
mod tests;
