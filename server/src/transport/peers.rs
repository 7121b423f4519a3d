//! The transport's peer set, which membership changes move.
//!
//! ```text
//!  the config's peers ─────────────┐
//!  Transport::add_peer(id, addr) ──┼─▶ start: a link, a queue, a writer and a dialer
//!  a node certificate of the       │
//!  cluster CA dials in (not retired)┘   (its address: the connection's source)
//!  Transport::remove_peer(id) ─▶ writer and dialer stopped, link closed (CLOSE_REMOVED),
//!                                id retired: its dials are refused until it is added again
//! ```
//!
//! Any node certificate the cluster CA signed proves a node of the cluster (as mutual TLS
//! has always meant here), so a node added to a membership elsewhere is let in when it
//! dials: that is how replicas other than the one the operator asked learn a new
//! member's address. Whether its messages count is the protocol cores' business.

use super::link::CLOSE_REMOVED;
use super::link::{self, PeerLink, Shared};
use crate::wire::PeerFrame;
use meridian_engine::NodeId;
use quinn::{Endpoint, VarInt};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// What starting a peer's dialer needs.
pub(crate) struct Dialing {
    pub(crate) endpoint: Endpoint,
    pub(crate) client: quinn::ClientConfig,
    pub(crate) queue_max: usize,
}

/// Every peer: its address, link, send queue and tasks.
pub(crate) struct PeerSet {
    addresses: BTreeMap<NodeId, SocketAddr>,
    links: BTreeMap<NodeId, Arc<PeerLink>>,
    queues: BTreeMap<NodeId, mpsc::Sender<PeerFrame>>,
    tasks: BTreeMap<NodeId, Vec<AbortHandle>>,
    /// Removed peers: their dials are refused until they are added again.
    retired: BTreeSet<NodeId>,
}

impl PeerSet {
    /// `peers` with links that never came up (their tasks start with the transport).
    pub(crate) fn new(peers: BTreeMap<NodeId, SocketAddr>) -> Self {
        let links = peers
            .keys()
            .map(|&peer| (peer, Arc::new(PeerLink::new())))
            .collect();
        Self {
            addresses: peers,
            links,
            queues: BTreeMap::new(),
            tasks: BTreeMap::new(),
            retired: BTreeSet::new(),
        }
    }
}

impl Shared {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, PeerSet> {
        self.peers.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, PeerSet> {
        self.peers.write().unwrap_or_else(|e| e.into_inner())
    }

    /// `peer`'s link, if it is a peer.
    pub(crate) fn link(&self, peer: NodeId) -> Option<Arc<PeerLink>> {
        self.read().links.get(&peer).cloned()
    }

    /// Every peer's link.
    pub(crate) fn links(&self) -> Vec<(NodeId, Arc<PeerLink>)> {
        let peers = self.read();
        peers.links.iter().map(|(&id, l)| (id, l.clone())).collect()
    }

    /// Every peer's id.
    pub(crate) fn peer_ids(&self) -> Vec<NodeId> {
        self.read().addresses.keys().copied().collect()
    }

    /// The address `peer` is dialed at.
    pub(crate) fn address(&self, peer: NodeId) -> Option<SocketAddr> {
        self.read().addresses.get(&peer).copied()
    }

    /// `peer`'s send queue.
    pub(crate) fn queue(&self, peer: NodeId) -> Option<mpsc::Sender<PeerFrame>> {
        self.read().queues.get(&peer).cloned()
    }

    /// Start talking to `peer` at `addr`: its writer and dialer run from now on. A peer
    /// already running keeps its address; a retired one is let in again.
    pub(crate) fn start_peer(self: &Arc<Self>, dialing: &Dialing, peer: NodeId, addr: SocketAddr) {
        if peer == self.id {
            return;
        }
        let mut peers = self.write();
        peers.retired.remove(&peer);
        if peers.tasks.contains_key(&peer) {
            return;
        }
        peers.addresses.insert(peer, addr);
        peers
            .links
            .entry(peer)
            .or_insert_with(|| Arc::new(PeerLink::new()));
        let (tx, rx) = mpsc::channel(dialing.queue_max.max(1));
        peers.queues.insert(peer, tx);
        let writer = tokio::spawn(link::writer(self.clone(), peer, rx));
        let dialer = tokio::spawn(link::dialer(
            self.clone(),
            dialing.endpoint.clone(),
            dialing.client.clone(),
            peer,
            addr,
        ));
        peers
            .tasks
            .insert(peer, vec![writer.abort_handle(), dialer.abort_handle()]);
        drop(peers);
        tracing::info!(node = %self.id, %peer, %addr, "peer added");
    }

    /// A node of the cluster that is not a peer dialed in from `remote`: let it in as a
    /// peer (dialed back at `remote`) unless it was removed. `false`: refused.
    pub(crate) fn admit_peer(
        self: &Arc<Self>,
        dialing: &Dialing,
        peer: NodeId,
        remote: SocketAddr,
    ) -> bool {
        if peer == self.id || self.read().retired.contains(&peer) {
            return false;
        }
        self.start_peer(dialing, peer, remote);
        true
    }

    /// Stop talking to `peer`: its tasks end, its link is closed, and its dials are
    /// refused until it is started again. `false` if it was not a peer.
    pub(crate) fn stop_peer(&self, peer: NodeId) -> bool {
        let mut peers = self.write();
        peers.retired.insert(peer);
        peers.addresses.remove(&peer);
        peers.queues.remove(&peer);
        let tasks = peers.tasks.remove(&peer);
        let link = peers.links.remove(&peer);
        drop(peers);
        for task in tasks.iter().flatten() {
            task.abort();
        }
        if let Some(conn) = link.as_ref().and_then(|l| link::live(&l.current.borrow())) {
            conn.close(
                VarInt::from_u32(CLOSE_REMOVED),
                b"removed from the membership",
            );
        }
        if link.is_some() {
            tracing::info!(node = %self.id, %peer, "peer removed");
        }
        link.is_some()
    }

    /// Let `peer`'s dials in again (it is a member again).
    pub(crate) fn allow(&self, peer: NodeId) {
        self.write().retired.remove(&peer);
    }

    /// Stop every peer's tasks (shutdown).
    pub(crate) fn stop_all(&self) {
        let mut peers = self.write();
        for task in std::mem::take(&mut peers.tasks).values().flatten() {
            task.abort();
        }
    }
}
