//! The storage thread: group commit for one keyspace.
//!
//! ```text
//!  host ──StorageJob (in order)──▶ thread: take every queued job, append them all,
//!                                          one sync ──▶ StorageReport::Synced{through}
//! ```
//!
//! fsync blocks, so it runs on a dedicated OS thread rather than a runtime worker. Jobs
//! that queue while a sync is running are committed together by the next one (group
//! commit). A compaction first syncs everything before it, so it is ordered after every
//! earlier `Persist` and before every later one. After any storage error the thread
//! reports it and stops: the host must not release effects whose records may be lost.
//!
//! A group in which no effect waits for a sync (every job `awaited: false`, e.g. an
//! EPaxos acceptor's commit record) is appended but not synced: the next awaited job's
//! sync covers it (the log is sequential), or [`IDLE_SYNC_AFTER`] of quiet does. The core
//! cannot tell this from a slow disk: it never hears of a sync except through the effects
//! it releases (docs/design.md, Durability, "Unawaited records").

use meridian_engine::storage::Storage;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc as tokio_mpsc;

/// Most jobs folded into one group commit (bounds the work between two reports).
const GROUP_JOBS_MAX: usize = 4_096;

pub(crate) use meridian_engine::storage::IDLE_SYNC_AFTER;

/// Work for the storage thread.
#[derive(Debug)]
pub(crate) enum StorageJob {
    /// Append encoded records; batch numbers increase by one per job. `awaited`: some
    /// effect waits for this batch's sync, so the group it joins is synced at once.
    Append {
        batch: u64,
        records: Vec<Vec<u8>>,
        awaited: bool,
    },
    /// Replace the log by `snapshot` once everything before it is synced.
    Compact { snapshot: Vec<Vec<u8>> },
}

/// What the storage thread tells the host.
#[derive(Debug)]
pub(crate) enum StorageReport {
    /// Every batch up to `through` is durable: `records` more records, made so by one
    /// fsync that took `fsync` (`None`: nothing new to write, no fsync ran).
    Synced {
        through: u64,
        fsync: Option<Duration>,
        records: u64,
    },
    /// A compaction completed; the log now holds `records` records of `bytes` bytes
    /// (payloads, before framing).
    Compacted { records: u64, bytes: u64 },
    /// Storage failed; nothing more will be synced.
    Failed(String),
}

/// Start the storage thread for `storage`; records no effect waits for are synced after
/// `idle_sync_after` without other jobs ([`IDLE_SYNC_AFTER`] outside tests).
pub(crate) fn spawn<S: Storage + Send + 'static>(
    storage: S,
    keyspace: &str,
    idle_sync_after: Duration,
) -> std::io::Result<(
    mpsc::Sender<StorageJob>,
    tokio_mpsc::UnboundedReceiver<StorageReport>,
)> {
    let (jobs_tx, jobs_rx) = mpsc::channel();
    let (reports_tx, reports_rx) = tokio_mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name(format!("storage-{keyspace}"))
        .spawn(move || {
            if let Err(message) = run(storage, &jobs_rx, &reports_tx, idle_sync_after) {
                let _ = reports_tx.send(StorageReport::Failed(message));
            }
        })?;
    Ok((jobs_tx, reports_rx))
}

fn run<S: Storage>(
    mut storage: S,
    jobs: &mpsc::Receiver<StorageJob>,
    reports: &tokio_mpsc::UnboundedSender<StorageReport>,
    idle_sync_after: Duration,
) -> Result<(), String> {
    // Records appended since the last sync, and the last batch among them.
    let mut unsynced = Unsynced::default();
    loop {
        let first = if unsynced.through.is_some() {
            match jobs.recv_timeout(idle_sync_after) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    sync(&mut storage, &mut unsynced, reports)?;
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match jobs.recv() {
                Ok(job) => job,
                Err(_) => break,
            }
        };
        let mut group = vec![first];
        while group.len() < GROUP_JOBS_MAX {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let mut awaited = false;
        for job in group {
            match job {
                StorageJob::Append {
                    batch,
                    records,
                    awaited: job_awaited,
                } => {
                    storage.append(&records).map_err(|e| e.to_string())?;
                    unsynced.records += records.len() as u64;
                    unsynced.through = Some(batch);
                    awaited |= job_awaited;
                }
                StorageJob::Compact { snapshot } => {
                    sync(&mut storage, &mut unsynced, reports)?;
                    storage.compact(&snapshot).map_err(|e| e.to_string())?;
                    let _ = reports.send(StorageReport::Compacted {
                        records: snapshot.len() as u64,
                        bytes: snapshot.iter().map(|r| r.len() as u64).sum(),
                    });
                }
            }
        }
        if awaited {
            sync(&mut storage, &mut unsynced, reports)?;
        }
    }
    // The host dropped its sender (shutdown or abort): what it handed over is kept.
    sync(&mut storage, &mut unsynced, reports)
}

/// What has been appended since the last sync.
#[derive(Default)]
struct Unsynced {
    records: u64,
    through: Option<u64>,
}

/// Sync everything appended and report the batches it made durable.
fn sync<S: Storage>(
    storage: &mut S,
    unsynced: &mut Unsynced,
    reports: &tokio_mpsc::UnboundedSender<StorageReport>,
) -> Result<(), String> {
    let started = Instant::now();
    storage.sync().map_err(|e| e.to_string())?;
    let fsync = (unsynced.records > 0).then(|| started.elapsed());
    if let Some(through) = unsynced.through.take() {
        let _ = reports.send(StorageReport::Synced {
            through,
            fsync,
            records: std::mem::take(&mut unsynced.records),
        });
    }
    Ok(())
}

#[cfg(test)]
#[path = "storage_thread_test.rs"]
mod tests;
