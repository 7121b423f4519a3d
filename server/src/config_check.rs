//! `meridian config check`: a cluster's node configs, one per host, checked against
//! each other. Each file on its own is checked at load; here the set must agree:
//!
//! ```text
//!  ids        one config per node id 0..n, every config counting the same n nodes
//!  peers      node a's entry for node b has b's region and b's listen port (and address,
//!             unless b listens on a wildcard address)
//!  keyspaces  the same keyspaces with the same protocols and options everywhere
//!  joining    a node added by `member add` (its keyspaces name the first members as
//!             `initial_members`, without it): it counts every node, serves the others'
//!             keyspaces, and its `initial_members` are exactly the other configs' ids
//!  cluster_id the same everywhere (or nowhere)
//!  wan        emulation on everywhere with one topology, or nowhere
//!  tls        where the files are readable from here: one CA certificate, and each
//!             node's certificate names that node (node-<id>.meridian)
//! ```

use crate::config::{KeyspaceConfig, NodeConfig};
use crate::tls::{self, TlsIdentity};
use meridian_engine::NodeId;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Every disagreement between `configs` (each a file and what it loaded as), as
/// messages naming the files; empty when the set is consistent.
pub fn check_cluster(configs: &[(PathBuf, NodeConfig)]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut by_id: BTreeMap<NodeId, &(PathBuf, NodeConfig)> = BTreeMap::new();
    for entry in configs {
        if let Some(other) = by_id.insert(entry.1.id, entry) {
            problems.push(format!(
                "{} and {} are both node {}",
                other.0.display(),
                entry.0.display(),
                entry.1.id.0
            ));
        }
    }
    let (joining, first_members): (Vec<_>, Vec<_>) =
        configs.iter().partition(|(_, c)| is_joining(c));
    let Some(&(first_path, first)) = first_members.first().map(|e| (&e.0, &e.1)).as_ref() else {
        return vec!["no configs given (or only configs of joining nodes)".into()];
    };
    let n = first.peers.len() + 1;
    for (path, config) in &joining {
        check_joining(
            path,
            config,
            first_path,
            first,
            &first_members,
            &mut problems,
        );
        check_peers(path, config, &by_id, &mut problems);
    }
    for (path, config) in first_members.iter().copied() {
        if config.peers.len() + 1 != n {
            problems.push(format!(
                "{} counts {} nodes, {} counts {n}",
                path.display(),
                config.peers.len() + 1,
                first_path.display()
            ));
        }
    }
    for id in (0..n).map(|i| NodeId(i as u16)) {
        if !by_id.contains_key(&id) {
            problems.push(format!("no config for node {} (ids run 0..{n})", id.0));
        }
    }
    for (path, config) in first_members.iter().copied() {
        check_peers(path, config, &by_id, &mut problems);
        if config.keyspaces != first.keyspaces {
            problems.push(keyspace_difference(first_path, first, path, config));
        }
        if config.cluster_id != first.cluster_id {
            problems.push(format!(
                "{}: cluster_id {:?}, but {}: {:?}",
                path.display(),
                config.cluster_id,
                first_path.display(),
                first.cluster_id
            ));
        }
        let topology = |c: &NodeConfig| c.wan.as_ref().map(|w| w.topology.clone());
        if topology(config) != topology(first) {
            problems.push(format!(
                "{}: WAN emulation {:?}, but {}: {:?}",
                path.display(),
                topology(config),
                first_path.display(),
                topology(first)
            ));
        }
    }
    check_tls(configs, &mut problems);
    problems
}

/// Whether `config` is a node added after the cluster started: a keyspace of it names
/// initial members without it.
fn is_joining(config: &NodeConfig) -> bool {
    config.keyspaces.iter().any(|k| {
        k.initial_members()
            .is_some_and(|members| !members.contains(&config.id))
    })
}

/// A joining node: the first members' keyspaces, with their ids as
/// `initial_members`.
fn check_joining(
    path: &std::path::Path,
    config: &NodeConfig,
    first_path: &std::path::Path,
    first: &NodeConfig,
    first_members: &[&(PathBuf, NodeConfig)],
    problems: &mut Vec<String>,
) {
    let mut ids: Vec<NodeId> = first_members.iter().map(|(_, c)| c.id).collect();
    ids.sort();
    let expected = KeyspaceConfig::for_joining_node(&first.keyspaces, &ids);
    if config.keyspaces != expected {
        problems.push(format!(
            "{} is a joining node (its initial_members leave it out): it must serve exactly \
             the keyspaces of {}, each with initial_members = {:?} (the other \
             configs' ids)",
            path.display(),
            first_path.display(),
            ids.iter().map(|id| id.0).collect::<Vec<_>>()
        ));
    }
}

fn check_peers(
    path: &std::path::Path,
    config: &NodeConfig,
    by_id: &BTreeMap<NodeId, &(PathBuf, NodeConfig)>,
    problems: &mut Vec<String>,
) {
    for (i, peer) in config.peers.iter().enumerate() {
        let Some((their_path, them)) = by_id.get(&peer.id) else {
            continue;
        };
        let at = format!("{}: peers[{i}] (node {})", path.display(), peer.id.0);
        if peer.region != them.region {
            problems.push(format!(
                "{at}: region {:?}, but {} says {:?}",
                peer.region,
                their_path.display(),
                them.region
            ));
        }
        let wildcard = them.listen.ip().is_unspecified();
        if peer.address.port() != them.listen.port()
            || (!wildcard && peer.address.ip() != them.listen.ip())
        {
            problems.push(format!(
                "{at}: address {}, but {} listens on {}",
                peer.address,
                their_path.display(),
                them.listen
            ));
        }
    }
}

fn keyspace_difference(
    first_path: &std::path::Path,
    first: &NodeConfig,
    path: &std::path::Path,
    config: &NodeConfig,
) -> String {
    let names = |c: &NodeConfig| -> Vec<String> {
        c.keyspaces.iter().map(|k| k.name().to_owned()).collect()
    };
    if names(first) != names(config) {
        return format!(
            "{} serves keyspaces {:?}, {} serves {:?}",
            path.display(),
            names(config),
            first_path.display(),
            names(first)
        );
    }
    let differing = config
        .keyspaces
        .iter()
        .zip(&first.keyspaces)
        .find(|(a, b)| a != b)
        .map_or_else(String::new, |(a, b)| format!("{a:?} vs {b:?}"));
    format!(
        "{}: keyspace options differ from {}: {differing}",
        path.display(),
        first_path.display()
    )
}

/// Certificates, where readable from this host.
fn check_tls(configs: &[(PathBuf, NodeConfig)], problems: &mut Vec<String>) {
    let mut cas: BTreeMap<Vec<u8>, Vec<String>> = BTreeMap::new();
    for (path, config) in configs {
        if let Ok(ca) = std::fs::read(&config.tls.ca) {
            cas.entry(ca).or_default().push(path.display().to_string());
        }
        let Ok(cert) = std::fs::read(&config.tls.cert) else {
            continue;
        };
        let chain: Result<Vec<CertificateDer<'static>>, _> =
            CertificateDer::pem_slice_iter(&cert).collect();
        let named = chain
            .ok()
            .and_then(|chain| tls::peer_node_id(&chain, [config.id]));
        if named != Some(config.id) {
            problems.push(format!(
                "{}: {} does not name node {} ({})",
                path.display(),
                config.tls.cert.display(),
                config.id.0,
                tls::node_server_name(config.id)
            ));
        }
        if let Err(e) = TlsIdentity::load(&config.tls.paths()) {
            problems.push(format!("{}: {e}", path.display()));
        }
    }
    if cas.len() > 1 {
        let groups: Vec<String> = cas.values().map(|files| files.join(", ")).collect();
        problems.push(format!(
            "the configs trust different CA files: {}",
            groups.join(" | ")
        ));
    }
}

#[cfg(test)]
#[path = "config_check_test.rs"]
mod tests;
