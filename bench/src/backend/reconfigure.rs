//! Membership changes during a cluster run (`--reconfigure`): replicas added and removed
//! at set times while the clients keep going, so the run's latency over time shows what
//! each change costs (docs/membership-latency.md).
//!
//! ```text
//!  "add:REGION@16,remove:added@32" ─▶ [Change { at: 16 s, Add }, Change { at: 32 s, Remove }]
//!  schedule(changes) beside the clients, times from the run's start (warm-up included):
//!    add     ─▶ LocalCluster::add_node (next id, ports, certificate, `--init`)
//!            ─▶ it accepts clients ─▶ member add through an original replica
//!               (learner, catch-up, promote; answered once it is a voter)
//!    remove  ─▶ member remove through an original replica ─▶ SIGTERM the process
//!  each change ─▶ ChangeRecord (start, end, outcome), reported beside the timeline
//! ```
//!
//! Only the measured keyspace changes; the replica's other keyspaces leave it out.
//! Clients stay with the replicas they connected to, so a replica that serves clients
//! cannot be removed; `remove:added` names the replica this run added last.

use super::efficiency::ProcessLedger;
use meridian_engine::NodeId;
use meridian_server::admin::{AdminRequest, ChangeReport};
use meridian_server::launcher::{self, LocalCluster};
use meridian_server::member_change::{self, AskError, CHANGE_TIMEOUT};
use meridian_server::tls::TlsIdentity;
use serde::Serialize;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an added replica may take to accept clients.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a removed replica may take to drain after SIGTERM.
const STOP_PATIENCE: Duration = Duration::from_secs(20);

/// What one change does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start one more replica in this region and add it.
    Add {
        /// Region name or alias of the topology.
        region: String,
    },
    /// Remove a replica and stop it.
    Remove(Target),
}

/// Which replica a removal takes out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The replica this run added last.
    Added,
    /// A replica by id.
    Id(u16),
}

/// One change of a `--reconfigure` schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// When, from the start of the run (warm-up included).
    pub at: Duration,
    /// What.
    pub action: Action,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.action {
            Action::Add { region } => write!(f, "add:{region}")?,
            Action::Remove(Target::Added) => write!(f, "remove:added")?,
            Action::Remove(Target::Id(id)) => write!(f, "remove:{id}")?,
        }
        write!(f, "@{}", self.at.as_secs_f64())
    }
}

impl FromStr for Change {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let usage = || {
            format!(
                "{text:?}: a change is add:REGION@SECONDS, remove:added@SECONDS or \
                 remove:ID@SECONDS (seconds from the start of the run)"
            )
        };
        let (what, at) = text.split_once('@').ok_or_else(usage)?;
        let seconds: f64 = at.trim().parse().map_err(|_| usage())?;
        if !seconds.is_finite() || seconds < 0.0 {
            return Err(usage());
        }
        let (verb, object) = what.split_once(':').ok_or_else(usage)?;
        let action = match (verb.trim(), object.trim()) {
            ("add", region) if !region.is_empty() => Action::Add {
                region: region.to_owned(),
            },
            ("remove", "added") => Action::Remove(Target::Added),
            ("remove", id) => Action::Remove(Target::Id(id.parse().map_err(|_| usage())?)),
            _ => return Err(usage()),
        };
        Ok(Self {
            at: Duration::from_secs_f64(seconds),
            action,
        })
    }
}

/// What one change did, in seconds from the start of the run.
#[derive(Clone, Debug, Serialize)]
pub struct ChangeRecord {
    /// The change as given.
    pub change: String,
    /// When it started.
    pub start_s: f64,
    /// When it ended (the replica answered, or it failed).
    pub end_s: f64,
    /// The replica it added or removed, when known.
    pub node: Option<u16>,
    /// `ok`, or why it failed.
    pub outcome: String,
}

/// Where the changes are made: the local cluster, its operator identity and the
/// replicas clients talk to (never removed; the changes are asked through them).
pub struct Reconfigurer<'a> {
    /// The bench's local replica processes.
    pub cluster: &'a Mutex<LocalCluster>,
    /// The operator identity (membership changes need it).
    pub operator: TlsIdentity,
    /// Client addresses of the replicas clients are connected to, by node id.
    pub serving: Vec<(u16, SocketAddr)>,
    /// The keyspace the run measures.
    pub keyspace: String,
    /// Replica processes the changes started and stopped (for the run's replica CPU).
    pub ledger: Mutex<ProcessLedger>,
}

impl Reconfigurer<'_> {
    /// Carry out `changes` in time order, each at its time from `start`.
    pub async fn run(&self, changes: &[Change], start: Instant) -> Vec<ChangeRecord> {
        let mut changes = changes.to_vec();
        changes.sort_by_key(|c| c.at);
        let mut added: Vec<u16> = Vec::new();
        let mut records = Vec::new();
        for change in changes {
            tokio::time::sleep((start + change.at).saturating_duration_since(Instant::now())).await;
            let start_s = start.elapsed().as_secs_f64();
            let (node, outcome) = match &change.action {
                Action::Add { region } => match self.add(region).await {
                    Ok(id) => {
                        added.push(id);
                        (Some(id), Ok(()))
                    }
                    Err((id, e)) => (id, Err(e)),
                },
                Action::Remove(target) => {
                    let id = match target {
                        Target::Added => added.pop(),
                        Target::Id(id) => Some(*id),
                    };
                    match id {
                        Some(id) => (Some(id), self.remove(id).await),
                        None => (None, Err("this run added no replica to remove".into())),
                    }
                }
            };
            records.push(ChangeRecord {
                change: change.to_string(),
                start_s,
                end_s: start.elapsed().as_secs_f64(),
                node,
                outcome: outcome.err().unwrap_or_else(|| "ok".into()),
            });
        }
        records
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LocalCluster> {
        self.cluster.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ledger_mut(&self) -> std::sync::MutexGuard<'_, ProcessLedger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The processes the changes started and stopped so far.
    pub fn ledger(&self) -> ProcessLedger {
        self.ledger_mut().clone()
    }

    /// Note what replica `id` used before it is stopped.
    fn stopping(&self, cluster: &LocalCluster, id: u16) {
        if let Some(pid) = cluster.pid(id) {
            self.ledger_mut().stopping(pid);
        }
    }

    /// Start a replica in `region` and add it; its id, or what failed (with the id when
    /// the replica was started).
    async fn add(&self, region: &str) -> Result<u16, (Option<u16>, String)> {
        let node = self
            .lock()
            .add_node(region)
            .map_err(|e| (None, format!("starting a replica: {e}")))?;
        let id = node.id;
        if let Some(pid) = self.lock().pid(id) {
            self.ledger_mut().started.push(pid);
        }
        let failed = |e: String| (Some(id), e);
        self.accepting(id).await.map_err(failed)?;
        let request = AdminRequest::MemberAdd {
            id: NodeId(id),
            region: node.region.clone(),
            address: node.address,
            keyspace: Some(self.keyspace.clone()),
            timeout_ms: CHANGE_TIMEOUT.as_millis() as u64,
        };
        match self.ask(request).await {
            Ok(()) => Ok(id),
            Err(e) => {
                // Stopped, so a half-added replica does not linger; still a learner
                // of the keyspace if the change went through after all.
                let mut cluster = self.lock();
                self.stopping(&cluster, id);
                let _ = cluster.kill(id);
                Err(failed(e))
            }
        }
    }

    /// Remove replica `id` from the keyspace and stop it.
    async fn remove(&self, id: u16) -> Result<(), String> {
        if self.serving.iter().any(|(serving, _)| *serving == id) {
            return Err(format!(
                "replica {id} serves clients of this run; remove an added replica instead"
            ));
        }
        let request = AdminRequest::MemberRemove {
            id: NodeId(id),
            keyspace: Some(self.keyspace.clone()),
            timeout_ms: CHANGE_TIMEOUT.as_millis() as u64,
        };
        self.ask(request).await?;
        tokio::task::block_in_place(|| {
            let mut cluster = self.lock();
            self.stopping(&cluster, id);
            cluster.terminate(id, STOP_PATIENCE)
        })
        .map(|_| ())
        .map_err(|e| format!("removed, but stopping it: {e}"))
    }

    /// Ask a serving replica for `request` (the next one if it cannot be reached); `Ok`
    /// once the keyspace changed.
    async fn ask(&self, request: AdminRequest) -> Result<(), String> {
        let mut last = String::from("no replica to ask");
        for (_, addr) in &self.serving {
            let changes = match member_change::ask(*addr, &self.operator, &request).await {
                Ok(changes) => changes,
                Err(e @ AskError::Unreachable { .. }) => {
                    last = e.to_string();
                    continue;
                }
                Err(e) => return Err(e.to_string()),
            };
            let outcome = changes
                .iter()
                .find(|c| c.keyspace == self.keyspace)
                .map(|c| c.outcome.clone());
            return match outcome {
                Some(ChangeReport::Changed { .. }) => Ok(()),
                Some(ChangeReport::Skipped(why)) => Err(format!("skipped: {why}")),
                Some(ChangeReport::Failed(why)) => Err(format!("failed: {why}")),
                Some(ChangeReport::TimedOut(why)) => Err(format!("timed out: {why}")),
                None => Err(format!(
                    "replica {addr} did not answer for {}",
                    self.keyspace
                )),
            };
        }
        Err(last)
    }

    /// Wait until replica `id` accepts a client connection (it serves no keyspace yet).
    async fn accepting(&self, id: u16) -> Result<(), String> {
        let (dir, manifest) = {
            let cluster = self.lock();
            (cluster.dir().to_owned(), cluster.manifest().clone())
        };
        launcher::wait_ready(&dir, &manifest, [id], &[], &self.operator, START_TIMEOUT)
            .await
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
#[path = "reconfigure_test.rs"]
mod tests;
