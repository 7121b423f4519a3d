//! `meridian cluster add` and `meridian cluster remove`: one more replica for a local
//! cluster, or one fewer, through the membership change every Multi-Paxos keyspace
//! runs (docs/design.md#membership).
//!
//! ```text
//!  add --region R: cluster_join::join (id, ports, certificate, config, manifest)
//!        ─▶ its ports free? ─▶ `serve --init` (a new node: outside the configuration,
//!           it votes for nothing until promoted) ─▶ it accepts clients
//!        ─▶ member add through a running replica (learner, catch-up, promote)
//!        ─▶ wait until it serves its keyspaces ─▶ print
//!        any failure: the new process is stopped and the node left out of the manifest
//!  remove --id N: member remove through another running replica ─▶ committed?
//!        ─▶ stop N (SIGTERM, SIGKILL after 20 s) ─▶ manifest: removed
//! ```
//! A keyspace whose protocol ran a static membership would not be served by an added
//! replica and would lose a replica when one is removed; the output names such keyspaces
//! (none today: every protocol changes membership).

use crate::cluster_cmd::{
    self, port_problem, running_pid, served_keyspaces, wait_started, Started,
};
use crate::member::{changes_text, exit_code};
use anyhow::{bail, Context};
use meridian_engine::NodeId;
use meridian_server::admin::{AdminRequest, ChangeReport, KeyspaceChange};
use meridian_server::client::{Client, ClientOptions};
use meridian_server::cluster_join;
use meridian_server::launcher::ServerCommand;
use meridian_server::local_cluster::{self as cluster, Manifest};
use meridian_server::member_change::{self, CHANGE_TIMEOUT};
use meridian_server::tls::{TlsIdentity, TlsPaths};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
/// How long a started replica may take to accept clients.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The identity `cluster add`/`remove` present: the operator's (membership changes need
/// it), or the client's in a directory made before operator certificates.
fn client_tls(dir: &Path) -> anyhow::Result<TlsIdentity> {
    Ok(TlsIdentity::load(&TlsPaths::operator_or_client(
        &dir.join("certs"),
    ))?)
}

fn cluster_dir(dir: &Path) -> anyhow::Result<Manifest> {
    if !cluster::manifest_path(dir).is_file() {
        bail!(
            "{} is not a cluster directory (it has no cluster.toml); give the --dir that \
             `meridian cluster up` was run with",
            dir.display()
        );
    }
    Ok(Manifest::load(dir)?)
}

/// A running member other than `not` to ask for the change.
fn running_member(dir: &Path, manifest: &Manifest, not: u16) -> anyhow::Result<SocketAddr> {
    for node in manifest.nodes.iter().filter(|n| n.id != not && !n.removed) {
        if running_pid(dir, node.id)?.is_some() {
            return Ok(node.address);
        }
    }
    bail!(
        "no other replica of the cluster in {} is running",
        dir.display()
    )
}

/// The changes, one line each, and the keyspaces a change skipped with `what` that means
/// for them.
fn note_skipped(lines: &mut Vec<String>, changes: &[KeyspaceChange], what: &str) {
    lines.extend(changes_text(changes).lines().map(|l| format!("  {l}")));
    let skipped: Vec<&str> = changes
        .iter()
        .filter(|c| matches!(c.outcome, ChangeReport::Skipped(_)))
        .map(|c| c.keyspace.as_str())
        .collect();
    if !skipped.is_empty() {
        lines.push(format!(
            "  {what} (static membership): {}",
            skipped.join(", ")
        ));
    }
}

/// Wait until the replica at `addr` accepts a client connection.
async fn accepting(
    addr: SocketAddr,
    tls: &TlsIdentity,
    started: &mut Started<'_>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let options = ClientOptions {
            timeout: Duration::from_secs(1),
            ..ClientOptions::default()
        };
        if let Ok(Ok(client)) = tokio::time::timeout(
            Duration::from_secs(2),
            Client::connect_with(addr, tls, options),
        )
        .await
        {
            client.close().await;
            return Ok(());
        }
        if let Some((id, status)) = started.exited() {
            bail!(
                "replica {id} exited ({status}); {}",
                cluster_cmd::log_excerpt(started.dir, id)
            );
        }
        if Instant::now() >= deadline {
            bail!("replica at {addr} did not accept clients within {START_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `cluster add`; returns what to print.
pub async fn add(dir: &Path, region: &str) -> anyhow::Result<Vec<String>> {
    cluster_dir(dir)?;
    let tls = client_tls(dir)?;
    let (manifest, node) = cluster_join::join(dir, region)?;
    let forget = || cluster_join::mark_removed(dir, node.id, true);
    let mut problems = Vec::new();
    if let Some(problem) = port_problem(node.address, true) {
        problems.push(format!("{} (UDP, QUIC): {problem}", node.address));
    }
    if let Some(problem) = node.metrics.and_then(|m| port_problem(m, false)) {
        problems.push(format!("metrics port: {problem}"));
    }
    let via = running_member(dir, &manifest, node.id);
    if !problems.is_empty() || via.is_err() {
        forget()?;
        let via = via.err().map(|e| e.to_string());
        bail!(
            "cannot add replica {}: {}",
            node.id,
            problems
                .into_iter()
                .chain(via)
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    let via = via?;
    let exe = std::env::current_exe().context("locating the meridian binary")?;
    let mut command = ServerCommand::meridian(exe);
    command.args.push("--init".into());
    let mut started = Started {
        dir,
        children: Vec::new(),
        keep: false,
    };
    let outcome = async {
        let pid = started.spawn(&command, &node)?;
        accepting(node.address, &tls, &mut started).await?;
        let request = AdminRequest::MemberAdd {
            id: NodeId(node.id),
            region: node.region.clone(),
            address: node.address,
            keyspace: None,
            timeout_ms: u64::try_from(CHANGE_TIMEOUT.as_millis()).unwrap_or(u64::MAX),
        };
        let changes = member_change::ask(via, &tls, &request).await?;
        if exit_code(&changes) != 0 {
            bail!(
                "member add {} through {via} did not finish:\n{}",
                node.id,
                changes_text(&changes).trim_end()
            );
        }
        let keyspaces = served_keyspaces(&manifest, &node)?;
        wait_started(&manifest, &keyspaces, &mut started).await?;
        Ok((pid, changes, keyspaces))
    }
    .await;
    let (pid, changes, keyspaces) = match outcome {
        Ok(done) => done,
        Err(e) => {
            drop(started); // stops the new replica and removes its pid file
            forget()?;
            bail!(
                "{e:#}\nreplica {} was stopped and left out of {}; if `member list` shows it \
                 as a learner, `meridian member remove --id {}` takes it out",
                node.id,
                cluster::manifest_path(dir).display(),
                node.id
            );
        }
    };
    started.keep = true;
    let mut lines = vec![format!(
        "cluster add: replica {} (pid {pid}) in {} at {} serving {}",
        node.id,
        node.region,
        node.address,
        keyspaces.join(", ")
    )];
    note_skipped(&mut lines, &changes, "not served by the new replica");
    Ok(lines)
}

/// `cluster remove`; returns what to print.
pub async fn remove(dir: &Path, id: u16) -> anyhow::Result<Vec<String>> {
    let manifest = cluster_dir(dir)?;
    if !manifest.nodes.iter().any(|n| n.id == id && !n.removed) {
        let ids: Vec<String> = (manifest.nodes.iter().filter(|n| !n.removed))
            .map(|n| n.id.to_string())
            .collect();
        bail!(
            "no replica {id} in the cluster in {} (its replicas: {})",
            dir.display(),
            ids.join(", ")
        );
    }
    let tls = client_tls(dir)?;
    let via = running_member(dir, &manifest, id)?;
    let request = AdminRequest::MemberRemove {
        id: NodeId(id),
        keyspace: None,
        timeout_ms: u64::try_from(CHANGE_TIMEOUT.as_millis()).unwrap_or(u64::MAX),
    };
    let changes = member_change::ask(via, &tls, &request).await?;
    if exit_code(&changes) != 0 {
        bail!(
            "member remove {id} through {via} did not finish; replica {id} keeps running:\n{}",
            changes_text(&changes).trim_end()
        );
    }
    let mut lines = vec![format!("cluster remove: replica {id}")];
    note_skipped(&mut lines, &changes, "run on with one replica fewer");
    if let Some(pid) = running_pid(dir, id)? {
        cluster_cmd::stop(pid, id)?;
        lines.push(format!("  stopped replica {id} (pid {pid})"));
    }
    let _ = std::fs::remove_file(cluster_cmd::pid_path(dir, id));
    cluster_join::mark_removed(dir, id, false)?;
    Ok(lines)
}
