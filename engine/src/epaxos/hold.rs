//! Ordered delivery (docs/design.md#epaxos, "Ordered delivery"): every replica, the
//! leader included, processes a leader's first PreAccept of an instance about when the
//! leader's farthest fast-quorum member receives it (its *release time*), so concurrent
//! conflicting instances are processed in about the same order everywhere. Replicas that
//! process two conflicting instances in the same order give the later one the earlier as
//! a dependency and not the other way round: the slow path's union has no cycle, and
//! execution waits for no strongly connected component, only for the commits of
//! instances released earlier.
//!
//! Holding a message is a delay the asynchronous model allows anyway. The leader's side
//! (`leader.rs`) keeps its own instance out of its key index until the release time and
//! casts its own vote then, from what it indexed by that time, exactly as an acceptor
//! would (a vote cast when proposing would miss what it processed, unaware of its own
//! instance, in between). Release times come from the cluster's RTT estimates only.

use super::messages::Message;
use crate::id::NodeId;
use crate::protocol::Membership;
use crate::time::Time;
use std::collections::BTreeMap;
use std::time::Duration;

/// PreAccepts held until their release time, and how long to hold each leader's.
#[derive(Clone, Debug, Default, Hash)]
pub(super) struct Holds {
    /// `(release time, arrival number)` → the message and its sender.
    queue: BTreeMap<(Time, u64), (NodeId, Message)>,
    arrivals: u64,
    /// Per leader (by id index), how long this replica holds its first PreAccepts; for
    /// this replica itself, how long after proposing it casts its own vote.
    delay: Vec<Duration>,
}

impl Holds {
    /// Holds for replica `me` of `cluster` with fast quorums of `fast_quorum` replicas
    /// (the leader included); none when `enabled` is false or RTTs are unknown. A
    /// leader's PreAccept reaches replica `r` about `rtt(leader, r) / 2` after it left;
    /// held for the difference to the leader's farthest fast-quorum member, it is
    /// processed about when that member processes it.
    pub(super) fn new(me: NodeId, cluster: &Membership, fast_quorum: usize, enabled: bool) -> Self {
        let one_way = |from: NodeId, to: NodeId| match from == to {
            true => Some(0),
            false => cluster.rtt_us(from, to).map(|us| us / 2),
        };
        let delay = cluster
            .ids()
            .map(|leader| {
                let farthest = cluster
                    .by_distance(leader)
                    .into_iter()
                    .take(fast_quorum)
                    .map(|m| one_way(leader, m))
                    .try_fold(0, |max, d| d.map(|d| d.max(max)));
                match (enabled, farthest, one_way(leader, me)) {
                    (true, Some(farthest), Some(mine)) => {
                        Duration::from_micros(farthest.saturating_sub(mine))
                    }
                    _ => Duration::ZERO,
                }
            })
            .collect();
        Self {
            delay,
            ..Self::default()
        }
    }

    /// How long after proposing an instance this replica casts its own vote on it (zero:
    /// at once, ordered delivery off).
    pub(super) fn own_delay(&self, me: NodeId) -> Duration {
        self.delay.get(me.index()).copied().unwrap_or_default()
    }

    /// How long to hold `message` from `from`: only a PreAccept at its instance's
    /// initial ballot (a leader's first round; later rounds and recoveries are late
    /// already).
    pub(super) fn delay_for(&self, from: NodeId, message: &Message) -> Duration {
        match message {
            Message::PreAccept {
                ballot, instance, ..
            } if *ballot == super::instance::Ballot::initial(*instance) => {
                self.delay.get(from.index()).copied().unwrap_or_default()
            }
            _ => Duration::ZERO,
        }
    }

    /// Hold `message` from `from` until `until`.
    pub(super) fn hold(&mut self, until: Time, from: NodeId, message: Message) {
        self.arrivals += 1;
        self.queue.insert((until, self.arrivals), (from, message));
    }

    /// The first held message if it is due at `now`.
    pub(super) fn pop_due(&mut self, now: Time) -> Option<(NodeId, Message)> {
        let entry = self.queue.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        Some(entry.remove())
    }

    /// When the next held message is due.
    pub(super) fn next(&self) -> Option<Time> {
        self.queue.keys().next().map(|&(at, _)| at)
    }
}
