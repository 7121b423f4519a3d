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
use super::gc;
use super::messages::{FloorPromise, Message, Record, SWITCH_LANE};
use super::replica::Replica;
use crate::id::NodeId;

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
        let (_, floors, committed) = r.tables_and_commits();
        changed |= floors.update(promise, committed);
    }
    if changed {
        r.touched.insert(SWITCH_LANE.to_vec());
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
