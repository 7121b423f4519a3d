use super::*;
use meridian_engine::configuration::Role;
use meridian_engine::NodeId;
use meridian_server::admin::{ConfigSource, MemberState};

fn member(id: u16, address: Option<&str>, role: Role, state: MemberState) -> MemberStatus {
    MemberStatus {
        id: NodeId(id),
        region: format!("rack-{id}"),
        address: address.map_or_else(
            || Reported::omitted("not among this replica's configured peers"),
            |a| Reported::Value(a.parse().unwrap()),
        ),
        role,
        state,
    }
}

fn keyspace(name: &str, protocol: &str, epoch: u64, members: Vec<MemberStatus>) -> KeyspaceStatus {
    KeyspaceStatus {
        name: name.into(),
        protocol: protocol.into(),
        epoch,
        config_source: ConfigSource::Static,
        members,
        leader: Reported::omitted(format!("{protocol} is leaderless")),
        next_to_execute: Reported::omitted("no log"),
        newest_known: Reported::omitted("no log"),
        waiting_execution: Reported::Value(0),
        not_serving: None,
        pending_requests: 0,
        log_bytes: Reported::Value(100),
        snapshot: Reported::omitted("no compaction since this replica started"),
    }
}

fn status() -> NodeStatus {
    let mut mp = keyspace(
        "mp",
        "multipaxos",
        2,
        vec![
            member(0, Some("127.0.0.1:7000"), Role::Voter, MemberState::Local),
            member(3, None, Role::Learner, MemberState::NoLink),
        ],
    );
    mp.leader = Reported::Value(NodeId(0));
    mp.not_serving = Some("keyspace mp: leader 0 unreachable".into());
    mp.next_to_execute = Reported::Value(17);
    mp.snapshot = Reported::Value(SnapshotStatus {
        position: Reported::Value(12),
        bytes: 300,
        records: 2,
        age_secs: 5,
    });
    NodeStatus {
        node: NodeId(0),
        region: "rack-0".into(),
        address: "127.0.0.1:7000".parse().unwrap(),
        incarnation: Reported::Value(1),
        uptime_ms: 2_500,
        draining: false,
        peers: vec![PeerStatus {
            id: NodeId(1),
            region: "rack-1".into(),
            address: "127.0.0.1:7001".parse().unwrap(),
            connected: false,
            since_ms: Reported::Value(800),
            last_heard_ms: Reported::Value(900),
            rtt_us: Reported::omitted("not connected"),
        }],
        keyspaces: vec![
            keyspace(
                "ep",
                "epaxos",
                0,
                vec![member(
                    0,
                    Some("127.0.0.1:7000"),
                    Role::Voter,
                    MemberState::Local,
                )],
            ),
            mp,
        ],
    }
}

#[test]
fn member_list_prints_one_stable_line_per_member() {
    assert_eq!(
        members_text(&status()),
        "ep 0 rack-0 127.0.0.1:7000 voter local 0\n\
         mp 0 rack-0 127.0.0.1:7000 voter local 2\n\
         mp 3 rack-3 - learner no-link 2\n"
    );
}

#[test]
fn member_list_json_has_every_member_and_says_why_a_field_is_missing() {
    let json = members_json(&status());
    assert_eq!(json["node"], 0);
    let members = json["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    assert_eq!(members[0]["keyspace"], "ep");
    assert_eq!(members[1]["epoch"], 2);
    assert_eq!(members[1]["role"], "voter");
    assert_eq!(members[2]["address"], Json::Null);
    assert!(members[2]["omitted"]["address"]
        .as_str()
        .unwrap()
        .contains("configured peers"));
    assert_eq!(members[2]["state"], "no-link");
}

#[test]
fn status_text_shows_values_and_reasons_for_what_is_not_tracked() {
    let text = status_text(&status());
    for expected in [
        "node 0 (region rack-0, 127.0.0.1:7000), incarnation 1, up 2.5 s\n",
        "  1 rack-1 127.0.0.1:7001 disconnected for 0.8 s, last heard 0.9 s ago, rtt n/a (not connected)\n",
        "keyspace mp (multipaxos), configuration epoch 2 (static)\n",
        "    3 rack-3 n/a (not among this replica's configured peers) learner no-link\n",
        "  leader: 0\n",
        "  next to execute: 17\n",
        "  newest known: n/a (no log)\n",
        "  last snapshot: position 12, 300 bytes, 2 records, 5 s ago\n",
        "keyspace ep (epaxos), configuration epoch 0 (static)\n",
        "  leader: n/a (epaxos is leaderless)\n",
        "  serving: yes\n",
        "  serving: no (keyspace mp: leader 0 unreachable)\n",
        "  last snapshot: n/a (no compaction since this replica started)\n",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
}

#[test]
fn status_json_reports_nulls_with_reasons() {
    let json = status_json(&status());
    assert_eq!(json["node"], 0);
    assert_eq!(json["incarnation"], 1);
    assert_eq!(json["peers"][0]["connected"], false);
    assert_eq!(json["peers"][0]["rtt_us"], Json::Null);
    assert_eq!(json["peers"][0]["omitted"]["rtt_us"], "not connected");
    let mp = &json["keyspaces"][1];
    assert_eq!(mp["leader"], 0);
    assert_eq!(mp["snapshot"]["position"], 12);
    assert_eq!(mp["members"][1]["role"], "learner");
    let ep = &json["keyspaces"][0];
    assert_eq!(ep["leader"], Json::Null);
    assert_eq!(ep["omitted"]["leader"], "epaxos is leaderless");
    assert_eq!(ep["waiting_execution"], 0);
    assert_eq!(ep["serving"], true);
    assert_eq!(ep["not_serving_reason"], Json::Null);
    assert_eq!(mp["serving"], false);
    assert_eq!(
        mp["not_serving_reason"],
        "keyspace mp: leader 0 unreachable"
    );
}
