//! Cluster certificates and mutual-TLS configurations.
//!
//! ```text
//!  meridian certs ─▶ ca.pem / ca.key            the cluster CA (self-signed)
//!                    node-<id>.pem / .key       SANs: node-<id>.meridian, meridian, localhost, 127.0.0.1
//!                    client.pem / client.key    SAN: client.meridian (client auth only)
//!
//!  server side: WebPkiClientVerifier(CA) — a peer without a CA-signed certificate is refused
//!  client side: server verified against the CA and the expected name
//! ```
//!
//! Every node certificate also works as a client certificate, which is how nodes dial
//! each other. A node tells a peer node from a client by the certificate's name
//! ([`peer_node_id`]): only `node-<id>.meridian` speaks for node `id`.

use meridian_engine::NodeId;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::RootCertStore;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// ALPN of node-to-node connections.
pub const ALPN_PEER: &[u8] = b"meridian-peer/1";
/// ALPN of client connections.
pub const ALPN_CLIENT: &[u8] = b"meridian-client/1";
/// A name every node certificate carries: what clients verify when they do not know
/// which node they reach.
pub const CLUSTER_SERVER_NAME: &str = "meridian";

/// The name in node `id`'s certificate that peers verify.
pub fn node_server_name(id: NodeId) -> String {
    format!("node-{}.meridian", id.0)
}

/// What can go wrong building certificates or TLS configurations.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Certificate generation failed.
    #[error("generating certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A PEM file did not hold what it should.
    #[error("{what}: {message}")]
    Pem {
        /// Which file or item.
        what: String,
        /// What was wrong.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// The rustls configuration cannot run QUIC (no TLS 1.3 initial suite).
    #[error("QUIC needs TLS 1.3: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
}

/// A certificate and its private key, PEM-encoded.
#[derive(Clone, Debug)]
pub struct PemPair {
    /// The certificate.
    pub cert: String,
    /// The private key (PKCS#8).
    pub key: String,
}

/// A cluster certificate authority held in memory while it issues certificates.
pub struct CertAuthority {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl CertAuthority {
    /// A fresh self-signed CA named `name`.
    pub fn generate(name: &str) -> Result<Self, TlsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(Self { cert, key })
    }

    /// The CA certificate and key.
    pub fn pem(&self) -> PemPair {
        PemPair {
            cert: self.cert.pem(),
            key: self.key.serialize_pem(),
        }
    }

    /// A certificate for node `id`, valid as server and as client.
    pub fn issue_node(&self, id: NodeId) -> Result<PemPair, TlsError> {
        let names = vec![
            node_server_name(id),
            CLUSTER_SERVER_NAME.to_owned(),
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ];
        self.issue(
            &format!("meridian node {}", id.0),
            names,
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        )
    }

    /// A client certificate named `name`.
    pub fn issue_client(&self, name: &str) -> Result<PemPair, TlsError> {
        self.issue(
            name,
            vec![format!("{name}.meridian")],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
        )
    }

    fn issue(
        &self,
        common_name: &str,
        names: Vec<String>,
        usages: Vec<ExtendedKeyUsagePurpose>,
    ) -> Result<PemPair, TlsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = usages;
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(PemPair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}

/// Where a node's or client's TLS files are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsPaths {
    /// The cluster CA certificate.
    pub ca: PathBuf,
    /// This party's certificate.
    pub cert: PathBuf,
    /// This party's private key.
    pub key: PathBuf,
}

impl TlsPaths {
    /// The files `meridian certs` wrote in `dir` for node `id`.
    pub fn node(dir: &Path, id: NodeId) -> Self {
        Self {
            ca: dir.join("ca.pem"),
            cert: dir.join(format!("node-{}.pem", id.0)),
            key: dir.join(format!("node-{}.key", id.0)),
        }
    }

    /// The client files `meridian certs` wrote in `dir`.
    pub fn client(dir: &Path) -> Self {
        Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("client.pem"),
            key: dir.join("client.key"),
        }
    }
}

/// Write a new CA, `nodes` node certificates and one client certificate into `dir`.
/// Private keys are written readable by the owner only.
pub fn write_cluster_certs(dir: &Path, nodes: u16) -> Result<(), TlsError> {
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let ca = CertAuthority::generate("meridian cluster CA")?;
    write_pair(dir, "ca", &ca.pem())?;
    for i in 0..nodes {
        write_pair(dir, &format!("node-{i}"), &ca.issue_node(NodeId(i))?)?;
    }
    write_pair(dir, "client", &ca.issue_client("client")?)?;
    Ok(())
}

fn write_pair(dir: &Path, stem: &str, pair: &PemPair) -> Result<(), TlsError> {
    write_file(
        &dir.join(format!("{stem}.pem")),
        pair.cert.as_bytes(),
        0o644,
    )?;
    write_file(&dir.join(format!("{stem}.key")), pair.key.as_bytes(), 0o600)
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| TlsError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)
}

/// A party's trust roots, certificate chain and key: everything a TLS config needs.
#[derive(Debug)]
pub struct TlsIdentity {
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        Self {
            roots: self.roots.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl TlsIdentity {
    /// Read the CA, certificate and key files.
    pub fn load(paths: &TlsPaths) -> Result<Self, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Io {
                path: path.to_owned(),
                source,
            })
        };
        Self::from_pem(&read(&paths.ca)?, &read(&paths.cert)?, &read(&paths.key)?).map_err(|e| {
            match e {
                TlsError::Pem { what, message } => TlsError::Pem {
                    what: format!(
                        "{what} ({} / {})",
                        paths.cert.display(),
                        paths.key.display()
                    ),
                    message,
                },
                other => other,
            }
        })
    }

    /// Build from PEM text: the CA certificate(s), this party's chain, its key.
    pub fn from_pem(ca: &[u8], cert: &[u8], key: &[u8]) -> Result<Self, TlsError> {
        let pem_error = |what: &str| {
            let what = what.to_owned();
            move |e: rustls::pki_types::pem::Error| TlsError::Pem {
                what,
                message: e.to_string(),
            }
        };
        let mut roots = RootCertStore::empty();
        for der in CertificateDer::pem_slice_iter(ca) {
            roots.add(der.map_err(pem_error("CA certificate"))?)?;
        }
        if roots.is_empty() {
            return Err(TlsError::Pem {
                what: "CA certificate".into(),
                message: "no certificate found".into(),
            });
        }
        let chain = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_error("certificate"))?;
        if chain.is_empty() {
            return Err(TlsError::Pem {
                what: "certificate".into(),
                message: "no certificate found".into(),
            });
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(pem_error("private key"))?;
        Ok(Self {
            roots: Arc::new(roots),
            chain,
            key,
        })
    }

    /// Server-side QUIC crypto: TLS 1.3, a certificate signed by the cluster CA is
    /// required from every client, peers and clients told apart by ALPN.
    pub fn quic_server(&self) -> Result<Arc<QuicServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider.clone())
                .build()?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![ALPN_PEER.to_vec(), ALPN_CLIENT.to_vec()];
        Ok(Arc::new(QuicServerConfig::try_from(config)?))
    }

    /// Client-side QUIC crypto speaking `alpn`: the server must present a certificate
    /// signed by the cluster CA; this party presents its own.
    pub fn quic_client(&self, alpn: &[u8]) -> Result<Arc<QuicClientConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(self.roots.clone())
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![alpn.to_vec()];
        Ok(Arc::new(QuicClientConfig::try_from(config)?))
    }
}

/// Which of `candidates` the (already CA-verified) certificate chain speaks for, if
/// any: a node certificate names `node-<id>.meridian`. `None` for client certificates.
pub fn peer_node_id(
    chain: &[CertificateDer<'static>],
    candidates: impl IntoIterator<Item = NodeId>,
) -> Option<NodeId> {
    let leaf = ParsedCertificate::try_from(chain.first()?).ok()?;
    candidates.into_iter().find(|&id| {
        ServerName::try_from(node_server_name(id))
            .is_ok_and(|name| rustls::client::verify_server_name(&leaf, &name).is_ok())
    })
}

/// The certificate chain a QUIC connection's peer presented.
pub fn peer_chain(connection: &quinn::Connection) -> Option<Vec<CertificateDer<'static>>> {
    connection
        .peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()
        .map(|chain| *chain)
}

#[cfg(test)]
#[path = "tls_test.rs"]
mod tests;
