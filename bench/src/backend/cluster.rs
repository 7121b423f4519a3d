//! The cluster backend: real replica processes, driven over QUIC by the client library.
//!
//! ```text
//!  Deployment::local(topology, keyspaces)  ─▶ one `meridian-bench serve-replica` process
//!        per topology replica on loopback, WAN emulated from the topology
//!  Deployment::remote(addresses, metrics, certs) ─▶ an existing deployment (replicas in
//!        topology order)
//!  run(deployment, keyspace, run)          ─▶ clients per region, each next to its
//!        nearest replica, closed or open loop; every request recorded as an OpRecord
//! ```
//!
//! Times are real: a request's `call` and `return` are microseconds since the run began.
//! A client whose region has no replica reaches the nearest one across the emulated WAN:
//! its outgoing datagrams are held for the whole round trip (the replica's socket has no
//! link to it), so request latency includes the client's RTT as in the simulator. Path
//! counters (fast/slow) come from the replicas' Prometheus endpoints, before and after.
//! Commit latency: the reply says how long the replica held it after the request
//! committed there (the wait for execution), so the request's commit is recorded at its
//! return minus that hold, as if the replica had told the client at commit time; requests
//! without a note (forwarded Multi-Paxos requests, Dynamo) commit at their return.
//! With `--reconfigure` the run adds and removes replicas of a local deployment while the
//! clients go on (`reconfigure`), and reports its latency over time (`timeline`).

use super::efficiency::{cpu_seconds, total_cpu_seconds, Efficiency};
use super::reconfigure::{Change, ChangeRecord, Reconfigurer};
use crate::runner::RequestOptimum;
use crate::stats::RunStats;
use crate::timeline::{Timeline, TimelineReport};
use crate::workload::WorkloadSpec;
use anyhow::{anyhow, Context};
use indicatif::ProgressBar;
use meridian_engine::sim::{ClientMode, OpRecord, Workload};
use meridian_engine::topology::Topology;
use meridian_engine::{
    ClientId, ClientReply, ClientRequest, CommitPath, Metrics, NodeId, RequestError, RequestId,
    Time,
};
use meridian_server::client::{Client, ClientOptions};
use meridian_server::config::KeyspaceConfig;
use meridian_server::launcher::{self, LocalCluster, ServerCommand};
use meridian_server::local_cluster::ClusterSpec;
use meridian_server::tls::{TlsIdentity, TlsPaths};
use meridian_server::transport::wan::{LinkDelay, WanConfig};
use meridian_server::wire::CommitNote;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One cluster run's parameters.
#[derive(Clone, Debug)]
pub struct ClusterRun {
    /// Topology (regions, clients per region).
    pub topology: Topology,
    /// Seed of the clients' RNGs.
    pub seed: u64,
    /// What clients ask.
    pub workload: WorkloadSpec,
    /// Requests issued before this are not measured.
    pub warmup: Duration,
    /// Measured time after warm-up.
    pub duration: Duration,
    /// Closed or open loop.
    pub mode: ClientMode,
    /// Closed loop: requests each client keeps in flight (at least 1).
    pub outstanding: usize,
    /// Keep every operation (history, verdict).
    pub keep_ops: bool,
    /// Client request timeout.
    pub client_timeout: Duration,
    /// Bucket length of the latency over time, when wanted.
    pub timeline: Option<Duration>,
    /// Membership changes to make during the run (local deployments only).
    pub reconfigure: Vec<Change>,
}

/// What a cluster run produced.
pub struct ClusterOutcome {
    /// Latency statistics of the measured window.
    pub stats: RunStats,
    /// Protocol counters (deltas over the run, summed over replicas), when the replicas
    /// expose metrics.
    pub metrics: Metrics,
    /// Every operation (when `keep_ops`).
    pub ops: Vec<OpRecord>,
    /// Replica CPU per operation, operations per fsync, commands per instance.
    pub efficiency: Efficiency,
    /// Latency over time and the changes made (with `timeline`).
    pub timeline: Option<TimelineReport>,
}

/// Replicas to benchmark.
pub struct Deployment {
    /// Client address of each replica, in topology replica order.
    pub addresses: Vec<SocketAddr>,
    /// Metrics endpoint of each replica, if known.
    pub metrics: Vec<Option<SocketAddr>>,
    /// Region index of each replica.
    pub regions: Vec<usize>,
    /// Whether the replicas emulate the topology's WAN (so clients do too).
    pub wan: bool,
    /// Process ids of the replicas a local deployment started (empty otherwise).
    pub pids: Vec<u32>,
    tls: TlsIdentity,
    /// The replica processes a local deployment started (replicas are added and removed
    /// through it during a run).
    local: Option<Mutex<LocalCluster>>,
}

impl Deployment {
    /// Start one replica process per topology replica in `dir` (WAN emulated unless the
    /// topology is a LAN) serving `keyspaces`, and wait until every keyspace serves.
    /// `topology_ref` is how the user named the topology (a builtin name or a file path):
    /// the replicas' configs and added replicas resolve it again.
    pub async fn local(
        topology: &Topology,
        topology_ref: &str,
        keyspaces: Vec<KeyspaceConfig>,
        dir: &Path,
        command: ServerCommand,
        wan: bool,
    ) -> anyhow::Result<Self> {
        let n = topology.replicas().len();
        let spec = ClusterSpec {
            topology_ref: meridian_server::local_cluster::topology_ref(topology_ref)?,
            topology: topology.clone(),
            addresses: launcher::free_udp_addrs(n)?,
            metrics: Some(launcher::free_tcp_addrs(n)?),
            keyspaces,
            wan,
        };
        let cluster = LocalCluster::start(dir, &spec, command)?;
        if let Err(e) = cluster.wait_all_ready(Duration::from_secs(120)).await {
            return Err(anyhow!("{e}\n{}", cluster.log_tail(0, 20)));
        }
        let tls = cluster.client_tls()?;
        let manifest = cluster.manifest();
        Ok(Self {
            addresses: manifest.nodes.iter().map(|n| n.address).collect(),
            metrics: manifest.nodes.iter().map(|n| n.metrics).collect(),
            regions: topology.replicas().into_iter().map(|(_, r)| r).collect(),
            wan,
            pids: cluster.pids(),
            tls,
            local: Some(Mutex::new(cluster)),
        })
    }

    /// An existing deployment: `addresses` of the topology's replicas in order, their
    /// metrics endpoints (same order; `None` where unknown), client certificates in
    /// `certs` (ca.pem, client.pem, client.key).
    pub fn remote(
        topology: &Topology,
        addresses: Vec<SocketAddr>,
        metrics: Vec<Option<SocketAddr>>,
        certs: &Path,
    ) -> anyhow::Result<Self> {
        let regions: Vec<usize> = topology.replicas().into_iter().map(|(_, r)| r).collect();
        if regions.len() != addresses.len() {
            anyhow::bail!(
                "topology {} has {} replicas but --nodes gave {} addresses",
                topology.name(),
                regions.len(),
                addresses.len()
            );
        }
        if metrics.len() != addresses.len() {
            anyhow::bail!(
                "{} metrics addresses for {} replicas",
                metrics.len(),
                addresses.len()
            );
        }
        let tls = TlsIdentity::load(&TlsPaths::client(certs))
            .with_context(|| format!("loading client certificates from {}", certs.display()))?;
        Ok(Self {
            metrics,
            addresses,
            regions,
            wan: false,
            pids: Vec::new(),
            tls,
            local: None,
        })
    }

    /// The replica a client in `region` talks to: one in its region, else the nearest,
    /// with the RTT to it.
    fn replica_for(&self, topology: &Topology, region: usize) -> (usize, f64) {
        (0..self.addresses.len())
            .map(|i| (i, topology.rtt_ms(region, self.regions[i])))
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
            .unwrap_or((0, 0.0))
    }

    /// What makes `keyspace`'s membership changes: the local cluster, asked through the
    /// replicas `topology`'s clients talk to.
    fn reconfigurer(
        &self,
        topology: &Topology,
        keyspace: &str,
    ) -> anyhow::Result<Reconfigurer<'_>> {
        let cluster = self.local.as_ref().context(
            "--reconfigure needs replicas the bench starts itself (it was given --nodes)",
        )?;
        let operator = cluster
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .operator_tls()?;
        let mut serving: Vec<(u16, SocketAddr)> = (0..topology.regions().len())
            .map(|region| {
                let replica = self.replica_for(topology, region).0;
                (replica as u16, self.addresses[replica])
            })
            .collect();
        serving.sort_unstable();
        serving.dedup();
        Ok(Reconfigurer {
            cluster,
            operator,
            serving,
            keyspace: keyspace.to_owned(),
            ledger: Mutex::default(),
        })
    }

    /// Protocol counters of `keyspace` summed over the replicas that expose metrics.
    fn scrape(&self, keyspace: &str) -> Metrics {
        let mut total = Metrics::new();
        for addr in self.metrics.iter().flatten() {
            if let Ok(text) = meridian_server::metrics::fetch(*addr) {
                total.merge(&protocol_counters(&text, keyspace));
            }
        }
        total
    }
}

/// The protocol counters and gauges of one keyspace: the
/// `meridian_protocol_events_total{...keyspace="K"...,name="N"} V` and
/// `meridian_protocol_state{...}` samples, and its host events
/// (`meridian_host_events_total{...,event="E"}`) as `host_E`.
pub fn protocol_counters(text: &str, keyspace: &str) -> Metrics {
    let mut metrics = Metrics::new();
    let wanted = format!("keyspace=\"{keyspace}\"");
    for line in text.lines() {
        let (rest, host) = if let Some(rest) = line
            .strip_prefix("meridian_protocol_events_total{")
            .or_else(|| line.strip_prefix("meridian_protocol_state{"))
        {
            (rest, false)
        } else if let Some(rest) = line.strip_prefix("meridian_host_events_total{") {
            (rest, true)
        } else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        if !labels.split(',').any(|l| l == wanted) {
            continue;
        }
        let label = if host { "event=\"" } else { "name=\"" };
        let name = labels
            .split(',')
            .find_map(|l| l.strip_prefix(label))
            .and_then(|n| n.strip_suffix('"'));
        if let (Some(name), Ok(value)) = (name, value.trim().parse::<u64>()) {
            if host {
                metrics.add(&format!("host_{name}"), value);
            } else {
                metrics.add(name, value);
            }
        }
    }
    metrics
}

/// Counters that grew between two scrapes.
fn delta(before: &Metrics, after: &Metrics) -> Metrics {
    let mut grown = Metrics::new();
    for (name, value) in after.iter() {
        grown.add(name, value.saturating_sub(before.get(name)));
    }
    grown
}

struct Shared {
    start: Instant,
    optimum: Option<RequestOptimum>,
    stats: Mutex<RunStats>,
    ops: Mutex<Vec<OpRecord>>,
    keep_ops: bool,
    timeline: Option<Mutex<Timeline>>,
    /// Successful operations over the whole run (warm-up and tail included: the span
    /// the replicas' CPU and counters are measured over).
    succeeded: AtomicU64,
}

impl Shared {
    fn now(&self) -> Time {
        Time::from_micros(self.start.elapsed().as_micros() as u64)
    }

    fn finish(&self, record: OpRecord) {
        if record.reply.as_ref().is_some_and(|r| r.outcome.is_ok()) {
            self.succeeded.fetch_add(1, Ordering::Relaxed);
        }
        self.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(&record, self.optimum.as_ref().and_then(|f| f(&record)));
        if let Some(timeline) = &self.timeline {
            timeline
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(&record);
        }
        if self.keep_ops {
            self.ops
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(record);
        }
    }
}

/// One client of the run: its connection, identity and workload.
struct ClientTask {
    shared: Arc<Shared>,
    client: Client,
    keyspace: String,
    id: ClientId,
    region: usize,
    node: NodeId,
    workload: Mutex<Box<dyn Workload + Send>>,
}

impl ClientTask {
    /// The client's next operation, or `None` once the measured window has ended.
    fn next_op(
        &self,
        rng: &mut ChaCha8Rng,
        measure_to: Time,
    ) -> Option<meridian_engine::sim::ClientOp> {
        let now = self.shared.now();
        if now >= measure_to {
            return None;
        }
        self.workload
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_op(self.id, rng, now)
    }

    /// One request: send it, wait, record it.
    async fn request(&self, seq: u64, op: meridian_engine::sim::ClientOp) {
        let mut request = ClientRequest::new(
            RequestId {
                client: self.id,
                seq,
            },
            op.command.clone(),
        );
        request.consistency = op.consistency;
        let call = self.shared.now();
        let answer = self
            .client
            .execute_noted(&self.keyspace, op.command, Some(op.consistency))
            .await;
        let ret = self.shared.now();
        // A transport failure leaves the outcome unknown, like a timeout.
        let answer = answer
            .ok()
            .filter(|a| !matches!(a.reply.outcome, Err(RequestError::Timeout)));
        let timed_out = answer.is_none();
        let commit = answer
            .as_ref()
            .and_then(|a| a.commit)
            .map(|note| commit_of(call, ret, note));
        let reply = answer.map(|a| a.reply);
        let record = OpRecord {
            client: self.id,
            region: self.region,
            node: self.node,
            call,
            commit,
            ret: reply.is_some().then_some(ret),
            reply: reply.map(|r| ClientReply {
                id: request.id,
                outcome: r.outcome,
            }),
            request,
            timed_out,
        };
        self.workload
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(&record);
        self.shared.finish(record);
    }
}

/// When the client could have learnt of its request's commit: its return minus the time
/// the replica held the reply after the commit, never before the call.
pub fn commit_of(call: Time, ret: Time, note: CommitNote) -> (Time, CommitPath) {
    let at = (ret - Duration::from_micros(note.before_reply_us)).max(call);
    (at, note.path)
}

/// Run one workload against `keyspace` of `deployment`.
pub async fn run(
    deployment: &Deployment,
    keyspace: &str,
    run: &ClusterRun,
    optimum: Option<RequestOptimum>,
    progress: Option<&ProgressBar>,
) -> anyhow::Result<ClusterOutcome> {
    let topology = &run.topology;
    let measure_from = Time::ZERO + run.warmup;
    let measure_to = measure_from + run.duration;
    let regions = topology
        .regions()
        .iter()
        .map(|r| r.alias.clone().unwrap_or_else(|| r.name.clone()));
    let shared = Arc::new(Shared {
        start: Instant::now(),
        optimum,
        stats: Mutex::new(RunStats::new(regions, measure_from, measure_to)),
        ops: Mutex::new(Vec::new()),
        keep_ops: run.keep_ops,
        timeline: run.timeline.map(|width| Mutex::new(Timeline::new(width))),
        succeeded: AtomicU64::new(0),
    });
    let reconfigurer = if run.reconfigure.is_empty() {
        None
    } else {
        Some(deployment.reconfigurer(topology, keyspace)?)
    };
    let before = deployment.scrape(keyspace);
    let cpu_before = total_cpu_seconds(&deployment.pids);
    let client_cpu_before = cpu_seconds(std::process::id());
    let clients = connect_clients(deployment, run).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for (client, id, region, node) in clients {
        let task = Arc::new(ClientTask {
            shared: Arc::clone(&shared),
            client,
            keyspace: keyspace.to_owned(),
            id,
            region,
            node,
            workload: Mutex::new(Box::new(run.workload.generator())),
        });
        tasks.spawn(drive_client(task, run.clone(), measure_to));
    }
    let end = measure_to + run.client_timeout;
    let clients_done = async {
        loop {
            tokio::select! {
                joined = tasks.join_next() => {
                    match joined {
                        Some(result) => result.context("a client task failed")?,
                        None => break,
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            if let Some(bar) = progress {
                let now = shared.now().as_micros();
                bar.set_position((now * 1000 / end.as_micros().max(1)).min(1000));
            }
        }
        anyhow::Ok(())
    };
    let changes_done = async {
        match &reconfigurer {
            Some(reconfigurer) => reconfigurer.run(&run.reconfigure, shared.start).await,
            None => Vec::<ChangeRecord>::new(),
        }
    };
    let (clients, changes) = tokio::join!(clients_done, changes_done);
    clients?;
    let metrics = delta(&before, &deployment.scrape(keyspace));
    let ledger = reconfigurer
        .as_ref()
        .map(Reconfigurer::ledger)
        .unwrap_or_default();
    let cpu = ledger
        .total(&deployment.pids, cpu_seconds)
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let client_cpu = cpu_seconds(std::process::id())
        .zip(client_cpu_before)
        .map(|(after, before)| after - before);
    let efficiency = Efficiency::of(
        shared.succeeded.load(Ordering::Relaxed),
        cpu,
        client_cpu,
        deployment.addresses.len(),
        &metrics,
    );
    let stats = shared
        .stats
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let ops = std::mem::take(&mut *shared.ops.lock().unwrap_or_else(|e| e.into_inner()));
    let timeline = shared.timeline.as_ref().map(|timeline| {
        timeline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .report(changes)
    });
    Ok(ClusterOutcome {
        stats,
        metrics,
        ops,
        efficiency,
        timeline,
    })
}

/// One connected client per topology client, next to its region's nearest replica (with
/// the link's delay emulated when the deployment emulates a WAN).
async fn connect_clients(
    deployment: &Deployment,
    run: &ClusterRun,
) -> anyhow::Result<Vec<(Client, ClientId, usize, NodeId)>> {
    let topology = &run.topology;
    let mut clients = Vec::new();
    let mut next_client = 0u64;
    for (region, info) in topology.regions().iter().enumerate() {
        let (replica, rtt_ms) = deployment.replica_for(topology, region);
        let addr = deployment.addresses[replica];
        let wan = (deployment.wan && rtt_ms > 0.0).then(|| {
            let mut links = std::collections::HashMap::new();
            links.insert(
                addr,
                LinkDelay {
                    one_way: Duration::from_secs_f64(rtt_ms / 1e3),
                    jitter: Duration::ZERO,
                },
            );
            WanConfig {
                links,
                seed: run.seed ^ region as u64,
                ..WanConfig::default()
            }
        });
        for _ in 0..info.clients {
            let options = ClientOptions {
                timeout: run.client_timeout,
                wan: wan.clone(),
                ..ClientOptions::default()
            };
            let client = Client::connect_with(addr, &deployment.tls, options)
                .await
                .with_context(|| format!("connecting a client to {addr}"))?;
            // Workload ids are offset by the seed so keys unique to a client stay unique
            // across the runs of one invocation against the same keyspace.
            let id = ClientId(run.seed.wrapping_mul(1 << 20) + next_client);
            next_client += 1;
            clients.push((client, id, region, NodeId(replica as u16)));
        }
    }
    Ok(clients)
}

/// One client's requests until the measured window ends: closed loop (`outstanding`
/// lanes on the client's connection, each one request at a time) or open loop (Poisson
/// arrivals, each request in its own task).
async fn drive_client(task: Arc<ClientTask>, run: ClusterRun, measure_to: Time) {
    match run.mode {
        ClientMode::Closed => {
            let lanes = run.outstanding.max(1) as u64;
            let mut others = tokio::task::JoinSet::new();
            for lane in 1..lanes {
                others.spawn(closed_lane(
                    Arc::clone(&task),
                    run.seed,
                    lane,
                    lanes,
                    measure_to,
                ));
            }
            closed_lane(Arc::clone(&task), run.seed, 0, lanes, measure_to).await;
            while others.join_next().await.is_some() {}
        }
        ClientMode::Open { rate_per_sec } => {
            open_loop(&task, run.seed, rate_per_sec, measure_to).await;
        }
    }
    task.client.close().await;
}

/// The RNG of a client's lane (lane 0 draws what a one-lane client always drew).
fn lane_rng(seed: u64, client: ClientId, lane: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ client.0.rotate_left(17) ^ lane.rotate_left(41))
}

/// Lane `lane` of `lanes`: one request at a time, numbered `lane + 1`, `lane + 1 +
/// lanes`, ... so the client's lanes never share a number.
async fn closed_lane(task: Arc<ClientTask>, seed: u64, lane: u64, lanes: u64, measure_to: Time) {
    let mut rng = lane_rng(seed, task.id, lane);
    let mut seq = lane + 1;
    while let Some(op) = task.next_op(&mut rng, measure_to) {
        task.request(seq, op).await;
        seq += lanes;
    }
}

/// Poisson arrivals at `rate_per_sec`, each request in its own task.
async fn open_loop(task: &Arc<ClientTask>, seed: u64, rate_per_sec: f64, measure_to: Time) {
    let mut rng = lane_rng(seed, task.id, 0);
    let mut seq = 0u64;
    let mut in_flight = tokio::task::JoinSet::new();
    let mut next_arrival = task.shared.now();
    while let Some(op) = task.next_op(&mut rng, measure_to) {
        seq += 1;
        // Exponential gaps at the target rate.
        let gap: f64 = -(1.0 - rng.gen::<f64>()).ln() / rate_per_sec.max(1e-9);
        next_arrival = next_arrival + Duration::from_secs_f64(gap);
        // Sleep only when ahead of the schedule: even a zero-length sleep waits for the
        // timer's next tick (a millisecond), which held a client at a few hundred requests
        // a second whatever its rate.
        let ahead = next_arrival.saturating_since(task.shared.now());
        if !ahead.is_zero() {
            tokio::time::sleep(ahead).await;
        }
        let request = Arc::clone(task);
        in_flight.spawn(async move { request.request(seq, op).await });
        // Free finished requests' tasks as we go: kept to the end, they grew the client's
        // memory by every request's task and a fifth of its CPU went to the kernel zeroing
        // fresh pages for them.
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
}

/// Where a local deployment keeps its files when no directory is given.
pub fn default_dir() -> PathBuf {
    std::env::temp_dir().join(format!("meridian-bench-{}", std::process::id()))
}

#[cfg(test)]
#[path = "cluster_test.rs"]
mod tests;
