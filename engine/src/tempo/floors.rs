//! Floor promises: what lets a switch close its epoch's range on every key at once
//! (docs/design.md#tempo-epochs-the-rule-and-why-it-is-safe, rule 4).
//!
//! A replica's floor is a clock every key has, so the floor with every attached promise
//! at or below it is a promise on every key ([`FloorPromise`]). A switch at `t` runs here
//! only once a majority of the closing epoch's voters promised so up to `t` and every
//! command they listed is committed here: every command of the epoch on any key up to
//! `t` is then known here, so the closed range is stable on every key, idle ones
//! included. Nothing later needs announcements from the closing epoch's voters, who may
//! leave for good.
//!
//! Pushed when a switch's commit is durable (the floor is then at least its timestamp),
//! asked for while a switch waits, relayed by whoever holds them.

use super::acceptor::send;
use super::clocks::{kth_highest, Announced};
use super::gc;
use super::messages::{Dot, FloorPromise, Message, Record};
use super::replica::Replica;
use crate::id::NodeId;
use crate::quorum;
use std::collections::BTreeMap;

/// The latest floor promise of each replica, as sent (to relay) and as counted here.
#[derive(Clone, Debug, Default, Hash)]
pub(super) struct FloorTable {
    by_node: BTreeMap<NodeId, (FloorPromise, Announced)>,
}

impl FloorTable {
    /// Take `promise` unless one with a higher floor is known from its replica. Whether
    /// it changed anything.
    fn update(&mut self, promise: FloorPromise, committed: impl Fn(Dot) -> bool) -> bool {
        let node = promise.node;
        let newer_known = self
            .by_node
            .get(&node)
            .is_some_and(|(known, _)| (known.epoch, known.floor) >= (promise.epoch, promise.floor));
        if newer_known {
            return false;
        }
        let announced = Announced::new(promise.floor, promise.attached.clone(), committed);
        self.by_node.insert(node, (promise, announced));
        true
    }

    /// Forget `node`'s promise (its former self's, when it rejoins after a lost disk).
    pub(super) fn forget_node(&mut self, node: NodeId) {
        self.by_node.remove(&node);
    }

    /// The highest timestamp a majority of `voters` promised every key up to, counting
    /// attached promises only for commands `committed` says are committed here.
    pub(super) fn stable(&mut self, voters: &[NodeId], committed: impl Fn(Dot) -> bool) -> u64 {
        let frontiers = self
            .by_node
            .iter_mut()
            .filter(|(node, _)| voters.contains(node))
            .map(|(_, (_, announced))| announced.frontier(&committed));
        kth_highest(frontiers.collect(), quorum::majority(voters.len()))
    }

    /// The promises known here with a floor of at least `ts`.
    fn at_least(&self, ts: u64) -> impl Iterator<Item = &FloorPromise> {
        self.by_node
            .values()
            .map(|(promise, _)| promise)
            .filter(move |p| p.floor >= ts)
    }

    /// The floor `node` promised, if known.
    fn floor_of(&self, node: NodeId) -> Option<u64> {
        self.by_node.get(&node).map(|(p, _)| p.floor)
    }
}

/// This replica's floor promise. Its floor is durable once the records queued before
/// it are (a switch's `Proposed`, `Accepted` or `Committed`, a `Floor`); hosts make
/// persists durable in order, so it leaves behind them.
fn own(r: &Replica) -> FloorPromise {
    FloorPromise {
        node: r.id,
        floor: r.clocks.floor(),
        attached: r.clocks.attached_below_floor(),
        collected: r.collected.prefixes(),
        epoch: r.clocks.epoch(),
    }
}

/// Send `to` this replica's floor promise and the others' it holds, those with a floor
/// of at least `ts`.
fn send_floors(r: &mut Replica, ts: u64, to: &[NodeId]) {
    let mut promises: Vec<FloorPromise> = r
        .floors
        .at_least(ts)
        .filter(|p| p.node != r.id)
        .cloned()
        .collect();
    if r.fence.may_propose() && r.clocks.floor() >= ts {
        promises.push(own(r));
    }
    if promises.is_empty() {
        return;
    }
    let then = to
        .iter()
        .map(|&m| {
            let message = Message::Floors {
                promises: promises.clone(),
            };
            send(m, message)
        })
        .collect();
    r.metrics.incr("floor_rounds");
    r.outbox.persist(Vec::<Record>::new(), then);
}

/// A switch's commit at `ts` is durable here: the floor is at least `ts`; tell every
/// replica of the cluster (itself included: its own promise counts once durable).
pub(super) fn on_switch_durable(r: &mut Replica, ts: u64) {
    let everyone: Vec<NodeId> = r.cluster.ids().collect();
    send_floors(r, ts, &everyone);
}

/// A peer's switch at `ts` waits for floor promises.
pub(super) fn on_ask_floors(r: &mut Replica, from: NodeId, ts: u64) {
    send_floors(r, ts, &[from]);
}

/// Floor promises arrived: keep those that count here (their replica's current epoch,
/// and everything it collected executed here); the switch lane looks again.
pub(super) fn on_floors(r: &mut Replica, promises: Vec<FloorPromise>) {
    let mut changed = false;
    for promise in promises {
        if !r.fence.current(promise.node, promise.epoch) || !gc::executed_all(r, &promise.collected)
        {
            r.metrics.incr("floor_promises_not_counted");
            continue;
        }
        let (floors, committed) = r.floors_and_commits();
        changed |= floors.update(promise, committed);
    }
    if changed {
        r.touched.insert(super::messages::SWITCH_LANE.to_vec());
    }
}

/// The voters whose floor promises the first switch waiting here still lacks, asked
/// again (called every `promise_resend`: a push may have been lost, or sent before this
/// replica restarted).
pub(super) fn ask_for_missing(r: &mut Replica) {
    let Some((ts, _)) = r.executor.pending_switch() else {
        return;
    };
    let voters: Vec<NodeId> = r.configuration().voters().collect();
    if r.switch_certified_up_to(&voters) >= ts {
        return;
    }
    // Any replica may hold a voter's promise (relayed), and a voter may be gone.
    let lacking = voters
        .iter()
        .any(|&v| r.floors.floor_of(v).is_none_or(|floor| floor < ts));
    if !lacking {
        return;
    }
    let others: Vec<NodeId> = r.cluster.ids().filter(|&id| id != r.id).collect();
    r.metrics.incr("floor_asks");
    for peer in others {
        r.outbox.send(peer, Message::AskFloors { ts });
    }
}

#[cfg(test)]
#[path = "floors_test.rs"]
mod tests;
