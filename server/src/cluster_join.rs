//! A replica added to, or removed from, a local cluster after `cluster up`
//! (`meridian cluster add` / `cluster remove`): what goes into the cluster directory.
//!
//! ```text
//!  join(dir, region) ─▶ next free id (highest + 1), QUIC and metrics ports (highest + 1)
//!                   ─▶ certs/node-<id>.{pem,key} issued by the cluster CA in certs/ca
//!                   ─▶ node-<id>.toml: every node of the manifest as a peer, and every
//!                      keyspace, each naming the cluster's first members as
//!                      `initial_members`
//!                   ─▶ cluster.toml: the node, `joined = true`
//!  mark_removed(dir, id) ─▶ cluster.toml: `removed = true`
//! ```
//!
//! Why every node, removed ones included, as a peer and `initial_members`: the new
//! replica replays the log from the configuration of epoch 0, which needs those members
//! and their regions; once its configuration leaves a node out, it stops dialing it.

use crate::certs::{self, Subject};
use crate::config::{KeyspaceConfig, NodeConfig};
use crate::local_cluster::{
    node_config_path, node_config_text, ClusterError, Manifest, ManifestNode, NodeText,
};
use crate::tls::LEAF_VALIDITY_DAYS;
use meridian_engine::topology::Topology;
use meridian_engine::NodeId;
use std::net::SocketAddr;
use std::path::Path;

/// Prepare replica `max id + 1` in `region` in the cluster directory `dir`: certificate,
/// config and manifest entry. Returns the manifest and the new node.
pub fn join(dir: &Path, region: &str) -> Result<(Manifest, ManifestNode), ClusterError> {
    let mut manifest = Manifest::load(dir)?;
    let spec = |message: String| ClusterError::Spec(message);
    let topology = Topology::resolve(&manifest.topology).map_err(|e| spec(e.to_string()))?;
    let region_index = topology.region_index(region).ok_or_else(|| {
        let known: Vec<&str> = topology.regions().iter().map(|r| r.name.as_str()).collect();
        spec(format!(
            "region {region:?} is not in topology {} (regions: {})",
            manifest.topology,
            known.join(", ")
        ))
    })?;
    let region = topology.regions()[region_index].name.clone();
    let first = manifest
        .nodes
        .iter()
        .find(|n| !n.joined)
        .ok_or_else(|| spec("the manifest names no node".into()))?;
    let template = NodeConfig::load(&first.config)?;
    let id = manifest
        .nodes
        .iter()
        .map(|n| n.id)
        .max()
        .and_then(|max| max.checked_add(1))
        .ok_or_else(|| spec("no node id left".into()))?;
    let next_port = |ports: &mut dyn Iterator<Item = SocketAddr>| {
        let highest = ports.max_by_key(SocketAddr::port)?;
        let port = highest.port().checked_add(1)?;
        Some(SocketAddr::new(highest.ip(), port))
    };
    let listen = next_port(&mut manifest.nodes.iter().map(|n| n.address))
        .ok_or_else(|| spec("no QUIC port left".into()))?;
    let metrics = next_port(&mut manifest.nodes.iter().filter_map(|n| n.metrics));
    let initial: Vec<NodeId> = manifest
        .nodes
        .iter()
        .filter(|n| !n.joined)
        .map(|n| NodeId(n.id))
        .collect();
    let keyspaces = KeyspaceConfig::for_joining_node(&template.keyspaces, &initial);
    if keyspaces.is_empty() {
        return Err(spec(format!(
            "the cluster in {} serves no keyspace",
            dir.display()
        )));
    }
    let certs_dir = dir.join("certs");
    let cert = certs_dir.join(format!("{}.pem", Subject::Node(NodeId(id)).file_stem()));
    if !cert.exists() {
        certs::issue(
            &certs_dir,
            None,
            &Subject::Node(NodeId(id)),
            LEAF_VALIDITY_DAYS,
            false,
        )?;
    }
    let cluster_id = manifest.cluster_id.clone().unwrap_or_default();
    let text = node_config_text(&NodeText {
        cluster_id: &cluster_id,
        id: NodeId(id),
        region: region.clone(),
        listen,
        metrics,
        peers: manifest
            .nodes
            .iter()
            .map(|n| (NodeId(n.id), n.region.clone(), n.address))
            .collect(),
        keyspaces: &keyspaces,
        wan: template.wan.as_ref().map(|w| w.topology.as_str()),
    });
    let path = node_config_path(dir, NodeId(id));
    crate::local_cluster::write(&path, &text)?;
    NodeConfig::load(&path)?;
    let node = ManifestNode {
        id,
        region,
        address: listen,
        metrics,
        config: path,
        joined: true,
        removed: false,
    };
    manifest.nodes.push(node.clone());
    manifest.save(dir)?;
    Ok((manifest, node))
}

/// Take node `id` out of the manifest's running membership (`removed = true`), or, for
/// a node whose addition failed before it ever joined, out of the manifest entirely.
pub fn mark_removed(dir: &Path, id: u16, forget: bool) -> Result<Manifest, ClusterError> {
    let mut manifest = Manifest::load(dir)?;
    if forget {
        manifest.nodes.retain(|n| n.id != id);
    } else if let Some(node) = manifest.nodes.iter_mut().find(|n| n.id == id) {
        node.removed = true;
    }
    manifest.save(dir)?;
    Ok(manifest)
}

#[cfg(test)]
#[path = "cluster_join_test.rs"]
mod tests;
