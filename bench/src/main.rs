//! `meridian-bench`: with no arguments, reproduces the EPaxos vs Multi-Paxos (leader in CA)
//! comparison at 0% and 100% conflicts on the built-in 5-region topology in the
//! simulator, and prints the per-region table.

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use meridian_bench::backend::cluster::{self, ClusterRun, Deployment};
use meridian_bench::backend::sim::SimRun;
use meridian_bench::protocols::ProtocolSpec;
use meridian_bench::report::{self, RunReport};
use meridian_bench::workload::{KeyChoice, WorkloadSpec};
use meridian_bench::{history, runner};
use meridian_engine::sim::{ClientMode, FaultProfile};
use meridian_engine::topology::Topology;
use meridian_server::launcher::ServerCommand;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Backend {
    /// The deterministic simulator running the protocol cores.
    Sim,
    /// Real server processes (see `meridian cluster up`).
    Cluster,
}

/// Benchmark EPaxos, Multi-Paxos and Dynamo mode on cross-region topologies.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Where to run.
    #[arg(long, value_enum, default_value_t = Backend::Sim)]
    backend: Backend,
    /// Built-in topology name (epaxos-5, epaxos-3, aws-5-tempo, gcp-13, lan-3, lan-5) or a
    /// path to a topology TOML file.
    #[arg(long, default_value = "epaxos-5")]
    topology: String,
    /// Protocols to compare, comma-separated: epaxos, epaxos-thrifty, multipaxos[:REGION],
    /// dynamo[:LEVEL] (ONE, QUORUM, LOCAL_QUORUM, ...; its optimum column is the median
    /// of each measured request's optimum for its key's preference list).
    #[arg(long, value_delimiter = ',', default_value = "epaxos,multipaxos")]
    protocols: Vec<String>,
    /// Region of the Multi-Paxos leader (name or alias) when not given per protocol.
    #[arg(long, default_value = "CA")]
    leader: String,
    /// Conflict percentages to sweep (share of commands on one hot key).
    #[arg(long, value_delimiter = ',', default_value = "0,100")]
    conflicts: Vec<f64>,
    /// Use a YCSB Zipf key distribution with this skew instead of conflict percentages.
    #[arg(long)]
    zipf: Option<f64>,
    /// Number of keys for --zipf.
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// Share of reads (0..=1).
    #[arg(long, default_value_t = 0.0)]
    reads: f64,
    /// Bytes per written value.
    #[arg(long, default_value_t = 16)]
    value_size: usize,
    /// Clients per region (overrides the topology's placement).
    #[arg(long, default_value_t = 10)]
    clients: u32,
    /// Open loop: Poisson arrivals at this rate per client (requests/s). Closed loop if
    /// absent.
    #[arg(long)]
    rate: Option<f64>,
    /// Warm-up seconds (not measured).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Run seed: the same seed reproduces a simulated run exactly.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Faults in the simulator: none, partitions, crashes, chaos.
    #[arg(long, default_value = "none")]
    faults: FaultProfile,
    /// fsync latency of every simulated replica, in microseconds.
    #[arg(long, default_value_t = 0)]
    fsync_us: u64,
    /// Batching: commands per Multi-Paxos slot and per EPaxos instance (1 = off, the
    /// latency default). For throughput runs, e.g. `--backend cluster --topology lan-3
    /// --clients 32 --batch 16 --epaxos-in-flight 2`.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// EPaxos: uncommitted own instances per replica before requests queue; queued
    /// requests are what a batch packs, so batching needs a small window.
    #[arg(long, default_value_t = 10_000)]
    epaxos_in_flight: usize,
    /// Client request timeout in seconds.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Check the run: linearizability for consensus protocols (keeps every operation in
    /// memory). On by default under faults.
    #[arg(long)]
    check: bool,
    /// Write results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write SVG charts into this directory.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Write every client operation as JSON Lines (needs a single protocol and workload,
    /// or writes one file per run with a suffix).
    #[arg(long)]
    history: Option<PathBuf>,
    /// Cluster backend: an existing deployment's replica addresses (host:port), in the
    /// topology's replica order; without it, local replica processes are started.
    #[arg(long, value_delimiter = ',')]
    nodes: Vec<String>,
    /// Cluster backend with --nodes: directory with ca.pem, client.pem and client.key.
    #[arg(long)]
    certs: Option<PathBuf>,
    /// Cluster backend: directory for the local replicas' certificates, configs, data and
    /// logs (default: a fresh temporary directory, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// The cluster backend starts replicas as `meridian-bench serve-replica --config FILE`:
/// the same server code as `meridian serve`, from this executable.
const SERVE_REPLICA: &str = "serve-replica";

fn serve_replica(args: &[String]) -> anyhow::Result<()> {
    let config = match args {
        [flag, path] if flag == "--config" => PathBuf::from(path),
        _ => bail!("usage: meridian-bench {SERVE_REPLICA} --config FILE"),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    Ok(runtime.block_on(meridian_server::serve::serve(&config))?)
}

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(SERVE_REPLICA) {
        return serve_replica(&argv[2..]);
    }
    let args = Args::parse();
    let topology = Topology::resolve(&args.topology)
        .with_context(|| format!("loading topology {:?}", args.topology))?
        .with_clients_per_region(args.clients);
    let protocols = args
        .protocols
        .iter()
        .map(|p| ProtocolSpec::parse(p, &args.leader).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for spec in &protocols {
        if let ProtocolSpec::MultiPaxos { leader_region } = spec {
            if topology.region_index(leader_region).is_none() {
                bail!(
                    "leader region {leader_region:?} is not in topology {}",
                    topology.name()
                );
            }
        }
    }
    let workloads: Vec<WorkloadSpec> = match args.zipf {
        Some(theta) => vec![WorkloadSpec {
            keys: KeyChoice::Zipf {
                theta,
                keys: args.keys,
            },
            read_ratio: args.reads,
            value_size: args.value_size,
            consistency: Default::default(),
        }],
        None => args
            .conflicts
            .iter()
            .map(|&c| {
                if !(0.0..=100.0).contains(&c) {
                    bail!("conflict percentage {c} is outside 0..=100");
                }
                Ok(WorkloadSpec {
                    read_ratio: args.reads,
                    value_size: args.value_size,
                    ..WorkloadSpec::conflicts(c)
                })
            })
            .collect::<anyhow::Result<_>>()?,
    };
    if !(0.0..=1.0).contains(&args.reads) {
        bail!("--reads must be between 0 and 1, got {}", args.reads);
    }
    let check = args.check || args.faults != FaultProfile::None;
    let tuning = runner::Tuning {
        batch: args.batch.max(1),
        epaxos_in_flight: args.epaxos_in_flight.max(1),
    };
    let template = SimRun {
        topology: topology.clone(),
        seed: args.seed,
        workload: workloads[0].clone(),
        warmup: Duration::from_secs_f64(args.warmup.max(0.0)),
        duration: Duration::from_secs_f64(args.duration.max(0.001)),
        mode: args
            .rate
            .map_or(ClientMode::Closed, |rate| ClientMode::Open {
                rate_per_sec: rate,
            }),
        fsync: Duration::from_micros(args.fsync_us),
        faults: args.faults,
        keep_ops: check || args.history.is_some(),
        client_timeout: Duration::from_secs_f64(args.timeout.max(0.001)),
    };

    let runs = protocols.len() * workloads.len();
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(1000).with_style(
            ProgressStyle::with_template("{prefix:>32} [{bar:30}] {percent:>3}% {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        )
    };
    let mut runs_done = Vec::new();
    let mut index = 0;
    // Numbers the runs on the progress bar; returns the run's number.
    let mut next_label = |spec: &ProtocolSpec| {
        index += 1;
        bar.set_prefix(format!("{index}/{runs} {spec}"));
        bar.set_position(0);
        index
    };
    match args.backend {
        Backend::Sim => {
            for workload in &workloads {
                for spec in &protocols {
                    next_label(spec);
                    let run = SimRun {
                        workload: workload.clone(),
                        ..template.clone()
                    };
                    runs_done.push(runner::run_sim(spec, &run, tuning, check, Some(&bar))?);
                }
            }
        }
        Backend::Cluster => {
            if args.faults != FaultProfile::None {
                bail!("--faults applies to the sim backend only");
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(async {
                let local = args.nodes.is_empty();
                let temporary = local && args.dir.is_none();
                let dir = args.dir.clone().unwrap_or_else(cluster::default_dir);
                let deployment = if local {
                    bar.set_prefix("starting replicas");
                    let keyspaces = runner::keyspaces_for(&protocols, &topology, tuning)?;
                    let exe = std::env::current_exe().context("locating meridian-bench")?;
                    let command = ServerCommand {
                        program: exe,
                        args: vec![SERVE_REPLICA.into()],
                    };
                    Deployment::local(&topology, keyspaces, &dir, command, true).await?
                } else {
                    let certs = args
                        .certs
                        .as_deref()
                        .context("--nodes needs --certs DIR (ca.pem, client.pem, client.key)")?;
                    let addresses = args
                        .nodes
                        .iter()
                        .map(|a| {
                            a.parse()
                                .with_context(|| format!("--nodes: bad address {a:?}"))
                        })
                        .collect::<anyhow::Result<Vec<std::net::SocketAddr>>>()?;
                    Deployment::remote(&topology, addresses, certs)?
                };
                for workload in &workloads {
                    for spec in &protocols {
                        let number = next_label(spec);
                        let run = ClusterRun {
                            topology: topology.clone(),
                            seed: args.seed + number as u64,
                            workload: workload.clone(),
                            warmup: template.warmup,
                            duration: template.duration,
                            mode: template.mode,
                            keep_ops: template.keep_ops,
                            client_timeout: template.client_timeout,
                        };
                        let keyspace = runner::keyspace_name(spec, local);
                        runs_done.push(
                            runner::run_cluster(
                                spec,
                                &run,
                                &deployment,
                                &keyspace,
                                check,
                                Some(&bar),
                            )
                            .await?,
                        );
                    }
                }
                drop(deployment);
                if temporary {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                anyhow::Ok(())
            })?;
        }
    }
    let mut reports: Vec<RunReport> = Vec::new();
    for (i, (report, ops)) in runs_done.into_iter().enumerate() {
        if let Some(path) = &args.history {
            let path = if runs == 1 {
                path.clone()
            } else {
                let conflict = report
                    .conflict_pct
                    .map_or_else(String::new, |c| format!("-c{c}"));
                path.with_extension(format!(
                    "{}{conflict}-{i}.jsonl",
                    report.protocol.replace(['(', ')', '='], "-")
                ))
            };
            let file = std::fs::File::create(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            let mut out = std::io::BufWriter::new(file);
            history::write(&mut out, &ops)
                .with_context(|| format!("writing {}", path.display()))?;
            out.flush()?;
        }
        reports.push(report);
    }
    bar.finish_and_clear();
    print!("{}", report::table::render(&reports));
    if let Some(path) = &args.json {
        report::json::write(path, &reports)?;
        println!("\nwrote {}", path.display());
    }
    if let Some(dir) = &args.plot {
        let files = report::plot::write_all(dir, &reports)?;
        println!("wrote {} charts into {}", files.len(), dir.display());
    }
    if reports
        .iter()
        .any(|r| r.verdict.as_deref().is_some_and(|v| v.starts_with("NOT")))
    {
        bail!("a run failed its correctness check (see verdicts above)");
    }
    Ok(())
}
