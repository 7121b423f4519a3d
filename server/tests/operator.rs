//! The operator commands of the `meridian` binary as an operator runs them: `certs init`,
//! `certs issue`, `certs show`, `config check`, and `serve --log-format json --log-file`
//! with a SIGTERM drain.

mod common;

use common::{free_addrs, TempDir};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn meridian(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(args)
        .output()
        .expect("run meridian")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(args: &[&str]) -> String {
    let out = meridian(args);
    assert!(out.status.success(), "meridian {args:?}: {}", text(&out));
    text(&out)
}

fn refused(args: &[&str]) -> String {
    let out = meridian(args);
    assert!(
        !out.status.success(),
        "meridian {args:?} succeeded: {}",
        text(&out)
    );
    text(&out)
}

#[test]
fn certs_init_refuses_an_existing_ca_and_issue_adds_a_node_from_it() {
    let dir = TempDir::new("op-certs");
    let d = dir.path().to_str().unwrap();
    ok(&["certs", "init", "--out", d, "--nodes", "3", "--days", "90"]);
    let ca = std::fs::read(dir.path().join("ca.pem")).unwrap();
    let again = refused(&["certs", "init", "--out", d, "--nodes", "4"]);
    assert!(again.contains("refusing to replace it"), "{again}");
    assert_eq!(std::fs::read(dir.path().join("ca.pem")).unwrap(), ca);
    let host3 = dir.path().join("host-3");
    let h3 = host3.to_str().unwrap();
    ok(&["certs", "issue", "--ca", d, "--node", "3", "--out", h3]);
    let twice = refused(&["certs", "issue", "--ca", d, "--node", "3", "--out", h3]);
    assert!(twice.contains("--replace"), "{twice}");
    ok(&[
        "certs",
        "issue",
        "--ca",
        d,
        "--node",
        "3",
        "--out",
        h3,
        "--replace",
    ]);
    let neither = refused(&["certs", "issue", "--ca", d]);
    assert!(
        neither.contains("--node") && neither.contains("--client"),
        "{neither}"
    );
    refused(&["certs", "issue", "--ca", d, "--node", "4", "--client", "x"]);
    let shown = ok(&["certs", "show", d, h3]);
    assert!(shown.contains("meridian cluster CA (CA)"), "{shown}");
    assert!(shown.contains("node-3.meridian"), "{shown}");
    assert!(shown.contains("days left"), "{shown}");
    assert!(
        !shown.contains("ca.key"),
        "show reads certificates only: {shown}"
    );
    // The new node's directory trusts the same CA and holds no CA key.
    assert_eq!(std::fs::read(host3.join("ca.pem")).unwrap(), ca);
    assert!(!host3.join("ca").exists());
}

#[test]
fn config_check_accepts_the_example_deployment_and_names_a_disagreement() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/three-hosts");
    let files: Vec<String> = (0..3)
        .map(|i| {
            examples
                .join(format!("node-{i}.toml"))
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let mut args = vec!["config", "check"];
    args.extend(files.iter().map(String::as_str));
    let out = ok(&args);
    assert!(out.contains("3 configs agree"), "{out}");

    let dir = TempDir::new("op-config");
    std::fs::create_dir_all(dir.path()).unwrap();
    let mut copies = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let mut text = std::fs::read_to_string(file).unwrap();
        if i == 1 {
            text = text.replace("address = \"10.0.0.3:7000\"", "address = \"10.0.0.3:7100\"");
        }
        let copy = dir.path().join(format!("node-{i}.toml"));
        std::fs::write(&copy, text).unwrap();
        copies.push(copy.to_str().unwrap().to_owned());
    }
    let mut args = vec!["config", "check"];
    args.extend(copies.iter().map(String::as_str));
    let out = refused(&args);
    assert!(
        out.contains("node-1.toml: peers[1] (node 2): address 10.0.0.3:7100"),
        "{out}"
    );
}

/// A one-node cluster logging JSON lines to a file; SIGTERM drains it and it exits 0.
#[test]
fn serve_logs_json_lines_to_a_file_and_a_sigterm_drains_then_exits_cleanly() {
    let dir = TempDir::new("op-serve");
    let d = dir.path().to_str().unwrap();
    ok(&[
        "certs",
        "init",
        "--out",
        &format!("{d}/certs"),
        "--nodes",
        "1",
    ]);
    let listen = free_addrs(1)[0];
    let config = dir.path().join("node-0.toml");
    std::fs::write(
        &config,
        format!(
            "id = 0\nregion = \"here\"\nlisten = \"{listen}\"\ndata_dir = \"data\"\n\
             [tls]\nca = \"certs/ca.pem\"\ncert = \"certs/node-0.pem\"\nkey = \"certs/node-0.key\"\n\
             [[keyspaces]]\nname = \"kv\"\nprotocol = \"multipaxos\"\n"
        ),
    )
    .unwrap();
    let log = dir.path().join("node-0.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["serve", "--init", "--config", config.to_str().unwrap()])
        .args(["--log-format", "json", "--log-file", log.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start meridian serve");
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !read_log().contains("node started") {
        assert!(Instant::now() < deadline, "never started: {}", read_log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit status {exit}: {}", read_log());
    let text = read_log();
    assert!(text.contains("\"drained\""), "{text}");
    for line in text.lines() {
        assert!(
            line.starts_with("{\"timestamp\":")
                && line.ends_with('}')
                && line.contains("\"level\":"),
            "not a JSON log line: {line}"
        );
    }
}
