//! Range reads: `scan` (the keys under a prefix with their values) and `keys` (how many
//! there are), as etcdctl's `get --prefix` and `--count-only` users expect.
//!
//! ```text
//!  scan --prefix P [--after K] [--limit N] ─▶ Command::Scan ─▶ one line per entry
//!       (key TAB value), in key order; `more` ─▶ stderr names the --after to continue
//!  keys [--prefix P]                       ─▶ Command::Count ─▶ the number
//! ```
//!
//! Linearizable on Multi-Paxos keyspaces (a command in the log), `--consistency local`
//! on every consensus keyspace; EPaxos, Tempo (linearizable) and Dynamo refuse them with
//! exit 4 saying why (docs/design.md#range-reads).

use crate::kv::{self, Failure, Op, Printer, Target, EXIT_OK};
use clap::Subcommand;
use meridian_engine::{ClientReply, Command, CommandResult, Response};
use serde_json::json;
use std::io::Write;

/// The range-read commands.
#[derive(Subcommand)]
pub enum RangeCommand {
    /// Read the keys under a prefix with their values, in key order: one line per entry,
    /// `key<TAB>value`. Linearizable on Multi-Paxos keyspaces; `--consistency local`
    /// reads the contacted replica on any consensus keyspace. Exit 0 (also when empty).
    Scan {
        #[command(flatten)]
        target: Target,
        /// Keys that start with it (spelled in --encoding; default: every key).
        #[arg(long, default_value = "", allow_hyphen_values = true)]
        prefix: String,
        /// Only keys after this one (to continue a scan that stopped early).
        #[arg(long, allow_hyphen_values = true)]
        after: Option<String>,
        /// Entries at most (default: as many as fit the 4 MiB reply budget).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
    },
    /// Count the keys under a prefix (every key by default). Exit 0.
    Keys {
        #[command(flatten)]
        target: Target,
        /// Keys that start with it (spelled in --encoding; default: every key).
        #[arg(long, default_value = "", allow_hyphen_values = true)]
        prefix: String,
    },
}

/// Run a range read; returns the process exit code.
pub async fn run(command: RangeCommand) -> i32 {
    let target = match &command {
        RangeCommand::Scan { target, .. } | RangeCommand::Keys { target, .. } => target,
    };
    let printer = Printer::new(target);
    kv::finish(target, &printer, execute(&command, &printer)).await
}

async fn execute(command: &RangeCommand, printer: &Printer) -> Result<i32, Failure> {
    let (target, request) = match command {
        RangeCommand::Scan {
            target,
            prefix,
            after,
            limit,
        } => {
            let scan = Command::Scan {
                prefix: kv::decode(target.encoding, prefix, "--prefix")?,
                after: after
                    .as_deref()
                    .map(|a| kv::decode(target.encoding, a, "--after"))
                    .transpose()?,
                limit: limit.unwrap_or(u32::MAX),
            };
            (target, scan)
        }
        RangeCommand::Keys { target, prefix } => {
            let prefix = kv::decode(target.encoding, prefix, "--prefix")?;
            (target, Command::Count { prefix })
        }
    };
    let consistency = kv::consistency(target, Op::Read)?;
    kv::with_client(target, |client| async move {
        let reply = client
            .execute(&target.keyspace, request, consistency)
            .await?;
        print(printer, reply)
    })
    .await
}

fn print(printer: &Printer, reply: ClientReply) -> Result<i32, Failure> {
    let result = match reply.outcome.map_err(|e| Failure::request(&e))? {
        Response::Kv(result) | Response::Read { result, .. } => result,
        other => {
            return Err(Failure::usage(format!(
                "unexpected reply to a range read: {other:?}"
            )))
        }
    };
    match result {
        CommandResult::Entries { entries, more } => print_entries(printer, &entries, more),
        CommandResult::Count(count) => {
            match printer.format {
                kv::OutputFormat::Json => kv::emit_json(&json!({ "count": count })),
                kv::OutputFormat::Text => kv::emit(&format!("{count}\n")),
            }
            Ok(EXIT_OK)
        }
        other => Err(Failure::usage(format!(
            "unexpected reply to a range read: {other:?}"
        ))),
    }
}

fn print_entries(
    printer: &Printer,
    entries: &[(Vec<u8>, Vec<u8>)],
    more: bool,
) -> Result<i32, Failure> {
    let bytes = entries
        .iter()
        .flat_map(|(key, value)| [key.as_slice(), value.as_slice()]);
    let last = entries.last().map(|(key, _)| key.as_slice());
    match printer.format {
        kv::OutputFormat::Json => {
            let encoding = printer.output_encoding(bytes);
            let listed: Vec<_> = entries
                .iter()
                .map(|(k, v)| json!({ "key": encoding.encode(k), "value": encoding.encode(v) }))
                .collect();
            kv::emit_json(&json!({
                "entries": listed,
                "more": more,
                "next_after": last.filter(|_| more).map(|k| encoding.encode(k)),
                "encoding": encoding.name(),
            }));
        }
        kv::OutputFormat::Text => {
            let mut out = std::io::stdout().lock();
            for (key, value) in entries {
                let line = match printer.encoding {
                    crate::encoding::Encoding::Utf8 => [&key[..], b"\t", value, b"\n"].concat(),
                    encoding => format!("{}\t{}\n", encoding.encode(key), encoding.encode(value))
                        .into_bytes(),
                };
                // A closed pipe (`| head`) is not an error of the command.
                if out.write_all(&line).is_err() {
                    break;
                }
            }
            drop(out);
            if let (true, Some(last)) = (more, last) {
                eprintln!(
                    "(more keys under the prefix: continue with --after {})",
                    printer.encoding.encode(last)
                );
            }
        }
    }
    Ok(EXIT_OK)
}
