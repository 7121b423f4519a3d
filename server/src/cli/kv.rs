//! Client commands: `get`, `put`, `delete`, `cas` (`scan` and `keys`: see `scan.rs`).
//!
//! ```text
//!  parse + validate options (exit 2 on misuse) ─▶ resolve --addr ─▶ connect (within the
//!  deadline) ─▶ [put/delete: read the key's causal context] ─▶ request ─▶ print
//!  (text or JSON) ─▶ close the connection ─▶ exit code
//! ```
//!
//! Exit codes, documented in the README and relied on by scripts:
//! 0 done (found, written, applied); 1 the key is not found (`get`) or the comparison
//! failed (`cas`); 2 usage (bad or inapplicable option, unreadable file or certificates);
//! 3 unavailable, timed out or connection lost: a write's outcome is unknown;
//! 4 refused by the replica (invalid for the keyspace, rejected, too stale): nothing
//! happened.

use crate::encoding::{encode_hex, Encoding};
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use meridian_engine::request::{ReadReceipt, Receipt, VersionedResponse};
use meridian_engine::{ClientReply, CommandResult, Consistency, RequestError, Response};
use meridian_server::client::{Client, ClientError, ClientOptions};
use meridian_server::config::parse_consistency;
use meridian_server::tls::{TlsIdentity, TlsPaths};
use serde_json::{json, Value as Json};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Exit code: done.
pub const EXIT_OK: i32 = 0;
/// Exit code: not found (`get`), not applied (`cas`).
pub const EXIT_NOT_FOUND: i32 = 1;
/// Exit code: usage error (also clap's own).
pub const EXIT_USAGE: i32 = 2;
/// Exit code: unavailable or timed out; a write's outcome is unknown.
pub const EXIT_UNAVAILABLE: i32 = 3;
/// Exit code: refused by the replica; nothing happened.
pub const EXIT_REFUSED: i32 = 4;

/// The key-value commands.
#[derive(Subcommand)]
pub enum KvCommand {
    /// Read a key. Exit 0 if found, 1 if not (never written or deleted).
    Get {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        key: KeyArg,
        /// Dynamo: also print the causal context token (to stderr in text output) for a
        /// later `put --context` or `delete --context`.
        #[arg(long)]
        show_context: bool,
    },
    /// Write a key. On Dynamo keyspaces the write first reads the key's causal context
    /// (at the same level) so it replaces what it read instead of adding a sibling.
    #[command(group(ArgGroup::new("source").required(true).args(["value", "value_file"])))]
    Put {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        key: KeyArg,
        /// The value (spelled in --encoding).
        #[arg(long, allow_hyphen_values = true)]
        value: Option<String>,
        /// Read the value's bytes from a file (`-` for stdin), taken as they are.
        #[arg(long)]
        value_file: Option<PathBuf>,
        #[command(flatten)]
        write: WriteContext,
    },
    /// Delete a key. On Dynamo keyspaces the delete first reads the key's causal context
    /// (at the same level) so it removes every version it read.
    Delete {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        key: KeyArg,
        #[command(flatten)]
        write: WriteContext,
    },
    /// Compare and set (consensus keyspaces). Exit 0 if applied, 1 if not.
    #[command(group(ArgGroup::new("new_source").required(true).args(["new", "new_file"])))]
    Cas {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        key: KeyArg,
        /// Value the key must hold; omit to require that it is absent.
        #[arg(long, allow_hyphen_values = true)]
        expected: Option<String>,
        /// Value written if the comparison holds.
        #[arg(long, allow_hyphen_values = true)]
        new: Option<String>,
        /// Read the new value's bytes from a file (`-` for stdin).
        #[arg(long)]
        new_file: Option<PathBuf>,
    },
}

/// Where a client request goes and how its answer is printed.
#[derive(Args)]
pub struct Target {
    /// Replica address, host:port (host names are resolved; IPv4 addresses first).
    #[arg(long)]
    addr: String,
    /// Keyspace name.
    #[arg(long)]
    pub(crate) keyspace: String,
    /// `linearizable`, a read level (`local`, `lease`, `read-index`, `follower`,
    /// `stale:DUR`; reads only) or a Dynamo level (ONE, QUORUM, LOCAL_QUORUM, SESSION,
    /// R=2,W=2, ...). Default: the keyspace's configured default.
    #[arg(long)]
    consistency: Option<String>,
    /// Directory with ca.pem, client.pem and client.key (as written by `meridian certs`;
    /// `cluster up` puts them in DIR/certs).
    #[arg(long)]
    certs: PathBuf,
    /// Deadline for the whole command in milliseconds, connecting included.
    #[arg(long, default_value_t = 5_000)]
    timeout_ms: u64,
    /// `text` (values on stdout, details on stderr) or `json` (one object on stdout, errors
    /// included).
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
    /// How keys and values are spelled on the command line and in the output.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) encoding: Encoding,
}

/// The key argument.
#[derive(Args)]
pub struct KeyArg {
    /// The key (spelled in --encoding; must not be empty).
    #[arg(long, allow_hyphen_values = true)]
    key: String,
}

/// How a Dynamo write relates to the versions it replaces.
#[derive(Args)]
pub struct WriteContext {
    /// Dynamo: write without reading the key's context first; concurrent with every
    /// existing version, so it adds a sibling to a key that has a value.
    #[arg(long, conflicts_with = "context")]
    blind: bool,
    /// Dynamo: write with this causal context (the token `get --show-context` or
    /// `get --output json` printed) instead of reading it first.
    #[arg(long)]
    context: Option<String>,
}

/// How results are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable.
    #[default]
    Text,
    /// One JSON object per command on stdout.
    Json,
}

/// A command that did not succeed: its exit code and why.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: i32,
    pub(crate) kind: &'static str,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_USAGE,
            kind: "usage",
            message: message.into(),
        }
    }

    pub(crate) fn client(error: ClientError) -> Self {
        let (code, kind) = match error {
            ClientError::Tls(_) => (EXIT_USAGE, "certificates"),
            ClientError::Connect { .. } => (EXIT_UNAVAILABLE, "connect"),
            _ => (EXIT_UNAVAILABLE, "connection"),
        };
        Self {
            code,
            kind,
            message: error.to_string(),
        }
    }

    pub(crate) fn request(error: &RequestError) -> Self {
        let (code, kind) = match error {
            RequestError::Unavailable { .. } => (EXIT_UNAVAILABLE, "unavailable"),
            RequestError::Timeout => (EXIT_UNAVAILABLE, "timeout"),
            RequestError::SessionExpired { .. } => (EXIT_UNAVAILABLE, "session_expired"),
            RequestError::Invalid(_) => (EXIT_REFUSED, "invalid"),
            RequestError::Rejected(_) => (EXIT_REFUSED, "rejected"),
            RequestError::TooStale { .. } => (EXIT_REFUSED, "too_stale"),
        };
        Self {
            code,
            kind,
            message: error.to_string(),
        }
    }
}

/// What the command runs for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Read,
    Write,
    Cas,
}

/// Run a key-value command; returns the process exit code.
pub async fn run(command: KvCommand) -> i32 {
    let target = match &command {
        KvCommand::Get { target, .. }
        | KvCommand::Put { target, .. }
        | KvCommand::Delete { target, .. }
        | KvCommand::Cas { target, .. } => target,
    };
    let printer = Printer::new(target);
    finish(target, &printer, execute(&command, &printer)).await
}

/// Run a command's `body` within `target`'s deadline and print its failure; returns the
/// exit code.
pub(crate) async fn finish(
    target: &Target,
    printer: &Printer,
    body: impl std::future::Future<Output = Result<i32, Failure>>,
) -> i32 {
    let deadline = Duration::from_millis(target.timeout_ms);
    let outcome = match tokio::time::timeout(deadline, body).await {
        Ok(outcome) => outcome,
        Err(_) => Err(Failure {
            code: EXIT_UNAVAILABLE,
            kind: "timeout",
            message: format!(
                "no answer within {deadline:?} (--timeout-ms); a write may or may not take effect"
            ),
        }),
    };
    match outcome {
        Ok(code) => code,
        Err(failure) => {
            printer.failure(&failure);
            failure.code
        }
    }
}

async fn execute(command: &KvCommand, printer: &Printer) -> Result<i32, Failure> {
    match command {
        KvCommand::Get {
            target,
            key,
            show_context,
        } => {
            let key = key.bytes(target.encoding)?;
            let consistency = consistency(target, Op::Read)?;
            with_client(target, |client| async move {
                let reply = client.get(&target.keyspace, &key, consistency).await;
                printer.get(reply?, *show_context)
            })
            .await
        }
        KvCommand::Put {
            target,
            key,
            value,
            value_file,
            write,
        } => {
            let key = key.bytes(target.encoding)?;
            let value = bytes_from(value, value_file, target.encoding, "--value")?;
            let consistency = consistency(target, Op::Write)?;
            let context = write.token()?;
            with_client(target, |client| async move {
                prepare_context(&client, target, &key, consistency, write, context).await?;
                let reply = client.put(&target.keyspace, &key, &value, consistency);
                printer.written(reply.await?)
            })
            .await
        }
        KvCommand::Delete { target, key, write } => {
            let key = key.bytes(target.encoding)?;
            let consistency = consistency(target, Op::Write)?;
            let context = write.token()?;
            with_client(target, |client| async move {
                prepare_context(&client, target, &key, consistency, write, context).await?;
                let reply = client.delete(&target.keyspace, &key, consistency);
                printer.written(reply.await?)
            })
            .await
        }
        KvCommand::Cas {
            target,
            key,
            expected,
            new,
            new_file,
        } => {
            let key = key.bytes(target.encoding)?;
            let expected = expected
                .as_deref()
                .map(|e| decode(target.encoding, e, "--expected"))
                .transpose()?;
            let new = bytes_from(new, new_file, target.encoding, "--new")?;
            let consistency = consistency(target, Op::Cas)?;
            with_client(target, |client| async move {
                let reply = client.cas(&target.keyspace, &key, expected, &new, consistency);
                printer.cas(reply.await?)
            })
            .await
        }
    }
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Self {
        Self::client(error)
    }
}

impl KeyArg {
    fn bytes(&self, encoding: Encoding) -> Result<Vec<u8>, Failure> {
        let key = decode(encoding, &self.key, "--key")?;
        if key.is_empty() {
            return Err(Failure::usage("--key: a key must not be empty"));
        }
        Ok(key)
    }
}

impl WriteContext {
    /// The `--context` token's bytes, if given.
    fn token(&self) -> Result<Option<Vec<u8>>, Failure> {
        self.context
            .as_deref()
            .map(|token| {
                crate::encoding::decode_hex(token)
                    .map_err(|e| Failure::usage(format!("--context: not a context token: {e}")))
            })
            .transpose()
    }
}

pub(crate) fn decode(encoding: Encoding, text: &str, option: &str) -> Result<Vec<u8>, Failure> {
    encoding
        .decode(text)
        .map_err(|e| Failure::usage(format!("{option}: {e} (--encoding {})", encoding.name())))
}

/// The bytes of `--X TEXT` or `--X-file PATH` (`-` = stdin); clap makes sure exactly one
/// is given.
fn bytes_from(
    text: &Option<String>,
    file: &Option<PathBuf>,
    encoding: Encoding,
    option: &str,
) -> Result<Vec<u8>, Failure> {
    match (text, file) {
        (Some(text), _) => decode(encoding, text, option),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| Failure::usage(format!("{option}-file -: reading stdin: {e}")))?;
            Ok(bytes)
        }
        (None, Some(path)) => std::fs::read(path)
            .map_err(|e| Failure::usage(format!("{option}-file {}: {e}", path.display()))),
        (None, None) => Err(Failure::usage(format!(
            "{option} or {option}-file is required"
        ))),
    }
}

/// The `--consistency` for `op`, refusing levels that do not apply to it.
pub(crate) fn consistency(target: &Target, op: Op) -> Result<Option<Consistency>, Failure> {
    let Some(text) = target.consistency.as_deref() else {
        return Ok(None);
    };
    let level =
        parse_consistency(text).map_err(|e| Failure::usage(format!("--consistency: {e}")))?;
    match (op, level) {
        (Op::Read, _) | (_, Consistency::Linearizable) | (Op::Write, Consistency::Dynamo(_)) => {
            Ok(Some(level))
        }
        (Op::Cas, Consistency::Dynamo(_)) => Err(Failure::usage(format!(
            "--consistency {text}: cas runs on consensus keyspaces only, which order it \
             linearizably"
        ))),
        (_, level) => Err(Failure::usage(format!(
            "--consistency {level}: a read level; writes on consensus keyspaces are always \
             linearizable (omit --consistency or give `linearizable`)"
        ))),
    }
}

/// Before a Dynamo write: make the client hold the context the write supersedes.
async fn prepare_context(
    client: &Client,
    target: &Target,
    key: &[u8],
    consistency: Option<Consistency>,
    write: &WriteContext,
    token: Option<Vec<u8>>,
) -> Result<(), Failure> {
    if write.blind {
        return Ok(());
    }
    if let Some(token) = token {
        client.set_context(&target.keyspace, key, token);
        return Ok(());
    }
    // Consensus keyspaces order every write, so only Dynamo needs this read; an explicit
    // `linearizable` names a consensus keyspace.
    if consistency == Some(Consistency::Linearizable) {
        return Ok(());
    }
    // The client keeps the context of the reply for the key and sends it with the write.
    let reply = client.get(&target.keyspace, key, consistency).await?;
    match reply.outcome {
        Ok(_) => Ok(()),
        Err(e) => {
            let mut failure = Failure::request(&e);
            failure.message = format!(
                "reading the key's causal context before writing: {}; nothing was written \
                 (--blind writes without it)",
                failure.message
            );
            Err(failure)
        }
    }
}

/// Connect, run `body`, close the connection whatever happened.
pub(crate) async fn with_client<F, Fut>(target: &Target, body: F) -> Result<i32, Failure>
where
    F: FnOnce(std::sync::Arc<Client>) -> Fut,
    Fut: std::future::Future<Output = Result<i32, Failure>>,
{
    let timeout = Duration::from_millis(target.timeout_ms);
    let paths = TlsPaths::client(&target.certs);
    with_client_at(&target.addr, &paths, timeout, body).await
}

/// [`with_client`] for commands without a [`Target`]: the replica at `addr`, the
/// certificate files `paths` (a client's, or an operator's for operator commands),
/// `timeout` per request (connecting included).
pub(crate) async fn with_client_at<F, Fut>(
    addr: &str,
    paths: &TlsPaths,
    timeout: Duration,
    body: F,
) -> Result<i32, Failure>
where
    F: FnOnce(std::sync::Arc<Client>) -> Fut,
    Fut: std::future::Future<Output = Result<i32, Failure>>,
{
    let tls = TlsIdentity::load(paths).map_err(|e| {
        Failure::usage(format!(
            "loading client certificates {}: {e}",
            paths.cert.display()
        ))
    })?;
    let options = ClientOptions {
        timeout,
        ..ClientOptions::default()
    };
    let mut last = None;
    for addr in resolve(addr).await? {
        match Client::connect_with(addr, &tls, options.clone()).await {
            Ok(client) => {
                let client = std::sync::Arc::new(client);
                let outcome = body(client.clone()).await;
                client.close().await;
                return outcome;
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(
        || Failure::usage(format!("--addr {addr}: no address")),
        Failure::client,
    ))
}

/// `host:port` as socket addresses, IPv4 first (a replica on `localhost` usually listens
/// on 127.0.0.1 only).
async fn resolve(addr: &str) -> Result<Vec<SocketAddr>, Failure> {
    if let Ok(addr) = addr.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    let bad = |why: String| Failure::usage(format!("--addr {addr}: {why}"));
    if !addr.contains(':') {
        return Err(bad("expected host:port".to_owned()));
    }
    let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| bad(format!("cannot resolve: {e}")))?
        .collect();
    addrs.sort_by_key(SocketAddr::is_ipv6);
    addrs.dedup();
    if addrs.is_empty() {
        return Err(bad("the name has no address".to_owned()));
    }
    Ok(addrs)
}

/// Prints results in the chosen format.
pub(crate) struct Printer {
    pub(crate) format: OutputFormat,
    pub(crate) encoding: Encoding,
}

impl Printer {
    pub(crate) fn new(target: &Target) -> Self {
        Self {
            format: target.output,
            encoding: target.encoding,
        }
    }

    fn get(&self, reply: ClientReply, show_context: bool) -> Result<i32, Failure> {
        match reply.outcome.map_err(|e| Failure::request(&e))? {
            Response::Kv(CommandResult::Value(value)) => Ok(self.consensus_value(value, None)),
            Response::Read {
                result: CommandResult::Value(value),
                receipt,
            } => Ok(self.consensus_value(value, Some(receipt))),
            Response::Versioned(versioned) => Ok(self.versions(&versioned, show_context)),
            other => Err(Failure::usage(format!(
                "unexpected reply to a read: {other:?}"
            ))),
        }
    }

    fn consensus_value(&self, value: Option<Vec<u8>>, receipt: Option<ReadReceipt>) -> i32 {
        let code = if value.is_some() {
            EXIT_OK
        } else {
            EXIT_NOT_FOUND
        };
        match self.format {
            OutputFormat::Json => {
                let encoding = self.output_encoding(value.iter().map(Vec::as_slice));
                let mut object = json!({
                    "found": value.is_some(),
                    "value": value.as_deref().map(|v| encoding.encode(v)),
                    "encoding": encoding.name(),
                });
                if let Some(receipt) = receipt {
                    object["served_by"] = json!(receipt.to_string());
                }
                emit_json(&object);
            }
            OutputFormat::Text => {
                match &value {
                    Some(value) => self.emit_value(value),
                    None => eprintln!("(not found)"),
                }
                if let Some(receipt) = receipt {
                    eprintln!("served by: {receipt}");
                }
            }
        }
        code
    }

    /// A Dynamo read: the live versions, tombstones shown as deleted.
    fn versions(&self, versioned: &VersionedResponse, show_context: bool) -> i32 {
        let live: Vec<&[u8]> = versioned
            .siblings
            .iter()
            .flatten()
            .map(Vec::as_slice)
            .collect();
        let code = if live.is_empty() {
            EXIT_NOT_FOUND
        } else {
            EXIT_OK
        };
        match self.format {
            OutputFormat::Json => {
                let encoding = self.output_encoding(live.iter().copied());
                let single = match versioned.siblings.as_slice() {
                    [Some(value)] => Some(encoding.encode(value)),
                    _ => None,
                };
                let siblings: Vec<Option<String>> = versioned
                    .siblings
                    .iter()
                    .map(|s| s.as_deref().map(|v| encoding.encode(v)))
                    .collect();
                emit_json(&json!({
                    "found": !live.is_empty(),
                    "value": single,
                    "siblings": siblings,
                    "encoding": encoding.name(),
                    "context": encode_hex(&versioned.context),
                    "receipt": receipt_json(&versioned.receipt),
                }));
            }
            OutputFormat::Text => {
                match versioned.siblings.as_slice() {
                    [Some(value)] => self.emit_value(value),
                    [] => eprintln!("(not found)"),
                    _ if live.is_empty() => eprintln!("(not found: deleted)"),
                    siblings => {
                        emit(&format!("{} siblings:\n", siblings.len()));
                        for sibling in siblings {
                            match sibling {
                                Some(value) => {
                                    emit("  ");
                                    self.emit_value(value);
                                }
                                None => emit("  (deleted)\n"),
                            }
                        }
                    }
                }
                eprintln!("{}", receipt_text(&versioned.receipt));
                if show_context {
                    eprintln!("context: {}", encode_hex(&versioned.context));
                }
            }
        }
        code
    }

    fn written(&self, reply: ClientReply) -> Result<i32, Failure> {
        let response = reply.outcome.map_err(|e| Failure::request(&e))?;
        match self.format {
            OutputFormat::Json => {
                let mut object = json!({ "ok": true });
                if let Response::Versioned(versioned) = &response {
                    object["siblings"] = json!(versioned.siblings.len());
                    object["context"] = json!(encode_hex(&versioned.context));
                    object["receipt"] = receipt_json(&versioned.receipt);
                }
                emit_json(&object);
            }
            OutputFormat::Text => {
                emit("OK\n");
                if let Response::Versioned(versioned) = &response {
                    eprintln!("{}", receipt_text(&versioned.receipt));
                    if versioned.siblings.len() > 1 {
                        eprintln!(
                            "note: the key now has {} siblings (concurrent writes); a put or \
                             delete without --blind replaces them all",
                            versioned.siblings.len()
                        );
                    }
                }
            }
        }
        Ok(EXIT_OK)
    }

    fn cas(&self, reply: ClientReply) -> Result<i32, Failure> {
        let (applied, previous) = match reply.outcome.map_err(|e| Failure::request(&e))? {
            Response::Kv(CommandResult::Cas { applied, previous }) => (applied, previous),
            other => {
                return Err(Failure::usage(format!(
                    "unexpected reply to cas: {other:?}"
                )))
            }
        };
        match self.format {
            OutputFormat::Json => {
                let encoding = self.output_encoding(previous.iter().map(Vec::as_slice));
                emit_json(&json!({
                    "applied": applied,
                    "previous": previous.as_deref().map(|v| encoding.encode(v)),
                    "encoding": encoding.name(),
                }));
            }
            OutputFormat::Text => {
                let verdict = if applied { "APPLIED" } else { "NOT APPLIED" };
                match &previous {
                    Some(value) => {
                        emit(&format!("{verdict}; previous value: "));
                        self.emit_value(value);
                    }
                    None => emit(&format!("{verdict}; the key was absent\n")),
                }
            }
        }
        Ok(if applied { EXIT_OK } else { EXIT_NOT_FOUND })
    }

    fn failure(&self, failure: &Failure) {
        match self.format {
            OutputFormat::Json => emit_json(&json!({
                "error": { "kind": failure.kind, "message": failure.message },
                "exit_code": failure.code,
            })),
            OutputFormat::Text => eprintln!("error: {}", failure.message),
        }
    }

    /// The encoding of JSON output: `--encoding`, except that UTF-8 becomes base64 when
    /// some value is not UTF-8 (JSON strings cannot hold arbitrary bytes).
    pub(crate) fn output_encoding<'a>(
        &self,
        mut values: impl Iterator<Item = &'a [u8]>,
    ) -> Encoding {
        match self.encoding {
            Encoding::Utf8 if values.any(|v| std::str::from_utf8(v).is_err()) => Encoding::Base64,
            encoding => encoding,
        }
    }

    /// One value and a newline on stdout: the bytes themselves for UTF-8 (binary values
    /// survive `get > file`), else spelled in the encoding.
    fn emit_value(&self, value: &[u8]) {
        let mut out = std::io::stdout().lock();
        let written = match self.encoding {
            Encoding::Utf8 => out.write_all(value),
            encoding => out.write_all(encoding.encode(value).as_bytes()),
        };
        // A closed pipe (`| head`) is not an error of the command.
        let _ = written.and_then(|()| out.write_all(b"\n"));
    }
}

/// Text on stdout; a closed pipe (`| head`) is not an error of the command.
pub(crate) fn emit(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

pub(crate) fn emit_json(value: &Json) {
    emit(&format!("{value}\n"));
}

fn receipt_json(receipt: &Receipt) -> Json {
    let answered: Vec<Json> = receipt
        .answered
        .iter()
        .map(|r| json!({"node": r.node.0, "region": r.region, "fallback": r.fallback}))
        .collect();
    json!({
        "level": receipt.requested,
        "met": receipt.met,
        "answered": answered,
        "hints_written": receipt.hints_written,
        "read_repair": format!("{:?}", receipt.read_repair),
    })
}

fn receipt_text(receipt: &Receipt) -> String {
    let answered: Vec<String> = receipt
        .answered
        .iter()
        .map(|r| {
            format!(
                "{}@{}{}",
                r.node,
                r.region,
                if r.fallback { "(fallback)" } else { "" }
            )
        })
        .collect();
    format!(
        "receipt: level {} {}; answered by {}; hints {}; read repair {:?}",
        receipt.requested,
        if receipt.met { "met" } else { "NOT met" },
        answered.join(", "),
        receipt.hints_written,
        receipt.read_repair
    )
}
