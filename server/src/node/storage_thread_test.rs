use super::*;
use meridian_engine::storage::MemStorage;
use std::sync::{Arc, Mutex, MutexGuard};

/// A disk the test can look into: what was synced, and how many syncs wrote something.
#[derive(Clone, Default)]
struct Probe(Arc<Mutex<(MemStorage, u64)>>);

impl Probe {
    fn disk(&self) -> MutexGuard<'_, (MemStorage, u64)> {
        self.0.lock().expect("the probe's lock")
    }

    fn durable(&self) -> Vec<Vec<u8>> {
        self.disk().0.replay().unwrap_or_default()
    }

    fn unsynced(&self) -> usize {
        self.disk().0.unsynced_len()
    }

    fn writing_syncs(&self) -> u64 {
        self.disk().1
    }
}

impl Storage for Probe {
    type Error = std::convert::Infallible;

    fn append(&mut self, records: &[Vec<u8>]) -> Result<(), Self::Error> {
        self.disk().0.append(records)
    }

    fn sync(&mut self) -> Result<u64, Self::Error> {
        let mut disk = self.disk();
        if disk.0.unsynced_len() > 0 {
            disk.1 += 1;
        }
        disk.0.sync()
    }

    fn replay(&mut self) -> Result<Vec<Vec<u8>>, Self::Error> {
        self.disk().0.replay()
    }

    fn compact(&mut self, records: &[Vec<u8>]) -> Result<(), Self::Error> {
        self.disk().0.compact(records)
    }
}

const NEVER: Duration = Duration::from_secs(3_600);

type Jobs = mpsc::Sender<StorageJob>;
type Reports = tokio_mpsc::UnboundedReceiver<StorageReport>;

/// A storage thread over a fresh probe, syncing unawaited records after `idle`.
fn start(idle: Duration) -> (Probe, Jobs, Reports) {
    let probe = Probe::default();
    let (jobs, reports) = spawn(probe.clone(), "test", idle).expect("spawn");
    (probe, jobs, reports)
}

fn append(batch: u64, record: &[u8], awaited: bool) -> StorageJob {
    StorageJob::Append {
        batch,
        records: if record.is_empty() {
            Vec::new()
        } else {
            vec![record.to_vec()]
        },
        awaited,
    }
}

/// Wait (up to 10 s) until `done` holds: the thread works on its own schedule.
fn eventually(done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "condition not reached in 10 s");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn synced(report: Option<StorageReport>) -> (u64, Option<Duration>, u64) {
    match report {
        Some(StorageReport::Synced {
            through,
            fsync,
            records,
        }) => (through, fsync, records),
        other => panic!("expected a sync report, got {other:?}"),
    }
}

/// A record no effect waits for is appended but not synced; the next awaited batch's sync
/// makes both durable, in order, with one fsync and one report.
#[test]
fn an_unawaited_record_is_synced_by_the_next_awaited_batch() {
    let (probe, jobs, mut reports) = start(NEVER);
    jobs.send(append(1, b"commit", false)).expect("send");
    eventually(|| probe.unsynced() == 1);
    assert!(probe.durable().is_empty());
    assert!(reports.try_recv().is_err(), "nothing was synced");
    jobs.send(append(2, b"vote", true)).expect("send");
    let (through, fsync, records) = synced(reports.blocking_recv());
    assert_eq!((through, records), (2, 2));
    assert!(fsync.is_some());
    assert_eq!(probe.durable(), vec![b"commit".to_vec(), b"vote".to_vec()]);
    assert_eq!(probe.writing_syncs(), 1);
}

/// Without further jobs, unawaited records are synced after the idle delay.
#[test]
fn unawaited_records_are_synced_when_the_thread_is_idle() {
    let (probe, jobs, mut reports) = start(Duration::from_millis(5));
    jobs.send(append(1, b"commit", false)).expect("send");
    let (through, fsync, records) = synced(reports.blocking_recv());
    assert_eq!((through, records), (1, 1));
    assert!(fsync.is_some());
    assert_eq!(probe.durable(), vec![b"commit".to_vec()]);
}

/// An awaited batch with no records after everything is durable releases its effects
/// without an fsync, and says so.
#[test]
fn an_empty_awaited_batch_reports_no_fsync() {
    let (probe, jobs, mut reports) = start(NEVER);
    jobs.send(append(1, b"vote", true)).expect("send");
    assert_eq!(synced(reports.blocking_recv()).0, 1);
    jobs.send(append(2, b"", true)).expect("send");
    let (through, fsync, records) = synced(reports.blocking_recv());
    assert_eq!((through, fsync, records), (2, None, 0));
    assert_eq!(probe.writing_syncs(), 1);
}

/// When the host goes away, what it handed over is synced before the thread ends.
#[test]
fn unawaited_records_are_synced_at_shutdown() {
    let (probe, jobs, mut reports) = start(NEVER);
    jobs.send(append(1, b"commit", false)).expect("send");
    drop(jobs);
    assert_eq!(synced(reports.blocking_recv()).0, 1);
    assert!(reports.blocking_recv().is_none(), "the thread ended");
    assert_eq!(probe.durable(), vec![b"commit".to_vec()]);
}

/// A compaction syncs what came before it, unawaited records included, before it
/// replaces the log.
#[test]
fn a_compaction_syncs_unawaited_records_first() {
    let (probe, jobs, mut reports) = start(NEVER);
    jobs.send(append(1, b"commit", false)).expect("send");
    jobs.send(StorageJob::Compact {
        snapshot: vec![b"snapshot".to_vec()],
    })
    .expect("send");
    let (through, fsync, _) = synced(reports.blocking_recv());
    assert_eq!(through, 1);
    assert!(fsync.is_some());
    assert!(matches!(
        reports.blocking_recv(),
        Some(StorageReport::Compacted { records: 1, .. })
    ));
    assert_eq!(probe.durable(), vec![b"snapshot".to_vec()]);
}
