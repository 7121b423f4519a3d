//! Cluster certificates and mutual-TLS configurations.
//!
//! ```text
//!  meridian certs ─▶ ca.pem / ca/ca.key         the cluster CA (self-signed; see certs.rs)
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
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::RootCertStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// ALPN of node-to-node connections.
pub const ALPN_PEER: &[u8] = b"meridian-peer/1";
/// ALPN of client connections (version 4: a stream carries any number of tagged
/// requests, answered on it in completion order).
pub const ALPN_CLIENT_V4: &[u8] = b"meridian-client/4";
/// ALPN of client connections (version 3: one request per stream; replies say when the
/// request committed). Still served, and what a client falls back to with a replica
/// that does not speak version 4.
pub const ALPN_CLIENT: &[u8] = b"meridian-client/3";
/// ALPN of the previous client protocol, still served: its replies are bare
/// `ClientReply`s.
pub const ALPN_CLIENT_V2: &[u8] = b"meridian-client/2";
/// The end of an operator certificate's name (`NAME.operator.meridian`): such a
/// certificate may change the membership (`member add`/`remove`); a client certificate
/// (`NAME.meridian`, names without dots) may not.
pub const OPERATOR_NAME_SUFFIX: &str = ".operator.meridian";
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

/// Days a CA made by `meridian certs init` is valid by default.
pub const CA_VALIDITY_DAYS: u32 = 3650;
/// Days a node or client certificate is valid by default.
pub const LEAF_VALIDITY_DAYS: u32 = 365;

/// From an hour ago (clock skew between hosts) to `days` from now.
fn set_validity(params: &mut CertificateParams, days: u32) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(i64::from(days));
}

impl CertAuthority {
    /// A fresh self-signed CA named `name`, valid for [`CA_VALIDITY_DAYS`].
    pub fn generate(name: &str) -> Result<Self, TlsError> {
        Self::generate_for(name, CA_VALIDITY_DAYS)
    }

    /// A fresh self-signed CA named `name`, valid for `days`.
    pub fn generate_for(name: &str, days: u32) -> Result<Self, TlsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        set_validity(&mut params, days);
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

    /// An existing CA from its certificate and private key (PEM), to issue more
    /// certificates that chain to it. Fails if the key is not the certificate's.
    pub fn from_pem(cert: &str, key: &str) -> Result<Self, TlsError> {
        let pem_error = |message: String| TlsError::Pem {
            what: "CA".into(),
            message,
        };
        let key = KeyPair::from_pem(key).map_err(|e| pem_error(format!("private key: {e}")))?;
        let params = CertificateParams::from_ca_cert_pem(cert)
            .map_err(|e| pem_error(format!("certificate: {e}")))?;
        let original = CertificateDer::pem_slice_iter(cert.as_bytes())
            .next()
            .ok_or_else(|| pem_error("no certificate found".into()))?
            .map_err(|e| pem_error(format!("certificate: {e}")))?;
        let spki = key.public_key_der();
        if !original
            .as_ref()
            .windows(spki.len())
            .any(|window| window == spki.as_slice())
        {
            return Err(pem_error(
                "the private key does not belong to the CA certificate".into(),
            ));
        }
        // Only the subject, key identifier and key are used to sign: certificates issued
        // from this value chain to the original CA certificate.
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

    /// A certificate for node `id`, valid as server and as client for
    /// [`LEAF_VALIDITY_DAYS`].
    pub fn issue_node(&self, id: NodeId) -> Result<PemPair, TlsError> {
        self.issue_node_for(id, LEAF_VALIDITY_DAYS)
    }

    /// A certificate for node `id`, valid as server and as client for `days`.
    pub fn issue_node_for(&self, id: NodeId, days: u32) -> Result<PemPair, TlsError> {
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
            days,
        )
    }

    /// A client certificate named `name`, valid for [`LEAF_VALIDITY_DAYS`].
    pub fn issue_client(&self, name: &str) -> Result<PemPair, TlsError> {
        self.issue_client_for(name, LEAF_VALIDITY_DAYS)
    }

    /// A client certificate named `name`, valid for `days`.
    pub fn issue_client_for(&self, name: &str, days: u32) -> Result<PemPair, TlsError> {
        self.issue(
            name,
            vec![format!("{name}.meridian")],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
            days,
        )
    }

    /// An operator certificate for `name`, valid for `days`: a client certificate that
    /// may also change the membership.
    pub fn issue_operator_for(&self, name: &str, days: u32) -> Result<PemPair, TlsError> {
        self.issue(
            name,
            vec![format!("{name}{OPERATOR_NAME_SUFFIX}")],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
            days,
        )
    }

    fn issue(
        &self,
        common_name: &str,
        names: Vec<String>,
        usages: Vec<ExtendedKeyUsagePurpose>,
        days: u32,
    ) -> Result<PemPair, TlsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names)?;
        set_validity(&mut params, days);
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

    /// The operator files `meridian certs` wrote in `dir`.
    pub fn operator(dir: &Path) -> Self {
        Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("operator.pem"),
            key: dir.join("operator.key"),
        }
    }

    /// What operator commands present: the operator files of `dir` when it has them,
    /// else its client files (whose membership changes replicas refuse).
    pub fn operator_or_client(dir: &Path) -> Self {
        let operator = Self::operator(dir);
        if operator.cert.is_file() && operator.key.is_file() {
            operator
        } else {
            Self::client(dir)
        }
    }
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
        config.alpn_protocols = vec![
            ALPN_PEER.to_vec(),
            ALPN_CLIENT_V4.to_vec(),
            ALPN_CLIENT.to_vec(),
            ALPN_CLIENT_V2.to_vec(),
        ];
        Ok(Arc::new(QuicServerConfig::try_from(config)?))
    }

    /// Client-side QUIC crypto speaking `alpn`: the server must present a certificate
    /// signed by the cluster CA; this party presents its own.
    pub fn quic_client(&self, alpn: &[u8]) -> Result<Arc<QuicClientConfig>, TlsError> {
        self.quic_client_offering(&[alpn])
    }

    /// Client-side QUIC crypto offering `alpns`, most preferred first (the server picks
    /// the first it speaks).
    pub fn quic_client_offering(&self, alpns: &[&[u8]]) -> Result<Arc<QuicClientConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(self.roots.clone())
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = alpns.iter().map(|alpn| alpn.to_vec()).collect();
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

/// The node an (already CA-verified) certificate chain speaks for, whichever it is: the
/// id in its `node-<id>.meridian` name. `None` for client certificates.
pub fn named_node(chain: &[CertificateDer<'static>]) -> Option<NodeId> {
    leaf_dns_names(chain).iter().find_map(|dns| {
        let id = dns.strip_prefix("node-")?.strip_suffix(".meridian")?;
        let id = NodeId(id.parse().ok()?);
        // The name must also verify as that node's (as for configured peers).
        peer_node_id(chain, [id])
    })
}

/// The DNS names of a chain's leaf certificate (none if it does not parse).
fn leaf_dns_names(chain: &[CertificateDer<'static>]) -> Vec<String> {
    let Some(params) = chain
        .first()
        .and_then(|leaf| CertificateParams::from_ca_cert_der(leaf).ok())
    else {
        return Vec::new();
    };
    params
        .subject_alt_names
        .iter()
        .filter_map(|name| match name {
            SanType::DnsName(dns) => Some(dns.as_str().to_owned()),
            _ => None,
        })
        .collect()
}

/// Whether an (already CA-verified) certificate chain is an operator's: its leaf names
/// `NAME.operator.meridian`.
pub fn is_operator(chain: &[CertificateDer<'static>]) -> bool {
    leaf_dns_names(chain).iter().any(|dns| {
        dns.strip_suffix(OPERATOR_NAME_SUFFIX)
            .is_some_and(|who| !who.is_empty() && !who.contains('.'))
    })
}

/// The application protocol a QUIC connection agreed on (its ALPN), if any.
pub fn negotiated_alpn(connection: &quinn::Connection) -> Option<Vec<u8>> {
    connection
        .handshake_data()?
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?
        .protocol
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
