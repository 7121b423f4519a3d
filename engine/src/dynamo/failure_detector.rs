//! Heartbeat failure detector: a peer is down after `failure_timeout` of silence.
//!
//! Every node pings every peer each `heartbeat_interval`; any message from a peer counts
//! as a heartbeat. Suspicion only steers *where* requests go (fallbacks for sloppy
//! quorums, forwarding, fail-fast when a strict level cannot be reached) and *when* hints
//! are replayed; it never decides what counts toward a level, so a wrong suspicion costs
//! availability or extra hints, never safety.

use crate::id::NodeId;
use crate::time::Time;
use std::collections::BTreeMap;
use std::time::Duration;

/// Last time each peer was heard from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureDetector {
    me: NodeId,
    timeout: Duration,
    /// Peers start as heard-from at the detector's start: the benefit of the doubt.
    last_heard: BTreeMap<NodeId, Time>,
}

impl FailureDetector {
    /// A detector for `peers` (self excluded), with every peer presumed alive at `start`.
    pub fn new(
        me: NodeId,
        peers: impl IntoIterator<Item = NodeId>,
        timeout: Duration,
        start: Time,
    ) -> Self {
        Self {
            me,
            timeout,
            last_heard: peers
                .into_iter()
                .filter(|&p| p != me)
                .map(|p| (p, start))
                .collect(),
        }
    }

    /// Start watching `peer` (a new ring member), presumed alive at `now`; no change if
    /// it is watched already.
    pub fn watch(&mut self, peer: NodeId, now: Time) {
        if peer != self.me {
            self.last_heard.entry(peer).or_insert(now);
        }
    }

    /// `from` sent something at `now`. Returns true if it was considered down.
    pub fn heard(&mut self, from: NodeId, now: Time) -> bool {
        let was_down = !self.is_alive(from, now);
        if let Some(last) = self.last_heard.get_mut(&from) {
            *last = (*last).max(now);
        }
        was_down
    }

    /// Whether `node` is presumed reachable at `now` (always true for self).
    pub fn is_alive(&self, node: NodeId, now: Time) -> bool {
        if node == self.me {
            return true;
        }
        self.last_heard
            .get(&node)
            .is_some_and(|&last| now < last + self.timeout)
    }

    /// Peers presumed down at `now`.
    pub fn down(&self, now: Time) -> Vec<NodeId> {
        self.last_heard
            .keys()
            .copied()
            .filter(|&n| !self.is_alive(n, now))
            .collect()
    }
}

#[cfg(test)]
#[path = "failure_detector_test.rs"]
mod tests;
