//! Announcing promises, reporting execution, collecting what every replica executed,
//! and catching up replicas that missed commits.

use super::acceptor::send;
use super::coordinator::Drives;
use super::dots::{epoch_base, epoch_of, DotSet};
use super::messages::{Dot, KeyPromise, Message, Record};
use super::replica::Replica;
use crate::command::Key;
use crate::id::NodeId;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Commits a lagging replica asks one peer for per report at most.
const CATCH_UP_BATCH: usize = 256;

/// Announce promises on the keys whose clock moved, and, when `every_live_key`, on every
/// key with commands not yet executed everywhere (a rejoined replica's attached
/// promises). The announcement reaches this replica too (its own promises count once
/// durable).
pub(super) fn announce(r: &mut Replica, every_live_key: bool) {
    let mut keys = r.clocks.take_dirty();
    if every_live_key {
        keys.extend(r.clocks.attached_keys().cloned());
        keys.extend(
            r.cmds
                .values()
                .filter_map(|c| c.payload.as_ref().map(|p| p.key().clone())),
        );
    }
    let members = r.members.clone();
    for promise in send_promises(r, keys, &members).iter() {
        // Every member gets it: later acks list only what is new since.
        r.clocks.note_announced(promise);
    }
}

/// A peer's commands on `keys` wait for promises it lacks from this replica (a lost
/// announcement): announce them to it again.
pub(super) fn on_ask_promises(r: &mut Replica, from: NodeId, keys: Vec<Key>) {
    if r.fence.may_propose() {
        send_promises(r, keys.into_iter().collect(), &[from]);
    }
}

/// Send this replica's promises on `keys` to `to`. It leaves behind every record queued
/// before it (hosts make persists durable in order), so a clock raised with a
/// `Proposed`, `Accepted` or `Committed` record is durable by then; only clocks raised
/// without one are persisted here (`Record::Clocks`; docs/design.md#tempo, rule 1).
/// Returns the promises sent.
fn send_promises(r: &mut Replica, keys: BTreeSet<Key>, to: &[NodeId]) -> Arc<[KeyPromise]> {
    if keys.is_empty() {
        return Arc::new([]);
    }
    let promises: Arc<[KeyPromise]> = keys.iter().map(|k| r.clocks.promise(k)).collect();
    let collected = r.collected.prefixes();
    let unrecorded = r.clocks.take_unrecorded();
    let records = if unrecorded.is_empty() {
        Vec::new()
    } else {
        let keys = unrecorded
            .iter()
            .map(|k| (k.clone(), r.clocks.get(k)))
            .collect();
        vec![Record::Clocks { keys }]
    };
    let then = to
        .iter()
        .map(|&m| {
            let message = Message::Promises {
                keys: Arc::clone(&promises),
                collected: collected.clone(),
            };
            send(m, message)
        })
        .collect();
    r.metrics.incr("promise_rounds");
    r.outbox.persist(records, then);
    promises
}

/// Repair lost announcements (called every `promise_resend`): for each key whose first
/// waiting command has waited since the previous call, ask the members whose announced
/// clock on it is below that command's timestamp to announce again. Without losses
/// nothing waits that long for promises, so nothing is asked.
pub(super) fn ask_for_lost_promises(r: &mut Replica) {
    let heads: BTreeMap<Key, (u64, Dot)> = r
        .executor
        .heads()
        .map(|(key, head)| (key.clone(), head))
        .collect();
    let previous = std::mem::replace(&mut r.waiting_heads, heads);
    let mut asks: BTreeMap<NodeId, Vec<Key>> = BTreeMap::new();
    for (key, head) in &r.waiting_heads {
        if previous.get(key) != Some(head) {
            continue;
        }
        let (ts, _) = *head;
        for &member in &r.members {
            if r.promises
                .clock_of(key, member)
                .is_none_or(|clock| clock < ts)
            {
                asks.entry(member).or_default().push(key.clone());
            }
        }
    }
    for (member, keys) in asks {
        r.metrics.incr("promise_asks");
        r.outbox.send(member, Message::AskPromises { keys });
    }
}

/// Forget the keys that went idle here: no command on them in the table (every command
/// on them was executed everywhere) and nothing left to announce or execute. Their own
/// clocks fold into the floor, persisted before anything that depends on it leaves
/// (docs/design.md#tempo, rule 6); what others announced on them is dropped.
pub(super) fn forget_idle_keys(r: &mut Replica) {
    if !r.fence.may_propose() {
        // Rejoining: the clocks from the peers' answers are kept until it is done.
        return;
    }
    let busy: BTreeSet<&Key> = r
        .cmds
        .values()
        .filter_map(|c| c.payload.as_ref().map(|p| p.key()))
        .chain(r.touched.iter())
        .collect();
    let before = r.clocks.key_count() + r.promises.key_count();
    let floor = r.clocks.forget_idle(|k| busy.contains(k));
    r.promises.forget_idle(|k| busy.contains(k));
    let after = r.clocks.key_count() + r.promises.key_count();
    r.metrics
        .add("promise_keys_forgotten", (before - after) as u64);
    if let Some(clock) = floor {
        r.outbox.persist(vec![Record::Floor { clock }], Vec::new());
    }
}

/// Everyone's executed prefixes.
#[derive(Clone, Debug, Default, Hash)]
pub(super) struct Collector {
    /// Per replica, per `(coordinator, epoch)`, the prefix it executed.
    reports: BTreeMap<NodeId, BTreeMap<(NodeId, u64), u64>>,
}

impl Collector {
    /// Forget `node`'s report (its former self's, when it rejoins after a lost disk):
    /// nothing more is collected until it reports again.
    pub(super) fn forget(&mut self, node: NodeId) {
        self.reports.remove(&node);
    }

    /// Whether `node` reported executing at least everything `collected` holds (a
    /// learner that caught up; one still fetching its peers' state reports nothing, and
    /// one that left and came back reports what it ran before it left).
    pub(super) fn caught_up(&self, node: NodeId, collected: &DotSet) -> bool {
        let Some(report) = self.reports.get(&node) else {
            return false;
        };
        collected.prefixes().into_iter().all(|(coordinator, seq)| {
            report
                .get(&(coordinator, epoch_of(seq)))
                .is_some_and(|&executed| executed >= seq)
        })
    }
}

/// Report how far this replica executed, once its execution marks are durable.
pub(super) fn report(r: &mut Replica) {
    if !r.fence.executes() {
        // A lost disk: nothing executed to report until a peer's state is installed.
        return;
    }
    let dots = std::mem::take(&mut r.executor.unrecorded);
    let records = if dots.is_empty() {
        Vec::new()
    } else {
        vec![Record::Executed { dots }]
    };
    let prefix = r.executor.executed.prefixes();
    let then = r
        .members
        .iter()
        .map(|&m| {
            let message = Message::Executed {
                prefix: prefix.clone(),
                epoch: r.clocks.epoch(),
                config_epoch: r.configuration().epoch(),
            };
            send(m, message)
        })
        .collect();
    r.outbox.persist(records, then);
}

/// A replica's executed prefixes: forget what everyone executed; send a lagging replica
/// the commits it misses.
pub(super) fn on_executed(
    r: &mut Replica,
    drives: &mut Drives,
    collector: &mut Collector,
    from: NodeId,
    prefix: Vec<(NodeId, u64)>,
) {
    let mut theirs: BTreeMap<(NodeId, u64), u64> = BTreeMap::new();
    for (node, seq) in prefix {
        let entry = theirs.entry((node, epoch_of(seq))).or_default();
        *entry = (*entry).max(seq);
    }
    if from != r.id && r.fence.executes() {
        inquire(r, from, &theirs);
    }
    collector.reports.insert(from, theirs);
    if !r.fence.executes() {
        // Our state is lost or being replaced, and our configuration may not name us (a
        // spare fetching, a replica removed): "every member executed it" would leave us
        // out, and what we forgot on that word (attached promises, commits) the state we
        // install may still need here (t19 seed 560032). Collect again once it is in.
        return;
    }
    let coordinators: BTreeSet<(NodeId, u64)> = collector
        .reports
        .values()
        .flat_map(|p| p.keys().copied())
        .collect();
    for (node, epoch) in coordinators {
        let everywhere = r
            .members
            .iter()
            .map(|m| {
                collector
                    .reports
                    .get(m)
                    .and_then(|p| p.get(&(node, epoch)))
                    .copied()
                    .unwrap_or_else(|| epoch_base(epoch))
            })
            .min()
            .unwrap_or_else(|| epoch_base(epoch));
        r.collected.extend_prefix(node, everywhere);
    }
    let collected = &r.collected;
    let before = r.cmds.len();
    r.cmds.retain(|dot, _| !collected.contains(*dot));
    drives.map.retain(|dot, _| !collected.contains(*dot));
    drives.heard.retain(|dot, _| !collected.contains(*dot));
    r.clocks.forget(|dot| collected.contains(dot));
    r.metrics.add("collected", (before - r.cmds.len()) as u64);
}

/// Ask `from` for the commits this replica lacks below `from`'s executed prefixes, at
/// most [`CATCH_UP_BATCH`]. A coordinator numbers its commands without gaps within an
/// epoch, so every seq between this replica's prefix and the peer's is a command the
/// peer executed; those not committed here were missed (this replica was down, or the
/// commit was lost). Asking for exactly those matters: this replica's prefix can be
/// held by a command waiting for a commit far above it (another coordinator's, itself
/// waiting for one of this coordinator's), so commits pushed in order from its prefix
/// could take many reports to reach the one it waits for.
fn inquire(r: &mut Replica, from: NodeId, theirs: &BTreeMap<(NodeId, u64), u64>) {
    let mut dots = Vec::new();
    'coordinators: for (&(node, epoch), &their_seq) in theirs {
        let own = r.executor.executed.prefix_at(node, epoch);
        for seq in own.saturating_add(1)..=their_seq {
            let dot = Dot { node, seq };
            let known = r.executor.executed.contains(dot)
                || r.collected.contains(dot)
                || r.cmds.get(&dot).is_some_and(|c| c.decided.is_some());
            if known {
                continue;
            }
            if dots.len() == CATCH_UP_BATCH {
                break 'coordinators;
            }
            dots.push(dot);
        }
    }
    if !dots.is_empty() {
        r.metrics.add("catch_up_inquiries", dots.len() as u64);
        r.outbox.send(from, Message::Inquire { dots });
    }
}

/// A lagging peer asks for commits: send those known committed here, and name those
/// forgotten here because every member executed them.
pub(super) fn on_inquire(r: &mut Replica, from: NodeId, dots: Vec<Dot>) {
    let mut collected = Vec::new();
    for dot in dots.into_iter().take(CATCH_UP_BATCH) {
        let Some(cmd) = r.cmds.get(&dot) else {
            if r.collected.contains(dot) {
                collected.push(dot);
            }
            continue;
        };
        if let (Some(ts), Some(payload)) = (cmd.decided, cmd.payload.clone()) {
            r.metrics.incr("catch_up_sent");
            r.outbox.send(from, Message::Commit { dot, payload, ts });
        }
    }
    if !collected.is_empty() {
        r.outbox.send(from, Message::Collected { dots: collected });
    }
}

/// Whether a peer's promises may count here: this replica executed everything the peer
/// collected. Always so in a fixed configuration (collection waits for every member's
/// report); not for a replica removed and added again while it was away, which the
/// members collected without: the peer's promises leave out commands it never ran.
pub(super) fn executed_all(r: &Replica, collected: &[(NodeId, u64)]) -> bool {
    collected.iter().all(|&(node, seq)| {
        let epoch = epoch_of(seq);
        r.executor.executed.prefix_at(node, epoch) >= seq
            || r.collected.prefix_at(node, epoch) >= seq
    })
}

/// A peer forgot commands this replica asked for because every member executed them:
/// if this replica did not, it was left behind and must fetch the members' state.
pub(super) fn behind_collection(r: &Replica, dots: &[Dot]) -> bool {
    dots.iter().any(|&d| !r.executor.executed.contains(d))
}

#[cfg(test)]
#[path = "gc_test.rs"]
mod tests;
