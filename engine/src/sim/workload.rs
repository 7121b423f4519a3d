//! Built-in workloads for tests. The benchmark driver brings its own (conflict rate, Zipf).

use super::client::{ClientOp, Workload};
use crate::command::Command;
use crate::id::ClientId;
use crate::request::Consistency;
use crate::time::Time;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Random gets, puts, deletes and CAS over a small key set, with values unique per
/// (client, request) so a checker can tell every write apart.
#[derive(Clone, Debug)]
pub struct RandomKv {
    /// Number of distinct keys (`k0`, `k1`, ...).
    pub keys: u32,
    /// Share of gets.
    pub read_ratio: f64,
    /// Share of CAS (of the remaining writes).
    pub cas_ratio: f64,
    /// Share of deletes (of the remaining writes).
    pub delete_ratio: f64,
    /// Requests per client before it stops (`None`: until the run ends).
    pub max_ops: Option<u64>,
    /// Consistency of every request (reads: unless `read_consistency` is set).
    pub consistency: Consistency,
    /// Consistency of reads, if not `consistency`.
    pub read_consistency: Option<Consistency>,
    /// Share of the reads that are range reads: scans of every key (limits from 1 to
    /// `keys + 1`, so some stop early) and, one in five, counts.
    pub scan_ratio: f64,
    /// Consistency of range reads, if not `consistency`.
    pub scan_consistency: Option<Consistency>,
    issued: u64,
    last_written: Option<Vec<u8>>,
}

impl RandomKv {
    /// A mix of 40% gets, then puts, 20% CAS and 10% deletes of the writes, over `keys` keys.
    pub fn new(keys: u32) -> Self {
        Self {
            keys: keys.max(1),
            read_ratio: 0.4,
            cas_ratio: 0.2,
            delete_ratio: 0.1,
            max_ops: None,
            consistency: Consistency::Linearizable,
            read_consistency: None,
            scan_ratio: 0.0,
            scan_consistency: None,
            issued: 0,
            last_written: None,
        }
    }

    /// Stop after `n` requests.
    pub fn with_max_ops(mut self, n: u64) -> Self {
        self.max_ops = Some(n);
        self
    }

    /// Reads at `level` (writes keep their consistency), with `read_ratio` of gets.
    pub fn with_reads(mut self, level: Consistency, read_ratio: f64) -> Self {
        self.read_consistency = Some(level);
        self.read_ratio = read_ratio.clamp(0.0, 1.0);
        self
    }

    /// Range reads at `level` for `ratio` of the reads.
    pub fn with_scans(mut self, level: Consistency, ratio: f64) -> Self {
        self.scan_consistency = Some(level);
        self.scan_ratio = ratio.clamp(0.0, 1.0);
        self
    }

    /// Use another consistency for every request.
    pub fn with_consistency(mut self, consistency: Consistency) -> Self {
        self.consistency = consistency;
        self
    }
}

impl Workload for RandomKv {
    fn next_op(&mut self, client: ClientId, rng: &mut ChaCha8Rng, _now: Time) -> Option<ClientOp> {
        if self.max_ops.is_some_and(|max| self.issued >= max) {
            return None;
        }
        self.issued += 1;
        let key = format!("k{}", rng.gen_range(0..self.keys)).into_bytes();
        let value = format!("c{}-{}", client.0, self.issued).into_bytes();
        let command = if rng.gen_bool(self.read_ratio) {
            // No draw without scans: workloads without them replay as before.
            if self.scan_ratio > 0.0 && rng.gen_bool(self.scan_ratio) {
                if rng.gen_bool(0.2) {
                    Command::Count {
                        prefix: b"k".to_vec(),
                    }
                } else {
                    Command::Scan {
                        prefix: b"k".to_vec(),
                        after: None,
                        limit: rng.gen_range(1..=self.keys + 1),
                    }
                }
            } else {
                Command::Get { key }
            }
        } else if rng.gen_bool(self.cas_ratio) {
            // Expect what this client last wrote (often stale: exercises both outcomes).
            Command::Cas {
                key,
                expected: self.last_written.clone(),
                new: value,
            }
        } else if rng.gen_bool(self.delete_ratio) {
            Command::Delete { key }
        } else {
            self.last_written = Some(value.clone());
            Command::Put { key, value }
        };
        let consistency = match (&command, self.read_consistency) {
            (Command::Get { .. }, Some(level)) => level,
            (Command::Scan { .. } | Command::Count { .. }, _) => {
                self.scan_consistency.unwrap_or(self.consistency)
            }
            _ => self.consistency,
        };
        Some(ClientOp {
            command,
            consistency,
            context: Vec::new(),
            sloppy: None,
        })
    }
}
