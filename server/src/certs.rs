//! `meridian certs`: a cluster CA kept on disk, and node or client certificates issued
//! from it at any time (nodes added later get certificates from the same CA).
//!
//! ```text
//!  DIR/ca.pem                 CA certificate: every node and client trusts it (public)
//!  DIR/ca/ca.key              CA private key, in its own 0700 directory: only `certs issue`
//!                             reads it; keep it off the replica hosts
//!  DIR/node-<id>.pem / .key   node certificate and key (key 0600)
//!  DIR/<name>.pem / .key      client certificate and key (`client` by default)
//!  DIR/operator.pem / .key    operator certificate: a client that may change the membership
//!
//!  certs init  --out DIR --nodes N    new CA + N node certs + a client and an operator cert;
//!                                     refuses an existing CA
//!  certs issue --ca DIR --node ID     one more node certificate from DIR's CA
//!  certs issue --ca DIR --client NAME one more client certificate
//!  certs issue --ca DIR --operator NAME  an operator certificate (operator.pem, names NAME)
//!  certs show  FILE|DIR...            subject, names, validity, days left
//! ```
//!
//! Certificates expire: CAs after [`CA_VALIDITY_DAYS`](crate::tls::CA_VALIDITY_DAYS), node and client certificates
//! after [`LEAF_VALIDITY_DAYS`](crate::tls::LEAF_VALIDITY_DAYS) unless `--days` says otherwise. Rotation
//! (docs/deployment.md, "Certificates"): reissue a node's certificate with
//! `certs issue --replace` and restart that node; a new CA is rolled in by trusting
//! both (`ca.pem` may hold several certificates) before switching.

use crate::tls::{CertAuthority, PemPair, TlsError};
use meridian_engine::NodeId;
use rcgen::{CertificateParams, DnType, DnValue, IsCa, SanType};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The CA certificate's file name in a certificate directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The directory, inside a certificate directory, that holds the CA key.
pub const CA_KEY_DIR: &str = "ca";
/// The CA key's file name inside [`CA_KEY_DIR`].
pub const CA_KEY_FILE: &str = "ca.key";

/// Whom a certificate is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// A replica: `node-<id>.pem`, valid as server and client.
    Node(NodeId),
    /// A client: `<name>.pem`, client auth only.
    Client(String),
    /// An operator named `name` (`operator.pem`): a client that may also change the
    /// membership.
    Operator(String),
}

impl Subject {
    /// Its files are `<stem>.pem` and `<stem>.key`.
    pub fn file_stem(&self) -> String {
        match self {
            Self::Node(id) => format!("node-{}", id.0),
            Self::Client(name) => name.clone(),
            Self::Operator(_) => "operator".to_owned(),
        }
    }
}

/// What went wrong managing certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// Generating, parsing or signing failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A file would be overwritten.
    #[error("{path} exists: {hint}")]
    Exists {
        /// The file.
        path: PathBuf,
        /// What to do instead.
        hint: String,
    },
    /// No CA in the directory given.
    #[error("no CA in {dir}: expected {dir}/{CA_CERT_FILE} and {dir}/{CA_KEY_DIR}/{CA_KEY_FILE} (made by `meridian certs init`)")]
    NoCa {
        /// The directory.
        dir: String,
    },
    /// A client name that cannot be a file name and certificate name.
    #[error("client name {0:?}: use letters, digits, '-' and '_' only, not starting with \"node-\", and neither \"ca\" nor \"operator\" (the operator's files)")]
    ClientName(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CertsError + '_ {
    move |source| CertsError::Io {
        path: path.to_owned(),
        source,
    }
}

fn check_client_name(name: &str) -> Result<(), CertsError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !name.starts_with("node-")
        && name != "ca";
    if ok {
        Ok(())
    } else {
        Err(CertsError::ClientName(name.to_owned()))
    }
}

/// Where the CA key of certificate directory `dir` lives.
pub fn ca_key_path(dir: &Path) -> PathBuf {
    dir.join(CA_KEY_DIR).join(CA_KEY_FILE)
}

/// Whether `dir` holds a CA (certificate or key).
pub fn has_ca(dir: &Path) -> bool {
    dir.join(CA_CERT_FILE).exists() || ca_key_path(dir).exists()
}

/// The certificates a cluster of `nodes` replicas starts with: one per node (ids
/// `0..nodes`), a client named `client` and an operator named `operator`.
pub fn cluster_subjects(nodes: u16) -> Vec<Subject> {
    (0..nodes)
        .map(|i| Subject::Node(NodeId(i)))
        .chain([
            Subject::Client("client".into()),
            Subject::Operator("operator".into()),
        ])
        .collect()
}

/// Make a new CA in `dir` with the [`cluster_subjects`] of `nodes` replicas. Refuses if
/// `dir` already holds a CA or any of the files. Returns the files written.
pub fn init(
    dir: &Path,
    nodes: u16,
    ca_days: u32,
    leaf_days: u32,
) -> Result<Vec<PathBuf>, CertsError> {
    if has_ca(dir) {
        return Err(CertsError::Exists {
            path: dir.join(CA_CERT_FILE),
            hint: format!(
                "{} already holds a CA; refusing to replace it (every certificate issued from \
                 it would stop working). Add nodes with `meridian certs issue --ca {} --node ID`",
                dir.display(),
                dir.display()
            ),
        });
    }
    let subjects = cluster_subjects(nodes);
    for subject in &subjects {
        refuse_existing(dir, subject)?;
    }
    create_dir(dir, 0o755)?;
    create_dir(&dir.join(CA_KEY_DIR), 0o700)?;
    let ca = CertAuthority::generate_for("meridian cluster CA", ca_days)?;
    let pem = ca.pem();
    let mut written = vec![dir.join(CA_CERT_FILE), ca_key_path(dir)];
    write_file(&ca_key_path(dir), pem.key.as_bytes(), 0o600)?;
    write_file(&dir.join(CA_CERT_FILE), pem.cert.as_bytes(), 0o644)?;
    for subject in &subjects {
        let (cert, key) = write_subject(&ca, dir, subject, leaf_days)?;
        written.extend([cert, key]);
    }
    Ok(written)
}

/// Load the CA of certificate directory `dir`.
pub fn load_ca(dir: &Path) -> Result<CertAuthority, CertsError> {
    let (cert, key) = (dir.join(CA_CERT_FILE), ca_key_path(dir));
    if !cert.exists() || !key.exists() {
        return Err(CertsError::NoCa {
            dir: dir.display().to_string(),
        });
    }
    let cert_text = std::fs::read_to_string(&cert).map_err(io(&cert))?;
    let key_text = std::fs::read_to_string(&key).map_err(io(&key))?;
    Ok(CertAuthority::from_pem(&cert_text, &key_text)?)
}

/// Issue a certificate for `subject` from the CA in `ca_dir`, into `out` (`ca_dir` when
/// `None`). Refuses to overwrite the subject's files unless `replace` (rotation).
/// Returns the certificate and key paths.
pub fn issue(
    ca_dir: &Path,
    out: Option<&Path>,
    subject: &Subject,
    days: u32,
    replace: bool,
) -> Result<(PathBuf, PathBuf), CertsError> {
    match subject {
        Subject::Client(name) if name == "operator" => {
            return Err(CertsError::ClientName(name.clone()));
        }
        Subject::Client(name) | Subject::Operator(name) => check_client_name(name)?,
        Subject::Node(_) => {}
    }
    let ca = load_ca(ca_dir)?;
    let out = out.unwrap_or(ca_dir);
    if !replace {
        refuse_existing(out, subject)?;
    }
    create_dir(out, 0o755)?;
    if out != ca_dir && !out.join(CA_CERT_FILE).exists() {
        // A node needs the CA certificate beside its own; never the CA key.
        let cert = ca_dir.join(CA_CERT_FILE);
        let text = std::fs::read(&cert).map_err(io(&cert))?;
        write_file(&out.join(CA_CERT_FILE), &text, 0o644)?;
    }
    write_subject(&ca, out, subject, days)
}

fn refuse_existing(dir: &Path, subject: &Subject) -> Result<(), CertsError> {
    for ext in ["pem", "key"] {
        let path = dir.join(format!("{}.{ext}", subject.file_stem()));
        if path.exists() {
            return Err(CertsError::Exists {
                path,
                hint: "refusing to overwrite it; pass --replace to rotate this certificate".into(),
            });
        }
    }
    Ok(())
}

fn write_subject(
    ca: &CertAuthority,
    dir: &Path,
    subject: &Subject,
    days: u32,
) -> Result<(PathBuf, PathBuf), CertsError> {
    let pair: PemPair = match subject {
        Subject::Node(id) => ca.issue_node_for(*id, days)?,
        Subject::Client(name) => ca.issue_client_for(name, days)?,
        Subject::Operator(name) => ca.issue_operator_for(name, days)?,
    };
    let stem = subject.file_stem();
    let (cert, key) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    );
    // The key first: a certificate without its key is useless, not dangerous.
    write_file(&key, pair.key.as_bytes(), 0o600)?;
    write_file(&cert, pair.cert.as_bytes(), 0o644)?;
    Ok((cert, key))
}

fn create_dir(dir: &Path, mode: u32) -> Result<(), CertsError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(dir)
            .map_err(io(dir))?;
    }
    if mode == 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(io(dir))?;
    }
    Ok(())
}

/// Write `bytes` to `path` (replacing it) with permissions `mode`.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CertsError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io(path))?;
    // `mode` applies only to a new file; a replaced key must not keep looser bits.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

/// What `certs show` prints about one certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertSummary {
    /// The subject's common name.
    pub common_name: String,
    /// Whether it is a CA.
    pub is_ca: bool,
    /// Its DNS and IP names.
    pub names: Vec<String>,
    /// Valid from (UTC date).
    pub not_before: String,
    /// Valid until (UTC date).
    pub not_after: String,
    /// Whole days until it expires (negative: expired).
    pub days_left: i64,
}

impl std::fmt::Display for CertSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}{}; names: {}; valid {} .. {} ({})",
            self.common_name,
            if self.is_ca { " (CA)" } else { "" },
            if self.names.is_empty() {
                "-".to_owned()
            } else {
                self.names.join(", ")
            },
            self.not_before,
            self.not_after,
            if self.days_left < 0 {
                "EXPIRED".to_owned()
            } else {
                format!("{} days left", self.days_left)
            }
        )
    }
}

/// Describe every certificate in PEM text.
pub fn describe(pem: &str) -> Result<Vec<CertSummary>, CertsError> {
    let bad = |message: String| {
        CertsError::Tls(TlsError::Pem {
            what: "certificate".into(),
            message,
        })
    };
    let mut summaries = Vec::new();
    for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let der = der.map_err(|e| bad(e.to_string()))?;
        let params = CertificateParams::from_ca_cert_der(&der).map_err(|e| bad(e.to_string()))?;
        summaries.push(summarize(&params));
    }
    if summaries.is_empty() {
        return Err(bad("no certificate found".into()));
    }
    Ok(summaries)
}

fn summarize(params: &CertificateParams) -> CertSummary {
    let common_name = match params.distinguished_name.get(&DnType::CommonName) {
        Some(DnValue::Utf8String(s)) => s.clone(),
        Some(DnValue::PrintableString(s)) => s.as_str().to_owned(),
        Some(other) => format!("{other:?}"),
        None => "(no common name)".into(),
    };
    let names = params
        .subject_alt_names
        .iter()
        .map(|name| match name {
            SanType::DnsName(dns) => dns.as_str().to_owned(),
            SanType::IpAddress(ip) => ip.to_string(),
            other => format!("{other:?}"),
        })
        .collect();
    let day =
        |t: time::OffsetDateTime| format!("{}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day());
    let days_left = (params.not_after - time::OffsetDateTime::now_utc()).whole_days();
    CertSummary {
        common_name,
        is_ca: matches!(params.is_ca, IsCa::Ca(_)),
        names,
        not_before: day(params.not_before),
        not_after: day(params.not_after),
        days_left,
    }
}

/// The certificate files of `path`: the file itself, or every `*.pem` in a directory
/// (and its CA key directory is never read).
pub fn certificate_files(path: &Path) -> Result<Vec<PathBuf>, CertsError> {
    if !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io(path))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "pem"))
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
#[path = "certs_test.rs"]
mod tests;
