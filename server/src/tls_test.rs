use super::*;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

fn identity(ca: &CertAuthority, pair: &PemPair) -> TlsIdentity {
    TlsIdentity::from_pem(
        ca.pem().cert.as_bytes(),
        pair.cert.as_bytes(),
        pair.key.as_bytes(),
    )
    .unwrap()
}

fn server(identity: &TlsIdentity) -> quinn::Endpoint {
    let config = quinn::ServerConfig::with_crypto(identity.quic_server().unwrap());
    quinn::Endpoint::server(config, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap()
}

/// Dial `server` as `client`; returns what the server's accept and the client's
/// connection attempt saw (Ok = a usable connection on that side).
async fn handshake(
    server: &quinn::Endpoint,
    client: &TlsIdentity,
    server_name: &str,
) -> (Result<Option<NodeId>, String>, Result<(), String>) {
    let mut endpoint = quinn::Endpoint::client(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(
        client.quic_client(ALPN_CLIENT).unwrap(),
    ));
    let addr = server.local_addr().unwrap();
    let connect = endpoint.connect(addr, server_name).unwrap();
    let accept = async {
        let incoming = server.accept().await.ok_or("endpoint closed")?;
        let conn = incoming.await.map_err(|e| e.to_string())?;
        let chain = peer_chain(&conn).ok_or("no peer certificate")?;
        Ok((peer_node_id(&chain, (0..3).map(NodeId)), conn))
    };
    let dial = async {
        let conn = connect.await.map_err(|e| e.to_string())?;
        // TLS 1.3: the client finishes first; a refused client certificate shows up
        // as the server closing the connection right after.
        match tokio::time::timeout(Duration::from_millis(500), conn.closed()).await {
            Ok(reason) => Err(reason.to_string()),
            Err(_) => Ok(()),
        }
    };
    let (accepted, dialed) =
        tokio::time::timeout(Duration::from_secs(5), async { tokio::join!(accept, dial) })
            .await
            .expect("handshake attempt finishes");
    endpoint.close(0u32.into(), b"done");
    // The server's connection stayed open until the client's verdict was in.
    (accepted.map(|(id, _conn)| id), dialed)
}

#[tokio::test]
async fn a_client_signed_by_the_cluster_ca_is_accepted_and_told_apart_from_nodes() {
    let ca = CertAuthority::generate("test CA").unwrap();
    let node = identity(&ca, &ca.issue_node(NodeId(1)).unwrap());
    let server = server(&node);
    let client = identity(&ca, &ca.issue_client("client").unwrap());
    let (accepted, dialed) = handshake(&server, &client, CLUSTER_SERVER_NAME).await;
    assert_eq!(accepted, Ok(None), "a client certificate names no node");
    assert_eq!(dialed, Ok(()));
    let peer = identity(&ca, &ca.issue_node(NodeId(2)).unwrap());
    let (accepted, dialed) = handshake(&server, &peer, &node_server_name(NodeId(1))).await;
    assert_eq!(
        accepted,
        Ok(Some(NodeId(2))),
        "a node certificate names its node"
    );
    assert_eq!(dialed, Ok(()));
}

/// Only a certificate naming `NAME.operator.meridian` is an operator's: not a client's,
/// not a node's.
#[test]
fn operators_are_told_apart_from_clients_and_nodes() {
    let ca = CertAuthority::generate("test CA").unwrap();
    let chain =
        |pair: &PemPair| vec![CertificateDer::from_pem_slice(pair.cert.as_bytes()).unwrap()];
    assert!(is_operator(&chain(
        &ca.issue_operator_for("alice", 30).unwrap()
    )));
    assert!(!is_operator(&chain(&ca.issue_client("alice").unwrap())));
    assert!(!is_operator(&chain(&ca.issue_client("operator").unwrap())));
    assert!(!is_operator(&chain(&ca.issue_node(NodeId(0)).unwrap())));
    assert!(!is_operator(&[]));
}

#[tokio::test]
async fn a_client_with_a_certificate_from_another_ca_is_refused() {
    let ca = CertAuthority::generate("test CA").unwrap();
    let server = server(&identity(&ca, &ca.issue_node(NodeId(0)).unwrap()));
    let rogue_ca = CertAuthority::generate("rogue CA").unwrap();
    let rogue = rogue_ca.issue_client("client").unwrap();
    // The rogue trusts the real CA (so it would accept the server) but its own
    // certificate is signed by another CA.
    let rogue = TlsIdentity::from_pem(
        ca.pem().cert.as_bytes(),
        rogue.cert.as_bytes(),
        rogue.key.as_bytes(),
    )
    .unwrap();
    let (accepted, dialed) = handshake(&server, &rogue, CLUSTER_SERVER_NAME).await;
    assert!(accepted.is_err(), "server accepted a foreign certificate");
    assert!(dialed.is_err(), "client kept a connection: {dialed:?}");
}

#[tokio::test]
async fn a_server_with_a_certificate_from_another_ca_is_refused_by_the_client() {
    let ca = CertAuthority::generate("test CA").unwrap();
    let rogue_ca = CertAuthority::generate("rogue CA").unwrap();
    let rogue_server = identity(&rogue_ca, &rogue_ca.issue_node(NodeId(0)).unwrap());
    let server = server(&rogue_server);
    let client = identity(&ca, &ca.issue_client("client").unwrap());
    let (accepted, dialed) = handshake(&server, &client, CLUSTER_SERVER_NAME).await;
    assert!(dialed.is_err(), "client trusted a foreign server");
    assert!(accepted.is_err());
}

#[tokio::test]
async fn a_node_certificate_is_not_valid_for_another_nodes_name() {
    let ca = CertAuthority::generate("test CA").unwrap();
    let server = server(&identity(&ca, &ca.issue_node(NodeId(0)).unwrap()));
    let client = identity(&ca, &ca.issue_client("client").unwrap());
    let (_, dialed) = handshake(&server, &client, &node_server_name(NodeId(1))).await;
    assert!(dialed.is_err(), "node 0 passed as node 1");
}

/// A client of another client-protocol version (another ALPN; here the release before
/// admin requests) fails the handshake: it is
/// refused, never served frames it would misread.
#[tokio::test]
async fn a_client_of_another_protocol_version_fails_the_handshake() {
    let ca = CertAuthority::generate("test CA").unwrap();
    let server = server(&identity(&ca, &ca.issue_node(NodeId(0)).unwrap()));
    let client = identity(&ca, &ca.issue_client("client").unwrap());
    let mut endpoint = quinn::Endpoint::client(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(
        client.quic_client(b"meridian-client/1").unwrap(),
    ));
    let connect = endpoint
        .connect(server.local_addr().unwrap(), CLUSTER_SERVER_NAME)
        .unwrap();
    let accept = async {
        let incoming = server.accept().await.expect("an attempt arrives");
        incoming.await.map(|_| ())
    };
    let (dialed, accepted) = tokio::time::timeout(Duration::from_secs(5), async {
        tokio::join!(connect, accept)
    })
    .await
    .expect("the attempt finishes");
    assert!(dialed.is_err(), "a client of another version connected");
    assert!(accepted.is_err());
    // The same client with this version's ALPN is served.
    endpoint.set_default_client_config(quinn::ClientConfig::new(
        client.quic_client(ALPN_CLIENT).unwrap(),
    ));
    let connect = endpoint
        .connect(server.local_addr().unwrap(), CLUSTER_SERVER_NAME)
        .unwrap();
    let accept = async { server.accept().await.expect("attempt").await.map(|_| ()) };
    let (dialed, accepted) = tokio::join!(connect, accept);
    assert!(dialed.is_ok() && accepted.is_ok());
    // The previous version (bare replies) is still served, and says which it speaks.
    endpoint.set_default_client_config(quinn::ClientConfig::new(
        client.quic_client(ALPN_CLIENT_V2).unwrap(),
    ));
    let connect = endpoint
        .connect(server.local_addr().unwrap(), CLUSTER_SERVER_NAME)
        .unwrap();
    let accept = async { server.accept().await.expect("attempt").await };
    let (dialed, accepted) = tokio::join!(connect, accept);
    assert!(dialed.is_ok());
    let protocol = negotiated_alpn(&accepted.expect("accepted"));
    assert_eq!(protocol.as_deref(), Some(ALPN_CLIENT_V2));
}
