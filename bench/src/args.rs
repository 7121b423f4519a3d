//! Command-line options of `meridian-bench` and what they resolve to (a [`Plan`]).

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use meridian_bench::backend::reconfigure::{Action, Change};
use meridian_bench::backend::sim::SimRun;
use meridian_bench::optimum;
use meridian_bench::protocols::ProtocolSpec;
use meridian_bench::runner;
use meridian_bench::workload::{KeyChoice, WorkloadSpec};
use meridian_engine::command::DEFAULT_MAX_BATCH;
use meridian_engine::sim::{ClientMode, FaultProfile};
use meridian_engine::topology::Topology;
use meridian_engine::Consistency;
use std::path::PathBuf;
use std::time::Duration;

/// Default of `--epaxos-in-flight`.
const DEFAULT_EPAXOS_IN_FLIGHT: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Backend {
    /// The deterministic simulator running the protocol cores.
    Sim,
    /// Real server processes (see `meridian cluster up`).
    Cluster,
}

/// Benchmark EPaxos, Multi-Paxos and Dynamo mode on cross-region topologies.
#[derive(Debug, Parser)]
#[command(version, about)]
pub(crate) struct Args {
    /// Where to run.
    #[arg(long, value_enum, default_value_t = Backend::Sim)]
    pub(crate) backend: Backend,
    /// Built-in topology name (epaxos-5, epaxos-3, aws-5-tempo, gcp-13, lan-3, lan-5) or a
    /// path to a topology TOML file.
    #[arg(long, default_value = "epaxos-5")]
    pub(crate) topology: String,
    /// Protocols to compare, comma-separated: epaxos, epaxos-thrifty, tempo (f = 1) or
    /// tempo:f=F (fast quorum floor(n/2)+F), multipaxos[:REGION], dynamo[:LEVEL] (ONE, QUORUM, LOCAL_QUORUM, ...; its optimum column is the median
    /// of each measured request's optimum for its key's preference list).
    #[arg(long, value_delimiter = ',', default_value = "epaxos,multipaxos")]
    pub(crate) protocols: Vec<String>,
    /// Region of the Multi-Paxos leader (name or alias) when not given per protocol
    /// [default: CA, the EPaxos paper's, when the topology has it; else the region whose
    /// leader has the lowest mean optimum]
    #[arg(long)]
    pub(crate) leader: Option<String>,
    /// Conflict percentages to sweep (share of commands on one hot key).
    #[arg(long, value_delimiter = ',', default_value = "0,100")]
    pub(crate) conflicts: Vec<f64>,
    /// Keys of its own each client writes off the hot key, in turn (0: a new key every
    /// request, so the stored data grows with the run).
    #[arg(long, default_value_t = 8)]
    pub(crate) client_keys: u64,
    /// Use a YCSB Zipf key distribution with this skew instead of conflict percentages.
    #[arg(long)]
    pub(crate) zipf: Option<f64>,
    /// Number of keys for --zipf.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) keys: u64,
    /// Share of reads (0..=1).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) reads: f64,
    /// Level of every read: linearizable (through the log), local, and for Multi-Paxos
    /// lease, read-index, follower or stale:DUR (e.g. stale:1s). Writes stay
    /// linearizable. JSON gets read_p50_ms, read_p99_ms, write_p50_ms, write_p99_ms per
    /// region.
    #[arg(long)]
    pub(crate) read_level: Option<String>,
    /// Multi-Paxos lease length in milliseconds (0 = no leases; keep it below the 500 ms
    /// election timeout). Used by `--read-level lease` and `--quorum-leases`.
    #[arg(long, default_value_t = 400)]
    pub(crate) lease_ms: u64,
    /// Multi-Paxos: every replica holds a quorum lease on the keyspace (lease reads are
    /// local everywhere; writes wait for every holder).
    #[arg(long)]
    pub(crate) quorum_leases: bool,
    /// Bytes per written value.
    #[arg(long, default_value_t = 16)]
    pub(crate) value_size: usize,
    /// Clients per region (overrides the topology's placement).
    #[arg(long, default_value_t = 10)]
    pub(crate) clients: u32,
    /// Open loop: Poisson arrivals at this rate per client (requests/s). Closed loop if
    /// absent.
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// Closed loop, cluster backend: requests each client keeps in flight on its
    /// connection (a deep pipeline with few connections); 1 is one at a time.
    #[arg(long, default_value_t = 1)]
    pub(crate) outstanding: u32,
    /// Warm-up seconds (not measured).
    #[arg(long, default_value_t = 2.0)]
    pub(crate) warmup: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) duration: f64,
    /// Run seed: the same seed reproduces a simulated run exactly.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Faults in the simulator: none, partitions, crashes, chaos.
    #[arg(long, default_value = "none")]
    pub(crate) faults: FaultProfile,
    /// fsync latency of every simulated replica, in microseconds.
    #[arg(long, default_value_t = 0)]
    pub(crate) fsync_us: u64,
    /// Batching: most commands per Multi-Paxos slot and per EPaxos instance (default 256,
    /// the engine's; 1 = off). A replica packs the requests it finds waiting together
    /// (adaptive: a lone request is never held back), and those queued while its window
    /// is full.
    #[arg(long, default_value_t = DEFAULT_MAX_BATCH)]
    pub(crate) batch: usize,
    /// EPaxos: uncommitted own instances per replica before requests queue (and are
    /// packed when room frees).
    #[arg(long, default_value_t = DEFAULT_EPAXOS_IN_FLIGHT)]
    pub(crate) epaxos_in_flight: usize,
    /// Client request timeout in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub(crate) timeout: f64,
    /// Check the run: linearizability for consensus protocols (keeps every operation in
    /// memory). On by default under faults.
    #[arg(long)]
    pub(crate) check: bool,
    /// Write results as JSON.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Write SVG charts into this directory.
    #[arg(long)]
    pub(crate) plot: Option<PathBuf>,
    /// Write every client operation as JSON Lines (needs a single protocol and workload,
    /// or writes one file per run with a suffix).
    #[arg(long)]
    pub(crate) history: Option<PathBuf>,
    /// Cluster backend: an existing deployment's replica addresses (host:port), in the
    /// topology's replica order; without it, local replica processes are started.
    #[arg(long, value_delimiter = ',')]
    pub(crate) nodes: Vec<String>,
    /// Cluster backend with --nodes: directory with ca.pem, client.pem and client.key.
    #[arg(long)]
    pub(crate) certs: Option<PathBuf>,
    /// Cluster backend with --nodes: the replicas' metrics endpoints (host:port), one per
    /// node in --nodes order; fast/slow-path and other protocol counters come from them.
    #[arg(long, value_delimiter = ',')]
    pub(crate) metrics: Vec<String>,
    /// Cluster backend: directory for the local replicas' certificates, configs, data and
    /// logs (default: a fresh temporary directory, removed afterwards).
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// Cluster backend: start the local replicas from this `meridian-bench` binary
    /// (`PROGRAM serve-replica`) instead of this one, e.g. an earlier build to compare
    /// replica costs under the same clients.
    #[arg(long)]
    pub(crate) replica_program: Option<PathBuf>,
    /// Cluster backend, local replicas: no WAN emulation; replicas and clients talk over
    /// plain loopback (LAN throughput runs: the emulator's thread costs replica CPU that a
    /// real LAN does not).
    #[arg(long)]
    pub(crate) no_wan: bool,
    /// Cluster backend, local replicas: membership changes during each run,
    /// comma-separated: add:REGION@SECONDS (start one more replica in REGION and add it),
    /// remove:added@SECONDS (remove and stop the replica the run added last) or
    /// remove:ID@SECONDS, in seconds from the run's start (warm-up included). Only the
    /// measured keyspace changes. Implies --timeline.
    #[arg(long, value_delimiter = ',')]
    pub(crate) reconfigure: Vec<Change>,
    /// Cluster backend: also report latency over time, in buckets of this many seconds
    /// (1 by default with --reconfigure).
    #[arg(long)]
    pub(crate) timeline: Option<f64>,
    /// No progress bar.
    #[arg(long)]
    pub(crate) quiet: bool,
}

/// What the options ask for, validated.
pub(crate) struct Plan {
    pub(crate) topology: Topology,
    pub(crate) protocols: Vec<ProtocolSpec>,
    pub(crate) workloads: Vec<WorkloadSpec>,
    /// Check every run's history (on by default under faults).
    pub(crate) check: bool,
    pub(crate) tuning: runner::Tuning,
    /// The simulator run every (protocol, workload) pair starts from; the cluster backend
    /// takes its timing and client settings too.
    pub(crate) template: SimRun,
    /// Cluster backend: bucket length of the latency over time, when wanted.
    pub(crate) timeline: Option<Duration>,
    /// Cluster backend: membership changes during each run.
    pub(crate) reconfigure: Vec<Change>,
}

impl Plan {
    /// How many (protocol, workload) runs the plan makes.
    pub(crate) fn runs(&self) -> usize {
        self.protocols.len() * self.workloads.len()
    }
}

impl Args {
    /// Options that only apply to replicas the bench starts itself (or only to an
    /// existing deployment) are refused rather than silently ignored.
    fn check_deployment_options(&self) -> anyhow::Result<()> {
        if self.no_wan && self.backend != Backend::Cluster {
            bail!("--no-wan applies to --backend cluster only (the simulator has no sockets)");
        }
        if self.nodes.is_empty() {
            for (given, option) in [
                (!self.metrics.is_empty(), "--metrics"),
                (self.certs.is_some(), "--certs"),
            ] {
                if given {
                    bail!("{option} applies to an existing deployment (--nodes) only");
                }
            }
            return Ok(());
        }
        if self.backend != Backend::Cluster {
            bail!("--nodes needs --backend cluster");
        }
        let set_by_configs = "with --nodes the deployment's node configs decide it";
        for (given, option, why) in [
            (self.batch != DEFAULT_MAX_BATCH, "--batch", set_by_configs),
            (
                self.epaxos_in_flight != DEFAULT_EPAXOS_IN_FLIGHT,
                "--epaxos-in-flight",
                set_by_configs,
            ),
            (
                self.dir.is_some(),
                "--dir",
                "it holds replicas the bench starts itself",
            ),
            (
                self.replica_program.is_some(),
                "--replica-program",
                "it names how the bench starts replicas itself",
            ),
            (
                self.no_wan,
                "--no-wan",
                "the deployment's node configs decide WAN emulation",
            ),
        ] {
            if given {
                bail!("{option} does not apply to an existing deployment: {why}");
            }
        }
        if !self.metrics.is_empty() && self.metrics.len() != self.nodes.len() {
            bail!(
                "--metrics gave {} addresses for {} --nodes; give one per node, in the same order",
                self.metrics.len(),
                self.nodes.len()
            );
        }
        Ok(())
    }

    /// Resolve and validate the options.
    pub(crate) fn plan(&self) -> anyhow::Result<Plan> {
        self.check_deployment_options()?;
        let topology = Topology::resolve(&self.topology)
            .with_context(|| format!("loading topology {:?}", self.topology))?
            .with_clients_per_region(self.clients);
        let protocols = self.protocols(&topology)?;
        let workloads = self.workloads()?;
        let check = self.check || self.faults != FaultProfile::None;
        let read_level = self.read_level()?;
        let leader_based = read_level.is_some_and(|level| {
            !matches!(level, Consistency::Linearizable | Consistency::LocalRead)
        });
        if leader_based
            && protocols
                .iter()
                .any(|p| !matches!(p, ProtocolSpec::MultiPaxos { .. }))
        {
            bail!(
                "--read-level {} needs a leader: run it with --protocols multipaxos (EPaxos and \
                 Dynamo refuse it)",
                self.read_level.as_deref().unwrap_or_default()
            );
        }
        let tuning = runner::Tuning {
            batch: self.batch.max(1),
            epaxos_in_flight: self.epaxos_in_flight.max(1),
            lease: (self.lease_ms > 0).then(|| Duration::from_millis(self.lease_ms)),
            quorum_leases: self.quorum_leases,
        };
        if self.quorum_leases && self.lease_ms == 0 {
            bail!("--quorum-leases needs leases (--lease-ms above 0)");
        }
        let template = SimRun {
            topology: topology.clone(),
            seed: self.seed,
            workload: workloads[0].clone(),
            warmup: Duration::from_secs_f64(self.warmup.max(0.0)),
            duration: Duration::from_secs_f64(self.duration.max(0.001)),
            mode: self
                .rate
                .map_or(ClientMode::Closed, |rate| ClientMode::Open {
                    rate_per_sec: rate,
                }),
            fsync: Duration::from_micros(self.fsync_us),
            faults: self.faults,
            keep_ops: check || self.history.is_some(),
            client_timeout: Duration::from_secs_f64(self.timeout.max(0.001)),
        };
        if self.outstanding == 0 {
            bail!("--outstanding takes a number of requests, at least 1");
        }
        if self.outstanding > 1 && self.backend != Backend::Cluster {
            bail!("--outstanding applies to --backend cluster only (simulated clients send one request at a time)");
        }
        if self.outstanding > 1 && self.rate.is_some() {
            bail!("--outstanding is for closed-loop clients; --rate makes them open-loop");
        }
        let timeline = self.timeline()?;
        self.check_reconfigure(&topology, &template)?;
        Ok(Plan {
            topology,
            protocols,
            workloads,
            check,
            tuning,
            template,
            timeline,
            reconfigure: self.reconfigure.clone(),
        })
    }

    /// `--timeline`, or its default under `--reconfigure`.
    fn timeline(&self) -> anyhow::Result<Option<Duration>> {
        let seconds = match (self.timeline, self.reconfigure.is_empty()) {
            (Some(seconds), _) => seconds,
            (None, false) => 1.0,
            (None, true) => return Ok(None),
        };
        if self.backend != Backend::Cluster {
            bail!("--timeline and --reconfigure apply to --backend cluster only");
        }
        if !(seconds.is_finite() && seconds >= 0.001) {
            bail!("--timeline takes a bucket length in seconds (at least 0.001), got {seconds}");
        }
        Ok(Some(Duration::from_secs_f64(seconds)))
    }

    /// `--reconfigure` needs replicas the bench starts, the topology's regions and times
    /// inside the run.
    fn check_reconfigure(&self, topology: &Topology, template: &SimRun) -> anyhow::Result<()> {
        if self.reconfigure.is_empty() {
            return Ok(());
        }
        if !self.nodes.is_empty() {
            bail!(
                "--reconfigure starts and stops replicas, so it needs the replicas the bench \
                 starts itself (not --nodes; against a deployment use `meridian member add` \
                 and `member remove` beside the bench)"
            );
        }
        let end = template.warmup + template.duration;
        for change in &self.reconfigure {
            if change.at >= end {
                bail!(
                    "--reconfigure {change}: the run ends {:.1} s after it starts",
                    end.as_secs_f64()
                );
            }
            if let Action::Add { region } = &change.action {
                if topology.region_index(region).is_none() {
                    bail!(
                        "--reconfigure {change}: region {region:?} is not in topology {}",
                        topology.name()
                    );
                }
            }
        }
        Ok(())
    }

    fn protocols(&self, topology: &Topology) -> anyhow::Result<Vec<ProtocolSpec>> {
        let leader = match &self.leader {
            Some(region) => region.clone(),
            None => optimum::default_leader_region(topology)
                .with_context(|| format!("topology {} has no replica", topology.name()))?,
        };
        let protocols = self
            .protocols
            .iter()
            .map(|p| ProtocolSpec::parse(p, &leader).map_err(anyhow::Error::msg))
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
        Ok(protocols)
    }

    fn workloads(&self) -> anyhow::Result<Vec<WorkloadSpec>> {
        let workloads = match self.zipf {
            Some(theta) => vec![WorkloadSpec {
                keys: KeyChoice::Zipf {
                    theta,
                    keys: self.keys,
                },
                read_ratio: self.reads,
                value_size: self.value_size,
                consistency: Default::default(),
                read_level: None,
            }],
            None => self
                .conflicts
                .iter()
                .map(|&c| {
                    if !(0.0..=100.0).contains(&c) {
                        bail!("conflict percentage {c} is outside 0..=100");
                    }
                    Ok(WorkloadSpec {
                        keys: KeyChoice::Conflict {
                            conflict_pct: c,
                            client_keys: self.client_keys,
                        },
                        read_ratio: self.reads,
                        value_size: self.value_size,
                        ..WorkloadSpec::conflicts(c)
                    })
                })
                .collect::<anyhow::Result<_>>()?,
        };
        if !(0.0..=1.0).contains(&self.reads) {
            bail!("--reads must be between 0 and 1, got {}", self.reads);
        }
        let read_level = self.read_level()?;
        Ok(workloads
            .into_iter()
            .map(|w| WorkloadSpec { read_level, ..w })
            .collect())
    }

    /// `--read-level`, parsed.
    fn read_level(&self) -> anyhow::Result<Option<Consistency>> {
        self.read_level
            .as_deref()
            .map(|text| {
                text.parse::<Consistency>()
                    .map_err(|e| anyhow::anyhow!("--read-level: {e}"))
            })
            .transpose()
    }
}

#[cfg(test)]
#[path = "args_test.rs"]
mod tests;
