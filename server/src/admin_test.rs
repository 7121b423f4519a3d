use super::*;
use crate::wire::ClientFrame;
use meridian_engine::configuration::Role;
use proptest::prelude::*;

fn sample_status() -> NodeStatus {
    NodeStatus {
        node: NodeId(1),
        region: "rack-1".into(),
        address: "127.0.0.1:7001".parse().unwrap(),
        incarnation: Reported::Value(3),
        uptime_ms: 1_500,
        draining: false,
        peers: vec![PeerStatus {
            id: NodeId(0),
            region: "rack-0".into(),
            address: "127.0.0.1:7000".parse().unwrap(),
            connected: true,
            since_ms: Reported::Value(1_200),
            last_heard_ms: Reported::Value(4),
            rtt_us: Reported::omitted("not connected"),
        }],
        keyspaces: vec![KeyspaceStatus {
            name: "kv".into(),
            protocol: "multipaxos".into(),
            epoch: 0,
            config_source: ConfigSource::Static,
            members: vec![MemberStatus {
                id: NodeId(0),
                region: "rack-0".into(),
                address: Reported::omitted("not among this replica's configured peers"),
                role: Role::Learner,
                state: MemberState::Connected,
            }],
            leader: Reported::Value(NodeId(0)),
            next_to_execute: Reported::Value(42),
            newest_known: Reported::omitted("not reported"),
            waiting_execution: Reported::omitted("not reported"),
            not_serving: Some("keyspace kv: no leader known".into()),
            pending_requests: 2,
            log_bytes: Reported::Value(4_096),
            snapshot: Reported::Value(SnapshotStatus {
                position: Reported::Value(40),
                bytes: 512,
                records: 3,
                age_secs: 9,
            }),
        }],
    }
}

#[test]
fn a_request_round_trips_through_its_envelope_and_the_client_frame() {
    let frame = encode_request(&AdminRequest::Status).unwrap();
    assert_eq!(frame.version, ADMIN_VERSION);
    let wire = ClientFrame::Admin(frame.clone());
    let bytes = postcard::to_allocvec(&wire).unwrap();
    let back: ClientFrame = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, wire);
    assert_eq!(decode_request(&frame), Ok(AdminRequest::Status));
}

#[test]
fn an_answer_round_trips_including_omitted_values_and_errors() {
    let answer = Ok(AdminResponse::Status(sample_status()));
    let frame = encode_reply(&answer);
    assert_eq!(frame.version, ADMIN_VERSION);
    assert_eq!(decode_reply(&frame), Ok(answer));
    let refused = Err(AdminError::UnsupportedVersion {
        requested: 9,
        supported: 1,
    });
    assert_eq!(decode_reply(&encode_reply(&refused)), Ok(refused));
}

#[test]
fn a_version_the_replica_does_not_speak_is_refused_naming_both_versions() {
    for version in [0, ADMIN_VERSION + 1, u32::MAX] {
        let frame = AdminFrame {
            version,
            body: postcard::to_allocvec(&AdminRequest::Status).unwrap(),
        };
        let error = decode_request(&frame).unwrap_err();
        assert_eq!(
            error,
            AdminError::UnsupportedVersion {
                requested: version,
                supported: ADMIN_VERSION
            }
        );
        let message = error.to_string();
        assert!(message.contains(&version.to_string()), "{message}");
        assert!(message.contains("versions 1 to 2"), "{message}");
    }
}

#[test]
fn an_unknown_or_malformed_request_is_an_error_not_a_panic() {
    let unknown_variant = vec![7];
    let empty = Vec::new();
    let mut trailing = postcard::to_allocvec(&AdminRequest::Status).unwrap();
    trailing.push(0);
    for body in [unknown_variant, empty, trailing] {
        let frame = AdminFrame {
            version: ADMIN_VERSION,
            body: body.clone(),
        };
        match decode_request(&frame) {
            Err(AdminError::UnknownRequest { supported, detail }) => {
                assert_eq!(supported, ADMIN_VERSION);
                assert!(!detail.is_empty(), "{body:?}");
            }
            other => panic!("{body:?} gave {other:?}"),
        }
    }
    let error = decode_request(&AdminFrame {
        version: ADMIN_VERSION,
        body: vec![1, 2, 3],
    })
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("does not understand the request"),
        "{error}"
    );
}

#[test]
fn an_answer_the_client_cannot_read_names_both_versions() {
    let frame = AdminReplyFrame {
        version: 4,
        body: vec![0, 9, 9],
    };
    let error = decode_reply(&frame).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("admin protocol version 4"), "{message}");
    assert!(
        message.contains(&format!("(version {ADMIN_VERSION})")),
        "{message}"
    );
}

#[test]
fn reported_gives_its_value_only_when_reported() {
    assert_eq!(Reported::Value(5).value(), Some(&5));
    assert_eq!(Reported::<u64>::omitted("why").value(), None);
}

#[test]
fn membership_requests_round_trip_and_version_1_clients_still_get_status() {
    let add = AdminRequest::MemberAdd {
        id: NodeId(3),
        region: "rack-2".into(),
        address: "127.0.0.1:7003".parse().unwrap(),
        keyspace: None,
        timeout_ms: 60_000,
    };
    let remove = AdminRequest::MemberRemove {
        id: NodeId(0),
        keyspace: Some("multipaxos".into()),
        timeout_ms: 1,
    };
    for request in [add, remove] {
        assert_eq!(
            decode_request(&encode_request(&request).unwrap()),
            Ok(request)
        );
    }
    let v1 = AdminFrame {
        version: 1,
        body: postcard::to_allocvec(&AdminRequest::Status).unwrap(),
    };
    assert_eq!(decode_request(&v1), Ok(AdminRequest::Status));
    let answer: Result<AdminResponse, AdminError> =
        Ok(AdminResponse::MemberChange(vec![KeyspaceChange {
            keyspace: "epaxos".into(),
            protocol: "epaxos".into(),
            outcome: ChangeReport::Skipped("not supported".into()),
        }]));
    assert_eq!(decode_reply(&encode_reply(&answer)), Ok(answer));
}

proptest! {
    /// Whatever bytes arrive, decoding answers without panicking; nothing is taken as a
    /// request under a version the replica does not speak, and `Status` is taken under
    /// every version it does.
    #[test]
    fn arbitrary_bodies_never_panic(
        version in 0u32..4,
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let status = postcard::to_allocvec(&AdminRequest::Status).unwrap();
        let spoken = (1..=ADMIN_VERSION).contains(&version);
        let request = decode_request(&AdminFrame { version, body: body.clone() });
        if request.is_ok() {
            prop_assert!(spoken);
        }
        if spoken && body == status {
            prop_assert_eq!(request, Ok(AdminRequest::Status));
        }
        let _ = decode_reply(&AdminReplyFrame { version, body });
    }
}
