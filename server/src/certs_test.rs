use super::*;
use crate::test_support::{bound_sockets, TempDir};
use crate::tls::{TlsIdentity, TlsPaths, CA_VALIDITY_DAYS, LEAF_VALIDITY_DAYS};
use crate::transport::endpoint::{Inbound, Transport, TransportConfig};
use crate::wire::PeerFrame;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_keeps_the_ca_key_apart_and_private_keys_owner_only() {
    let dir = TempDir::new("certs-init");
    init(dir.path(), 3, CA_VALIDITY_DAYS, LEAF_VALIDITY_DAYS).unwrap();
    assert!(
        !dir.path().join("ca.key").exists(),
        "CA key beside node keys"
    );
    assert_eq!(mode(&ca_key_path(dir.path())), 0o600);
    assert_eq!(mode(&dir.path().join(CA_KEY_DIR)), 0o700);
    for stem in ["node-0", "node-1", "node-2", "client", "operator"] {
        assert_eq!(
            mode(&dir.path().join(format!("{stem}.key"))),
            0o600,
            "{stem}"
        );
    }
    for id in 0..3 {
        TlsIdentity::load(&TlsPaths::node(dir.path(), NodeId(id))).unwrap();
    }
    TlsIdentity::load(&TlsPaths::client(dir.path())).unwrap();
    TlsIdentity::load(&TlsPaths::operator(dir.path())).unwrap();
    assert_eq!(
        TlsPaths::operator_or_client(dir.path()),
        TlsPaths::operator(dir.path())
    );
}

#[test]
fn init_refuses_a_directory_that_holds_a_ca_and_changes_nothing() {
    let dir = TempDir::new("certs-refuse");
    init(dir.path(), 3, CA_VALIDITY_DAYS, LEAF_VALIDITY_DAYS).unwrap();
    let before: Vec<(PathBuf, Vec<u8>)> = certificate_files(dir.path())
        .unwrap()
        .into_iter()
        .chain([ca_key_path(dir.path())])
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    let err = init(dir.path(), 4, CA_VALIDITY_DAYS, LEAF_VALIDITY_DAYS).unwrap_err();
    assert!(matches!(err, CertsError::Exists { .. }), "{err}");
    assert!(err.to_string().contains("certs issue"), "{err}");
    for (path, bytes) in before {
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{}", path.display());
    }
    assert!(!dir.path().join("node-3.pem").exists());
}

#[test]
fn certificates_expire_after_the_days_asked_for() {
    let dir = TempDir::new("certs-days");
    init(dir.path(), 1, 100, 30).unwrap();
    let show = |stem: &str| {
        let text = std::fs::read_to_string(dir.path().join(format!("{stem}.pem"))).unwrap();
        describe(&text).unwrap().remove(0)
    };
    let ca = show("ca");
    assert!(ca.is_ca);
    assert!((99..=100).contains(&ca.days_left), "{ca}");
    let node = show("node-0");
    assert!(!node.is_ca);
    assert!((29..=30).contains(&node.days_left), "{node}");
    assert!(node.names.contains(&"node-0.meridian".to_owned()), "{node}");
    issue(dir.path(), None, &Subject::Client("ops".into()), 7, false).unwrap();
    let ops = show("ops");
    assert!((6..=7).contains(&ops.days_left), "{ops}");
    assert_eq!(ops.names, vec!["ops.meridian".to_owned()]);
}

#[test]
fn issue_refuses_to_overwrite_unless_replacing_and_checks_client_names() {
    let dir = TempDir::new("certs-issue");
    init(dir.path(), 2, CA_VALIDITY_DAYS, LEAF_VALIDITY_DAYS).unwrap();
    let node1 = dir.path().join("node-1.pem");
    let old = std::fs::read(&node1).unwrap();
    let err = issue(dir.path(), None, &Subject::Node(NodeId(1)), 30, false).unwrap_err();
    assert!(matches!(err, CertsError::Exists { .. }), "{err}");
    assert_eq!(std::fs::read(&node1).unwrap(), old);
    // Rotation: a new certificate and key for the same node, from the same CA.
    issue(dir.path(), None, &Subject::Node(NodeId(1)), 30, true).unwrap();
    assert_ne!(std::fs::read(&node1).unwrap(), old);
    TlsIdentity::load(&TlsPaths::node(dir.path(), NodeId(1))).unwrap();
    for bad in ["", "node-7", "ca", "a/b", "x y", "operator", "x.operator"] {
        assert!(matches!(
            issue(dir.path(), None, &Subject::Client(bad.into()), 30, false),
            Err(CertsError::ClientName(_))
        ));
    }
    // An operator certificate for another person, elsewhere: operator.pem there, its
    // name in the certificate; names with dots are refused as for clients.
    let elsewhere = TempDir::new("certs-operator");
    let (cert, _) = issue(
        dir.path(),
        Some(elsewhere.path()),
        &Subject::Operator("alice".into()),
        30,
        false,
    )
    .unwrap();
    assert_eq!(cert, elsewhere.path().join("operator.pem"));
    let pem = std::fs::read_to_string(&cert).unwrap();
    assert!(
        describe(&pem).unwrap()[0]
            .names
            .contains(&"alice.operator.meridian".to_owned()),
        "{:?}",
        describe(&pem).unwrap()
    );
    assert!(matches!(
        issue(dir.path(), None, &Subject::Operator("a.b".into()), 30, true),
        Err(CertsError::ClientName(_))
    ));
    let empty = TempDir::new("certs-no-ca");
    assert!(matches!(
        issue(empty.path(), None, &Subject::Node(NodeId(0)), 30, false),
        Err(CertsError::NoCa { .. })
    ));
}

#[test]
fn a_ca_key_that_is_not_the_certificates_is_refused() {
    let a = CertAuthority::generate("a").unwrap().pem();
    let b = CertAuthority::generate("b").unwrap().pem();
    assert!(CertAuthority::from_pem(&a.cert, &a.key).is_ok());
    let err = CertAuthority::from_pem(&a.cert, &b.key)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("does not belong"), "{err}");
}

/// Issue 17: a fourth node added later gets its certificate from the existing CA (the
/// CA and the old nodes' files unchanged), into a directory of its own holding no CA
/// key; old and new nodes then prove who they are to each other and exchange frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_added_later_interoperates_with_the_old_nodes() {
    let dir = TempDir::new("certs-fourth");
    init(dir.path(), 3, CA_VALIDITY_DAYS, LEAF_VALIDITY_DAYS).unwrap();
    let ca_before = std::fs::read(dir.path().join(CA_CERT_FILE)).unwrap();
    let node0_before = std::fs::read(dir.path().join("node-0.pem")).unwrap();
    let host3 = dir.path().join("host-3");
    issue(
        dir.path(),
        Some(&host3),
        &Subject::Node(NodeId(3)),
        LEAF_VALIDITY_DAYS,
        false,
    )
    .unwrap();
    assert_eq!(
        std::fs::read(dir.path().join(CA_CERT_FILE)).unwrap(),
        ca_before
    );
    assert_eq!(
        std::fs::read(dir.path().join("node-0.pem")).unwrap(),
        node0_before
    );
    assert_eq!(std::fs::read(host3.join(CA_CERT_FILE)).unwrap(), ca_before);
    assert!(
        !ca_key_path(&host3).exists(),
        "the CA key left its directory"
    );

    let ids = [NodeId(0), NodeId(3)];
    let sockets = bound_sockets(2);
    let addrs: BTreeMap<NodeId, std::net::SocketAddr> = ids
        .iter()
        .zip(&sockets)
        .map(|(&id, (_, a))| (id, *a))
        .collect();
    let mut nodes = Vec::new();
    for ((socket, addr), (id, certs)) in sockets.into_iter().zip([
        (NodeId(0), dir.path().to_owned()),
        (NodeId(3), host3.clone()),
    ]) {
        let tls = TlsIdentity::load(&TlsPaths::node(&certs, id)).unwrap();
        let config = TransportConfig::new(id, addr, addrs.clone(), tls);
        nodes.push(Transport::start_with_socket(config, socket).unwrap());
    }
    let frame = |payload: &[u8]| PeerFrame {
        keyspace: "ks".into(),
        payload: payload.to_vec(),
    };
    nodes[0].0.send(NodeId(3), frame(b"old to new"));
    nodes[1].0.send(NodeId(0), frame(b"new to old"));
    for (i, expected_from, payload) in
        [(1, NodeId(0), b"old to new"), (0, NodeId(3), b"new to old")]
    {
        match tokio::time::timeout(Duration::from_secs(10), nodes[i].1.recv()).await {
            Ok(Some(Inbound::Peer { from, frame })) => {
                assert_eq!(from, expected_from, "identity proven by the certificate");
                assert_eq!(frame.payload, payload);
            }
            other => panic!("node {i}: no frame: {other:?}"),
        }
    }
}
