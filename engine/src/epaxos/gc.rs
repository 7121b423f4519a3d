//! Garbage collection: replicas exchange their executed prefix per command leader, and an
//! instance every replica executed is forgotten (late messages about it are then dropped
//! as stale). Memory stays bounded in long runs: the dependency index keeps one small
//! entry per key and leader, the same order of size as the key-value map.
//!
//! A report waits behind every record persisted before it: execution follows the commit
//! record into the outbox, not onto disk, and a peer that forgot an instance on the word of
//! a replica that then crashed before syncing its commit could never tell the restarted
//! replica what was decided (found by kill -9 under load: the restarted replica recovered
//! such instances as no-ops and lost acknowledged writes).
//!
//! Catch-up: a replica that learns from a report that a peer executed instances it never
//! saw committed asks that peer for them.

use super::instance::InstanceId;
use super::messages::Message;
use super::replica::Replica;
use crate::id::NodeId;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Inquiries per report, so a long outage is caught up over a few reports instead of in
/// one burst.
const MAX_INQUIRIES: usize = 4_096;

/// Report rounds a replica removed from the configuration is still waited for after its
/// last report: one that keeps running keeps reporting (and can be added again without a
/// gap), one that was stopped stops holding collection back.
const REMOVED_PATIENCE_ROUNDS: u64 = 10;

/// What this replica knows of everyone's executed prefix.
#[derive(Clone, Default, Hash)]
pub(super) struct Collector {
    /// Latest executed prefix reported by each replica.
    peer_prefixes: BTreeMap<NodeId, BTreeMap<NodeId, u64>>,
    /// Own report rounds so far, and the round of each replica's latest report.
    rounds: u64,
    heard_in_round: BTreeMap<NodeId, u64>,
    /// Per command leader, the highest floor collected here (it can fall back when a
    /// replica is added again with an old prefix; what was forgotten stays forgotten).
    collected: BTreeMap<NodeId, u64>,
}

impl Collector {
    /// On the GC timer (its own, armed whether or not there is work: an idle replica
    /// must still report, collect and learn what it missed): tell everyone how far we
    /// executed (behind every record persisted so far: see the module doc), and forget
    /// what everyone executed.
    pub(super) fn report_executed(&mut self, replica: &mut Replica) {
        if !replica.fence.executes() {
            // A lost disk: nothing executed to report until a peer's state is installed.
            return;
        }
        let prefix: Vec<(NodeId, u64)> = replica
            .executor
            .executed_prefix()
            .iter()
            .map(|(&l, &s)| (l, s))
            .collect();
        let last_switch = replica.executor.last_switch();
        let reports = replica.sends_to_others(&Message::Executed {
            prefix,
            last_switch,
        });
        replica.outbox.persist(Vec::new(), reports);
        self.rounds += 1;
        self.collect_garbage(replica);
    }

    /// Whether `id` reported within the last [`REMOVED_PATIENCE_ROUNDS`] own rounds.
    fn still_reporting(&self, id: NodeId) -> bool {
        self.heard_in_round
            .get(&id)
            .is_some_and(|&round| self.rounds - round <= REMOVED_PATIENCE_ROUNDS)
    }

    /// Whether `id` reported what it executed (a replica rejoining after a lost disk, or a
    /// spare fetching its peers' state, does not).
    pub(super) fn has_report_from(&self, id: NodeId) -> bool {
        self.peer_prefixes.contains_key(&id)
    }

    /// Whether this replica forgot `instance` because every member (of the configuration
    /// then) executed it. A replica that holds it executed only through a peer's state
    /// (a spare, a lost disk) did not: its peers may still be waiting for it.
    pub(super) fn forgot(&self, instance: InstanceId) -> bool {
        self.collected
            .get(&instance.leader)
            .is_some_and(|&floor| instance.slot < floor)
    }

    /// A peer whose latest report says it executed `instance` (so it holds the commit,
    /// or collected it).
    pub(super) fn executed_by(&self, instance: InstanceId) -> Option<NodeId> {
        self.peer_prefixes.iter().find_map(|(&peer, prefix)| {
            let executed = prefix.get(&instance.leader).copied().unwrap_or(0);
            (instance.slot < executed).then_some(peer)
        })
    }

    /// Whether `id` reported executing everything this replica forgot: one that did not
    /// cannot learn the forgotten instances one by one, and fetches its peers' state
    /// first (`on_collected_elsewhere`), voting on nothing meanwhile.
    pub(super) fn passed_collection(&self, id: NodeId) -> bool {
        let Some(prefix) = self.peer_prefixes.get(&id) else {
            return false;
        };
        self.collected
            .iter()
            .all(|(leader, &floor)| prefix.get(leader).is_some_and(|&slot| slot >= floor))
    }

    /// A peer's executed prefix: ask for what it executed and we never saw committed,
    /// then forget what everyone executed.
    pub(super) fn on_report(
        &mut self,
        replica: &mut Replica,
        from: NodeId,
        prefix: Vec<(NodeId, u64)>,
        last_switch: Option<InstanceId>,
    ) {
        if replica.fence.executes() {
            // (With a lost disk, the state installed from a peer comes first.)
            catch_up(replica, from, &prefix);
            if let Some(switch) = last_switch.filter(|&s| !replica.committed_or_executed(s)) {
                replica
                    .outbox
                    .send(from, Message::Inquire { instance: switch });
                replica.metrics.incr("switches_asked");
            }
        }
        self.peer_prefixes
            .insert(from, prefix.into_iter().collect());
        self.heard_in_round.insert(from, self.rounds);
        self.collect_garbage(replica);
    }

    /// Forget instances every replica executed: a later command that names one finds it
    /// executed.
    fn collect_garbage(&mut self, replica: &mut Replica) {
        replica.ran_everywhere = Arc::new(self.floor(replica));
        for (&leader, &slot) in replica.ran_everywhere.iter() {
            let collected = self.collected.entry(leader).or_default();
            *collected = (*collected).max(slot);
            let forgotten = replica.table.forget_below(leader, slot);
            if forgotten > 0 {
                let forgotten = forgotten as u64;
                replica.metrics.add("instances_collected", forgotten);
            }
        }
    }

    /// Per command leader, the first slot some replica (this one included) has not
    /// reported executed: every instance below ran everywhere.
    pub(super) fn floor(&self, replica: &Replica) -> BTreeMap<NodeId, u64> {
        let own = replica.executor.executed_prefix();
        let mut below: BTreeMap<NodeId, u64> = BTreeMap::new();
        // Instances of every member ever (removed ones too), once every member of the
        // current configuration executed them, and every removed one still reporting.
        let current = replica.epochs.current_members();
        let reporters: Vec<NodeId> = replica
            .epochs
            .members()
            .iter()
            .copied()
            .filter(|m| current.contains(m) || self.still_reporting(*m))
            .collect();
        for &leader in replica.epochs.members() {
            let mut min = own.get(&leader).copied().unwrap_or(0);
            for &member in reporters.iter().filter(|&&m| m != replica.id) {
                let reported = self
                    .peer_prefixes
                    .get(&member)
                    .and_then(|p| p.get(&leader))
                    .copied()
                    .unwrap_or(0);
                min = min.min(reported);
            }
            if min > 0 {
                below.insert(leader, min);
            }
        }
        below
    }
}

/// Ask `from` for instances it executed that this replica never saw committed. A replica
/// that was down while they committed would otherwise miss every one that no later
/// command depends on: its state would lag forever and, since its executed prefix could
/// not pass them, nobody could collect anything after them.
fn catch_up(replica: &mut Replica, from: NodeId, prefix: &[(NodeId, u64)]) {
    let mut asked = 0;
    for &(leader, reported) in prefix {
        let own = replica
            .executor
            .executed_prefix()
            .get(&leader)
            .copied()
            .unwrap_or(0);
        for slot in own..reported {
            let id = InstanceId { leader, slot };
            if replica.committed_or_executed(id) {
                continue;
            }
            if asked == MAX_INQUIRIES {
                return;
            }
            asked += 1;
            replica.metrics.incr("catch_up_inquiries");
            replica.outbox.send(from, Message::Inquire { instance: id });
        }
    }
}

/// Whether `effect` is an executed-prefix report (hosts that leave collection out of
/// scope drop them).
#[cfg(test)]
pub(super) fn is_report(effect: &crate::protocol::Effect<Message>) -> bool {
    matches!(
        effect,
        crate::protocol::Effect::Send {
            message: Message::Executed { .. },
            ..
        }
    )
}
