//! History recording and checkers.
//!
//! - [`history`]: what clients did — invoke/complete times and outcomes `Ok`, `Fail`
//!   (definitely no effect) or `Unknown` (a timeout: it may or may not have taken effect;
//!   never treated as a failure).
//! - [`linearizability`]: per-key linearizability of KV histories with compare-and-set
//!   (Herlihy & Wing 1990), searched with the Wing & Gong (1993) algorithm and Lowe's
//!   (2017) memoization of `(linearized set, state)` pairs, under a deterministic step
//!   budget per key.
//! - [`execution_order`]: interfering commands execute in the same order everywhere.
//! - [`read_your_writes`]: in versioned (Dynamo) histories, a client's reads reflect its
//!   own acknowledged writes.
//! - [`scans`]: range reads projected onto the keys they cover, for the per-key check.
//! - [`staleness`]: bounded-staleness reads never return a state older than their bound
//!   (linearizability with each stale read's call moved back by its bound).

pub mod execution_order;
pub mod history;
pub mod linearizability;
pub mod read_your_writes;
pub mod scans;
pub mod staleness;

pub use execution_order::check_execution_order;
pub use history::{History, HistoryCounts, OpId, OpRecord, Operation, Outcome};
pub use linearizability::{check_kv, CheckConfig, Report, Verdict};
pub use read_your_writes::{check_read_your_writes, versioned_ops, RywReport, VersionedOp};
pub use staleness::bounded_staleness_history_of;
