//! The client CLI as a new user's script drives it, against a local 3-replica cluster
//! serving every protocol: overwrite and delete on Dynamo leave no sibling, a 1 MiB value
//! from a file and a binary key round-trip, exit codes and `--output json` are as the
//! README documents them; `scan` and `keys` read ranges where they can be linearizable
//! and say why where they cannot. Also: `--timeout-ms` covers connecting, and the CLI closes its
//! connection when it is done.

mod common;

use common::{free_addrs, meridian, TempDir};
use meridian_engine::topology::Topology;
use meridian_server::launcher::LocalCluster;
use meridian_server::local_cluster::{default_keyspaces, ClusterSpec, PROTOCOLS};
use serde_json::Value as Json;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const OK: i32 = 0;
const NOT_FOUND: i32 = 1;
const USAGE: i32 = 2;
const UNAVAILABLE: i32 = 3;
const REFUSED: i32 = 4;

/// Runs `meridian` client commands against one replica.
struct Cli {
    addr: String,
    certs: String,
}

impl Cli {
    fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_meridian"));
        command.args(args);
        if !args.contains(&"--addr") {
            command.args(["--addr", &self.addr]);
        }
        command
            .args(["--certs", &self.certs])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("run meridian");
        let mut pipe = child.stdin.take().expect("stdin");
        if let Some(bytes) = stdin {
            pipe.write_all(bytes).expect("write stdin");
        }
        drop(pipe);
        child.wait_with_output().expect("meridian output")
    }

    /// Runs a command and checks its exit code; returns stdout.
    fn expect(&self, code: i32, args: &[&str]) -> Vec<u8> {
        self.expect_with_stdin(code, args, None)
    }

    fn expect_with_stdin(&self, code: i32, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
        let out = self.run(args, stdin);
        assert_eq!(
            out.status.code(),
            Some(code),
            "meridian {args:?}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn text(&self, code: i32, args: &[&str]) -> String {
        String::from_utf8(self.expect(code, args)).expect("UTF-8 output")
    }

    fn json(&self, code: i32, args: &[&str]) -> Json {
        let mut args = args.to_vec();
        args.extend(["--output", "json"]);
        let out = self.text(code, &args);
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{args:?}: {e}: {out:?}"))
    }
}

fn siblings(reply: &Json) -> Vec<Json> {
    reply["siblings"].as_array().expect("siblings").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_users_script_gets_what_the_readme_promises() {
    let dir = TempDir::new("cli-script");
    let topology = Topology::builtin("lan-3").expect("lan-3");
    let protocols: Vec<String> = PROTOCOLS.iter().map(|p| p.to_string()).collect();
    let spec = ClusterSpec {
        topology_ref: topology.name().to_owned(),
        addresses: free_addrs(3),
        topology,
        metrics: None,
        keyspaces: default_keyspaces(&protocols, 3).expect("keyspaces"),
        wan: false,
    };
    let cluster = LocalCluster::start(dir.path(), &spec, meridian()).expect("start");
    if let Err(e) = cluster.wait_all_ready(Duration::from_secs(60)).await {
        panic!("{e}\n{}", cluster.log_tail(0, 30));
    }
    let cli = Cli {
        addr: spec.addresses[0].to_string(),
        certs: dir.path().join("certs").to_string_lossy().into_owned(),
    };
    tokio::task::spawn_blocking(move || {
        dynamo_overwrite_and_delete_leave_no_sibling(&cli);
        exit_codes_and_json_are_as_documented(&cli, spec.addresses[1].port());
        big_values_and_binary_keys_round_trip(&cli, dir.path());
        oversized_dynamo_objects_are_refused_at_write_time(&cli, dir.path());
        scan_and_keys(&cli);
    })
    .await
    .expect("script");
    drop(cluster);
}

/// Defect 3: `put a; put b; put c; delete; delete` used to leave 5 siblings.
fn dynamo_overwrite_and_delete_leave_no_sibling(cli: &Cli) {
    let ks = ["--keyspace", "dynamo"];
    for value in ["a", "b", "c"] {
        let out = cli.text(
            OK,
            &[&["put", "--key", "cart", "--value", value], &ks[..]].concat(),
        );
        assert_eq!(out, "OK\n", "a Dynamo put prints OK");
    }
    let read = cli.json(OK, &[&["get", "--key", "cart"], &ks[..]].concat());
    assert_eq!(siblings(&read), vec![Json::from("c")], "{read}");
    assert_eq!(read["value"], "c");
    assert_eq!(read["found"], true);
    assert_eq!(
        cli.text(OK, &[&["get", "--key", "cart"], &ks[..]].concat()),
        "c\n"
    );
    cli.expect(OK, &[&["delete", "--key", "cart"], &ks[..]].concat());
    cli.expect(OK, &[&["delete", "--key", "cart"], &ks[..]].concat());
    let read = cli.json(NOT_FOUND, &[&["get", "--key", "cart"], &ks[..]].concat());
    assert_eq!(read["found"], false, "{read}");
    assert!(siblings(&read).len() <= 1, "at most one tombstone: {read}");
    assert!(siblings(&read).iter().all(Json::is_null), "{read}");

    // --blind adds a sibling; a put that reads the context first replaces both.
    cli.expect(
        OK,
        &[&["put", "--key", "k2", "--value", "x"], &ks[..]].concat(),
    );
    cli.expect(
        OK,
        &[&["put", "--key", "k2", "--value", "y", "--blind"], &ks[..]].concat(),
    );
    let read = cli.json(OK, &[&["get", "--key", "k2"], &ks[..]].concat());
    let mut both = siblings(&read);
    both.sort_by_key(|v| v.to_string());
    assert_eq!(both, vec![Json::from("x"), Json::from("y")], "{read}");
    assert_eq!(
        read["value"],
        Json::Null,
        "two siblings have no single value"
    );
    let text = cli.text(OK, &[&["get", "--key", "k2"], &ks[..]].concat());
    assert!(text.starts_with("2 siblings:\n"), "{text}");
    // --context TOKEN: the token a get printed supersedes what that get saw.
    let token = read["context"].as_str().expect("context token").to_owned();
    cli.expect(
        OK,
        &[
            &["put", "--key", "k2", "--value", "z", "--context", &token],
            &ks[..],
        ]
        .concat(),
    );
    let read = cli.json(OK, &[&["get", "--key", "k2"], &ks[..]].concat());
    assert_eq!(siblings(&read), vec![Json::from("z")], "{read}");
    cli.expect(
        USAGE,
        &[
            &["put", "--key", "k2", "--value", "z", "--context", "nothex"],
            &ks[..],
        ]
        .concat(),
    );
    cli.expect(
        USAGE,
        &[
            &[
                "put",
                "--key",
                "k2",
                "--value",
                "z",
                "--blind",
                "--context",
                "00",
            ],
            &ks[..],
        ]
        .concat(),
    );
}

/// Defect 7: exit codes, JSON, `(absent)` as a value, options that do not apply.
fn exit_codes_and_json_are_as_documented(cli: &Cli, other_port: u16) {
    for ks in ["multipaxos", "epaxos"] {
        let k = ["--keyspace", ks];
        // A missing key: exit 1, nothing on stdout; JSON says found: false.
        assert_eq!(
            cli.text(NOT_FOUND, &[&["get", "--key", "nope"], &k[..]].concat()),
            ""
        );
        let missing = cli.json(NOT_FOUND, &[&["get", "--key", "nope"], &k[..]].concat());
        assert_eq!(missing["found"], false, "{missing}");
        assert_eq!(missing["value"], Json::Null);
        // A stored "(absent)" is a value like any other.
        cli.expect(
            OK,
            &[&["put", "--key", "a", "--value", "(absent)"], &k[..]].concat(),
        );
        assert_eq!(
            cli.text(OK, &[&["get", "--key", "a"], &k[..]].concat()),
            "(absent)\n"
        );
        let stored = cli.json(OK, &[&["get", "--key", "a"], &k[..]].concat());
        assert_eq!(stored["found"], true, "{stored}");
        assert_eq!(stored["value"], "(absent)");
        // cas: applied 0, not applied 1.
        let cas = ["cas", "--key", "a", "--expected", "(absent)", "--new", "v2"];
        let applied = cli.json(OK, &[&cas[..], &k[..]].concat());
        assert_eq!(applied["applied"], true, "{applied}");
        assert_eq!(applied["previous"], "(absent)");
        let refused = cli.json(NOT_FOUND, &[&cas[..], &k[..]].concat());
        assert_eq!(refused["applied"], false, "{refused}");
        assert_eq!(refused["previous"], "v2");
        let text = cli.text(NOT_FOUND, &[&cas[..], &k[..]].concat());
        assert_eq!(text, "NOT APPLIED; previous value: v2\n");
        let absent = ["cas", "--key", "fresh", "--new", "1"];
        assert_eq!(
            cli.text(OK, &[&absent[..], &k[..]].concat()),
            "APPLIED; the key was absent\n"
        );
        // Options that do not apply are refused before anything is sent.
        let local_put = [
            "put",
            "--key",
            "a",
            "--value",
            "x",
            "--consistency",
            "local",
        ];
        cli.expect(USAGE, &[&local_put[..], &k[..]].concat());
        assert_eq!(
            cli.text(OK, &[&["get", "--key", "a"], &k[..]].concat()),
            "v2\n"
        );
        let local_get = ["get", "--key", "a", "--consistency", "local"];
        assert_eq!(cli.text(OK, &[&local_get[..], &k[..]].concat()), "v2\n");
        let dynamo_cas = ["cas", "--key", "a", "--new", "x", "--consistency", "QUORUM"];
        cli.expect(USAGE, &[&dynamo_cas[..], &k[..]].concat());
        cli.expect(
            USAGE,
            &[&["put", "--key", "", "--value", "x"], &k[..]].concat(),
        );
        cli.expect(USAGE, &[&["put", "--key", "a"], &k[..]].concat());
        // The replica refuses a Dynamo level on a consensus keyspace: exit 4.
        let level = ["get", "--key", "a", "--consistency", "QUORUM"];
        let error = cli.json(REFUSED, &[&level[..], &k[..]].concat());
        assert_eq!(error["error"]["kind"], "invalid", "{error}");
        assert_eq!(error["exit_code"], REFUSED);
        // Host names resolve.
        let named = format!("localhost:{other_port}");
        let get = ["get", "--key", "a", "--addr", &named];
        assert_eq!(cli.text(OK, &[&get[..], &k[..]].concat()), "v2\n");
        cli.expect(OK, &[&["delete", "--key", "a"], &k[..]].concat());
        cli.expect(NOT_FOUND, &[&["get", "--key", "a"], &k[..]].concat());
    }
    let dynamo_cas = ["cas", "--keyspace", "dynamo", "--key", "a", "--new", "x"];
    let error = cli.json(REFUSED, &dynamo_cas);
    assert_eq!(error["error"]["kind"], "invalid", "{error}");
    let unknown = cli.json(REFUSED, &["get", "--keyspace", "nope", "--key", "a"]);
    assert!(unknown["error"]["message"].is_string(), "{unknown}");
}

/// Defect 6: values beyond the argument limit from a file or stdin; binary keys and
/// values in hex or base64.
fn big_values_and_binary_keys_round_trip(cli: &Cli, dir: &Path) {
    // 1 MiB of every byte value, not UTF-8.
    let big: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert!(std::str::from_utf8(&big).is_err());
    let file = dir.join("big.bin");
    std::fs::write(&file, &big).expect("write value file");
    let file = file.to_string_lossy().into_owned();
    for ks in PROTOCOLS {
        let k = ["--keyspace", ks];
        let put = [
            "put",
            "--key",
            "big",
            "--value-file",
            &file,
            "--timeout-ms",
            "20000",
        ];
        cli.expect(OK, &[&put[..], &k[..]].concat());
        let mut raw = cli.expect(OK, &[&["get", "--key", "big"], &k[..]].concat());
        assert_eq!(raw.pop(), Some(b'\n'));
        assert!(raw == big, "{ks}: the 1 MiB value came back changed");
        // JSON cannot hold the bytes as UTF-8: it says base64.
        let json = cli.json(OK, &[&["get", "--key", "big"], &k[..]].concat());
        assert_eq!(json["encoding"], "base64", "{ks}");

        // A binary key and value, from stdin, read back in hex and base64.
        let value = [0xc3u8, 0x28, 0, 7];
        let key_hex = "00ff800a";
        let hex = ["--encoding", "hex", "--key", key_hex];
        cli.expect_with_stdin(
            OK,
            &[&["put", "--value-file", "-"], &hex[..], &k[..]].concat(),
            Some(&value),
        );
        assert_eq!(
            cli.text(OK, &[&["get"], &hex[..], &k[..]].concat()),
            "c3280007\n"
        );
        let b64 = ["--encoding", "base64", "--key", "AP+ACg=="];
        let json = cli.json(OK, &[&["get"], &b64[..], &k[..]].concat());
        assert_eq!(json["value"], "wygABw==", "{ks}: {json}");
        assert_eq!(json["encoding"], "base64");
        cli.expect(
            OK,
            &[&["put", "--value", "0102"], &hex[..], &k[..]].concat(),
        );
        assert_eq!(
            cli.text(OK, &[&["get"], &hex[..], &k[..]].concat()),
            "0102\n"
        );
        cli.expect(
            USAGE,
            &[&["get", "--encoding", "hex", "--key", "0g"], &k[..]].concat(),
        );
    }
}

/// Defect 2: two 9 MiB puts to one key used to make an object no peer frame could carry,
/// wedging the key. Objects are limited to a quarter of the frame limit less framing
/// (4 MiB - 16 KiB by default), every sibling counted: a write over it is refused (exit 4)
/// and stores nothing; the key stays readable, writable and deletable.
fn oversized_dynamo_objects_are_refused_at_write_time(cli: &Cli, dir: &Path) {
    let ks = ["--keyspace", "dynamo", "--timeout-ms", "20000"];
    let file = |name: &str, byte: u8, len: usize| {
        let path = dir.join(name);
        std::fs::write(&path, vec![byte; len]).expect("write value file");
        path.to_string_lossy().into_owned()
    };
    let (huge, a, b) = (
        file("huge", b'h', 5 << 20),
        file("a", b'a', 3 << 20),
        file("b", b'b', 3 << 20),
    );
    fn put<'a>(path: &'a str, ks: &[&'a str]) -> Vec<&'a str> {
        [&["put", "--key", "big", "--value-file", path][..], ks].concat()
    }
    let error = cli.json(REFUSED, &put(&huge, &ks));
    assert_eq!(error["error"]["kind"], "rejected", "{error}");
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("object limit of 4177920"), "{message}");
    cli.expect(OK, &put(&a, &ks));
    let blind = [&put(&b, &ks)[..], &["--blind"]].concat();
    let error = cli.json(REFUSED, &blind);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("every sibling counts"),
        "{error}"
    );
    let get = [&["get", "--key", "big", "--output", "json"][..], &ks[..]].concat();
    let read: Json = serde_json::from_slice(&cli.expect(OK, &get)).expect("json");
    assert_eq!(siblings(&read).len(), 1, "the refused write stored nothing");
    assert!(read["value"]
        .as_str()
        .is_some_and(|v| v.starts_with("aaaa")));
    cli.expect(OK, &put(&b, &ks));
    let read: Json = serde_json::from_slice(&cli.expect(OK, &get)).expect("json");
    assert!(
        read["value"]
            .as_str()
            .is_some_and(|v| v.starts_with("bbbb")),
        "overwritten"
    );
    cli.expect(OK, &[&["delete", "--key", "big"][..], &ks[..]].concat());
    cli.expect(NOT_FOUND, &get);
}

/// Defect 5: `get` to an address nobody answers ends within its timeout.
#[test]
fn timeout_covers_connecting_to_a_dead_address() {
    let dir = TempDir::new("cli-timeout");
    let d = dir.path().to_string_lossy().into_owned();
    let init = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["certs", "init", "--out", &d, "--nodes", "1"])
        .output()
        .expect("certs init");
    assert!(init.status.success(), "{init:?}");
    let dead = free_addrs(1)[0].to_string();
    let cli = Cli {
        addr: dead,
        certs: d,
    };
    let started = Instant::now();
    let error = cli.json(
        UNAVAILABLE,
        &[
            "get",
            "--keyspace",
            "k",
            "--key",
            "a",
            "--timeout-ms",
            "700",
        ],
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "took {took:?}: {error}");
    assert!(error["error"]["message"].is_string(), "{error}");
}

/// Defect 9: the CLI closes its QUIC connection when it is done, so the replica does not
/// keep it until the idle timeout. A stand-in replica answers one `get` and then waits for
/// the close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_closes_its_connection_when_done() {
    use meridian_engine::{ClientReply, CommandResult, NodeId, Response};
    use meridian_server::tls::{TlsIdentity, TlsPaths};
    use meridian_server::transport::frame::{self, DEFAULT_MAX_FRAME_BYTES};
    use meridian_server::wire::{Answer, ClientFrame, ReplyFrame, TaggedReply, TaggedRequest};

    let dir = TempDir::new("cli-close");
    let d = dir.path().to_string_lossy().into_owned();
    let init = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["certs", "init", "--out", &d, "--nodes", "1"])
        .output()
        .expect("certs init");
    assert!(init.status.success(), "{init:?}");
    let node = TlsIdentity::load(&TlsPaths::node(dir.path(), NodeId(0))).expect("node certs");
    let crypto = node.quic_server().expect("server crypto");
    let endpoint = quinn::Endpoint::server(
        quinn::ServerConfig::with_crypto(crypto),
        "127.0.0.1:0".parse().unwrap(),
    )
    .expect("bind");
    let cli = Cli {
        addr: endpoint.local_addr().unwrap().to_string(),
        certs: d,
    };
    let run = tokio::task::spawn_blocking(move || {
        cli.text(OK, &["get", "--keyspace", "k", "--key", "a"])
    });
    let conn = endpoint
        .accept()
        .await
        .expect("a connection")
        .await
        .expect("handshake");
    // The CLI speaks client protocol 4 (offered by the stand-in's crypto): tagged.
    let (mut send, mut recv) = conn.accept_bi().await.expect("a request stream");
    let TaggedRequest {
        tag,
        frame: ClientFrame::Request(request),
    } = frame::read(&mut recv, DEFAULT_MAX_FRAME_BYTES)
        .await
        .expect("a frame")
        .expect("a request")
    else {
        panic!("a key-value request was expected");
    };
    let reply = ReplyFrame::from(ClientReply {
        id: request.request.id,
        outcome: Ok(Response::Kv(CommandResult::Value(Some(b"v".to_vec())))),
    });
    let answer = TaggedReply {
        tag,
        answer: Answer::Reply(reply),
    };
    frame::write(&mut send, &answer, DEFAULT_MAX_FRAME_BYTES)
        .await
        .expect("reply");
    // The idle timeout is 10 s: a connection the CLI abandoned would still be open.
    let closed = tokio::time::timeout(Duration::from_secs(3), conn.closed())
        .await
        .expect("the CLI exited without closing its connection");
    assert!(
        matches!(closed, quinn::ConnectionError::ApplicationClosed(_)),
        "{closed:?}"
    );
    assert_eq!(run.await.expect("cli"), "v\n");
}

/// `scan` and `keys`: linearizable on Multi-Paxos (continued with `--after`, binary
/// prefixes in hex, JSON), local on EPaxos, refused with exit 4 where a linearizable
/// range read is not served (EPaxos, Tempo, Dynamo) and at levels outside the log.
fn scan_and_keys(cli: &Cli) {
    let mp = ["--keyspace", "multipaxos"];
    for (key, value) in [
        ("scan/b", "2"),
        ("scan/a", "1"),
        ("scan/c", "3"),
        ("scan", "0"),
    ] {
        let put = ["put", "--key", key, "--value", value];
        cli.expect(OK, &[&put[..], &mp[..]].concat());
    }
    let scan = ["scan", "--prefix", "scan/"];
    assert_eq!(
        cli.text(OK, &[&scan[..], &mp[..]].concat()),
        "scan/a\t1\nscan/b\t2\nscan/c\t3\n"
    );
    let out = cli.run(&[&scan[..], &mp[..], &["--limit", "2"]].concat(), None);
    assert_eq!(out.status.code(), Some(OK));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "scan/a\t1\nscan/b\t2\n"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--after scan/b"), "{stderr}");
    let page = cli.json(OK, &[&scan[..], &mp[..], &["--limit", "2"]].concat());
    assert_eq!(page["more"], true, "{page}");
    assert_eq!(page["next_after"], "scan/b");
    assert_eq!(
        page["entries"][1],
        serde_json::json!({"key": "scan/b", "value": "2"})
    );
    let rest = [&scan[..], &mp[..], &["--after", "scan/b"]].concat();
    assert_eq!(cli.text(OK, &rest), "scan/c\t3\n");
    let all = cli.json(OK, &[&scan[..], &mp[..]].concat());
    assert_eq!(all["more"], false, "{all}");
    assert_eq!(all["next_after"], Json::Null);
    let keys = ["keys", "--prefix", "scan/"];
    assert_eq!(cli.text(OK, &[&keys[..], &mp[..]].concat()), "3\n");
    cli.expect(OK, &[&["delete", "--key", "scan/b"], &mp[..]].concat());
    assert_eq!(cli.json(OK, &[&keys[..], &mp[..]].concat())["count"], 2);
    let none = ["scan", "--prefix", "nothing/"];
    assert_eq!(cli.text(OK, &[&none[..], &mp[..]].concat()), "");
    let everything: u64 = cli
        .text(OK, &[&["keys"], &mp[..]].concat())
        .trim()
        .parse()
        .unwrap();
    assert!(everything >= 3, "{everything}");
    // Binary keys: the prefix in hex (00ff... keys were written above).
    let hex = ["--encoding", "hex"];
    let put = ["put", "--key", "00fe01", "--value", "aa"];
    cli.expect(OK, &[&put[..], &mp[..], &hex[..]].concat());
    let binary = ["scan", "--prefix", "00fe"];
    assert_eq!(
        cli.text(OK, &[&binary[..], &mp[..], &hex[..]].concat()),
        "00fe01\taa\n"
    );
    // Misuse and levels served outside the log.
    cli.expect(USAGE, &[&scan[..], &mp[..], &["--limit", "0"]].concat());
    let lease = cli.json(
        REFUSED,
        &[&scan[..], &mp[..], &["--consistency", "lease"]].concat(),
    );
    assert_eq!(lease["error"]["kind"], "invalid", "{lease}");

    // EPaxos and Tempo order per key: a linearizable range read is refused, saying why;
    // a local one reads the contacted replica (which coordinated the write).
    for ks in ["epaxos", "tempo"] {
        let k = ["--keyspace", ks];
        cli.expect(
            OK,
            &[&["put", "--key", "scan/e", "--value", "1"], &k[..]].concat(),
        );
        let refused = cli.json(REFUSED, &[&scan[..], &k[..]].concat());
        let message = refused["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("linearizable only on Multi-Paxos"),
            "{refused}"
        );
        cli.expect(REFUSED, &[&["keys"], &k[..]].concat());
        let local = ["--consistency", "local"];
        assert_eq!(
            cli.text(OK, &[&scan[..], &k[..], &local[..]].concat()),
            "scan/e\t1\n"
        );
        assert_eq!(
            cli.text(OK, &[&keys[..], &k[..], &local[..]].concat()),
            "1\n"
        );
    }
    let dynamo = cli.json(
        REFUSED,
        &["scan", "--keyspace", "dynamo", "--consistency", "ONE"],
    );
    let message = dynamo["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("not served by Dynamo"), "{dynamo}");
}
