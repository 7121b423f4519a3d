//! Host-loop tests with a small test-only protocol: a replicated counter whose replicas
//! persist every increment before acknowledging it.

use super::*;
use crate::storage::FileStorage;
use crate::test_support::TempDir;
use crate::wire::{PeerFrame, ReplyFrame};
use meridian_engine::storage::Storage;
use meridian_engine::{
    ClientId, ClientRequest, Command, CommandResult, CommitPath, Effect, Metrics, Outbox, Output,
    Protocol, RequestId, Response, Time,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::{Condvar, Mutex};
use tokio::sync::oneshot;
use tokio::time::timeout;

// ---------------------------------------------------------------- the test protocol

#[derive(Clone, Debug, Serialize, Deserialize)]
enum CounterMessage {
    /// A peer's increment: persist it, then acknowledge.
    Inc { req: RequestId },
    /// A peer persisted the increment.
    Ack { req: RequestId },
    /// Our own increment is durable (self-addressed, released after the sync).
    Durable { req: RequestId },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum CounterRecord {
    Add { req: RequestId },
    Snapshot { total: u64 },
}

/// Replicated counter: any write increments; a Get reads the local total. A write is
/// acknowledged once it is durable here and on a majority (counting this node).
struct Counter {
    id: NodeId,
    peers: Vec<NodeId>,
    total: u64,
    compact_every: u64,
    since_compact: u64,
    /// Own writes in flight: (own record durable, peers that acknowledged).
    waiting: BTreeMap<RequestId, (bool, BTreeSet<NodeId>)>,
    timer: Time,
    outbox: Outbox<CounterMessage, CounterRecord>,
    metrics: Metrics,
}

const TICK: Duration = Duration::from_millis(20);

impl Counter {
    fn new(id: NodeId, n: u16, compact_every: u64, records: Vec<CounterRecord>) -> Self {
        let mut total = 0;
        for record in &records {
            match record {
                CounterRecord::Add { .. } => total += 1,
                CounterRecord::Snapshot { total: t } => total = *t,
            }
        }
        let mut metrics = Metrics::new();
        metrics.set("recovered_records", records.len() as u64);
        Self {
            id,
            peers: (0..n).map(NodeId).filter(|&p| p != id).collect(),
            total,
            compact_every,
            since_compact: 0,
            waiting: BTreeMap::new(),
            timer: Time::ZERO + TICK,
            outbox: Outbox::new(),
            metrics,
        }
    }

    fn add(&mut self, req: RequestId, then: Vec<Effect<CounterMessage>>) {
        self.total += 1;
        self.since_compact += 1;
        self.outbox.persist(vec![CounterRecord::Add { req }], then);
        if self.compact_every > 0 && self.since_compact >= self.compact_every {
            self.since_compact = 0;
            self.outbox
                .compact(vec![CounterRecord::Snapshot { total: self.total }]);
        }
    }

    fn check(&mut self, req: RequestId) {
        let majority = meridian_engine::quorum::majority(self.peers.len() + 1);
        let done = self
            .waiting
            .get(&req)
            .is_some_and(|(own, acks)| *own && acks.len() + 1 >= majority);
        if done {
            self.waiting.remove(&req);
            self.outbox.now(Effect::Committed {
                request: req,
                path: CommitPath::Leader,
            });
            self.outbox.reply(ClientReply {
                id: req,
                outcome: Ok(Response::Kv(CommandResult::Written)),
            });
        }
    }
}

impl Protocol for Counter {
    type Message = CounterMessage;
    type Record = CounterRecord;

    fn id(&self) -> NodeId {
        self.id
    }

    fn handle_request(&mut self, _now: Time, request: ClientRequest) {
        if request.command.is_read() {
            self.outbox.reply(ClientReply {
                id: request.id,
                outcome: Ok(Response::Kv(CommandResult::Value(Some(
                    self.total.to_string().into_bytes(),
                )))),
            });
            return;
        }
        let req = request.id;
        self.waiting.insert(req, (false, BTreeSet::new()));
        let durable = Effect::Send {
            to: self.id,
            message: CounterMessage::Durable { req },
        };
        self.add(req, vec![durable]);
        for &peer in &self.peers {
            self.outbox.send(peer, CounterMessage::Inc { req });
        }
    }

    fn handle_message(&mut self, _now: Time, from: NodeId, message: CounterMessage) {
        match message {
            CounterMessage::Inc { req } => {
                let ack = Effect::Send {
                    to: from,
                    message: CounterMessage::Ack { req },
                };
                self.add(req, vec![ack]);
            }
            CounterMessage::Ack { req } => {
                if let Some((_, acks)) = self.waiting.get_mut(&req) {
                    acks.insert(from);
                }
                self.check(req);
            }
            CounterMessage::Durable { req } => {
                assert_eq!(from, self.id, "Durable only comes from this node itself");
                self.metrics.incr("own_durable");
                if let Some((own, _)) = self.waiting.get_mut(&req) {
                    *own = true;
                }
                self.check(req);
            }
        }
    }

    fn handle_timeout(&mut self, now: Time) {
        if now >= self.timer {
            self.metrics.incr("ticks");
            self.timer = now + TICK;
        }
    }

    fn poll_output(&mut self) -> Option<Output<CounterMessage, CounterRecord>> {
        self.outbox.pop()
    }

    fn poll_timeout(&self) -> Option<Time> {
        Some(self.timer)
    }

    fn metrics(&self) -> Metrics {
        let mut metrics = self.metrics.clone();
        metrics.set("total", self.total);
        metrics
    }
}

// ---------------------------------------------------------------- test plumbing

/// A disk whose syncs wait for a gate the test opens, and can be made to fail.
#[derive(Default)]
struct Disk {
    synced: Vec<Vec<u8>>,
    unsynced: Vec<Vec<u8>>,
    syncs: u64,
    open: bool,
    fail: bool,
}

#[derive(Clone, Default)]
struct GatedStorage(Arc<(Mutex<Disk>, Condvar)>);

impl GatedStorage {
    fn closed() -> Self {
        Self::default()
    }

    fn open_gate(&self) {
        self.0 .0.lock().unwrap().open = true;
        self.0 .1.notify_all();
    }

    fn disk<T>(&self, f: impl FnOnce(&Disk) -> T) -> T {
        f(&self.0 .0.lock().unwrap())
    }
}

impl Storage for GatedStorage {
    type Error = std::io::Error;

    fn append(&mut self, records: &[Vec<u8>]) -> Result<(), Self::Error> {
        self.0
             .0
            .lock()
            .unwrap()
            .unsynced
            .extend(records.iter().cloned());
        Ok(())
    }

    fn sync(&mut self) -> Result<u64, Self::Error> {
        let (lock, gate) = &*self.0;
        let mut disk = gate.wait_while(lock.lock().unwrap(), |d| !d.open).unwrap();
        if disk.fail {
            return Err(std::io::Error::other("injected fsync failure"));
        }
        let mut unsynced = std::mem::take(&mut disk.unsynced);
        disk.synced.append(&mut unsynced);
        disk.syncs += 1;
        Ok(disk.synced.len() as u64)
    }

    fn replay(&mut self) -> Result<Vec<Vec<u8>>, Self::Error> {
        Ok(self.0 .0.lock().unwrap().synced.clone())
    }

    fn compact(&mut self, records: &[Vec<u8>]) -> Result<(), Self::Error> {
        let mut disk = self.0 .0.lock().unwrap();
        disk.synced = records.to_vec();
        disk.unsynced.clear();
        Ok(())
    }
}

/// In-process network between hosts (no QUIC).
#[derive(Default)]
struct LocalNet {
    hosts: Mutex<BTreeMap<NodeId, KeyspaceHandle>>,
}

struct LocalLink {
    from: NodeId,
    net: Arc<LocalNet>,
}

impl PeerSender for LocalLink {
    fn send(&self, to: NodeId, frame: PeerFrame) {
        if let Some(handle) = self.net.hosts.lock().unwrap().get(&to) {
            handle.deliver(self.from, frame.payload);
        }
    }
}

/// A sink for hosts that never talk to peers.
struct NoNet;

impl PeerSender for NoNet {
    fn send(&self, _to: NodeId, _frame: PeerFrame) {}
}

fn spawn_counter<S: Storage + Send + 'static>(
    id: NodeId,
    n: u16,
    compact_every: u64,
    storage: S,
    net: Arc<dyn PeerSender>,
) -> (KeyspaceHandle, KeyspaceTask) {
    spawn_keyspace(
        HostConfig::new("counter", "counter", id),
        storage,
        |records| Counter::new(id, n, compact_every, records),
        net,
    )
    .expect("spawn host")
}

fn request(seq: u64, command: Command) -> ClientRequest {
    ClientRequest::new(
        RequestId {
            client: ClientId(1),
            seq,
        },
        command,
    )
}

fn put(seq: u64) -> ClientRequest {
    request(
        seq,
        Command::Put {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        },
    )
}

fn call(handle: &KeyspaceHandle, request: ClientRequest) -> oneshot::Receiver<ReplyFrame> {
    let (reply, rx) = oneshot::channel();
    assert!(handle.submit(ClientCall { request, reply }), "submitted");
    rx
}

async fn answer_of(rx: oneshot::Receiver<ReplyFrame>) -> ReplyFrame {
    timeout(Duration::from_secs(5), rx)
        .await
        .expect("reply within 5 s")
        .expect("reply sent")
}

async fn reply_of(rx: oneshot::Receiver<ReplyFrame>) -> ClientReply {
    answer_of(rx).await.reply
}

async fn total(handle: &KeyspaceHandle, seq: u64) -> u64 {
    let reply = reply_of(call(
        handle,
        request(seq, Command::Get { key: b"k".to_vec() }),
    ))
    .await;
    match reply.outcome {
        Ok(Response::Kv(CommandResult::Value(Some(bytes)))) => {
            String::from_utf8(bytes).unwrap().parse().unwrap()
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn written() -> Result<Response, RequestError> {
    Ok(Response::Kv(CommandResult::Written))
}

// ---------------------------------------------------------------- tests

/// The ordering rule (protocol module doc): effects of a Persist are released only
/// after its records are durable; the self-addressed Durable message is how the core
/// learns that, so the reply cannot come earlier.
#[tokio::test]
async fn a_reply_waits_for_the_sync_of_its_record() {
    let disk = GatedStorage::closed();
    let (handle, _task) = spawn_counter(NodeId(0), 1, 0, disk.clone(), Arc::new(NoNet));
    let mut rx = call(&handle, put(1));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        rx.try_recv().is_err(),
        "replied before the record was synced"
    );
    assert_eq!(disk.disk(|d| (d.unsynced.len(), d.synced.len())), (1, 0));
    let metrics = handle.metrics().await.unwrap();
    assert_eq!(
        metrics.protocol_counters.get("own_durable"),
        0,
        "Durable delivered before sync"
    );
    disk.open_gate();
    assert_eq!(reply_of(rx).await.outcome, written());
    assert_eq!(disk.disk(|d| d.synced.len()), 1);
    let metrics = handle.metrics().await.unwrap();
    assert_eq!(metrics.protocol_counters.get("own_durable"), 1);
    assert_eq!(metrics.replies.get("ok"), Some(&1));
    assert_eq!(metrics.request_latency.count(), 1);
}

/// A reply carries the note of its request's commit here (path, and how long after the
/// commit the reply left); a request the core answered without a commit has none.
#[tokio::test]
async fn a_reply_notes_when_its_request_committed() {
    let disk = GatedStorage::closed();
    disk.open_gate();
    let (handle, _task) = spawn_counter(NodeId(0), 1, 0, disk, Arc::new(NoNet));
    let write = answer_of(call(&handle, put(1))).await;
    assert_eq!(write.reply.outcome, written());
    let note = write.commit.expect("a committed write is noted");
    assert_eq!(note.path, CommitPath::Leader);
    assert!(note.before_reply_us < 1_000_000, "{note:?}");
    let read = answer_of(call(
        &handle,
        request(2, Command::Get { key: b"k".to_vec() }),
    ))
    .await;
    assert!(read.reply.outcome.is_ok());
    assert_eq!(read.commit, None, "a local read did not commit");
}

#[tokio::test]
async fn requests_queued_behind_a_sync_share_the_next_one() {
    let disk = GatedStorage::closed();
    let (handle, _task) = spawn_counter(NodeId(0), 1, 0, disk.clone(), Arc::new(NoNet));
    let receivers: Vec<_> = (1..=50).map(|seq| call(&handle, put(seq))).collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    disk.open_gate();
    for rx in receivers {
        assert_eq!(reply_of(rx).await.outcome, written());
    }
    let syncs = disk.disk(|d| d.syncs);
    assert!(syncs <= 3, "50 writes took {syncs} syncs: no group commit");
    assert_eq!(disk.disk(|d| d.synced.len()), 50);
}

#[tokio::test]
async fn three_hosts_replicate_and_acknowledge_after_a_majority_persisted() {
    let dirs: Vec<TempDir> = (0..3).map(|_| TempDir::new("counter3")).collect();
    let net = Arc::new(LocalNet::default());
    let mut tasks = Vec::new();
    for i in 0..3u16 {
        let storage = FileStorage::open(dirs[usize::from(i)].path()).unwrap();
        let link = Arc::new(LocalLink {
            from: NodeId(i),
            net: net.clone(),
        });
        let (handle, task) = spawn_counter(NodeId(i), 3, 0, storage, link);
        net.hosts.lock().unwrap().insert(NodeId(i), handle);
        tasks.push(task);
    }
    let node = |i: u16| net.hosts.lock().unwrap()[&NodeId(i)].clone();
    for seq in 1..=10 {
        assert_eq!(
            reply_of(call(&node((seq % 3) as u16), put(seq)))
                .await
                .outcome,
            written()
        );
    }
    // Every replica persists every increment (a majority acknowledged each one).
    for i in 0..3 {
        let deadline = Instant::now() + Duration::from_secs(5);
        while total(&node(i), 1000).await != 10 {
            assert!(Instant::now() < deadline, "node {i} never reached 10");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    for task in &tasks {
        task.abort();
    }
}

#[tokio::test]
async fn a_restart_replays_the_log_into_the_constructor() {
    let dir = TempDir::new("restart");
    let (handle, task) = spawn_counter(
        NodeId(0),
        1,
        0,
        FileStorage::open(dir.path()).unwrap(),
        Arc::new(NoNet),
    );
    for seq in 1..=5 {
        assert_eq!(reply_of(call(&handle, put(seq))).await.outcome, written());
    }
    task.abort();
    let _ = task.await;
    // Every acknowledged write was synced before its reply, so all five are in the log.
    let (handle, _task) = spawn_counter(
        NodeId(0),
        1,
        0,
        FileStorage::open(dir.path()).unwrap(),
        Arc::new(NoNet),
    );
    assert_eq!(total(&handle, 100).await, 5);
    let metrics = handle.metrics().await.unwrap();
    assert_eq!(metrics.protocol_counters.get("recovered_records"), 5);
    assert_eq!(metrics.events.get("records_recovered"), Some(&5));
}

#[tokio::test]
async fn compaction_replaces_the_log_and_a_restart_sees_the_same_state() {
    let dir = TempDir::new("compact");
    let (handle, task) = spawn_counter(
        NodeId(0),
        1,
        3,
        FileStorage::open(dir.path()).unwrap(),
        Arc::new(NoNet),
    );
    for seq in 1..=7 {
        assert_eq!(reply_of(call(&handle, put(seq))).await.outcome, written());
    }
    // Compactions are applied lazily: wait until the storage thread reported both.
    let deadline = Instant::now() + Duration::from_secs(5);
    while handle.metrics().await.unwrap().events.get("compactions") != Some(&2) {
        assert!(Instant::now() < deadline, "compactions not applied");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let storage = handle.metrics().await.unwrap().storage;
    assert_eq!(storage.get("snapshot_records"), Some(&1), "{storage:?}");
    assert!(
        storage.get("snapshot_bytes").is_some_and(|&b| b > 0),
        "{storage:?}"
    );
    assert!(
        storage.contains_key("seconds_since_compaction"),
        "{storage:?}"
    );
    task.abort();
    let _ = task.await;
    let mut storage = FileStorage::open(dir.path()).unwrap();
    let records: Vec<CounterRecord> = storage
        .replay()
        .unwrap()
        .iter()
        .map(|bytes| postcard::from_bytes(bytes).unwrap())
        .collect();
    assert_eq!(
        records,
        vec![
            CounterRecord::Snapshot { total: 6 },
            CounterRecord::Add { req: put(7).id }
        ]
    );
    let (handle, _task) = spawn_counter(NodeId(0), 1, 3, storage, Arc::new(NoNet));
    assert_eq!(total(&handle, 100).await, 7);
}

#[tokio::test]
async fn timers_fire_at_poll_timeout() {
    let (handle, _task) = spawn_counter(NodeId(0), 1, 0, GatedStorage::closed(), Arc::new(NoNet));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ticks = handle
        .metrics()
        .await
        .unwrap()
        .protocol_counters
        .get("ticks");
    // 20 ms period over 300 ms; generous bounds for a loaded machine.
    assert!((5..=16).contains(&ticks), "{ticks} ticks in 300 ms");
}

#[tokio::test]
async fn malformed_peer_messages_are_dropped_and_counted() {
    let disk = GatedStorage::closed();
    disk.open_gate();
    let (handle, _task) = spawn_counter(NodeId(0), 3, 0, disk, Arc::new(NoNet));
    assert!(handle.deliver(NodeId(1), vec![0xff, 0xff, 0xff]));
    assert!(handle.deliver(NodeId(2), Vec::new()));
    assert_eq!(total(&handle, 1).await, 0, "the host still serves");
    let metrics = handle.metrics().await.unwrap();
    assert_eq!(metrics.events.get("malformed_peer_messages"), Some(&2));
}

#[tokio::test]
async fn a_storage_failure_stops_the_keyspace_without_releasing_effects() {
    let disk = GatedStorage::closed();
    disk.0 .0.lock().unwrap().fail = true;
    let (handle, task) = spawn_counter(NodeId(0), 1, 0, disk.clone(), Arc::new(NoNet));
    let rx = call(&handle, put(1));
    disk.open_gate();
    let result = timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(result, Err(NodeError::Storage { .. })),
        "{result:?}"
    );
    assert!(rx.await.is_err(), "a reply escaped a failed sync");
}

#[tokio::test]
async fn a_log_record_that_does_not_decode_refuses_to_start() {
    let disk = GatedStorage::closed();
    disk.0 .0.lock().unwrap().synced.push(vec![0xff; 4]);
    let result = spawn_keyspace(
        HostConfig::new("counter", "counter", NodeId(0)),
        disk,
        |records| Counter::new(NodeId(0), 1, 0, records),
        Arc::new(NoNet),
    );
    assert!(
        matches!(result, Err(NodeError::Recovery { index: 0, .. })),
        "{result:?}"
    );
}
