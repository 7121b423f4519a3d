use super::*;
use crate::test_support::TempDir;

fn all_protocols() -> Vec<KeyspaceConfig> {
    let names: Vec<String> = PROTOCOLS.iter().map(|p| p.to_string()).collect();
    default_keyspaces(&names, 3).unwrap()
}

fn spec(wan: bool) -> ClusterSpec {
    let topology = Topology::builtin("epaxos-3").unwrap();
    ClusterSpec {
        addresses: (0..3)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 17_000 + i)))
            .collect(),
        metrics: Some(
            (0..3)
                .map(|i| SocketAddr::from(([127, 0, 0, 1], 19_100 + i)))
                .collect(),
        ),
        topology_ref: topology.name().to_owned(),
        topology,
        keyspaces: all_protocols(),
        wan,
    }
}

#[test]
fn generated_configs_load_and_describe_the_topology() {
    let dir = TempDir::new("cluster");
    let manifest = generate(dir.path(), &spec(true)).unwrap();
    assert_eq!(manifest.nodes.len(), 3);
    assert_eq!(Manifest::load(dir.path()).unwrap(), manifest);
    let topology = Topology::builtin("epaxos-3").unwrap();
    for node in &manifest.nodes {
        let config = NodeConfig::load(&node.config).unwrap();
        assert_eq!(config.id, NodeId(node.id));
        let (_, region) = topology.replicas()[usize::from(node.id)];
        assert_eq!(config.region, topology.regions()[region].name);
        assert_eq!(config.peers.len(), 2);
        assert_eq!(config.keyspaces.len(), PROTOCOLS.len());
        assert!(config.wan.is_some());
        assert!(config.tls.cert.exists(), "{}", config.tls.cert.display());
    }
}

#[test]
fn keyspace_options_reach_every_node_config() {
    let dir = TempDir::new("cluster-options");
    let mut spec = spec(false);
    spec.keyspaces = vec![
        KeyspaceConfig::Multipaxos(MultiPaxosKeyspace {
            name: "paxos-va".into(),
            initial_leader: Some(NodeId(2)),
            ..Default::default()
        }),
        KeyspaceConfig::Epaxos(EpaxosKeyspace {
            name: "thrifty".into(),
            thrifty: Some(true),
            ..Default::default()
        }),
    ];
    let manifest = generate(dir.path(), &spec).unwrap();
    assert_eq!(manifest.keyspaces, vec!["paxos-va", "thrifty"]);
    for node in &manifest.nodes {
        let config = NodeConfig::load(&node.config).unwrap();
        assert_eq!(config.keyspaces, spec.keyspaces);
    }
}

#[test]
fn a_wrong_address_count_or_protocol_is_refused() {
    let dir = TempDir::new("cluster-bad");
    let mut bad = spec(false);
    bad.addresses.pop();
    assert!(matches!(
        generate(dir.path(), &bad),
        Err(ClusterError::Spec(_))
    ));
    assert!(matches!(
        default_keyspace("raft", 3),
        Err(ClusterError::Spec(_))
    ));
    let mut bad = spec(false);
    bad.keyspaces.clear();
    assert!(matches!(
        generate(dir.path(), &bad),
        Err(ClusterError::Spec(_))
    ));
}

/// `cluster up` again in the same directory keeps its CA (certificates issued from it
/// stay valid) and issues only what is missing.
#[test]
fn generating_again_keeps_the_ca_and_issues_only_missing_certificates() {
    let dir = TempDir::new("cluster-again");
    generate(dir.path(), &spec(false)).unwrap();
    let certs = dir.path().join("certs");
    let ca = std::fs::read(certs.join("ca.pem")).unwrap();
    let node0 = std::fs::read(certs.join("node-0.pem")).unwrap();
    std::fs::remove_file(certs.join("node-2.pem")).unwrap();
    std::fs::remove_file(certs.join("node-2.key")).unwrap();
    generate(dir.path(), &spec(false)).unwrap();
    assert_eq!(std::fs::read(certs.join("ca.pem")).unwrap(), ca);
    assert_eq!(std::fs::read(certs.join("node-0.pem")).unwrap(), node0);
    crate::tls::TlsIdentity::load(&crate::tls::TlsPaths::node(&certs, NodeId(2))).unwrap();
}
