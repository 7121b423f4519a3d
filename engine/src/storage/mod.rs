//! Durable record logs.
//!
//! [`Storage`] is what a host uses to make a core's records durable. [`MemStorage`] models
//! a disk for tests and the simulator (synced and unsynced parts, crash drops the latter);
//! the server's file log implements the same trait with [`record`] framing. Both run
//! [`conformance::run_all`].

pub mod conformance;
mod mem;
pub mod record;

pub use mem::MemStorage;

/// How long records no effect waits for (a `Persist` with an empty `then`) may stay
/// unsynced while nothing else is written: a host syncs them with the next write some
/// effect waits for, or after this much quiet (docs/design.md, Durability, "Unawaited
/// records"). Safety never depends on it; it bounds what a crash of a quiet replica
/// loses, and the simulator and the server use the same value.
pub const IDLE_SYNC_AFTER: std::time::Duration = std::time::Duration::from_millis(10);

/// An append-only log of opaque records.
///
/// # Correctness
/// - `append` only buffers: a record is durable after the next successful `sync`.
/// - `sync` returns only once every appended record is durable (fsync, including the
///   directory entry of a newly created file).
/// - `replay` returns every durable record in append order. A torn tail (a partial last
///   write) ends the log silently; corruption before the tail is an error, never skipped.
pub trait Storage {
    /// What can go wrong.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Buffer records; durable only after the next successful [`sync`](Self::sync).
    fn append(&mut self, records: &[Vec<u8>]) -> Result<(), Self::Error>;

    /// Make everything appended durable; returns the number of durable records.
    fn sync(&mut self) -> Result<u64, Self::Error>;

    /// Every durable record in append order (the restart path).
    fn replay(&mut self) -> Result<Vec<Vec<u8>>, Self::Error>;

    /// Replace the whole log by `records` atomically (snapshot/compaction): after a crash
    /// the log holds either the old records or exactly `records`.
    fn compact(&mut self, records: &[Vec<u8>]) -> Result<(), Self::Error>;
}
