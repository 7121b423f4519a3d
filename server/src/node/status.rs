//! The replica's answers to operator requests ([`crate::admin`]): its own view of its
//! peers' links and of every keyspace's members, leader, execution and last snapshot.
//!
//! ```text
//!  router ─Inbound::Admin─▶ StatusSource::answer (own task)
//!                             ├─ transport.peer_states()   links: up/down, since, heard, RTT
//!                             ├─ handle.metrics() per keyspace   core counters and gauges,
//!                             │                                  configuration, log/snapshot
//!                             └─▶ NodeStatus ─▶ AdminReplyFrame
//! ```
//!
//! Values come from what the node already tracks; what it does not track is reported as
//! [`Reported::Omitted`] with the reason.

use super::members::{self, Goal};
use super::KeyspaceHandle;
use crate::admin::{
    self, AdminError, AdminFrame, AdminReplyFrame, AdminRequest, AdminResponse, ConfigSource,
    KeyspaceStatus, MemberState, MemberStatus, NodeStatus, PeerStatus, Reported, SnapshotStatus,
};
use crate::config::PeerConfig;
use crate::metrics::KeyspaceMetrics;
use crate::transport::endpoint::{PeerLinkState, Transport};
use meridian_engine::configuration::Configuration;
use meridian_engine::{Member, Membership, NodeId};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a membership change from a connection without an operator certificate is refused.
const NOT_AN_OPERATOR: &str = "member add and member remove need an operator certificate \
     (operator.pem in the --certs directory; `meridian certs issue --ca DIR --operator NAME` \
     makes one); this connection presented a client certificate";

/// What a status answer is made from.
pub(crate) struct StatusSource {
    pub(crate) id: NodeId,
    pub(crate) region: String,
    pub(crate) address: SocketAddr,
    pub(crate) peers: Vec<PeerConfig>,
    pub(crate) membership: Membership,
    pub(crate) incarnation: Option<u64>,
    pub(crate) started: Instant,
    pub(crate) draining: Arc<AtomicBool>,
    pub(crate) handles: Vec<KeyspaceHandle>,
    pub(crate) transport: Arc<Transport>,
}

impl StatusSource {
    /// The answer to the request in `frame` (an error answer if it is not understood).
    /// Membership changes are refused unless the caller presented an `operator`
    /// certificate.
    pub(crate) async fn answer(&self, frame: AdminFrame, operator: bool) -> AdminReplyFrame {
        let ms = Duration::from_millis;
        let outcome = match admin::decode_request(&frame) {
            Ok(AdminRequest::Status) => Ok(AdminResponse::Status(self.status().await)),
            Ok(AdminRequest::MemberAdd { .. } | AdminRequest::MemberRemove { .. }) if !operator => {
                Err(AdminError::Failed(NOT_AN_OPERATOR.to_owned()))
            }
            Ok(AdminRequest::MemberAdd {
                id,
                region,
                address,
                keyspace,
                timeout_ms,
            }) => {
                let goal = Goal::Add(Member { id, region });
                let timeout = ms(timeout_ms);
                members::change(
                    &self.handles,
                    &self.transport,
                    goal,
                    Some(address),
                    keyspace,
                    timeout,
                )
                .await
                .map(AdminResponse::MemberChange)
            }
            Ok(AdminRequest::MemberRemove {
                id,
                keyspace,
                timeout_ms,
            }) => {
                let goal = Goal::Remove(id);
                members::change(
                    &self.handles,
                    &self.transport,
                    goal,
                    None,
                    keyspace,
                    ms(timeout_ms),
                )
                .await
                .map(AdminResponse::MemberChange)
            }
            Err(e) => Err(e),
        };
        admin::encode_reply(&outcome)
    }

    async fn status(&self) -> NodeStatus {
        let links = self.transport.peer_states();
        let address = self.transport.local_addr().unwrap_or(self.address);
        let mut addresses: BTreeMap<NodeId, SocketAddr> =
            self.peers.iter().map(|p| (p.id, p.address)).collect();
        addresses.insert(self.id, address);
        for (&peer, link) in &links {
            if let Some(peer_address) = link.address {
                addresses.entry(peer).or_insert(peer_address);
            }
        }
        let view = View {
            me: self.id,
            membership: &self.membership,
            addresses: &addresses,
            links: &links,
        };
        let mut keyspaces = Vec::new();
        for handle in &self.handles {
            if let Some(metrics) = handle.metrics().await {
                keyspaces.push(keyspace_status(&view, &metrics));
            }
        }
        keyspaces.sort_by(|a, b| a.name.cmp(&b.name));
        NodeStatus {
            node: self.id,
            region: self.region.clone(),
            address,
            incarnation: match self.incarnation {
                Some(n) => Reported::Value(n),
                None => Reported::omitted("the data directory has no identity file"),
            },
            uptime_ms: millis(self.started.elapsed()),
            draining: self.draining.load(Ordering::SeqCst),
            peers: self
                .peers
                .iter()
                .map(|peer| peer_status(peer, links.get(&peer.id)))
                .collect(),
            keyspaces,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A configured peer and its link (`None`: the transport has no link for it).
pub(crate) fn peer_status(peer: &PeerConfig, link: Option<&PeerLinkState>) -> PeerStatus {
    let never = |what: &str| Reported::omitted(what);
    match link {
        None => PeerStatus {
            id: peer.id,
            region: peer.region.clone(),
            address: peer.address,
            connected: false,
            since_ms: never("the transport has no link to this peer"),
            last_heard_ms: never("the transport has no link to this peer"),
            rtt_us: never("the transport has no link to this peer"),
        },
        Some(link) => PeerStatus {
            id: peer.id,
            region: peer.region.clone(),
            address: peer.address,
            connected: link.connected,
            since_ms: link.since.map(millis).map_or_else(
                || never("the link has not come up since this replica started"),
                Reported::Value,
            ),
            last_heard_ms: link.last_heard.map(millis).map_or_else(
                || never("no frame from this peer since this replica started"),
                Reported::Value,
            ),
            rtt_us: link
                .rtt
                .map(|rtt| u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX))
                .map_or_else(|| never("not connected"), Reported::Value),
        },
    }
}

/// What every keyspace's answer shares.
pub(crate) struct View<'a> {
    pub(crate) me: NodeId,
    pub(crate) membership: &'a Membership,
    pub(crate) addresses: &'a BTreeMap<NodeId, SocketAddr>,
    pub(crate) links: &'a BTreeMap<NodeId, PeerLinkState>,
}

/// A gauge or counter the core reports, if it reports it.
fn reported(metrics: &KeyspaceMetrics, name: &str) -> Option<u64> {
    metrics
        .protocol_counters
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// One keyspace as this replica sees it, from its metrics snapshot.
pub(crate) fn keyspace_status(view: &View<'_>, metrics: &KeyspaceMetrics) -> KeyspaceStatus {
    let protocol = metrics.protocol.as_str();
    let (configuration, config_source) = match &metrics.configuration {
        Some(configuration) => (configuration.clone(), ConfigSource::Core),
        None => (
            Configuration::initial(view.membership),
            ConfigSource::Static,
        ),
    };
    let rejoining = reported(metrics, "rejoining") == Some(1);
    let members = configuration
        .members()
        .iter()
        .map(|m| MemberStatus {
            id: m.id,
            region: m.region.clone(),
            address: view.addresses.get(&m.id).copied().map_or_else(
                || Reported::omitted("not among this replica's configured peers"),
                Reported::Value,
            ),
            role: m.role,
            state: if m.id == view.me {
                if rejoining {
                    MemberState::Rejoining
                } else {
                    MemberState::Local
                }
            } else {
                match view.links.get(&m.id) {
                    Some(link) if link.connected => MemberState::Connected,
                    Some(_) => MemberState::Disconnected,
                    None => MemberState::NoLink,
                }
            },
        })
        .collect();
    let gauge = |name: &str, missing: &str| {
        reported(metrics, name).map_or_else(|| Reported::omitted(missing), Reported::Value)
    };
    let not_a_log = || {
        Reported::omitted(match protocol {
            "epaxos" => "EPaxos orders commands by dependencies, not log positions",
            "tempo" => "Tempo orders commands by timestamps, not log positions",
            "dynamo" => "Dynamo keeps no command log",
            _ => "this protocol keeps no command log",
        })
    };
    let (leader, next_to_execute, newest_known, waiting_execution) = match protocol {
        "multipaxos" => (
            match (
                reported(metrics, "leader_known"),
                reported(metrics, "leader"),
            ) {
                (Some(1), Some(leader)) => u16::try_from(leader).map_or_else(
                    |_| Reported::omitted(format!("the core reports leader {leader}")),
                    |id| Reported::Value(NodeId(id)),
                ),
                _ => Reported::omitted("this replica knows no leader yet"),
            },
            gauge("executed_up_to", "the core does not report it"),
            Reported::omitted("the Multi-Paxos core does not report the newest slot it knows of"),
            Reported::omitted(
                "the Multi-Paxos core does not report it; next to execute shows progress",
            ),
        ),
        "epaxos" | "tempo" => (
            Reported::omitted(format!("{protocol} is leaderless")),
            not_a_log(),
            not_a_log(),
            gauge("execution_waiting", "the core does not report it"),
        ),
        _ => (
            Reported::omitted(format!("{protocol} is leaderless")),
            not_a_log(),
            not_a_log(),
            Reported::omitted(format!("{protocol} applies writes as they arrive")),
        ),
    };
    let up: BTreeMap<NodeId, bool> = view
        .links
        .iter()
        .map(|(&peer, link)| (peer, link.connected))
        .collect();
    let node = crate::metrics::NodeView {
        node: view.me,
        links: &up,
        transport: None,
        wan: None,
        router_dropped: 0,
        incarnation: None,
    };
    KeyspaceStatus {
        not_serving: crate::metrics::readiness(&node, metrics).err(),
        name: metrics.keyspace.clone(),
        protocol: protocol.to_owned(),
        epoch: configuration.epoch(),
        config_source,
        members,
        leader,
        next_to_execute,
        newest_known,
        waiting_execution,
        pending_requests: metrics.pending_requests,
        log_bytes: metrics.storage.get("log_bytes").copied().map_or_else(
            || Reported::omitted("the log file's size could not be read"),
            Reported::Value,
        ),
        snapshot: snapshot_status(metrics),
    }
}

fn snapshot_status(metrics: &KeyspaceMetrics) -> Reported<SnapshotStatus> {
    let storage = &metrics.storage;
    let (Some(&bytes), Some(&records), Some(&age_secs)) = (
        storage.get("snapshot_bytes"),
        storage.get("snapshot_records"),
        storage.get("seconds_since_compaction"),
    ) else {
        return Reported::omitted("no compaction since this replica started");
    };
    let position = match metrics.protocol.as_str() {
        "multipaxos" => reported(metrics, "last_compaction_slot").map_or_else(
            || Reported::omitted("the core does not report it"),
            Reported::Value,
        ),
        protocol => Reported::omitted(format!(
            "the {protocol} core reports no log position for its snapshots"
        )),
    };
    Reported::Value(SnapshotStatus {
        position,
        bytes,
        records,
        age_secs,
    })
}

#[cfg(test)]
#[path = "status_test.rs"]
mod tests;
