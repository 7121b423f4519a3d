//! `meridian-bench`: with no arguments, reproduces the EPaxos vs Multi-Paxos (leader in CA)
//! comparison at 0% and 100% conflicts on the built-in 5-region topology in the
//! simulator, and prints the per-region table.

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use meridian_bench::backend::sim::SimRun;
use meridian_bench::protocols::ProtocolSpec;
use meridian_bench::report::{self, RunReport};
use meridian_bench::workload::{KeyChoice, WorkloadSpec};
use meridian_bench::{history, runner};
use meridian_engine::sim::{ClientMode, FaultProfile};
use meridian_engine::topology::Topology;
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
    /// Existing deployment for the cluster backend: comma-separated client addresses.
    #[arg(long, value_delimiter = ',')]
    nodes: Vec<String>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.backend == Backend::Cluster {
        bail!("the cluster backend needs the replica server (issue 4); use --backend sim");
    }
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
    let mut reports: Vec<RunReport> = Vec::new();
    let mut index = 0;
    for workload in &workloads {
        for spec in &protocols {
            index += 1;
            bar.set_prefix(format!("{index}/{runs} {spec}"));
            bar.set_position(0);
            let run = SimRun {
                workload: workload.clone(),
                ..template.clone()
            };
            let (report, ops) = runner::run_sim(spec, &run, check, Some(&bar))?;
            if let Some(path) = &args.history {
                let path = if runs == 1 {
                    path.clone()
                } else {
                    let conflict = workload
                        .conflict_pct()
                        .map_or_else(String::new, |c| format!("-c{c}"));
                    path.with_extension(format!(
                        "{}{conflict}.jsonl",
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
