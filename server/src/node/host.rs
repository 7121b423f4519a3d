//! The keyspace host: one tokio task owns one protocol core and drives it.
//!
//! ```text
//!   peer payloads ─┐                        ┌─▶ Now(Send)      ─▶ PeerSender (self: local queue)
//!   client calls ──┼─▶ core.handle_*(now) ──┤   Now(Reply)     ─▶ the client's oneshot
//!   timer ─────────┤   then drain          ├─▶ Persist{r,then} ─▶ storage thread (group commit)
//!   synced(batch) ─┘   poll_output()        │                      └─ synced ─▶ release `then`
//!                                           └─▶ Compact{snap}  ─▶ storage thread (after prior syncs)
//! ```
//!
//! Every input is followed by a full drain; the task then sleeps until the earliest of
//! its next input and `poll_timeout`. Effects of a `Persist` are held in a queue tagged
//! with their batch number and released, in order, only when the storage thread reports
//! that batch synced (a `Persist` no effect waits for is appended and synced with the
//! next one that has some: `storage_thread.rs`). A `Send` to this node itself is
//! delivered through `handle_message(now, own id, ..)` after the current drain, never
//! re-entrantly.

use super::storage_thread::{self, StorageJob, StorageReport};
use super::NodeError;
use crate::metrics::KeyspaceMetrics;
use crate::wire::{CommitNote, PeerFrame, ReplyFrame};
use meridian_engine::configuration::{Change, ChangeFailure, Configuration};
use meridian_engine::storage::Storage;
use meridian_engine::{
    ClientId, ClientReply, ClientRequest, CommitPath, Effect, NodeId, Output, Protocol,
    RequestError, RequestId, Time,
};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Where a host sends messages for other nodes.
pub trait PeerSender: Send + Sync + 'static {
    /// Queue `frame` for node `to`; may drop it (the protocols retransmit).
    fn send(&self, to: NodeId, frame: PeerFrame);
}

impl PeerSender for crate::transport::endpoint::Transport {
    fn send(&self, to: NodeId, frame: PeerFrame) {
        Self::send(self, to, frame);
    }
}

/// How one keyspace host runs.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// Keyspace name (labels frames and metrics).
    pub keyspace: String,
    /// Protocol name (metrics).
    pub protocol: String,
    /// This node.
    pub id: NodeId,
    /// The instant that is `Time::ZERO` for the core.
    pub epoch: Instant,
    /// Capacity of the peer and client input queues.
    pub queue_max: usize,
    /// Requests waiting for replies before new ones are rejected.
    pub pending_requests_max: usize,
    /// The node lost this keyspace's state (`serve --rejoin`): the core is told
    /// [`Protocol::rejoin`] right after it is built.
    pub rejoin: bool,
    /// The log file, whose size the metrics report.
    pub log_path: Option<std::path::PathBuf>,
}

impl HostConfig {
    /// Defaults for queue sizes; epoch = now.
    pub fn new(keyspace: &str, protocol: &str, id: NodeId) -> Self {
        Self {
            keyspace: keyspace.to_owned(),
            protocol: protocol.to_owned(),
            id,
            epoch: Instant::now(),
            queue_max: 65_536,
            pending_requests_max: 100_000,
            rejoin: false,
            log_path: None,
        }
    }
}

/// A client request and where its reply goes.
#[derive(Debug)]
pub struct ClientCall {
    /// The request.
    pub request: ClientRequest,
    /// The reply channel; dropping it tells the client nothing was decided.
    pub reply: oneshot::Sender<ReplyFrame>,
}

/// What the node asks of a host besides peer messages and client requests.
#[derive(Debug)]
enum Control {
    /// A metrics snapshot.
    Metrics(oneshot::Sender<KeyspaceMetrics>),
    /// The node is draining: give up roles peers wait on ([`Protocol::hand_off`]).
    HandOff(oneshot::Sender<()>),
    /// The drain's deadline passed: answer every request still in flight with
    /// [`RequestError::Timeout`] (its outcome is unknown; a retry with the same request
    /// id, at any replica, runs it at most once).
    GiveUp(oneshot::Sender<u64>),
    /// An operator's membership change ([`Protocol::propose_change`]); answered when it
    /// ends.
    Change(Change, oneshot::Sender<ChangeResult>),
}

/// How a membership change ended: the configuration it made, or why not.
pub type ChangeResult = Result<Configuration, ChangeFailure>;

/// The client id of the operator's membership changes at this host (no client library
/// draws ids this high).
const OPERATOR_CLIENT: ClientId = ClientId(u64::MAX);

/// The node's side of a running keyspace host (cheap to clone).
#[derive(Clone, Debug)]
pub struct KeyspaceHandle {
    keyspace: String,
    peer_tx: mpsc::Sender<(NodeId, Vec<u8>)>,
    client_tx: mpsc::Sender<ClientCall>,
    control_tx: mpsc::Sender<Control>,
    changes_membership: bool,
}

/// The host task: ends only on a storage failure (an error) or when aborted.
pub type KeyspaceTask = JoinHandle<Result<(), NodeError>>;

impl KeyspaceHandle {
    /// The keyspace name.
    pub fn keyspace(&self) -> &str {
        &self.keyspace
    }

    /// Hand a peer's encoded message to the core. `false` if the queue is full (the
    /// message is dropped) or the host stopped.
    pub fn deliver(&self, from: NodeId, payload: Vec<u8>) -> bool {
        self.peer_tx.try_send((from, payload)).is_ok()
    }

    /// Hand a client request to the core. If the queue is full or the host stopped,
    /// the client is answered `Rejected` at once and `false` is returned.
    pub fn submit(&self, call: ClientCall) -> bool {
        match self.client_tx.try_send(call) {
            Ok(()) => true,
            Err(
                mpsc::error::TrySendError::Full(call) | mpsc::error::TrySendError::Closed(call),
            ) => {
                let _ = call.reply.send(ReplyFrame::from(ClientReply {
                    id: call.request.id,
                    outcome: Err(RequestError::Rejected(format!(
                        "keyspace {} is overloaded or stopped on this replica",
                        self.keyspace
                    ))),
                }));
                false
            }
        }
    }

    /// A snapshot of the host's and core's metrics (`None` if the host stopped).
    pub async fn metrics(&self) -> Option<KeyspaceMetrics> {
        let (tx, rx) = oneshot::channel();
        self.control_tx.send(Control::Metrics(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Tell the core this replica is stopping ([`Protocol::hand_off`]); returns once it
    /// was told (`false` if the host stopped).
    pub async fn hand_off(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.control_tx.send(Control::HandOff(tx)).await.is_err() {
            return false;
        }
        rx.await.is_ok()
    }

    /// Whether the core changes membership ([`Protocol::changes_membership`]).
    pub fn changes_membership(&self) -> bool {
        self.changes_membership
    }

    /// Propose a membership change and wait until it ends (committed and executed here,
    /// or failed).
    pub async fn change(&self, change: Change) -> ChangeResult {
        let stopped = || ChangeFailure::Refused(format!("keyspace {} stopped", self.keyspace));
        let (tx, rx) = oneshot::channel();
        if self
            .control_tx
            .send(Control::Change(change, tx))
            .await
            .is_err()
        {
            return Err(stopped());
        }
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Answer every request still in flight with [`RequestError::Timeout`]; returns how
    /// many were answered so (`None` if the host stopped).
    pub async fn give_up_pending(&self) -> Option<u64> {
        let (tx, rx) = oneshot::channel();
        self.control_tx.send(Control::GiveUp(tx)).await.ok()?;
        rx.await.ok()
    }
}

/// Start hosting a core on `storage`: replay the log, decode its records, build the
/// core with `make`, and spawn the host task and its storage thread. Must run inside a
/// tokio runtime.
pub fn spawn_keyspace<P, S>(
    config: HostConfig,
    mut storage: S,
    make: impl FnOnce(Vec<P::Record>) -> P,
    net: Arc<dyn PeerSender>,
) -> Result<(KeyspaceHandle, KeyspaceTask), NodeError>
where
    P: Protocol + Send + 'static,
    S: Storage + Send + 'static,
{
    let raw = storage.replay().map_err(|e| NodeError::Storage {
        keyspace: config.keyspace.clone(),
        message: e.to_string(),
    })?;
    let records = raw
        .iter()
        .enumerate()
        .map(|(index, bytes)| {
            postcard::from_bytes::<P::Record>(bytes).map_err(|e| NodeError::Recovery {
                keyspace: config.keyspace.clone(),
                index,
                message: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let recovered = records.len();
    let mut core = make(records);
    let changes_membership = core.changes_membership();
    if config.rejoin {
        let now = Time::from_micros(
            u64::try_from(config.epoch.elapsed().as_micros()).unwrap_or(u64::MAX),
        );
        core.rejoin(now);
        tracing::warn!(keyspace = %config.keyspace, protocol = %config.protocol, node = %config.id, "keyspace rejoining after a lost disk: no votes until it has recovered from its peers");
    }
    tracing::info!(keyspace = %config.keyspace, protocol = %config.protocol, node = %config.id, recovered, rejoin = config.rejoin, "keyspace starting");
    let (jobs, reports) =
        storage_thread::spawn(storage, &config.keyspace, storage_thread::IDLE_SYNC_AFTER).map_err(
            |e| NodeError::Storage {
                keyspace: config.keyspace.clone(),
                message: format!("starting the storage thread: {e}"),
            },
        )?;
    let (peer_tx, peer_rx) = mpsc::channel(config.queue_max.max(1));
    let (client_tx, client_rx) = mpsc::channel(config.queue_max.max(1));
    let (control_tx, control_rx) = mpsc::channel(16);
    let keyspace = config.keyspace.clone();
    let mut host = Host {
        core,
        net,
        jobs,
        next_batch: 0,
        waiting: VecDeque::new(),
        local: VecDeque::new(),
        pending: HashMap::new(),
        stats: KeyspaceMetrics {
            keyspace: config.keyspace.clone(),
            protocol: config.protocol.clone(),
            ..KeyspaceMetrics::default()
        },
        last_compaction: None,
        changes: HashMap::new(),
        next_change: 0,
        config,
    };
    host.count("records_recovered", recovered as u64);
    let task = tokio::spawn(host.run(peer_rx, client_rx, control_rx, reports));
    Ok((
        KeyspaceHandle {
            keyspace,
            peer_tx,
            client_tx,
            control_tx,
            changes_membership,
        },
        task,
    ))
}

/// Most inputs one burst hands the core before it proposes (bounds the time between two
/// drains, so replies and peer messages are not held back behind a long queue).
const BURST_MAX: u64 = 512;

/// A request waiting for its reply.
struct Pending {
    arrived: Instant,
    /// When and how it committed here (the core said so), if it did.
    committed: Option<(Instant, CommitPath)>,
    waiters: Vec<oneshot::Sender<ReplyFrame>>,
}

struct Host<P: Protocol> {
    config: HostConfig,
    core: P,
    net: Arc<dyn PeerSender>,
    jobs: std::sync::mpsc::Sender<StorageJob>,
    /// Number of the last `Persist` handed to the storage thread.
    next_batch: u64,
    /// Effects of each `Persist`, by batch number, until it is synced.
    waiting: VecDeque<(u64, Vec<Effect<P::Message>>)>,
    /// Messages this node sent itself, delivered after the current drain.
    local: VecDeque<P::Message>,
    pending: HashMap<RequestId, Pending>,
    stats: KeyspaceMetrics,
    /// When the storage thread last reported a compaction.
    last_compaction: Option<Instant>,
    /// Membership changes proposed and not ended yet.
    changes: HashMap<RequestId, oneshot::Sender<ChangeResult>>,
    /// Sequence number of the last membership change proposed.
    next_change: u64,
}

/// Why a keyspace of `protocol` refuses membership changes.
pub fn unsupported(protocol: &str) -> String {
    format!("membership change is not supported for {protocol} keyspaces yet")
}

impl<P: Protocol> Host<P> {
    async fn run(
        mut self,
        mut peer_rx: mpsc::Receiver<(NodeId, Vec<u8>)>,
        mut client_rx: mpsc::Receiver<ClientCall>,
        mut control_rx: mpsc::Receiver<Control>,
        mut reports: mpsc::UnboundedReceiver<StorageReport>,
    ) -> Result<(), NodeError> {
        self.drain()?;
        let mut sweep = tokio::time::interval(Duration::from_secs(1));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self.core.poll_timeout().and_then(|t| self.instant_of(t));
            let timer = tokio::time::sleep_until(
                deadline
                    .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
                    .into(),
            );
            tokio::select! {
                report = reports.recv() => match report {
                    Some(StorageReport::Synced { through, fsync, records }) => {
                        if let Some(fsync) = fsync {
                            self.stats.fsync_latency.observe(fsync);
                            self.count("fsyncs", 1);
                        }
                        self.count("records_synced", records);
                        self.release(through);
                    }
                    Some(StorageReport::Compacted { records, bytes }) => {
                        self.count("compactions", 1);
                        self.count("records_after_compaction", records);
                        self.stats.storage.insert("snapshot_records", records);
                        self.stats.storage.insert("snapshot_bytes", bytes);
                        self.last_compaction = Some(Instant::now());
                        continue;
                    }
                    Some(StorageReport::Failed(message)) => {
                        tracing::error!(keyspace = %self.config.keyspace, %message, "storage failed; stopping the keyspace");
                        return Err(NodeError::Storage { keyspace: self.config.keyspace.clone(), message });
                    }
                    None => {
                        return Err(NodeError::Storage {
                            keyspace: self.config.keyspace.clone(),
                            message: "the storage thread stopped".into(),
                        });
                    }
                },
                Some((from, payload)) = peer_rx.recv() => {
                    self.core.begin_burst();
                    self.on_peer(from, &payload);
                    // Let tasks already runnable (other streams' requests, peer
                    // readers) hand in their inputs first, so they join this burst;
                    // this never waits for input that has not arrived.
                    tokio::task::yield_now().await;
                    self.absorb(&mut peer_rx, &mut client_rx);
                }
                Some(call) = client_rx.recv() => {
                    self.core.begin_burst();
                    self.on_client(call);
                    // Let tasks already runnable (other streams' requests, peer
                    // readers) hand in their inputs first, so they join this burst;
                    // this never waits for input that has not arrived.
                    tokio::task::yield_now().await;
                    self.absorb(&mut peer_rx, &mut client_rx);
                }
                () = timer, if deadline.is_some() => {
                    let now = self.now();
                    self.core.handle_timeout(now);
                }
                Some(control) = control_rx.recv() => match control {
                    Control::Metrics(reply) => {
                        let _ = reply.send(self.snapshot());
                        continue;
                    }
                    Control::HandOff(done) => {
                        let now = self.now();
                        self.core.hand_off(now);
                        self.drain()?;
                        let _ = done.send(());
                        continue;
                    }
                    Control::GiveUp(done) => {
                        let given_up = self.give_up_pending();
                        let _ = done.send(given_up);
                        continue;
                    }
                    Control::Change(change, done) => self.propose_change(change, done),
                },
                _ = sweep.tick() => {
                    self.sweep();
                    continue;
                }
            }
            self.drain()?;
        }
    }

    /// The rest of a burst: every peer message and client request already waiting (up
    /// to [`BURST_MAX`] inputs) goes to the core before it proposes, so requests that
    /// arrived together share an instance or slot; then the burst ends. Nothing waits
    /// for more input: a lone request is proposed at once.
    fn absorb(
        &mut self,
        peer_rx: &mut mpsc::Receiver<(NodeId, Vec<u8>)>,
        client_rx: &mut mpsc::Receiver<ClientCall>,
    ) {
        let mut inputs = 1u64;
        while inputs < BURST_MAX {
            let mut took = false;
            if let Ok(call) = client_rx.try_recv() {
                self.on_client(call);
                inputs += 1;
                took = true;
            }
            if let Ok((from, payload)) = peer_rx.try_recv() {
                self.on_peer(from, &payload);
                inputs += 1;
                took = true;
            }
            if !took {
                break;
            }
        }
        let now = self.now();
        self.core.end_burst(now);
        self.count("bursts", 1);
        self.count("burst_inputs", inputs);
    }

    fn now(&self) -> Time {
        Time::from_micros(
            u64::try_from(self.config.epoch.elapsed().as_micros()).unwrap_or(u64::MAX),
        )
    }

    fn instant_of(&self, time: Time) -> Option<Instant> {
        self.config
            .epoch
            .checked_add(Duration::from_micros(time.as_micros()))
    }

    fn count(&mut self, event: &'static str, by: u64) {
        *self.stats.events.entry(event).or_insert(0) += by;
    }

    fn on_peer(&mut self, from: NodeId, payload: &[u8]) {
        match postcard::from_bytes::<P::Message>(payload) {
            Ok(message) => {
                let now = self.now();
                self.core.handle_message(now, from, message);
            }
            Err(e) => {
                self.count("malformed_peer_messages", 1);
                tracing::debug!(keyspace = %self.config.keyspace, %from, error = %e, "dropped a peer message that does not decode");
            }
        }
    }

    fn on_client(&mut self, call: ClientCall) {
        let ClientCall { request, reply } = call;
        *self
            .stats
            .requests
            .entry(request.command.op_name())
            .or_insert(0) += 1;
        if let Some(pending) = self.pending.get_mut(&request.id) {
            // A retry of a request still in flight: answer both with the one outcome.
            pending.waiters.push(reply);
        } else if self.pending.len() >= self.config.pending_requests_max {
            self.count_reply("rejected");
            let _ = reply.send(ReplyFrame::from(ClientReply {
                id: request.id,
                outcome: Err(RequestError::Rejected(
                    "too many requests in flight on this replica".into(),
                )),
            }));
            return;
        } else {
            self.pending.insert(
                request.id,
                Pending {
                    arrived: Instant::now(),
                    committed: None,
                    waiters: vec![reply],
                },
            );
        }
        let now = self.now();
        self.core.handle_request(now, request);
    }

    /// Drain every output; then deliver self-addressed messages (each one is an input,
    /// followed by another drain).
    fn drain(&mut self) -> Result<(), NodeError> {
        loop {
            while let Some(output) = self.core.poll_output() {
                match output {
                    Output::Now(effect) => self.perform(effect),
                    Output::Persist { records, then } => {
                        if records.is_empty() && then.is_empty() {
                            continue;
                        }
                        let records = self.encode_records(&records)?;
                        self.next_batch += 1;
                        self.count("records_persisted", records.len() as u64);
                        self.submit(StorageJob::Append {
                            batch: self.next_batch,
                            records,
                            awaited: !then.is_empty(),
                        })?;
                        self.waiting.push_back((self.next_batch, then));
                    }
                    Output::Compact { snapshot } => {
                        let snapshot = self.encode_records(&snapshot)?;
                        let bytes = snapshot.iter().map(|record| record.len() as u64).sum();
                        self.core.compacted(bytes);
                        self.submit(StorageJob::Compact { snapshot })?;
                    }
                }
            }
            while let Some(outcome) = self.core.poll_change_outcome() {
                if let Some(waiter) = self.changes.remove(&outcome.request) {
                    let _ = waiter.send(outcome.result);
                }
            }
            let Some(message) = self.local.pop_front() else {
                return Ok(());
            };
            let now = self.now();
            self.core.handle_message(now, self.config.id, message);
        }
    }

    fn encode_records(&self, records: &[P::Record]) -> Result<Vec<Vec<u8>>, NodeError> {
        records
            .iter()
            .map(|r| {
                postcard::to_allocvec(r).map_err(|e| NodeError::Storage {
                    keyspace: self.config.keyspace.clone(),
                    message: format!("encoding a record: {e}"),
                })
            })
            .collect()
    }

    fn submit(&self, job: StorageJob) -> Result<(), NodeError> {
        self.jobs.send(job).map_err(|_| NodeError::Storage {
            keyspace: self.config.keyspace.clone(),
            message: "the storage thread stopped".into(),
        })
    }

    /// Release the effects of every batch up to `through`, in order.
    fn release(&mut self, through: u64) {
        while self
            .waiting
            .front()
            .is_some_and(|(batch, _)| *batch <= through)
        {
            if let Some((_, effects)) = self.waiting.pop_front() {
                for effect in effects {
                    self.perform(effect);
                }
            }
        }
    }

    fn perform(&mut self, effect: Effect<P::Message>) {
        match effect {
            Effect::Send { to, message } if to == self.config.id => self.local.push_back(message),
            Effect::Send { to, message } => match postcard::to_allocvec(&message) {
                Ok(payload) => self.net.send(
                    to,
                    PeerFrame {
                        keyspace: self.config.keyspace.clone(),
                        payload,
                    },
                ),
                Err(e) => {
                    self.count("message_encode_errors", 1);
                    tracing::error!(keyspace = %self.config.keyspace, error = %e, "cannot encode a message");
                }
            },
            Effect::Reply(reply) => self.reply(reply),
            Effect::Committed { request, path } => {
                if let Some(pending) = self.pending.get_mut(&request) {
                    self.stats.commit_latency.observe(pending.arrived.elapsed());
                    pending.committed.get_or_insert((Instant::now(), path));
                }
                self.count("commits", 1);
            }
        }
    }

    fn reply(&mut self, reply: ClientReply) {
        let Some(pending) = self.pending.remove(&reply.id) else {
            // The client gave up (swept) or another replica's request: nothing to do.
            self.count("replies_unmatched", 1);
            return;
        };
        self.stats
            .request_latency
            .observe(pending.arrived.elapsed());
        self.count_reply(match &reply.outcome {
            Ok(_) => "ok",
            Err(RequestError::Unavailable { .. }) => "unavailable",
            Err(RequestError::Timeout) => "timeout",
            Err(RequestError::Invalid(_)) => "invalid",
            Err(RequestError::Rejected(_)) => "rejected",
            Err(RequestError::SessionExpired { .. }) => "session_expired",
            Err(RequestError::TooStale { .. }) => "too_stale",
        });
        let frame = ReplyFrame {
            reply,
            commit: pending.committed.map(|(at, path)| CommitNote {
                path,
                before_reply_us: u64::try_from(at.elapsed().as_micros()).unwrap_or(u64::MAX),
            }),
        };
        for waiter in pending.waiters {
            let _ = waiter.send(frame.clone());
        }
    }

    fn count_reply(&mut self, outcome: &'static str) {
        *self.stats.replies.entry(outcome).or_insert(0) += 1;
    }

    /// Answer every request in flight with a timeout (the drain's deadline passed).
    fn give_up_pending(&mut self) -> u64 {
        let pending = std::mem::take(&mut self.pending);
        let count = pending.len() as u64;
        for (id, pending) in pending {
            self.count_reply("timeout");
            for waiter in pending.waiters {
                let _ = waiter.send(
                    ClientReply {
                        id,
                        outcome: Err(RequestError::Timeout),
                    }
                    .into(),
                );
            }
        }
        self.count("requests_given_up_at_shutdown", count);
        count
    }

    /// Hand an operator's membership change to the core (refused at once by a core
    /// that does not change membership).
    fn propose_change(&mut self, change: Change, done: oneshot::Sender<ChangeResult>) {
        if !self.core.changes_membership() {
            let _ = done.send(Err(ChangeFailure::Refused(unsupported(
                &self.config.protocol,
            ))));
            return;
        }
        self.next_change += 1;
        let request = RequestId {
            client: OPERATOR_CLIENT,
            seq: self.next_change,
        };
        self.changes.insert(request, done);
        self.count("membership_changes_proposed", 1);
        let now = self.now();
        self.core.propose_change(now, request, change);
    }

    /// Forget requests whose clients have gone away.
    fn sweep(&mut self) {
        let before = self.pending.len();
        self.pending.retain(|_, pending| {
            pending.waiters.retain(|w| !w.is_closed());
            !pending.waiters.is_empty()
        });
        let abandoned = (before - self.pending.len()) as u64;
        if abandoned > 0 {
            self.count("requests_abandoned", abandoned);
        }
    }

    fn snapshot(&self) -> KeyspaceMetrics {
        let mut stats = self.stats.clone();
        // The space the log takes on disk: its file is longer than its records by space
        // reserved ahead (sparse), which the length would count.
        if let Some(meta) = (self.config.log_path.as_ref()).and_then(|p| std::fs::metadata(p).ok())
        {
            use std::os::unix::fs::MetadataExt;
            stats
                .storage
                .insert("log_bytes", meta.blocks().saturating_mul(512));
        }
        if let Some(at) = self.last_compaction {
            stats
                .storage
                .insert("seconds_since_compaction", at.elapsed().as_secs());
        }
        KeyspaceMetrics {
            protocol_counters: self.core.metrics(),
            pending_requests: self.pending.len() as u64,
            configuration: self.core.configuration(),
            ..stats
        }
    }
}
