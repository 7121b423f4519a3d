//! Helpers for this crate's unit tests: temporary directories, certificates, sockets.

use crate::tls::{CertAuthority, TlsIdentity};
use meridian_engine::NodeId;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "meridian-test-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A test cluster CA with helpers to build identities.
pub(crate) struct TestCa(pub(crate) CertAuthority);

impl TestCa {
    pub(crate) fn new() -> Self {
        Self(CertAuthority::generate("test CA").expect("generate CA"))
    }

    pub(crate) fn node(&self, id: NodeId) -> TlsIdentity {
        let pair = self.0.issue_node(id).expect("issue node cert");
        TlsIdentity::from_pem(
            self.0.pem().cert.as_bytes(),
            pair.cert.as_bytes(),
            pair.key.as_bytes(),
        )
        .expect("node identity")
    }

    pub(crate) fn client(&self) -> TlsIdentity {
        let pair = self.0.issue_client("client").expect("issue client cert");
        TlsIdentity::from_pem(
            self.0.pem().cert.as_bytes(),
            pair.cert.as_bytes(),
            pair.key.as_bytes(),
        )
        .expect("client identity")
    }
}

/// `n` UDP sockets bound on loopback, with their addresses.
pub(crate) fn bound_sockets(n: usize) -> Vec<(UdpSocket, SocketAddr)> {
    (0..n)
        .map(|_| {
            let socket = UdpSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("bind");
            let addr = socket.local_addr().expect("local addr");
            (socket, addr)
        })
        .collect()
}

/// A lone transport on loopback whose node is the test: it reads the `Inbound`s.
pub(crate) fn lone_transport(
    ca: &TestCa,
) -> (
    crate::transport::endpoint::Transport,
    tokio::sync::mpsc::Receiver<crate::transport::endpoint::Inbound>,
) {
    use crate::transport::endpoint::{Transport, TransportConfig};
    let (socket, addr) = bound_sockets(1).pop().expect("a socket");
    let config = TransportConfig::new(
        NodeId(0),
        addr,
        std::collections::BTreeMap::new(),
        ca.node(NodeId(0)),
    );
    Transport::start_with_socket(config, socket).expect("start transport")
}

/// The next client request handed to the node, with where its answer goes.
pub(crate) async fn next_client_request(
    rx: &mut tokio::sync::mpsc::Receiver<crate::transport::endpoint::Inbound>,
) -> (
    crate::wire::RequestFrame,
    tokio::sync::oneshot::Sender<crate::wire::ReplyFrame>,
) {
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv()).await;
    match next {
        Ok(Some(crate::transport::endpoint::Inbound::Client { frame, reply })) => (frame, reply),
        other => panic!("expected a client request, got {:?}", other.is_ok()),
    }
}
