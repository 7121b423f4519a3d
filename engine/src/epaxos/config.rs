//! EPaxos configuration.

use std::time::Duration;

/// How an EPaxos keyspace runs. Defaults are documented per field.
#[derive(Clone, Debug, PartialEq)]
pub struct EpaxosConfig {
    /// Send PreAccepts only to the nearest fast quorum (by the cluster's RTT estimates)
    /// instead of every replica (default false). Falls back to all replicas when the
    /// fast quorum does not answer in time.
    pub thrifty: bool,
    /// Time a command leader waits for replies before resending (to every replica) and,
    /// in the PreAccept phase, settling for the slow path with a majority (default 500 ms).
    pub retry_timeout: Duration,
    /// How often timers are checked (default 50 ms).
    pub tick: Duration,
}

impl Default for EpaxosConfig {
    fn default() -> Self {
        Self {
            thrifty: false,
            retry_timeout: Duration::from_millis(500),
            tick: Duration::from_millis(50),
        }
    }
}

impl EpaxosConfig {
    /// Thrifty PreAccepts.
    pub fn with_thrifty(mut self, thrifty: bool) -> Self {
        self.thrifty = thrifty;
        self
    }
}
