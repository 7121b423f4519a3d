//! `--history FILE`: every client operation as one JSON object per line, for external
//! checkers (Knossos/Porcupine style):
//! `{"client", "op", "key", "value", "expected", "ok", "call", "return", "status"}` with
//! times in microseconds and `status` one of `ok`, `fail`, `info` (outcome unknown).

use meridian_engine::sim::OpRecord;
use meridian_engine::{Command, CommandResult};
use serde::Serialize;
use std::io::Write;

#[derive(Serialize)]
struct Line<'a> {
    client: u64,
    op: &'static str,
    key: String,
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expected: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ok: Option<bool>,
    call: u64,
    #[serde(rename = "return")]
    ret: Option<u64>,
    status: &'a str,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The JSON line for one operation.
pub fn line(op: &OpRecord) -> String {
    let command = &op.request.command;
    let result = op.reply.as_ref().map(|r| &r.outcome);
    let (status, ret) = match result {
        Some(Ok(_)) => ("ok", op.ret),
        Some(Err(e)) if e.is_definite() => ("fail", op.ret),
        Some(Err(_)) => ("info", op.ret),
        None => ("info", None),
    };
    let kv = match result {
        Some(Ok(response)) => response.kv(),
        _ => None,
    };
    let (value, expected, ok) = match command {
        Command::Get { .. } => {
            let read = match kv {
                Some(CommandResult::Value(v)) => v.as_deref().map(text),
                _ => None,
            };
            (read, None, None)
        }
        Command::Put { value, .. } => (Some(text(value)), None, None),
        // The bench issues neither; a history line names the prefix as its key.
        Command::Delete { .. } | Command::Scan { .. } | Command::Count { .. } => (None, None, None),
        Command::Cas { expected, new, .. } => {
            let applied = match kv {
                Some(CommandResult::Cas { applied, .. }) => Some(*applied),
                _ => None,
            };
            (
                Some(text(new)),
                Some(expected.as_deref().map(text)),
                applied,
            )
        }
    };
    let line = Line {
        client: op.client.0,
        op: command.op_name(),
        key: text(command.key()),
        value,
        expected,
        ok,
        call: op.call.as_micros(),
        ret: ret.map(|t| t.as_micros()),
        status,
    };
    serde_json::to_string(&line).unwrap_or_default()
}

/// Write every operation, one JSON object per line.
pub fn write(out: &mut impl Write, ops: &[OpRecord]) -> std::io::Result<()> {
    for op in ops {
        writeln!(out, "{}", line(op))?;
    }
    Ok(())
}
