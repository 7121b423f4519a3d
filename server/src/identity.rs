//! The data directory's identity: which cluster and node it belongs to, and which
//! incarnation of that node wrote it. Checked before a replica touches anything.
//!
//! ```text
//!  <data_dir>/identity.toml   cluster_id, node_id, incarnation, keyspaces, rejoin
//!
//!  start                 data dir holds               outcome
//!  serve                 identity of this node        start (keyspaces added since: created)
//!  serve                 identity of another node     error, nothing touched
//!  serve                 nothing / does not exist     error: say --init or --rejoin
//!  serve                 logs but no identity         adopt (written before identities)
//!  serve --init          nothing (parent must exist)  create identity, start
//!  serve --init          an identity                  error: already initialised
//!  serve --rejoin        anything of this node        incarnation bumped; every keyspace
//!                                                     whose log is empty rejoins
//! ```
//!
//! Why: consensus assumes an acceptor never forgets a promise or an accepted value. A
//! replica started on an empty directory (a lost disk, a mistyped `data_dir`) must not
//! vote as if it had never promised anything; `--rejoin` makes it recover first
//! ([`Protocol::rejoin`](meridian_engine::Protocol::rejoin), docs/design.md#rejoin-rule).
//! The keyspaces a rejoin covered stay listed (`rejoin`), so a crash before a core
//! persisted its rejoining state rejoins again on the next start instead of voting.
//!
//! The incarnation is the wall-clock millisecond at which this node's current state
//! began (`--init` or `--rejoin`), kept strictly above the previous one when that is
//! known; a lost disk forgets the previous one, so the clock is what orders them.

use crate::config::NodeConfig;
use crate::storage::{log_has_records, LOG_FILE};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The identity file's name inside the data directory.
pub const IDENTITY_FILE: &str = "identity.toml";

/// How the operator asked the replica to start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StartMode {
    /// A node that has its state (`meridian serve`).
    #[default]
    Normal,
    /// The first start of a new cluster's node (`meridian serve --init`): the data
    /// directory must not hold an identity yet.
    Init,
    /// The node lost its disk (`meridian serve --rejoin`): recover from the peers before
    /// voting.
    Rejoin,
}

/// What is written in `identity.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The cluster (the config's `cluster_id`), if the config names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// The node this directory belongs to.
    pub node_id: u16,
    /// When this node's current state began (ms since the Unix epoch), increased by
    /// every rejoin.
    pub incarnation: u64,
    /// Keyspaces this directory holds logs for.
    #[serde(default)]
    pub keyspaces: Vec<String>,
    /// Keyspaces the current incarnation rejoined: one whose log is still empty rejoins
    /// again at the next start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejoin: Vec<String>,
}

/// Why a replica may not start on its data directory.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// No state at all, and neither `--init` nor `--rejoin`.
    #[error(
        "data directory {dir} {what}: refusing to start, since a replica without its state \
         could break promises its former self made. If this is the first start of a new \
         cluster, run `meridian serve --init`; if this replica lost its disk, run `meridian \
         serve --rejoin` (it recovers from its peers before it votes); if the path is \
         mistyped, fix `data_dir` in the config",
        dir = .dir.display()
    )]
    NoState {
        /// The data directory.
        dir: PathBuf,
        /// "does not exist" or "holds no replica state (no identity.toml)".
        what: &'static str,
    },
    /// The identity names another node or cluster.
    #[error(
        "data directory {dir} belongs to {found}, but the config says {expected}: refusing to \
         start and leaving it untouched (wrong data_dir or wrong config?)",
        dir = .dir.display()
    )]
    Foreign {
        /// The data directory.
        dir: PathBuf,
        /// What the identity says.
        found: String,
        /// What the config says.
        expected: String,
    },
    /// `--init` on a directory that already holds an identity.
    #[error(
        "data directory {dir} is already initialised (node {node}, incarnation {incarnation}): \
         start it without --init",
        dir = .dir.display()
    )]
    AlreadyInitialised {
        /// The data directory.
        dir: PathBuf,
        /// Its node.
        node: u16,
        /// Its incarnation.
        incarnation: u64,
    },
    /// A keyspace this directory held has lost its log.
    #[error(
        "keyspace {keyspace}: {log} is missing although this data directory held it: \
         refusing to start as a voter; if the disk lost it, run `meridian serve --rejoin`",
        log = .log.display()
    )]
    LostKeyspace {
        /// The keyspace.
        keyspace: String,
        /// Its log file.
        log: PathBuf,
    },
    /// `--rejoin` with an empty log in a keyspace whose protocol has no rejoin rule.
    #[error(
        "keyspace {keyspace} ({protocol}) has no state and {protocol} cannot yet rejoin a \
         replica that lost its disk (it would forget promises it made): refusing to start. \
         Remove the keyspace from this replica's config, or restore its data directory"
    )]
    CannotRejoin {
        /// The keyspace.
        keyspace: String,
        /// Its protocol.
        protocol: &'static str,
    },
    /// `--init` or `--rejoin` where the data directory's parent does not exist.
    #[error(
        "{parent} does not exist: not creating data directory {dir} (mistyped data_dir?)",
        parent = .parent.display(),
        dir = .dir.display()
    )]
    NoParent {
        /// The data directory.
        dir: PathBuf,
        /// Its missing parent.
        parent: PathBuf,
    },
    /// The identity file does not parse.
    #[error("{path}: {message}", path = .path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A file system call failed.
    #[error("{op} {path}: {source}", path = .path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// What [`prepare`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// The identity as now written.
    pub identity: Identity,
    /// Keyspaces whose core must be told to rejoin.
    pub rejoin: Vec<String>,
    /// What happened, for the log ("initialised", "rejoining", "adopted", "checked").
    pub action: &'static str,
}

fn io_error<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> IdentityError + 'a {
    move |source| IdentityError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The log of `keyspace` in `dir`.
fn log_path(dir: &Path, keyspace: &str) -> PathBuf {
    dir.join(keyspace).join(LOG_FILE)
}

/// Whether the log of `keyspace` holds a record.
fn has_records(dir: &Path, keyspace: &str) -> bool {
    log_has_records(&log_path(dir, keyspace))
}

/// Read the identity file of `dir`, if there is one.
pub fn read(dir: &Path) -> Result<Option<Identity>, IdentityError> {
    let path = dir.join(IDENTITY_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(IdentityError::Io {
                op: "read",
                path,
                source,
            })
        }
    };
    toml::from_str(&text)
        .map(Some)
        .map_err(|e| IdentityError::Malformed {
            path,
            message: e.to_string().trim_end().to_owned(),
        })
}

/// Write `identity` into `dir` atomically (temporary file, fsync, rename, fsync dir).
fn write(dir: &Path, identity: &Identity) -> Result<(), IdentityError> {
    let text = toml::to_string(identity).map_err(|e| IdentityError::Malformed {
        path: dir.join(IDENTITY_FILE),
        message: e.to_string(),
    })?;
    let text = format!(
        "# This data directory's identity, written by meridian. Do not edit it or copy it\n\
         # to another node: a replica checks it before it touches anything here.\n{text}"
    );
    let tmp = dir.join("identity.toml.tmp");
    let path = dir.join(IDENTITY_FILE);
    {
        let mut file = fs::File::create(&tmp).map_err(io_error("create", &tmp))?;
        file.write_all(text.as_bytes())
            .map_err(io_error("write", &tmp))?;
        file.sync_all().map_err(io_error("fsync", &tmp))?;
    }
    fs::rename(&tmp, &path).map_err(io_error("rename", &tmp))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), IdentityError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("fsync directory", dir))
}

/// Create `dir` (its parent must exist: a mistyped path is not created) and fsync the
/// parent so the new entry survives a crash.
fn create_dir(dir: &Path) -> Result<(), IdentityError> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(IdentityError::NoParent {
            dir: dir.to_owned(),
            parent: parent.to_owned(),
        });
    }
    fs::create_dir(dir).map_err(io_error("create directory", dir))?;
    sync_dir(parent)
}

/// Create the log of `keyspace` if it does not exist, durably, before the identity
/// names it: a keyspace the identity lists always has its log, so a missing one was lost.
fn create_log(dir: &Path, keyspace: &str) -> Result<(), IdentityError> {
    if log_path(dir, keyspace).exists() {
        return Ok(());
    }
    let at = dir.join(keyspace);
    crate::storage::FileStorage::open(&at)
        .map(drop)
        .map_err(|e| IdentityError::Io {
            op: "create the log in",
            path: at,
            source: std::io::Error::other(e.to_string()),
        })
}

/// Whether `dir` holds any keyspace log with records.
fn holds_state(dir: &Path, keyspaces: &[String]) -> bool {
    keyspaces.iter().any(|k| has_records(dir, k))
}

fn describe(cluster: Option<&str>, node: u16) -> String {
    match cluster {
        Some(cluster) => format!("node {node} of cluster {cluster:?}"),
        None => format!("node {node} (no cluster_id)"),
    }
}

/// Check (and create or update) `config`'s data directory identity for a start in
/// `mode`. On an error nothing has been written.
pub fn prepare(config: &NodeConfig, mode: StartMode) -> Result<Prepared, IdentityError> {
    let dir = &config.data_dir;
    let node = config.id.0;
    let keyspaces: Vec<String> = config
        .keyspaces
        .iter()
        .map(|k| k.name().to_owned())
        .collect();
    let found = if dir.is_dir() { read(dir)? } else { None };
    let Some(mut identity) = found else {
        return first_identity(config, mode, keyspaces);
    };
    let cluster_differs = match (&identity.cluster_id, &config.cluster_id) {
        (Some(had), Some(wanted)) => had != wanted,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if identity.node_id != node || cluster_differs {
        return Err(IdentityError::Foreign {
            dir: dir.clone(),
            found: describe(identity.cluster_id.as_deref(), identity.node_id),
            expected: describe(config.cluster_id.as_deref(), node),
        });
    }
    if mode == StartMode::Init {
        return Err(IdentityError::AlreadyInitialised {
            dir: dir.clone(),
            node,
            incarnation: identity.incarnation,
        });
    }
    let before = identity.clone();
    if identity.cluster_id.is_none() {
        identity.cluster_id.clone_from(&config.cluster_id);
    }
    let mut action = "checked";
    if mode == StartMode::Rejoin {
        identity.incarnation = now_ms().max(identity.incarnation + 1);
        identity.rejoin = rejoin_set(config, &keyspaces)?;
        action = "rejoining";
    } else {
        for keyspace in &identity.keyspaces {
            let log = log_path(dir, keyspace);
            let rejoining = identity.rejoin.contains(keyspace);
            if keyspaces.contains(keyspace) && !rejoining && !log.exists() {
                return Err(IdentityError::LostKeyspace {
                    keyspace: keyspace.clone(),
                    log,
                });
            }
        }
    }
    for keyspace in &keyspaces {
        if !identity.keyspaces.contains(keyspace) {
            create_log(dir, keyspace)?;
            identity.keyspaces.push(keyspace.clone());
        }
    }
    if mode == StartMode::Rejoin {
        for keyspace in &identity.rejoin {
            create_log(dir, keyspace)?;
        }
    }
    let rejoin = identity
        .rejoin
        .iter()
        .filter(|k| keyspaces.contains(k) && !has_records(dir, k))
        .cloned()
        .collect();
    if identity != before {
        write(dir, &identity)?;
    }
    Ok(Prepared {
        identity,
        rejoin,
        action,
    })
}

/// A data directory without an identity file.
/// The keyspaces of a `--rejoin` start that must rejoin: those whose log is empty. A
/// protocol without a rejoin rule is refused rather than let vote with amnesia.
fn rejoin_set(config: &NodeConfig, keyspaces: &[String]) -> Result<Vec<String>, IdentityError> {
    let dir = &config.data_dir;
    let empty: Vec<String> = keyspaces
        .iter()
        .filter(|k| !has_records(dir, k))
        .cloned()
        .collect();
    let unsupported = config
        .keyspaces
        .iter()
        .find(|k| empty.iter().any(|e| e == k.name()) && !k.can_rejoin());
    match unsupported {
        Some(keyspace) => Err(IdentityError::CannotRejoin {
            keyspace: keyspace.name().to_owned(),
            protocol: keyspace.protocol(),
        }),
        None => Ok(empty),
    }
}

fn first_identity(
    config: &NodeConfig,
    mode: StartMode,
    keyspaces: Vec<String>,
) -> Result<Prepared, IdentityError> {
    let dir = &config.data_dir;
    let exists = dir.is_dir();
    let has_state = exists && holds_state(dir, &keyspaces);
    let (action, rejoin) = match mode {
        // Logs written before identity files existed: this node's state is here.
        _ if has_state && mode != StartMode::Rejoin => ("adopted", Vec::new()),
        StartMode::Normal => {
            return Err(IdentityError::NoState {
                dir: dir.clone(),
                what: if exists {
                    "holds no replica state (no identity.toml)"
                } else if dir.exists() {
                    "is not a directory"
                } else {
                    "does not exist"
                },
            })
        }
        StartMode::Init => ("initialised", Vec::new()),
        StartMode::Rejoin => ("rejoining", rejoin_set(config, &keyspaces)?),
    };
    if !exists {
        create_dir(dir)?;
    }
    for keyspace in &keyspaces {
        create_log(dir, keyspace)?;
    }
    let identity = Identity {
        cluster_id: config.cluster_id.clone(),
        node_id: config.id.0,
        incarnation: now_ms(),
        keyspaces,
        rejoin,
    };
    write(dir, &identity)?;
    Ok(Prepared {
        rejoin: identity.rejoin.clone(),
        identity,
        action,
    })
}

/// Write the identity a new cluster's node starts with (what `meridian cluster up` does
/// for the data directories it creates), unless `config`'s data directory already has
/// one. Creates the data directory.
pub fn init_new(config: &NodeConfig) -> Result<(), IdentityError> {
    if config.data_dir.join(IDENTITY_FILE).exists() {
        return Ok(());
    }
    fs::create_dir_all(&config.data_dir).map_err(io_error("create directory", &config.data_dir))?;
    prepare(config, StartMode::Init).map(|_| ())
}

#[cfg(test)]
#[path = "identity_test.rs"]
mod tests;
