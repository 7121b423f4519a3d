//! Benchmark workloads: conflict rate (a hot key vs keys of the client's own) or YCSB-style
//! Zipf popularity over K keys, read ratio and value size. Every client draws from its own
//! RNG, seeded by the simulator from the run seed and the client id.
//!
//! Dynamo requests carry the causal context of the client's last answer for the key (as an
//! application doing read-modify-write would), so a client rewriting a key supersedes its
//! own version instead of piling up siblings; keys never reused carry none.

use meridian_engine::command::Command;
use meridian_engine::sim::{ClientOp, OpRecord, Workload};
use meridian_engine::{ClientId, ClientReply, Consistency, Response, Time};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Zipf};
use serde::Serialize;
use std::collections::HashMap;

/// How keys are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum KeyChoice {
    /// `conflict_pct`% of commands hit one shared hot key; the rest use keys of the
    /// client's own, so they never interfere with another client's command.
    Conflict {
        /// Share of commands on the hot key, 0..=100.
        conflict_pct: f64,
        /// How many keys of its own each client cycles through; 0: a new key for every
        /// request (the data then grows with the run, as every replica keeps every key).
        client_keys: u64,
    },
    /// Zipf(θ) over `keys` keys (YCSB); θ = 0 is uniform.
    Zipf {
        /// Skew.
        theta: f64,
        /// Number of keys.
        keys: u64,
    },
}

/// Parameters of one workload.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkloadSpec {
    /// Key choice.
    pub keys: KeyChoice,
    /// Share of reads, 0..=1.
    pub read_ratio: f64,
    /// Bytes per written value (printable ASCII).
    pub value_size: usize,
    /// Consistency of every request (reads: unless `read_level` is set).
    #[serde(skip)]
    pub consistency: Consistency,
    /// Consistency of every read, if not `consistency` (`--read-level`).
    #[serde(skip)]
    pub read_level: Option<Consistency>,
}

impl WorkloadSpec {
    /// Writes only, at `conflict_pct`% conflicts, 16-byte values, a new key for every
    /// request off the hot key (the simulator suites' workload: their seeds replay it).
    pub fn conflicts(conflict_pct: f64) -> Self {
        Self {
            keys: KeyChoice::Conflict {
                conflict_pct,
                client_keys: 0,
            },
            read_ratio: 0.0,
            value_size: 16,
            read_level: None,
            consistency: Consistency::Linearizable,
        }
    }

    /// The conflict percentage, if this is a conflict workload.
    pub fn conflict_pct(&self) -> Option<f64> {
        match self.keys {
            KeyChoice::Conflict { conflict_pct, .. } => Some(conflict_pct),
            KeyChoice::Zipf { .. } => None,
        }
    }

    /// A per-client generator.
    pub fn generator(&self) -> Generator {
        let zipf = match self.keys {
            KeyChoice::Zipf { theta, keys } if theta > 0.0 => Zipf::new(keys.max(1), theta).ok(),
            _ => None,
        };
        Generator {
            spec: self.clone(),
            zipf,
            issued: 0,
            contexts: HashMap::new(),
        }
    }

    /// Whether a client may use `key` again (so its Dynamo context is worth keeping).
    fn reuses(&self, key: &[u8]) -> bool {
        match self.keys {
            KeyChoice::Conflict { client_keys: 0, .. } => key == HOT_KEY,
            KeyChoice::Conflict { .. } | KeyChoice::Zipf { .. } => true,
        }
    }
}

/// One client's stream of commands.
pub struct Generator {
    spec: WorkloadSpec,
    zipf: Option<Zipf<f64>>,
    issued: u64,
    /// The Dynamo causal context of the last answer per reused key.
    contexts: HashMap<Vec<u8>, Vec<u8>>,
}

/// The shared hot key of conflict workloads.
pub const HOT_KEY: &[u8] = b"hot";

impl Generator {
    /// The next command for `client`.
    pub fn next_command(&mut self, client: ClientId, rng: &mut ChaCha8Rng) -> Command {
        self.issued += 1;
        let key = match self.spec.keys {
            KeyChoice::Conflict {
                conflict_pct,
                client_keys,
            } => {
                if rng.gen_range(0.0..100.0) < conflict_pct {
                    HOT_KEY.to_vec()
                } else if client_keys == 0 {
                    format!("c{}-{}", client.0, self.issued).into_bytes()
                } else {
                    format!("c{}-k{}", client.0, self.issued % client_keys).into_bytes()
                }
            }
            KeyChoice::Zipf { keys, .. } => {
                let index = match &self.zipf {
                    Some(zipf) => (zipf.sample(rng) as u64).saturating_sub(1),
                    None => rng.gen_range(0..keys.max(1)),
                };
                format!("key{index}").into_bytes()
            }
        };
        if self.spec.read_ratio > 0.0 && rng.gen_bool(self.spec.read_ratio.clamp(0.0, 1.0)) {
            Command::Get { key }
        } else {
            Command::Put {
                key,
                value: self.value(client),
            }
        }
    }

    /// A printable value of the configured size, unique per (client, request) so a
    /// history checker can tell writes apart.
    fn value(&self, client: ClientId) -> Vec<u8> {
        let mut value = format!("c{}-{}:", client.0, self.issued).into_bytes();
        let filler = b"abcdefghijklmnopqrstuvwxyz";
        let mut i = 0;
        while value.len() < self.spec.value_size {
            value.push(filler[i % filler.len()]);
            i += 1;
        }
        value
    }
}

impl Workload for Generator {
    fn next_op(&mut self, client: ClientId, rng: &mut ChaCha8Rng, _now: Time) -> Option<ClientOp> {
        let command = self.next_command(client, rng);
        let consistency = match (&command, self.spec.read_level) {
            (Command::Get { .. }, Some(level)) => level,
            _ => self.spec.consistency,
        };
        let context = match consistency {
            Consistency::Dynamo(_) => self.contexts.get(command.key()).cloned(),
            _ => None,
        };
        Some(ClientOp {
            command,
            consistency,
            context: context.unwrap_or_default(),
            sloppy: None,
        })
    }

    fn observe(&mut self, record: &OpRecord) {
        let key = record.request.command.key();
        if !self.spec.reuses(key) {
            return;
        }
        if let Some(ClientReply {
            outcome: Ok(Response::Versioned(answer)),
            ..
        }) = &record.reply
        {
            self.contexts.insert(key.clone(), answer.context.clone());
        }
    }
}

#[cfg(test)]
#[path = "workload_test.rs"]
mod tests;
