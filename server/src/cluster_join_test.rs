use super::*;
use crate::local_cluster::{default_keyspaces, generate, ClusterSpec, PROTOCOLS};
use crate::test_support::TempDir;

fn lan3(dir: &Path) -> Manifest {
    let topology = Topology::builtin("lan-3").unwrap();
    let names: Vec<String> = PROTOCOLS.iter().map(|p| p.to_string()).collect();
    let spec = ClusterSpec {
        addresses: (0..3)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 27_000 + i)))
            .collect(),
        metrics: Some(
            (0..3)
                .map(|i| SocketAddr::from(([127, 0, 0, 1], 29_100 + i)))
                .collect(),
        ),
        topology_ref: topology.name().to_owned(),
        topology,
        keyspaces: default_keyspaces(&names, 3).unwrap(),
        wan: false,
    };
    generate(dir, &spec).unwrap()
}

#[test]
fn a_joining_node_gets_the_next_id_and_ports_and_every_keyspace_from_the_first_members() {
    let dir = TempDir::new("join");
    lan3(dir.path());
    let (manifest, node) = join(dir.path(), "rack-2").unwrap();
    assert_eq!(node.id, 3);
    assert_eq!(node.address, SocketAddr::from(([127, 0, 0, 1], 27_003)));
    assert_eq!(
        node.metrics,
        Some(SocketAddr::from(([127, 0, 0, 1], 29_103)))
    );
    assert!(node.joined);
    assert_eq!(Manifest::load(dir.path()).unwrap(), manifest);
    let config = NodeConfig::load(&node.config).unwrap();
    assert_eq!(config.id, NodeId(3));
    assert_eq!(config.region, "rack-2");
    assert_eq!(config.peers.len(), 3);
    assert!(config.tls.cert.exists());
    let [KeyspaceConfig::Multipaxos(keyspace), KeyspaceConfig::Epaxos(fast), KeyspaceConfig::Tempo(tempo), KeyspaceConfig::Dynamo(ring)] =
        config.keyspaces.as_slice()
    else {
        panic!(
            "expected the multipaxos, epaxos, tempo and dynamo keyspaces: {:?}",
            config.keyspaces
        );
    };
    assert_eq!(
        keyspace.initial_members,
        Some(vec![NodeId(0), NodeId(1), NodeId(2)])
    );
    assert_eq!(ring.initial_members, keyspace.initial_members);
    assert_eq!(fast.initial_members, keyspace.initial_members);
    assert_eq!(tempo.initial_members, keyspace.initial_members);
    // A second join counts the first: id 4, and epoch 0 is still nodes 0..3.
    let (_, fifth) = join(dir.path(), "rack-1").unwrap();
    assert_eq!(fifth.id, 4);
    let config = NodeConfig::load(&fifth.config).unwrap();
    assert_eq!(config.peers.len(), 4);
}

#[test]
fn an_unknown_region_is_refused_naming_the_regions() {
    let dir = TempDir::new("join-region");
    lan3(dir.path());
    let error = join(dir.path(), "mars").unwrap_err().to_string();
    assert!(
        error.contains("mars") && error.contains("rack-1"),
        "{error}"
    );
    assert_eq!(Manifest::load(dir.path()).unwrap().nodes.len(), 3);
}

#[test]
fn removal_is_recorded_and_a_failed_join_is_forgotten() {
    let dir = TempDir::new("join-remove");
    lan3(dir.path());
    let (_, node) = join(dir.path(), "rack-3").unwrap();
    let manifest = mark_removed(dir.path(), 0, false).unwrap();
    assert!(manifest.nodes[0].removed);
    let manifest = mark_removed(dir.path(), node.id, true).unwrap();
    assert_eq!(manifest.nodes.len(), 3);
}
