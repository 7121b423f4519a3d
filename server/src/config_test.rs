use super::*;
use meridian_engine::Level;
use std::time::Duration;

const GOOD: &str = r#"
id = 1
region = "us-west-1"
listen = "127.0.0.1:7001"
data_dir = "data/n1"
metrics = "127.0.0.1:9101"

[tls]
ca = "certs/ca.pem"
cert = "certs/node-1.pem"
key = "certs/node-1.key"

[[peers]]
id = 0
region = "us-east-1"
address = "127.0.0.1:7000"

[[peers]]
id = 2
region = "eu-west-1"
address = "127.0.0.1:7002"

[[keyspaces]]
name = "kv"
protocol = "multipaxos"
initial_leader = 2
heartbeat_ms = 20

[[keyspaces]]
name = "fast"
protocol = "epaxos"
thrifty = true

[[keyspaces]]
name = "cart"
protocol = "dynamo"
replicas = 3
default_consistency = "LOCAL_QUORUM"

[wan]
topology = "epaxos-3"
"#;

fn parse(text: &str) -> Result<NodeConfig, ConfigError> {
    NodeConfig::parse(text, Path::new("node.toml"))
}

/// The error text for `text`, which must be invalid.
fn error(text: &str) -> String {
    match parse(text) {
        Ok(config) => panic!("accepted an invalid config: {config:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_full_config_parses_into_typed_options() {
    let config = parse(GOOD).unwrap();
    assert_eq!(config.id, NodeId(1));
    assert_eq!(config.metrics, Some("127.0.0.1:9101".parse().unwrap()));
    assert_eq!(config.keyspaces.len(), 3);
    let KeyspaceConfig::Multipaxos(kv) = &config.keyspaces[0] else {
        panic!("multipaxos keyspace expected")
    };
    let engine = kv.engine_config(3).unwrap();
    assert_eq!(engine.initial_leader, NodeId(2));
    assert_eq!(engine.heartbeat_interval, Duration::from_millis(20));
    let KeyspaceConfig::Epaxos(fast) = &config.keyspaces[1] else {
        panic!("epaxos keyspace expected")
    };
    assert!(fast.engine_config().unwrap().thrifty);
    assert_eq!(
        config.keyspaces[2].default_consistency(),
        Consistency::Dynamo(Level::LocalQuorum)
    );
    assert_eq!(
        config.keyspaces[0].default_consistency(),
        Consistency::Linearizable
    );
}

#[test]
fn the_cluster_lists_members_in_id_order_with_topology_rtts() {
    let cluster = parse(GOOD).unwrap().cluster();
    let ids: Vec<u16> = cluster.ids().map(|id| id.0).collect();
    assert_eq!(ids, vec![0, 1, 2]);
    assert_eq!(cluster.region_of(NodeId(2)), Some("eu-west-1"));
    assert_eq!(cluster.rtt_us(NodeId(1), NodeId(1)), Some(0));
    let topology = Topology::builtin("epaxos-3").unwrap();
    let (east, west) = (
        topology.region_index("us-east-1").unwrap(),
        topology.region_index("us-west-1").unwrap(),
    );
    assert_eq!(
        cluster.rtt_us(NodeId(0), NodeId(1)),
        Some(topology.one_way_us(east, west) * 2)
    );
}

#[test]
fn relative_paths_are_resolved_against_the_config_file() {
    let dir = crate::test_support::TempDir::new("config");
    std::fs::create_dir_all(dir.path()).unwrap();
    let path = dir.path().join("node.toml");
    std::fs::write(&path, GOOD).unwrap();
    let config = NodeConfig::load(&path).unwrap();
    assert_eq!(config.data_dir, dir.path().join("data/n1"));
    assert_eq!(config.tls.key, dir.path().join("certs/node-1.key"));
    assert_eq!(
        config.wan.unwrap().topology,
        "epaxos-3",
        "builtin names stay names"
    );
}

#[test]
fn an_unknown_top_level_field_is_named() {
    let e = error(&GOOD.replace("metrics =", "metrix ="));
    assert!(e.contains("metrix"), "{e}");
}

#[test]
fn batching_is_on_by_default_and_max_batch_1_turns_it_off() {
    let epaxos = |text: &str| {
        let config = parse(text).unwrap();
        let KeyspaceConfig::Epaxos(fast) = &config.keyspaces[1] else {
            panic!("epaxos keyspace expected")
        };
        fast.engine_config().unwrap()
    };
    let multipaxos = |text: &str| {
        let config = parse(text).unwrap();
        let KeyspaceConfig::Multipaxos(kv) = &config.keyspaces[0] else {
            panic!("multipaxos keyspace expected")
        };
        kv.engine_config(3).unwrap()
    };
    let default = epaxos(GOOD);
    assert_eq!((default.max_batch, default.max_in_flight), (256, 10_000));
    assert_eq!(multipaxos(GOOD).max_batch, 256);
    let tuned = epaxos(&GOOD.replace(
        "thrifty = true",
        "thrifty = true\nmax_batch = 16\nmax_in_flight = 4",
    ));
    assert_eq!((tuned.max_batch, tuned.max_in_flight), (16, 4));
    let off = GOOD.replace("heartbeat_ms = 20", "heartbeat_ms = 20\nmax_batch = 1");
    assert_eq!(multipaxos(&off).max_batch, 1);
}

#[test]
fn an_option_of_another_protocol_is_an_unknown_field() {
    let e = error(&GOOD.replace("thrifty = true", "initial_leader = 0"));
    assert!(e.contains("initial_leader"), "{e}");
}

#[test]
fn an_unknown_protocol_is_named() {
    let e = error(&GOOD.replace("protocol = \"epaxos\"", "protocol = \"raft\""));
    assert!(e.contains("raft"), "{e}");
}

#[test]
fn a_wrongly_typed_field_is_named() {
    let e = error(&GOOD.replace("listen = \"127.0.0.1:7001\"", "listen = 7001"));
    assert!(e.contains("listen"), "{e}");
}

#[test]
fn a_missing_required_field_is_named() {
    let e = error(&GOOD.replace("data_dir = \"data/n1\"\n", ""));
    assert!(e.contains("data_dir"), "{e}");
}

#[test]
fn an_unknown_field_in_a_peer_is_named() {
    let e = error(&GOOD.replace(
        "address = \"127.0.0.1:7000\"",
        "address = \"127.0.0.1:7000\"\nweight = 2",
    ));
    assert!(e.contains("weight"), "{e}");
}

#[test]
fn node_ids_must_be_dense_and_unique() {
    let e = error(&GOOD.replace("id = 2", "id = 3"));
    assert!(e.contains("`peers`") && e.contains("2 is missing"), "{e}");
    let e = error(&GOOD.replace("id = 2", "id = 0"));
    assert!(e.contains("peers[1].id"), "{e}");
}

#[test]
fn duplicate_addresses_are_refused() {
    let e = error(&GOOD.replace("127.0.0.1:7002", "127.0.0.1:7000"));
    assert!(e.contains("peers[1].address"), "{e}");
}

#[test]
fn keyspace_names_must_be_unique() {
    let e = error(&GOOD.replace("name = \"fast\"", "name = \"kv\""));
    assert!(e.contains("keyspaces[1].name"), "{e}");
}

#[test]
fn an_initial_leader_outside_the_cluster_is_refused() {
    let e = error(&GOOD.replace("initial_leader = 2", "initial_leader = 7"));
    assert!(e.contains("keyspaces[0].initial_leader"), "{e}");
}

#[test]
fn flexible_quorums_must_intersect() {
    let e = error(&GOOD.replace("heartbeat_ms = 20", "phase1_quorum = 1\nphase2_quorum = 2"));
    assert!(e.contains("keyspaces[0].phase1_quorum"), "{e}");
    parse(&GOOD.replace("heartbeat_ms = 20", "phase1_quorum = 2\nphase2_quorum = 2")).unwrap();
}

#[test]
fn a_default_consistency_must_fit_the_protocol() {
    let e = error(&GOOD.replace("LOCAL_QUORUM", "linearizable"));
    assert!(e.contains("keyspaces[2].default_consistency"), "{e}");
    let e = error(&GOOD.replace("thrifty = true", "default_consistency = \"QUORUM\""));
    assert!(e.contains("keyspaces[1].default_consistency"), "{e}");
    let e = error(&GOOD.replace("LOCAL_QUORUM", "MOST"));
    assert!(e.contains("MOST"), "{e}");
}

#[test]
fn dynamo_replicas_cannot_exceed_the_cluster() {
    let e = error(&GOOD.replace("replicas = 3", "replicas = 4"));
    assert!(e.contains("keyspaces[2].replicas"), "{e}");
}

#[test]
fn wan_regions_must_exist_in_the_topology() {
    let e = error(&GOOD.replace("region = \"eu-west-1\"", "region = \"mars-1\""));
    assert!(e.contains("peers[1].region") && e.contains("mars-1"), "{e}");
    let e = error(&GOOD.replace("topology = \"epaxos-3\"", "topology = \"no-such-topology\""));
    assert!(e.contains("wan.topology"), "{e}");
}

#[test]
fn consistency_names_parse() {
    assert_eq!(
        parse_consistency("linearizable"),
        Ok(Consistency::Linearizable)
    );
    assert_eq!(parse_consistency("LOCAL"), Ok(Consistency::LocalRead));
    assert_eq!(
        parse_consistency("quorum"),
        Ok(Consistency::Dynamo(Level::Quorum))
    );
    assert_eq!(
        parse_consistency("R=1,W=3"),
        Ok(Consistency::Dynamo(Level::Explicit { r: 1, w: 3 }))
    );
    assert!(parse_consistency("strong").is_err());
    assert_eq!(parse_consistency("lease"), Ok(Consistency::Lease));
    assert_eq!(parse_consistency("read-index"), Ok(Consistency::ReadIndex));
    assert_eq!(parse_consistency("follower"), Ok(Consistency::Follower));
    assert_eq!(
        parse_consistency("stale:5s"),
        Ok(Consistency::Stale {
            bound_us: 5_000_000
        })
    );
    assert_eq!(
        parse_consistency("stale:250ms"),
        Ok(Consistency::Stale { bound_us: 250_000 })
    );
    assert!(parse_consistency("stale:5").is_err());
    assert!(parse_consistency("stale:0s").is_err());
}

#[test]
fn addresses_may_be_dns_names_and_an_unresolvable_one_is_shown_where_it_is() {
    let text = GOOD
        .replace("127.0.0.1:7001", "localhost:7001")
        .replace("\"127.0.0.1:7000\"", "\"localhost:7000\"");
    let config = parse(&text).unwrap();
    assert!(config.listen.ip().is_loopback() && config.listen.port() == 7001);
    assert!(config.peers[0].address.ip().is_loopback());
    assert_eq!(config.peers[0].address.port(), 7000);
    let err = error(&GOOD.replace("127.0.0.1:7002", "no-such-node.invalid:7002"));
    assert!(
        err.contains("address = \"no-such-node.invalid:7002\"")
            && err.contains("cannot resolve \"no-such-node.invalid\""),
        "{err}"
    );
    let err = error(&GOOD.replace("127.0.0.1:7002", "node-2"));
    assert!(err.contains("expected host:port"), "{err}");
}

#[test]
fn multipaxos_keyspaces_take_leases_below_the_election_timeout() {
    let keyspace = MultiPaxosKeyspace {
        name: "kv".into(),
        lease_ms: Some(300),
        clock_drift_ppm: Some(200),
        quorum_lease_holders: vec![NodeId(1), NodeId(2)],
        ..Default::default()
    };
    let engine = keyspace.engine_config(3).unwrap();
    assert_eq!(engine.lease, Some(Duration::from_millis(300)));
    assert_eq!(engine.clock_drift_ppm, 200);
    assert_eq!(engine.quorum_lease_holders, vec![NodeId(1), NodeId(2)]);
    let too_long = MultiPaxosKeyspace {
        lease_ms: Some(500),
        ..keyspace.clone()
    };
    assert!(too_long
        .engine_config(3)
        .unwrap_err()
        .contains("election timeout"));
    let no_lease = MultiPaxosKeyspace {
        lease_ms: None,
        ..keyspace.clone()
    };
    assert!(no_lease
        .engine_config(3)
        .unwrap_err()
        .contains("needs lease_ms"));
    let stranger = MultiPaxosKeyspace {
        quorum_lease_holders: vec![NodeId(7)],
        ..keyspace
    };
    assert!(stranger
        .engine_config(3)
        .unwrap_err()
        .contains("not a replica"));
}

#[test]
fn the_dynamo_object_limit_leaves_a_frame_room_for_four_objects_and_framing() {
    let frame = crate::transport::frame::DEFAULT_MAX_FRAME_BYTES;
    assert_eq!(dynamo_object_limit(frame), (4 << 20) - (16 << 10));
    for frame in [128 << 10, 1 << 20, frame, 64 << 20] {
        assert!(4 * dynamo_object_limit(frame) + FRAME_OVERHEAD_BYTES <= frame);
    }
    let small = GOOD.replace(
        "metrics = \"127.0.0.1:9101\"",
        "metrics = \"127.0.0.1:9101\"\nmax_frame_bytes = 65536",
    );
    let e = error(&small);
    assert!(e.contains("max_frame_bytes") && e.contains("131072"), "{e}");
    let enough = GOOD.replace(
        "metrics = \"127.0.0.1:9101\"",
        "metrics = \"127.0.0.1:9101\"\nmax_frame_bytes = 131072",
    );
    assert_eq!(parse(&enough).unwrap().max_frame_bytes(), 131_072);
}

#[test]
fn worker_threads_is_optional_and_at_least_one() {
    assert_eq!(parse(GOOD).unwrap().worker_threads, None);
    let one = GOOD.replace(
        "metrics = \"127.0.0.1:9101\"",
        "metrics = \"127.0.0.1:9101\"\nworker_threads = 1",
    );
    assert_eq!(parse(&one).unwrap().worker_threads, Some(1));
    let none = GOOD.replace(
        "metrics = \"127.0.0.1:9101\"",
        "metrics = \"127.0.0.1:9101\"\nworker_threads = 0",
    );
    let e = error(&none);
    assert!(
        e.contains("worker_threads") && e.contains("at least 1"),
        "{e}"
    );
}
