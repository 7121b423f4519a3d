//! Issue 17, "Done when": three replicas deployed as an operator would, each in its own
//! network namespace with its own address (veth pairs on a bridge), certificates from
//! `meridian certs init`, hand-written configs checked by `meridian config check`; the
//! CLI and a short `meridian-bench --nodes --metrics` run against them; then one replica
//! is partitioned (its link taken down), writes are acknowledged by the other two, the
//! link is healed, and with no further writes every acknowledged write must be executed
//! on the partitioned replica (local reads there) within seconds.
//!
//! Needs root (CAP_NET_ADMIN) and `ip`; where a namespace cannot be created the test
//! prints why and passes without running anything.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const N: usize = 3;
const PORT: u16 = 7000;
const METRICS_PORT: u16 = 9100;

/// Namespaces, links and processes of one run; torn down on drop.
struct Net {
    tag: String,
    children: Vec<Child>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Net {
    fn ns(&self, i: usize) -> String {
        format!("{}n{i}", self.tag)
    }
    /// The root-namespace end of node `i`'s link (taken down to partition it).
    fn link(&self, i: usize) -> String {
        format!("{}v{i}", self.tag)
    }
    fn bridge(&self) -> String {
        format!("{}br", self.tag)
    }
    fn addr(i: usize) -> String {
        format!("10.77.{}.{}", std::process::id() % 200, i + 1)
    }

    /// Namespaces `n0..n2` with addresses 10.77.x.1-3 on a bridge that the test (in the
    /// root namespace) reaches at 10.77.x.254. `Err` only if the first namespace cannot be
    /// created (no privilege, no `ip`); any later failure is a test failure.
    fn create() -> Result<Self, String> {
        let net = Self {
            tag: format!("mt{}", std::process::id() % 100_000),
            children: Vec::new(),
        };
        net.remove(); // leftovers of a killed run with the same pid
        ip(&["netns", "add", &net.ns(0)])?;
        let must = |args: &[&str]| ip(args).unwrap_or_else(|e| panic!("{e}"));
        let subnet = format!("10.77.{}", std::process::id() % 200);
        must(&["link", "add", &net.bridge(), "type", "bridge"]);
        must(&[
            "addr",
            "add",
            &format!("{subnet}.254/24"),
            "dev",
            &net.bridge(),
        ]);
        must(&["link", "set", &net.bridge(), "up"]);
        for i in 0..N {
            if i > 0 {
                must(&["netns", "add", &net.ns(i)]);
            }
            let inner = format!("{}p{i}", net.tag);
            must(&[
                "link",
                "add",
                &net.link(i),
                "type",
                "veth",
                "peer",
                "name",
                &inner,
            ]);
            must(&["link", "set", &inner, "netns", &net.ns(i)]);
            must(&["link", "set", &net.link(i), "master", &net.bridge()]);
            must(&["link", "set", &net.link(i), "up"]);
            let ns = net.ns(i);
            must(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", Self::addr(i)),
                "dev",
                &inner,
            ]);
            must(&["-n", &ns, "link", "set", &inner, "up"]);
            must(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        Ok(net)
    }

    fn remove(&self) {
        for i in 0..N {
            let _ = ip(&["link", "del", &self.link(i)]);
            let _ = ip(&["netns", "del", &self.ns(i)]);
        }
        let _ = ip(&["link", "del", &self.bridge()]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.remove();
    }
}

/// The `meridian` binary beside this package's `meridian-bench` (built if missing).
fn meridian() -> PathBuf {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_meridian-bench"));
    let path = bench.with_file_name("meridian");
    if !path.exists() {
        let target = bench
            .parent()
            .and_then(Path::parent)
            .expect("target directory");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "-p",
                "meridian-server",
                "--bin",
                "meridian",
                "--target-dir",
            ])
            .arg(target)
            .status()
            .expect("cargo build");
        assert!(status.success(), "building meridian");
    }
    path
}

fn run(program: &Path, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .expect("run a command");
    if !out.status.success() {
        panic!(
            "{} {} failed:\n{}\n{}",
            program.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn config(i: usize, dir: &Path) -> String {
    let mut text = format!(
        "id = {i}\nregion = \"rack-{}\"\nlisten = \"{}:{PORT}\"\nmetrics = \"{}:{METRICS_PORT}\"\n\
         data_dir = \"{}\"\n\n[tls]\nca = \"certs/ca.pem\"\ncert = \"certs/node-{i}.pem\"\n\
         key = \"certs/node-{i}.key\"\n",
        i + 1,
        Net::addr(i),
        Net::addr(i),
        dir.join(format!("data-{i}")).display()
    );
    for peer in (0..N).filter(|&p| p != i) {
        text.push_str(&format!(
            "\n[[peers]]\nid = {peer}\nregion = \"rack-{}\"\naddress = \"{}:{PORT}\"\n",
            peer + 1,
            Net::addr(peer)
        ));
    }
    text.push_str(
        "\n[[keyspaces]]\nname = \"epaxos\"\nprotocol = \"epaxos\"\n\
         \n[[keyspaces]]\nname = \"multipaxos\"\nprotocol = \"multipaxos\"\ninitial_leader = 0\n\
         \n[[keyspaces]]\nname = \"dynamo\"\nprotocol = \"dynamo\"\n",
    );
    text
}

fn scrape(addr: &str) -> String {
    let addr: SocketAddr = addr.parse().expect("metrics address");
    meridian_server::metrics::fetch(addr).unwrap_or_default()
}

/// Sum of a protocol counter of `keyspace` over the replicas' metrics pages.
fn counter(pages: &[String], keyspace: &str, name: &str) -> u64 {
    pages
        .iter()
        .flat_map(|page| page.lines())
        .filter(|l| {
            (l.starts_with("meridian_protocol_events_total{")
                || l.starts_with("meridian_protocol_state{"))
                && l.contains(&format!("keyspace=\"{keyspace}\""))
                && l.contains(&format!("name=\"{name}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn three_replicas_in_network_namespaces_catch_up_after_a_partition_without_further_load() {
    let mut net = match Net::create() {
        Ok(net) => net,
        Err(e) => {
            println!(
                "SKIPPED: network namespaces cannot be created here ({e}); needs root and `ip`"
            );
            return;
        }
    };
    let m = meridian();
    let dir = std::env::temp_dir().join(format!("meridian-netns-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let certs = dir.join("certs");
    let certs_s = certs.to_str().unwrap().to_owned();
    run(&m, &["certs", "init", "--out", &certs_s, "--nodes", "3"]);
    let mut configs = Vec::new();
    for i in 0..N {
        let path = dir.join(format!("node-{i}.toml"));
        std::fs::write(&path, config(i, &dir)).unwrap();
        configs.push(path.to_str().unwrap().to_owned());
    }
    let mut check = vec!["config", "check"];
    check.extend(configs.iter().map(String::as_str));
    println!("{}", stdout(&run(&m, &check)));

    for (i, config) in configs.iter().enumerate() {
        let log = dir.join(format!("node-{i}.log"));
        let child = Command::new("ip")
            .args(["netns", "exec", &net.ns(i)])
            .arg(&m)
            .args([
                "serve",
                "--init",
                "--config",
                config,
                "--log-format",
                "json",
                "--log-file",
            ])
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a replica");
        net.children.push(child);
    }
    let addr = |i: usize| format!("{}:{PORT}", Net::addr(i));
    let metrics = |i: usize| format!("{}:{METRICS_PORT}", Net::addr(i));
    let cli = |i: usize, args: &[&str]| -> Result<String, String> {
        let mut all = args.to_vec();
        let a = addr(i);
        all.extend(["--addr", &a, "--certs", &certs_s]);
        let out = Command::new(&m).args(&all).output().expect("run the CLI");
        if out.status.success() {
            Ok(stdout(&out))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    };
    // Ready: every replica answers a linearizable read on both consensus keyspaces.
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..N {
        for keyspace in ["epaxos", "multipaxos"] {
            loop {
                match cli(i, &["get", "--keyspace", keyspace, "--key", "ready"]) {
                    // A missing key exits 1 with "(not found)": the replica answered.
                    Ok(_) => break,
                    Err(e) if e == "(not found)" => break,
                    Err(e) if Instant::now() > deadline => panic!("node {i} not ready: {e}"),
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        }
    }
    // The CLI through different replicas.
    cli(
        0,
        &[
            "put",
            "--keyspace",
            "epaxos",
            "--key",
            "greeting",
            "--value",
            "hello",
        ],
    )
    .unwrap();
    assert_eq!(
        cli(1, &["get", "--keyspace", "epaxos", "--key", "greeting"]).unwrap(),
        "hello"
    );
    cli(
        2,
        &[
            "cas",
            "--keyspace",
            "multipaxos",
            "--key",
            "k",
            "--new",
            "v1",
        ],
    )
    .unwrap();
    assert_eq!(
        cli(0, &["get", "--keyspace", "multipaxos", "--key", "k"]).unwrap(),
        "v1"
    );

    // A short bench against the deployment, fast-path counts from --metrics.
    let nodes = (0..N).map(addr).collect::<Vec<_>>().join(",");
    let metrics_list = (0..N).map(metrics).collect::<Vec<_>>().join(",");
    let bench = run(
        Path::new(env!("CARGO_BIN_EXE_meridian-bench")),
        &[
            "--backend",
            "cluster",
            "--topology",
            "lan-3",
            "--protocols",
            "epaxos,multipaxos:rack-1",
            "--conflicts",
            "0",
            "--clients",
            "2",
            "--warmup",
            "0.5",
            "--duration",
            "2",
            "--nodes",
            &nodes,
            "--metrics",
            &metrics_list,
            "--certs",
            &certs_s,
            "--quiet",
        ],
    );
    println!("bench:\n{}", stdout(&bench));
    let pages: Vec<String> = (0..N).map(|i| scrape(&metrics(i))).collect();
    let fast = counter(&pages, "epaxos", "fast_path");
    println!("epaxos fast_path commits over the replicas after the bench: {fast}");
    assert!(
        fast > 0,
        "no fast-path count read from the metrics endpoints"
    );

    // Partition node 2; writes acknowledged through nodes 0 and 1 while it is away.
    let started = Instant::now();
    ip(&["link", "set", &net.link(2), "down"]).unwrap();
    let mut acknowledged = Vec::new();
    for n in 0..20 {
        for keyspace in ["epaxos", "multipaxos"] {
            let key = format!("p/{keyspace}/{n}");
            let value = format!("v{n}");
            let at = n % 2;
            let put = [
                "put",
                "--keyspace",
                keyspace,
                "--key",
                &key,
                "--value",
                &value,
            ];
            match cli(at, &put) {
                Ok(_) => acknowledged.push((keyspace, key, value)),
                Err(e) => println!("during the partition, node {at} {keyspace}: {e}"),
            }
        }
    }
    std::thread::sleep(Duration::from_secs(5).saturating_sub(started.elapsed()));
    assert!(
        acknowledged.len() >= 30,
        "too few writes acknowledged: {}",
        acknowledged.len()
    );
    ip(&["link", "set", &net.link(2), "up"]).unwrap();
    let healed = Instant::now();

    // No further writes: node 2 must execute every acknowledged write by itself.
    let local_get = |i: usize, keyspace: &str, key: &str| {
        cli(
            i,
            &[
                "get",
                "--keyspace",
                keyspace,
                "--key",
                key,
                "--consistency",
                "local",
            ],
        )
    };
    let mut missing = acknowledged.clone();
    while !missing.is_empty() && healed.elapsed() < Duration::from_secs(30) {
        missing.retain(|(keyspace, key, value)| {
            local_get(2, keyspace, key).map_or(true, |v| v != *value)
        });
        if !missing.is_empty() {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    let caught_up = healed.elapsed();
    println!(
        "partition of node 2: {} writes acknowledged by nodes 0-1; {} executed on node 2 \
         {caught_up:?} after the heal; missing: {missing:?}",
        acknowledged.len(),
        acknowledged.len() - missing.len()
    );
    assert!(missing.is_empty(), "node 2 never executed {missing:?}");
    assert!(
        caught_up < Duration::from_secs(10),
        "catch-up took {caught_up:?}"
    );
    // Every replica has every write (local reads on nodes 0 and 1 too).
    for i in 0..2 {
        for (keyspace, key, value) in &acknowledged {
            assert_eq!(
                &local_get(i, keyspace, key).unwrap(),
                value,
                "node {i} {keyspace} {key}"
            );
        }
    }
    // An idle cluster still collects EPaxos instances (the GC timer of item 1).
    std::thread::sleep(Duration::from_secs(3));
    let pages: Vec<String> = (0..N).map(|i| scrape(&metrics(i))).collect();
    let collected = counter(&pages, "epaxos", "instances_collected");
    println!("epaxos instances_collected over the replicas once idle: {collected}");
    assert!(
        collected > 0,
        "an idle cluster collected no EPaxos instance"
    );
    // The replicas logged JSON lines to their files (--log-format json --log-file).
    for i in 0..N {
        let log = std::fs::read_to_string(dir.join(format!("node-{i}.log"))).unwrap();
        assert!(log.contains("node started"), "node {i}: {log}");
        for line in log.lines() {
            let parsed: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("node {i}: not JSON ({e}): {line}"));
            assert!(parsed.get("level").is_some(), "node {i}: {line}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
