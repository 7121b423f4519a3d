use super::*;
use meridian_engine::configuration::{Change, ProposedChange, Role};
use meridian_engine::{Member, Metrics};

fn membership() -> Membership {
    Membership {
        members: (0..3)
            .map(|i| Member {
                id: NodeId(i),
                region: format!("rack-{i}"),
            })
            .collect(),
        rtt_us: Vec::new(),
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn link(connected: bool) -> PeerLinkState {
    PeerLinkState {
        address: None,
        connected,
        since: Some(Duration::from_millis(1_500)),
        last_heard: connected.then_some(Duration::from_millis(3)),
        rtt: connected.then_some(Duration::from_micros(250)),
    }
}

struct Fixture {
    membership: Membership,
    addresses: BTreeMap<NodeId, SocketAddr>,
    links: BTreeMap<NodeId, PeerLinkState>,
}

impl Fixture {
    /// Node 0 sees 1 connected and 2 disconnected; it knows the addresses of 0 and 1 only.
    fn new() -> Self {
        Self {
            membership: membership(),
            addresses: [(NodeId(0), addr(7000)), (NodeId(1), addr(7001))].into(),
            links: [(NodeId(1), link(true)), (NodeId(2), link(false))].into(),
        }
    }

    fn status(&self, metrics: &KeyspaceMetrics) -> KeyspaceStatus {
        let view = View {
            me: NodeId(0),
            membership: &self.membership,
            addresses: &self.addresses,
            links: &self.links,
        };
        keyspace_status(&view, metrics)
    }
}

fn metrics(protocol: &str, gauges: &[(&str, u64)]) -> KeyspaceMetrics {
    let mut counters = Metrics::new();
    for &(name, value) in gauges {
        counters.set(name, value);
    }
    KeyspaceMetrics {
        keyspace: format!("ks-{protocol}"),
        protocol: protocol.to_owned(),
        protocol_counters: counters,
        pending_requests: 4,
        ..KeyspaceMetrics::default()
    }
}

#[test]
fn static_membership_is_epoch_0_with_every_member_a_voter_and_its_link_state() {
    let status = Fixture::new().status(&metrics("epaxos", &[("rejoining", 0)]));
    assert_eq!(status.epoch, 0);
    assert_eq!(status.config_source, ConfigSource::Static);
    let seen: Vec<(u16, Role, MemberState, Option<SocketAddr>)> = status
        .members
        .iter()
        .map(|m| (m.id.0, m.role, m.state, m.address.value().copied()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (0, Role::Voter, MemberState::Local, Some(addr(7000))),
            (1, Role::Voter, MemberState::Connected, Some(addr(7001))),
            (2, Role::Voter, MemberState::Disconnected, None),
        ]
    );
    assert!(matches!(&status.members[2].address, Reported::Omitted(r) if r.contains("peers")));
    assert_eq!(status.members[1].region, "rack-1");
    assert_eq!(status.pending_requests, 4);
}

#[test]
fn a_core_configuration_wins_over_the_static_one() {
    let start = Configuration::initial(&membership());
    let added = start
        .apply(&ProposedChange {
            from_epoch: 0,
            change: Change::AddLearner(Member {
                id: NodeId(3),
                region: "rack-3".into(),
            }),
        })
        .unwrap();
    let mut m = metrics("multipaxos", &[("rejoining", 1)]);
    m.configuration = Some(added);
    let status = Fixture::new().status(&m);
    assert_eq!(status.epoch, 1);
    assert_eq!(status.config_source, ConfigSource::Core);
    let last = status.members.last().unwrap();
    assert_eq!((last.id, last.role), (NodeId(3), Role::Learner));
    assert_eq!(last.state, MemberState::NoLink);
    assert_eq!(status.members[0].state, MemberState::Rejoining);
}

#[test]
fn multipaxos_reports_its_leader_execution_and_snapshot_position() {
    let mut m = metrics(
        "multipaxos",
        &[
            ("leader_known", 1),
            ("leader", 2),
            ("executed_up_to", 42),
            ("last_compaction_slot", 40),
        ],
    );
    m.storage.insert("log_bytes", 4_096);
    m.storage.insert("snapshot_bytes", 512);
    m.storage.insert("snapshot_records", 3);
    m.storage.insert("seconds_since_compaction", 9);
    let status = Fixture::new().status(&m);
    assert_eq!(status.leader, Reported::Value(NodeId(2)));
    assert_eq!(status.next_to_execute, Reported::Value(42));
    assert!(matches!(status.newest_known, Reported::Omitted(_)));
    assert_eq!(status.log_bytes, Reported::Value(4_096));
    assert_eq!(
        status.snapshot,
        Reported::Value(SnapshotStatus {
            position: Reported::Value(40),
            bytes: 512,
            records: 3,
            age_secs: 9,
        })
    );
}

#[test]
fn an_unknown_leader_or_snapshot_is_omitted_with_a_reason_never_zero() {
    let status = Fixture::new().status(&metrics(
        "multipaxos",
        &[("leader_known", 0), ("leader", 0)],
    ));
    assert!(matches!(&status.leader, Reported::Omitted(r) if r.contains("no leader")));
    assert!(matches!(&status.snapshot, Reported::Omitted(r) if r.contains("no compaction")));
    assert!(matches!(status.log_bytes, Reported::Omitted(_)));
    assert_eq!(
        status.not_serving.as_deref(),
        Some("keyspace ks-multipaxos: no leader known")
    );
}

#[test]
fn serving_follows_the_health_rule_on_this_replicas_links() {
    let led_by_2 = metrics("multipaxos", &[("leader_known", 1), ("leader", 2)]);
    let status = Fixture::new().status(&led_by_2);
    assert_eq!(
        status.not_serving.as_deref(),
        Some("keyspace ks-multipaxos: leader 2 unreachable")
    );
    let led_by_1 = metrics("multipaxos", &[("leader_known", 1), ("leader", 1)]);
    assert_eq!(Fixture::new().status(&led_by_1).not_serving, None);
    assert_eq!(
        Fixture::new().status(&metrics("epaxos", &[])).not_serving,
        None
    );
}

#[test]
fn leaderless_protocols_say_so_and_report_what_they_track() {
    let mut m = metrics("epaxos", &[("execution_waiting", 5)]);
    m.storage.insert("snapshot_bytes", 100);
    m.storage.insert("snapshot_records", 1);
    m.storage.insert("seconds_since_compaction", 0);
    let status = Fixture::new().status(&m);
    assert!(matches!(&status.leader, Reported::Omitted(r) if r.contains("leaderless")));
    assert_eq!(status.waiting_execution, Reported::Value(5));
    assert!(matches!(&status.next_to_execute, Reported::Omitted(r) if r.contains("dependencies")));
    let Reported::Value(snapshot) = &status.snapshot else {
        panic!("{:?}", status.snapshot);
    };
    assert!(matches!(snapshot.position, Reported::Omitted(_)));
    let dynamo = Fixture::new().status(&metrics("dynamo", &[]));
    assert!(
        matches!(&dynamo.waiting_execution, Reported::Omitted(r) if r.contains("as they arrive"))
    );
    assert!(matches!(&dynamo.newest_known, Reported::Omitted(r) if r.contains("no command log")));
}

#[test]
fn a_peer_reports_its_link_times_or_why_not() {
    let peer = PeerConfig {
        id: NodeId(1),
        region: "rack-1".into(),
        address: addr(7001),
    };
    let up = peer_status(&peer, Some(&link(true)));
    assert!(up.connected);
    assert_eq!(up.since_ms, Reported::Value(1_500));
    assert_eq!(up.last_heard_ms, Reported::Value(3));
    assert_eq!(up.rtt_us, Reported::Value(250));
    let down = peer_status(&peer, Some(&link(false)));
    assert!(!down.connected);
    assert!(matches!(down.last_heard_ms, Reported::Omitted(_)));
    assert!(matches!(down.rtt_us, Reported::Omitted(_)));
    let none = peer_status(&peer, None);
    assert!(matches!(&none.since_ms, Reported::Omitted(r) if r.contains("no link")));
}
