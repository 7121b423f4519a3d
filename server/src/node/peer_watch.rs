//! The transport's peer set follows the committed configurations, and is remembered.
//!
//! ```text
//!  start: <data_dir>/peers.toml (members outside the node config, with addresses)
//!           ─▶ transport.add_peer each: a restarted replica dials them at once
//!  every WATCH: members = ∪ over keyspaces (core configuration, or the static membership)
//!    left a configuration (it was in a keyspace's configuration, and a newer epoch of
//!    that keyspace leaves it out) and is a member of none now
//!                              ─▶ transport.remove_peer (link closed, dials refused)
//!    a member again            ─▶ transport.allow_peer
//!    members outside the node config with a known address ─▶ peers.toml (when it changes)
//! ```
//! The addresses are a hint, not part of any configuration: a lost or stale file only
//! means a replica waits for the new member to dial it. A removal is acted on only as an
//! epoch step seen here: a restarted replica starts from an older configuration (it learns
//! again which slots are committed) and must not disconnect members it has not reached
//! yet.

use super::host::KeyspaceHandle;
use crate::transport::endpoint::Transport;
use meridian_engine::{Membership, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How often the peer set is compared with the configurations.
const WATCH: Duration = Duration::from_millis(500);

/// The address book's file name in the data directory.
pub const ADDRESS_BOOK: &str = "peers.toml";

/// What `peers.toml` holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Book {
    #[serde(default)]
    peers: Vec<Entry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: u16,
    address: SocketAddr,
}

/// The members outside the node config this replica last knew addresses for (empty if
/// the file is missing or unreadable: a hint only, logged).
pub fn load_book(path: &Path) -> BTreeMap<NodeId, SocketAddr> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return BTreeMap::new();
    };
    match toml::from_str::<Book>(&text) {
        Ok(book) => book
            .peers
            .into_iter()
            .map(|e| (NodeId(e.id), e.address))
            .collect(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable address book");
            BTreeMap::new()
        }
    }
}

/// Write `book` to `path` (through a temporary file and a rename).
pub fn save_book(path: &Path, book: &BTreeMap<NodeId, SocketAddr>) -> std::io::Result<()> {
    let book = Book {
        peers: book
            .iter()
            .map(|(id, &address)| Entry { id: id.0, address })
            .collect(),
    };
    let text = toml::to_string(&book).map_err(std::io::Error::other)?;
    let temporary = path.with_extension("toml.tmp");
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path)
}

/// What the watcher works from.
pub(crate) struct Watch {
    pub(crate) me: NodeId,
    pub(crate) handles: Vec<KeyspaceHandle>,
    /// The node config's membership.
    pub(crate) cluster: Membership,
    pub(crate) transport: Arc<Transport>,
    /// `<data_dir>/peers.toml`.
    pub(crate) book: PathBuf,
}

/// Dial the remembered members, then keep the peer set to the members until the node
/// stops.
pub(crate) async fn watch_peers(watch: Watch) {
    let Watch {
        me,
        handles,
        cluster,
        transport,
        book: book_path,
    } = watch;
    let configured: BTreeSet<NodeId> = cluster.ids().collect();
    let mut book = load_book(&book_path);
    book.retain(|id, _| !configured.contains(id) && *id != me);
    for (&id, &address) in &book {
        transport.add_peer(id, address);
    }
    let mut members_before: BTreeSet<NodeId> = configured.clone();
    members_before.extend(book.keys().copied());
    // Each core keyspace's last configuration seen: epoch and members.
    let mut seen: BTreeMap<String, (u64, BTreeSet<NodeId>)> = BTreeMap::new();
    let mut interval = tokio::time::interval(WATCH);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let mut members = BTreeSet::new();
        let mut left = BTreeSet::new();
        for handle in &handles {
            let Some(metrics) = handle.metrics().await else {
                continue;
            };
            let Some(configuration) = metrics.configuration else {
                members.extend(cluster.ids());
                continue;
            };
            let now: BTreeSet<NodeId> = configuration.members().iter().map(|m| m.id).collect();
            let epoch = configuration.epoch();
            if let Some((before, was)) = seen.get(handle.keyspace()) {
                if epoch > *before {
                    left.extend(was.difference(&now).copied());
                }
            }
            members.extend(now.iter().copied());
            seen.insert(handle.keyspace().to_owned(), (epoch, now));
        }
        members.remove(&me);
        for &gone in left.difference(&members) {
            if gone != me && transport.remove_peer(gone) {
                tracing::info!(node = %me, peer = %gone, "disconnected a node that is no longer a member of any keyspace");
            }
        }
        for &back in members.difference(&members_before) {
            transport.allow_peer(back);
        }
        let links = transport.peer_states();
        let known: BTreeMap<NodeId, SocketAddr> = members
            .iter()
            .filter(|id| !configured.contains(id))
            .filter_map(|&id| Some((id, links.get(&id)?.address?)))
            .collect();
        if known != book {
            match save_book(&book_path, &known) {
                Ok(()) => book = known,
                Err(e) => {
                    tracing::warn!(path = %book_path.display(), error = %e, "could not write the address book")
                }
            }
        }
        members_before = members;
    }
}

#[cfg(test)]
#[path = "peer_watch_test.rs"]
mod tests;
