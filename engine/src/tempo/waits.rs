//! The own commands committed here and waiting to execute: where the stability delay
//! goes, and which writes may be answered once promised (`replica.rs::on_promised`).

use super::messages::Dot;
use crate::command::Key;
use crate::key_map::KeyMap;
use crate::time::Time;
use std::collections::{BTreeMap, BTreeSet};

/// An own command between its commit and its execution.
#[derive(Clone, Debug)]
pub(super) struct OwnWait {
    pub key: Key,
    pub ts: u64,
    /// Its configuration epoch.
    pub epoch: u64,
    pub committed: Time,
    /// When a majority's clocks first covered `ts` (attached promises aside); from then
    /// on it waits only for commands with lower proposals to commit here.
    pub promised: Option<Time>,
    /// A first send of a put or delete: its result (`Written`) depends on nothing ordered
    /// before it, so its client may be answered once its timestamp is promised.
    pub blind: bool,
}

/// The waiting commands by dot, and per key those not yet promised and the promised
/// writes not yet answered. Promises move per key, and looking through every command
/// waiting for each key an announcement moved was quadratic in a deep pipeline (1,024
/// commands in flight on `lan-3`: a third of a replica's CPU comparing keys, and on a
/// hot key half of it looking up waits already promised).
#[derive(Clone, Debug, Default)]
pub(super) struct OwnWaits {
    by_dot: BTreeMap<Dot, OwnWait>,
    by_key: KeyMap<KeyWaits>,
    /// `(timestamp, dot)` of every promised write not answered yet (each is in its key's
    /// `to_answer`): the switch lane's stability moving up makes answerable only those it
    /// passes.
    to_answer_by_ts: BTreeSet<(u64, Dot)>,
    /// Where the switch lane was stable when its writes were last looked at.
    lane_looked_up_to: u64,
}

/// One key's waits that a promise may still move.
#[derive(Clone, Debug, Default)]
struct KeyWaits {
    /// `(epoch, timestamp, dot)` of those not yet covered by a majority's clocks.
    unpromised: BTreeSet<(u64, u64, Dot)>,
    /// Promised writes that may be answered before they run, not answered yet.
    to_answer: BTreeSet<Dot>,
}

impl OwnWaits {
    /// Whether nothing waits.
    pub(super) fn is_empty(&self) -> bool {
        self.by_dot.is_empty()
    }

    /// `dot` waits from now on (once: a command commits here once).
    pub(super) fn insert(&mut self, dot: Dot, wait: OwnWait) {
        let entry = (wait.epoch, wait.ts, dot);
        match self.by_key.get_mut(&wait.key) {
            Some(waits) => {
                waits.unpromised.insert(entry);
            }
            None => {
                let mut waits = KeyWaits::default();
                waits.unpromised.insert(entry);
                self.by_key.insert(wait.key.clone(), waits);
            }
        }
        self.by_dot.insert(dot, wait);
    }

    /// `dot` stops waiting (it ran).
    pub(super) fn remove(&mut self, dot: Dot) -> Option<OwnWait> {
        let wait = self.by_dot.remove(&dot)?;
        self.to_answer_by_ts.remove(&(wait.ts, dot));
        if let Some(waits) = self.by_key.get_mut(&wait.key) {
            waits.unpromised.remove(&(wait.epoch, wait.ts, dot));
            waits.to_answer.remove(&dot);
            if waits.unpromised.is_empty() && waits.to_answer.is_empty() {
                self.by_key.remove(&wait.key);
            }
        }
        Some(wait)
    }

    /// The keys with promised writes not answered yet that the switch lane's stability
    /// passed since it was last looked at: now `stable` (rule 5 of the epochs: an early
    /// answer waits for the lane to be stable up to it). Only those: the lane's
    /// stability moves with nearly every proposal, and touching every key with a
    /// command in flight at each was quadratic in a deep pipeline. A write promised
    /// after the lane passed it is looked at by the promise itself, and one that was
    /// not durable yet by its durability. The lane's stability can also go down (a
    /// switch waiting to execute caps it): the writes it passes again are looked at again.
    pub(super) fn keys_the_lane_passed(&mut self, stable: u64) -> Vec<Key> {
        let from = std::mem::replace(&mut self.lane_looked_up_to, stable);
        if stable <= from {
            return Vec::new();
        }
        self.to_answer_by_ts
            .range((from.saturating_add(1), Dot::MIN)..=(stable, Dot::MAX))
            .filter_map(|(_, dot)| self.by_dot.get(dot).map(|wait| wait.key.clone()))
            .collect()
    }

    /// The epochs of the commands on `key` not yet promised.
    pub(super) fn unpromised_epochs(&self, key: &[u8]) -> Vec<u64> {
        let mut epochs = Vec::new();
        let Some(waits) = self.by_key.get(key) else {
            return epochs;
        };
        let mut from = (0, 0, Dot::MIN);
        while let Some(&(epoch, _, _)) = waits.unpromised.range(from..).next() {
            epochs.push(epoch);
            let Some(next) = epoch.checked_add(1) else {
                break;
            };
            from = (next, 0, Dot::MIN);
        }
        epochs
    }

    /// The commands on `key` of `epoch` with a timestamp up to `covered` are promised
    /// `now`; the writes among them that may be answered early (`blind`, with
    /// `answer_early`) wait to be answered.
    pub(super) fn promise(
        &mut self,
        key: &[u8],
        epoch: u64,
        covered: u64,
        now: Time,
        answer_early: bool,
    ) {
        let Some(waits) = self.by_key.get_mut(key) else {
            return;
        };
        let upto = (epoch, covered, Dot::MAX);
        let promised: Vec<(u64, u64, Dot)> = waits
            .unpromised
            .range((epoch, 0, Dot::MIN)..=upto)
            .copied()
            .collect();
        for entry @ (_, _, dot) in promised {
            waits.unpromised.remove(&entry);
            if let Some(wait) = self.by_dot.get_mut(&dot) {
                wait.promised.get_or_insert(now);
                if answer_early && wait.blind {
                    waits.to_answer.insert(dot);
                    self.to_answer_by_ts.insert((wait.ts, dot));
                }
            }
        }
    }

    /// The promised writes on `key` not answered yet, in dot order, with `(ts, epoch)`.
    pub(super) fn to_answer(&self, key: &[u8]) -> Vec<(Dot, u64, u64)> {
        let Some(waits) = self.by_key.get(key) else {
            return Vec::new();
        };
        waits
            .to_answer
            .iter()
            .filter_map(|dot| self.by_dot.get(dot).map(|w| (*dot, w.ts, w.epoch)))
            .collect()
    }

    /// `dot` was answered (or has no client here to answer).
    pub(super) fn answered(&mut self, dot: Dot) {
        let Some(wait) = self.by_dot.get(&dot) else {
            return;
        };
        self.to_answer_by_ts.remove(&(wait.ts, dot));
        if let Some(waits) = self.by_key.get_mut(&wait.key) {
            waits.to_answer.remove(&dot);
        }
    }
}

#[cfg(test)]
#[path = "waits_test.rs"]
mod tests;
