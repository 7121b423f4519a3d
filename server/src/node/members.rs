//! Membership changes a replica carries out for its operator (`meridian member add` /
//! `member remove`).
//!
//! ```text
//!  AdminRequest::MemberAdd{id, region, address, keyspace?}
//!    ├─ transport.add_peer(id, address)                       (this replica dials it)
//!    └─ per keyspace (name order):
//!         protocol without membership change ─▶ Skipped (all keyspaces) / Failed (--keyspace)
//!         AddLearner(id) ─▶ committed ─▶ Promote(id), again every RETRY while the leader
//!         says the learner has not caught up ─▶ committed: Changed{epoch} ─▶ or Failed(reason)
//!  AdminRequest::MemberRemove{id, keyspace?} ─▶ Remove(id) per keyspace, the same way
//! ```
//! The transport's peers then follow the configurations (`node/peer_watch.rs`).
//! A learner that is already a member (an earlier `member add` that timed out) is
//! promoted without being added again, so repeating the command resumes it.

use super::host::{unsupported, ChangeResult, KeyspaceHandle};
use crate::admin::{AdminError, ChangeReport, KeyspaceChange};
use crate::transport::endpoint::Transport;
use meridian_engine::configuration::{Change, ChangeFailure, Role};
use meridian_engine::{Member, NodeId};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Pause between promotion attempts while the learner catches up.
const RETRY: Duration = Duration::from_millis(250);

/// What a change asks of one keyspace.
#[derive(Clone, Debug)]
pub(crate) enum Goal {
    /// Add (then promote) this member.
    Add(Member),
    /// Remove this member.
    Remove(NodeId),
}

/// Carry out `goal` in `keyspace` (or every keyspace), giving up at `timeout`.
pub(crate) async fn change(
    handles: &[KeyspaceHandle],
    transport: &Transport,
    goal: Goal,
    address: Option<SocketAddr>,
    keyspace: Option<String>,
    timeout: Duration,
) -> Result<Vec<KeyspaceChange>, AdminError> {
    let deadline = Instant::now() + timeout;
    let targets: Vec<&KeyspaceHandle> = match &keyspace {
        Some(name) => {
            let handle = handles.iter().find(|h| h.keyspace() == name);
            vec![handle.ok_or_else(|| {
                let known: Vec<&str> = handles.iter().map(KeyspaceHandle::keyspace).collect();
                AdminError::Failed(format!(
                    "unknown keyspace {name:?}; this replica serves {}",
                    known.join(", ")
                ))
            })?]
        }
        None => handles.iter().collect(),
    };
    // Dial the new member before proposing, so the learner hears from this replica;
    // undone below if no keyspace took it.
    let dialed = match (&goal, address) {
        (Goal::Add(member), Some(address))
            if targets.iter().any(|h| h.changes_membership())
                && !transport.peer_links().contains_key(&member.id) =>
        {
            transport.add_peer(member.id, address);
            Some(member.id)
        }
        _ => None,
    };
    let mut reports = Vec::new();
    for handle in targets {
        let protocol = match handle.metrics().await {
            Some(metrics) => metrics.protocol,
            None => "unknown".to_owned(),
        };
        let outcome = if !handle.changes_membership() {
            let reason = unsupported(&protocol);
            if keyspace.is_some() {
                ChangeReport::Failed(reason)
            } else {
                ChangeReport::Skipped(reason)
            }
        } else {
            match &goal {
                Goal::Add(member) => add(handle, member, deadline).await,
                Goal::Remove(id) => remove(handle, *id, deadline).await,
            }
        };
        reports.push(KeyspaceChange {
            keyspace: handle.keyspace().to_owned(),
            protocol,
            outcome,
        });
    }
    reports.sort_by(|a, b| a.keyspace.cmp(&b.keyspace));
    let taken = reports.iter().any(|r| {
        matches!(
            r.outcome,
            ChangeReport::Changed { .. } | ChangeReport::TimedOut(_)
        )
    });
    if let (Some(id), false) = (dialed, taken) {
        transport.remove_peer(id);
        transport.allow_peer(id);
    }
    Ok(reports)
}

/// `change` in `handle`'s keyspace, or `None` when `deadline` passed first.
async fn propose(
    handle: &KeyspaceHandle,
    change: Change,
    deadline: Instant,
) -> Option<ChangeResult> {
    let left = deadline.saturating_duration_since(Instant::now());
    tokio::time::timeout(left, handle.change(change)).await.ok()
}

/// The role of `id` in the keyspace's current configuration, and its epoch.
async fn role(handle: &KeyspaceHandle, id: NodeId) -> (Option<Role>, u64) {
    match handle.metrics().await.and_then(|m| m.configuration) {
        Some(configuration) => (configuration.role_of(id), configuration.epoch()),
        None => (None, 0),
    }
}

async fn add(handle: &KeyspaceHandle, member: &Member, deadline: Instant) -> ChangeReport {
    let id = member.id;
    match role(handle, id).await {
        (Some(Role::Voter), epoch) => {
            return ChangeReport::Failed(format!(
                "node {} is already a voter (epoch {epoch})",
                id.0
            ))
        }
        (Some(Role::Learner), _) => {}
        (None, _) => match propose(handle, Change::AddLearner(member.clone()), deadline).await {
            Some(Ok(_)) => {}
            Some(Err(failure)) => {
                return ChangeReport::Failed(format!("adding a learner: {failure}"))
            }
            None => return timed_out("adding the learner".to_owned()),
        },
    }
    let mut last = String::from("no answer yet");
    loop {
        match propose(handle, Change::Promote(id), deadline).await {
            Some(Ok(configuration)) => {
                return ChangeReport::Changed {
                    epoch: configuration.epoch(),
                }
            }
            Some(Err(ChangeFailure::Refused(reason))) => {
                if let (Some(Role::Voter), epoch) = role(handle, id).await {
                    return ChangeReport::Changed { epoch };
                }
                return ChangeReport::Failed(format!("promoting the learner: {reason}"));
            }
            // Not caught up yet, a concurrent change, or no outcome: ask again.
            Some(Err(failure)) => last = failure.to_string(),
            None => {}
        }
        if let (Some(Role::Voter), epoch) = role(handle, id).await {
            return ChangeReport::Changed { epoch };
        }
        if Instant::now() + RETRY >= deadline {
            return timed_out(format!(
                "promoting the learner (node {} is a learner: member add again resumes; last \
                 answer: {last})",
                id.0
            ));
        }
        tokio::time::sleep(RETRY).await;
    }
}

async fn remove(handle: &KeyspaceHandle, id: NodeId, deadline: Instant) -> ChangeReport {
    if let (None, epoch) = role(handle, id).await {
        return ChangeReport::Failed(format!("node {} is not a member (epoch {epoch})", id.0));
    }
    loop {
        let outcome = propose(handle, Change::Remove(id), deadline).await;
        match outcome {
            Some(Ok(configuration)) => {
                return ChangeReport::Changed {
                    epoch: configuration.epoch(),
                }
            }
            Some(Err(ChangeFailure::Refused(reason))) => {
                return ChangeReport::Failed(format!("removing: {reason}"))
            }
            Some(Err(_)) | None => {}
        }
        // No outcome, or a concurrent change: see whether it took effect, else retry.
        if let (None, epoch) = role(handle, id).await {
            return ChangeReport::Changed { epoch };
        }
        if Instant::now() + RETRY >= deadline {
            return timed_out("removing".to_owned());
        }
        tokio::time::sleep(RETRY).await;
    }
}

fn timed_out(what: String) -> ChangeReport {
    ChangeReport::TimedOut(format!(
        "timed out {what}; the change may or may not take effect (see member list)"
    ))
}
