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

use meridian_engine::storage::Storage;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc as tokio_mpsc;

/// Most jobs folded into one group commit (bounds the work between two reports).
const GROUP_JOBS_MAX: usize = 4_096;

/// Work for the storage thread.
#[derive(Debug)]
pub(crate) enum StorageJob {
    /// Append encoded records; batch numbers increase by one per job.
    Append { batch: u64, records: Vec<Vec<u8>> },
    /// Replace the log by `snapshot` once everything before it is synced.
    Compact { snapshot: Vec<Vec<u8>> },
}

/// What the storage thread tells the host.
#[derive(Debug)]
pub(crate) enum StorageReport {
    /// Every batch up to `through` is durable.
    Synced {
        through: u64,
        fsync: Duration,
        records: u64,
    },
    /// A compaction completed; the log now holds `records` records of `bytes` bytes
    /// (payloads, before framing).
    Compacted { records: u64, bytes: u64 },
    /// Storage failed; nothing more will be synced.
    Failed(String),
}

/// Start the storage thread for `storage`.
pub(crate) fn spawn<S: Storage + Send + 'static>(
    storage: S,
    keyspace: &str,
) -> std::io::Result<(
    mpsc::Sender<StorageJob>,
    tokio_mpsc::UnboundedReceiver<StorageReport>,
)> {
    let (jobs_tx, jobs_rx) = mpsc::channel();
    let (reports_tx, reports_rx) = tokio_mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name(format!("storage-{keyspace}"))
        .spawn(move || {
            if let Err(message) = run(storage, &jobs_rx, &reports_tx) {
                let _ = reports_tx.send(StorageReport::Failed(message));
            }
        })?;
    Ok((jobs_tx, reports_rx))
}

fn run<S: Storage>(
    mut storage: S,
    jobs: &mpsc::Receiver<StorageJob>,
    reports: &tokio_mpsc::UnboundedSender<StorageReport>,
) -> Result<(), String> {
    // Ends when the host drops its sender (shutdown or abort), after the last group.
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < GROUP_JOBS_MAX {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let mut through = None;
        let mut appended = 0;
        for job in group {
            match job {
                StorageJob::Append { batch, records } => {
                    storage.append(&records).map_err(|e| e.to_string())?;
                    appended += records.len() as u64;
                    through = Some(batch);
                }
                StorageJob::Compact { snapshot } => {
                    storage.sync().map_err(|e| e.to_string())?;
                    storage.compact(&snapshot).map_err(|e| e.to_string())?;
                    let _ = reports.send(StorageReport::Compacted {
                        records: snapshot.len() as u64,
                        bytes: snapshot.iter().map(|r| r.len() as u64).sum(),
                    });
                }
            }
        }
        let started = Instant::now();
        storage.sync().map_err(|e| e.to_string())?;
        let fsync = started.elapsed();
        if let Some(through) = through {
            let _ = reports.send(StorageReport::Synced {
                through,
                fsync,
                records: appended,
            });
        }
    }
    Ok(())
}
