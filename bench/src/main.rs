//! `meridian-bench`: with no arguments, reproduces the EPaxos vs Multi-Paxos (leader in CA)
//! comparison at 0% and 100% conflicts on the built-in 5-region topology in the
//! simulator, and prints the per-region table.

mod args;

/// mimalloc instead of glibc malloc: a million-command simulation allocates and frees
/// per message, per event and per key (docs/design.md#simulator).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{bail, Context};
use args::{Args, Backend, Plan};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use meridian_bench::backend::cluster::{self, ClusterRun, Deployment};
use meridian_bench::backend::sim::SimRun;
use meridian_bench::protocols::ProtocolSpec;
use meridian_bench::report::{self, RunReport};
use meridian_bench::{history, runner};
use meridian_engine::check::OpRecord;
use meridian_engine::sim::FaultProfile;
use meridian_server::config::resolve_host_port;
use meridian_server::launcher::ServerCommand;
use std::io::Write;
use std::path::PathBuf;

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
    Ok(meridian_server::serve::run(
        &config,
        meridian_server::identity::StartMode::Normal,
    )?)
}

/// One finished run: its report and, when kept, every client operation.
type Finished = (RunReport, Vec<OpRecord>);

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(SERVE_REPLICA) {
        return serve_replica(&argv[2..]);
    }
    let args = Args::parse();
    let plan = args.plan()?;
    let mut progress = Progress::new(args.quiet, plan.runs());
    let finished = match args.backend {
        Backend::Sim => run_in_simulator(&plan, &mut progress)?,
        Backend::Cluster => run_on_cluster(&args, &plan, &mut progress)?,
    };
    let reports = write_histories(args.history.as_ref(), plan.runs(), finished)?;
    progress.bar.finish_and_clear();
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

/// The progress bar, labelled with the run under way.
struct Progress {
    bar: ProgressBar,
    runs: usize,
    started: usize,
}

impl Progress {
    fn new(quiet: bool, runs: usize) -> Self {
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(1000).with_style(
                ProgressStyle::with_template("{prefix:>32} [{bar:30}] {percent:>3}% {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            )
        };
        Self {
            bar,
            runs,
            started: 0,
        }
    }

    /// Label the next run; returns its number (1, 2, ...).
    fn next(&mut self, spec: &ProtocolSpec) -> usize {
        self.started += 1;
        self.bar
            .set_prefix(format!("{}/{} {spec}", self.started, self.runs));
        self.bar.set_position(0);
        self.started
    }
}

/// Every (workload, protocol) pair in the simulator.
fn run_in_simulator(plan: &Plan, progress: &mut Progress) -> anyhow::Result<Vec<Finished>> {
    let mut finished = Vec::new();
    for workload in &plan.workloads {
        for spec in &plan.protocols {
            progress.next(spec);
            let run = SimRun {
                workload: workload.clone(),
                ..plan.template.clone()
            };
            let done = runner::run_sim(spec, &run, plan.tuning, plan.check, Some(&progress.bar))?;
            finished.push(done);
        }
    }
    Ok(finished)
}

/// Every (workload, protocol) pair on local replica processes (started here, removed
/// afterwards unless `--dir` keeps them) or on an existing deployment (`--nodes`).
fn run_on_cluster(
    args: &Args,
    plan: &Plan,
    progress: &mut Progress,
) -> anyhow::Result<Vec<Finished>> {
    if args.faults != FaultProfile::None {
        bail!("--faults applies to the sim backend only");
    }
    // The clients run on one thread: the requests written in one pass leave in shared
    // packets (on the multi-thread scheduler a connection driver woken by one request's
    // write sent it alone before the next was written). Membership changes stop replicas
    // from a blocking section, which needs the multi-thread scheduler.
    let threads = args.reconfigure.is_empty().then_some(1);
    let runtime = meridian_server::serve::runtime(threads).context("starting the async runtime")?;
    runtime.block_on(async {
        let local = args.nodes.is_empty();
        let temporary = local && args.dir.is_none();
        let dir = args.dir.clone().unwrap_or_else(cluster::default_dir);
        let deployment = if local {
            progress.bar.set_prefix("starting replicas");
            let keyspaces = runner::keyspaces_for(&plan.protocols, &plan.topology, plan.tuning)?;
            let exe = match &args.replica_program {
                Some(program) => program.clone(),
                None => std::env::current_exe().context("locating meridian-bench")?,
            };
            let command = ServerCommand {
                program: exe,
                args: vec![SERVE_REPLICA.into()],
            };
            Deployment::local(
                &plan.topology,
                &args.topology,
                keyspaces,
                &dir,
                command,
                !args.no_wan,
            )
            .await?
        } else {
            remote_deployment(args, plan)?
        };
        let mut finished = Vec::new();
        for workload in &plan.workloads {
            for spec in &plan.protocols {
                let number = progress.next(spec);
                let template = &plan.template;
                let run = ClusterRun {
                    topology: plan.topology.clone(),
                    seed: args.seed + number as u64,
                    workload: workload.clone(),
                    warmup: template.warmup,
                    duration: template.duration,
                    mode: template.mode,
                    outstanding: args.outstanding as usize,
                    keep_ops: template.keep_ops,
                    client_timeout: template.client_timeout,
                    timeline: plan.timeline,
                    reconfigure: plan.reconfigure.clone(),
                };
                let keyspace = runner::keyspace_name(spec, local);
                let bar = Some(&progress.bar);
                let done = runner::run_cluster(spec, &run, &deployment, &keyspace, plan.check, bar)
                    .await?;
                finished.push(done);
            }
        }
        drop(deployment);
        if temporary {
            let _ = std::fs::remove_dir_all(&dir);
        }
        Ok(finished)
    })
}

/// An existing deployment from `--nodes` and `--certs`.
fn remote_deployment(args: &Args, plan: &Plan) -> anyhow::Result<Deployment> {
    let certs = args
        .certs
        .as_deref()
        .context("--nodes needs --certs DIR (ca.pem, client.pem, client.key)")?;
    let resolve = |option: &str, addresses: &[String]| {
        addresses
            .iter()
            .map(|a| resolve_host_port(a).map_err(|e| anyhow::anyhow!("{option}: {e}")))
            .collect::<anyhow::Result<Vec<std::net::SocketAddr>>>()
    };
    let addresses = resolve("--nodes", &args.nodes)?;
    let metrics = if args.metrics.is_empty() {
        vec![None; addresses.len()]
    } else {
        resolve("--metrics", &args.metrics)?
            .into_iter()
            .map(Some)
            .collect()
    };
    Deployment::remote(&plan.topology, addresses, metrics, certs)
}

/// Write each run's operations as JSON Lines when `--history` asks (one file, or one per
/// run with a suffix), and keep the reports.
fn write_histories(
    history: Option<&PathBuf>,
    runs: usize,
    finished: Vec<Finished>,
) -> anyhow::Result<Vec<RunReport>> {
    let mut reports = Vec::new();
    for (i, (report, ops)) in finished.into_iter().enumerate() {
        if let Some(path) = history {
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
    Ok(reports)
}
