//! Per-key clocks and promises: this replica's own clocks (what it proposes from), and
//! the promises every replica announced (what stability is computed from).
//!
//! A replica's clock on a key promises every timestamp up to it: it will never propose
//! one of them again. A timestamp it proposed for a command is *attached* to that
//! command; the rest are *detached*. A receiver may count a replica's promises up to `s`
//! only if every attached promise up to `s` is for a command it knows committed
//! (docs/design.md#tempo).
//!
//! Both tables forget a key once it goes idle here (rule 6): its own clock is folded into
//! one durable floor, every key's clock is at least the floor, so no promise goes back;
//! what others announced on it is dropped, which only understates their promises.

use super::messages::{Dot, FloorPromise, KeyPromise, SWITCH_LANE};
use crate::command::Key;
use crate::id::NodeId;
use crate::key_map::KeyMap;
use crate::quorum;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Bound::{Excluded, Unbounded};

/// How many attachments an announced key must list before acks list only what is new.
const LIST_WORTH_SHORTENING: usize = 8;

/// This replica's clocks, its attached promises and which clocks moved since they were
/// last announced.
#[derive(Clone, Debug, Default, Hash)]
pub(super) struct Clocks {
    clock: BTreeMap<Key, u64>,
    /// Per key, `(timestamp, command)`: a set, since a rejoined replica attaches every
    /// command its former self may have proposed for at timestamp 0 (`rejoin.rs`).
    attached: BTreeMap<Key, BTreeSet<(u64, Dot)>>,
    dirty: BTreeSet<Key>,
    /// Keys whose clock was raised by no record that restores it on replay (a `Proposed`,
    /// `Accepted` or `Committed` record does): an announcement persists their clocks
    /// first (`Record::Clocks`).
    unrecorded: BTreeSet<Key>,
    /// This replica's epoch, stamped on its announcements (`fence.rs`).
    epoch: u64,
    /// Every key's clock is at least this: the highest clock of a key forgotten here
    /// (`Record::Floor`, `Snapshot::floor`).
    floor: u64,
    /// The highest clock this replica ever had on any key (not durable; rebuilt on
    /// replay): a coordinator proposes above it, so its proposal is above every floor a
    /// member may have raised from keys it forgot.
    high: u64,
    /// Per key with a long list of attachments, the clock of its last announcement (of
    /// this lineage) to every member: a `ProposeAck` lists only the attachments above
    /// it. Short lists are sent whole (an entry per key cost more than it saved).
    announced: BTreeMap<Key, u64>,
    /// Stamped on announcements: drawn per boot, changed whenever a proposal is attached
    /// at or below the clock it is announced with (a rejoin's timestamp-0 attachments).
    /// Within one lineage every attachment is above every clock announced before it, so
    /// a receiver need check only the attachments above the clock it holds.
    lineage: u64,
}

impl Clocks {
    /// Clocks whose announcements start lineage `seed` (the core's seed: a new one per
    /// boot, so no two boots share a lineage).
    pub(super) fn new(seed: u64) -> Self {
        Self {
            lineage: seed,
            ..Self::default()
        }
    }

    /// Announce in a new lineage: what was announced in the old one is no base for acks.
    fn start_lineage(&mut self) {
        self.lineage = next_lineage(self.lineage);
        self.announced.clear();
    }

    /// This replica's epoch.
    pub(super) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Announce in `epoch` from now on.
    pub(super) fn set_epoch(&mut self, epoch: u64) {
        if epoch != self.epoch {
            // A lineage is of one epoch (receivers compare lineages only).
            self.start_lineage();
        }
        self.epoch = epoch;
    }

    /// The clock on `key` (the floor if it was forgotten or never seen).
    pub(super) fn get(&self, key: &[u8]) -> u64 {
        self.clock.get(key).copied().unwrap_or(0).max(self.floor)
    }

    /// The highest clock on any key.
    pub(super) fn high(&self) -> u64 {
        self.high
    }

    /// The floor every clock is at least.
    pub(super) fn floor(&self) -> u64 {
        self.floor
    }

    /// Raise the floor (a snapshot, a `Floor` record, a rejoin answer, a switch).
    pub(super) fn raise_floor(&mut self, floor: u64) {
        self.floor = self.floor.max(floor);
        self.raise_high(floor);
    }

    /// The highest clock rose: the switch lane's clock is it, so the lane is announced.
    fn raise_high(&mut self, ts: u64) {
        if ts > self.high {
            self.high = ts;
            self.dirty.insert(SWITCH_LANE.to_vec());
        }
    }

    /// Keys with a clock of their own.
    pub(super) fn key_count(&self) -> usize {
        self.clock.len()
    }

    /// Forget the clocks of keys `busy` does not name that have no attached promise and
    /// no announcement or record pending, raising the floor to the highest of them.
    /// Returns the new floor if it rose: it must be persisted (`Record::Floor`) before
    /// anything that depends on it leaves.
    pub(super) fn forget_idle(&mut self, busy: impl Fn(&Key) -> bool) -> Option<u64> {
        let before = self.floor;
        let Self {
            clock,
            attached,
            dirty,
            unrecorded,
            floor,
            announced,
            ..
        } = self;
        clock.retain(|key, c| {
            let keep = busy(key)
                || attached.contains_key(key)
                || dirty.contains(key)
                || unrecorded.contains(key);
            if !keep {
                *floor = (*floor).max(*c);
                announced.remove(key);
            }
            keep
        });
        (self.floor > before).then_some(self.floor)
    }

    /// Propose for `dot` on `key`: `max(at_least, clock + 1)`, attached to `dot`. On the
    /// switch lane the proposal is above every clock this replica ever had, and it
    /// becomes the floor: a switch proposal promises every key
    /// (docs/design.md#tempo-epochs-the-rule-and-why-it-is-safe, rule 2).
    pub(super) fn propose(&mut self, key: &Key, dot: Dot, at_least: u64) -> u64 {
        let above = if key.as_slice() == SWITCH_LANE {
            self.high
        } else {
            self.get(key)
        };
        let ts = at_least.max(above + 1);
        self.attach(key, dot, ts);
        ts
    }

    /// Remember an attached promise (a proposal) and raise the clock to it. One at or
    /// below the clock announced with it starts a new lineage: a receiver must look at
    /// all of the attachments again.
    pub(super) fn attach(&mut self, key: &Key, dot: Dot, ts: u64) {
        let announced = if key.as_slice() == SWITCH_LANE {
            // Attached on every key's announcement, whose clocks are at most this.
            self.high
        } else {
            self.get(key)
        };
        if ts <= announced {
            self.start_lineage();
        }
        self.attached
            .entry(key.clone())
            .or_default()
            .insert((ts, dot));
        self.raise(key, ts);
    }

    /// Raise the clock on `key` to `ts` (detached promises up to it), with no record
    /// that restores it: the next announcement persists it.
    pub(super) fn bump(&mut self, key: &Key, ts: u64) {
        if self.raise(key, ts) {
            self.unrecorded.insert(key.clone());
        }
    }

    /// Raise the clock on `key` to `ts` for a record queued in the same step that
    /// raises it again on replay (`Proposed`, `Accepted`, `Committed`). Whether it rose.
    pub(super) fn raise(&mut self, key: &Key, ts: u64) -> bool {
        if key.as_slice() == SWITCH_LANE {
            // A switch proposed, accepted or committed at `ts`: every key's clock is at
            // least it, and so is every later proposal (rule 2 of the epochs).
            let rose = ts > self.floor;
            self.raise_floor(ts);
            return rose;
        }
        if ts <= self.get(key) {
            return false;
        }
        self.clock.insert(key.clone(), ts);
        self.dirty.insert(key.clone());
        self.raise_high(ts);
        true
    }

    /// Keys whose clock rose without a record since the last call.
    pub(super) fn take_unrecorded(&mut self) -> BTreeSet<Key> {
        std::mem::take(&mut self.unrecorded)
    }

    /// The promises on `key`. A switch proposal is attached on every key, so every key's
    /// promises list those not executed everywhere; the lane's clock is the highest
    /// clock (no switch is ever proposed at or below it).
    pub(super) fn promise(&self, key: &[u8]) -> KeyPromise {
        self.promise_above(key, None)
    }

    /// The promises on `key`, listing only the attachments above the clock of its last
    /// announcement to every member, if that was of this lineage (the whole list
    /// otherwise): a `ProposeAck`'s, sent per command, which on a hot key would repeat
    /// thousands of proposals each time.
    pub(super) fn promise_since_announced(&self, key: &[u8]) -> KeyPromise {
        self.promise_above(key, self.announced.get(key).copied())
    }

    /// Note that `promise`, just built here, went to every member.
    pub(super) fn note_announced(&mut self, promise: &KeyPromise) {
        let long = promise.attached.len() >= LIST_WORTH_SHORTENING;
        if long && promise.key.as_slice() != SWITCH_LANE {
            self.announced.insert(promise.key.clone(), promise.clock);
        }
    }

    fn promise_above(&self, key: &[u8], since: Option<u64>) -> KeyPromise {
        let lane = key == SWITCH_LANE;
        let above = |set: &BTreeSet<(u64, Dot)>| -> Vec<(u64, Dot)> {
            match since {
                None => set.iter().copied().collect(),
                Some(clock) => set
                    .range((Excluded((clock, Dot::MAX)), Unbounded))
                    .copied()
                    .collect(),
            }
        };
        let mut attached = self.attached.get(key).map(above).unwrap_or_default();
        if !lane {
            if let Some(switches) = self.attached.get(SWITCH_LANE) {
                attached.extend(above(switches));
                attached.sort_unstable();
            }
        }
        KeyPromise {
            key: key.to_vec(),
            clock: if lane { self.high } else { self.get(key) },
            attached,
            since,
            lineage: self.lineage,
            epoch: self.epoch,
        }
    }

    /// The attached promises at or below the floor, on every key, by timestamp: with
    /// the floor, a promise on every key (`floors.rs`).
    pub(super) fn attached_below_floor(&self) -> Vec<(u64, Dot)> {
        let mut below: Vec<(u64, Dot)> = self
            .attached
            .values()
            .flatten()
            .filter(|&&(ts, _)| ts <= self.floor)
            .copied()
            .collect();
        below.sort_unstable();
        below
    }

    /// Keys whose clock moved since the last call.
    pub(super) fn take_dirty(&mut self) -> BTreeSet<Key> {
        std::mem::take(&mut self.dirty)
    }

    /// Forget attached promises for commands `gone` says were executed everywhere.
    pub(super) fn forget(&mut self, gone: impl Fn(Dot) -> bool) {
        self.attached.retain(|_, by_ts| {
            by_ts.retain(|(_, dot)| !gone(*dot));
            !by_ts.is_empty()
        });
    }

    /// Every clock `(key, clock)` (snapshots).
    pub(super) fn clocks(&self) -> Vec<(Key, u64)> {
        self.clock.iter().map(|(k, &c)| (k.clone(), c)).collect()
    }

    /// Every attached promise `(key, timestamp, command)` (snapshots).
    pub(super) fn attached(&self) -> Vec<(Key, u64, Dot)> {
        self.attached
            .iter()
            .flat_map(|(k, set)| set.iter().map(move |&(t, d)| (k.clone(), t, d)))
            .collect()
    }

    /// Keys with attached promises.
    pub(super) fn attached_keys(&self) -> impl Iterator<Item = &Key> {
        self.attached.keys()
    }
}

/// The lineage after `lineage` (a mix, so that the lineages of two boots, drawn at
/// random, do not run into each other by counting).
fn next_lineage(lineage: u64) -> u64 {
    let z = lineage.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One replica's announced promises on one key: its clock and the attached promises
/// for commands not known committed here when announced, in timestamp order (the
/// *holes*: a committed command's promise never holds stability back, and commits here
/// are never undone, so the rest need not be kept).
#[derive(Clone, Debug, Default, Hash)]
struct Announced {
    clock: u64,
    holes: VecDeque<(u64, Dot)>,
    /// The announcer's lineage (of one epoch): a later announcement of the same is
    /// taken by [`Announced::extend`] (key announcements only; floor promises are
    /// always taken whole).
    lineage: u64,
}

impl Announced {
    /// Promises up to `clock`, keeping the attached ones `committed` does not know.
    pub(super) fn new(
        clock: u64,
        attached: &[(u64, Dot)],
        lineage: u64,
        committed: impl Fn(Dot) -> bool,
    ) -> Self {
        let mut holes: Vec<(u64, Dot)> = attached
            .iter()
            .copied()
            .filter(|&(_, dot)| !committed(dot))
            .collect();
        // Announcers send them in order; a peer's bytes are not trusted to be.
        holes.sort_unstable();
        holes.dedup();
        Self {
            clock,
            holes: holes.into(),
            lineage,
        }
    }

    /// Take a later announcement of the same lineage, with a clock of at least
    /// ours: its attachments at or below our clock were all in what we took before (or
    /// collected since, so executed here), so only those above it are looked at. On a
    /// hot key an announcement lists every proposal not yet executed everywhere, and
    /// checking each against the commits here at every announcement was most of a
    /// replica's work (docs/design.md#tempo, "Announcements").
    fn extend(&mut self, clock: u64, attached: &[(u64, Dot)], committed: impl Fn(Dot) -> bool) {
        let before = self.clock;
        let mut fresh: Vec<(u64, Dot)> = attached
            .iter()
            .copied()
            .filter(|&(ts, dot)| ts > before && !committed(dot))
            .collect();
        self.clock = clock;
        // Holes committed since are dropped here too, as a whole announcement would have
        // (a key nothing waits on is not looked at again until it is forgotten).
        self.pass_committed(&committed);
        if fresh.is_empty() {
            return;
        }
        fresh.sort_unstable();
        fresh.dedup();
        if self.holes.is_empty() {
            // Sized to fit, as a whole announcement's (most keys hold a hole or two).
            self.holes = fresh.into();
        } else if self.holes.back().is_some_and(|last| *last >= fresh[0]) {
            // Switch proposals may lie above a key's clock: held already, or interleaved.
            fresh.extend(self.holes.drain(..));
            fresh.sort_unstable();
            fresh.dedup();
            self.holes = fresh.into();
        } else {
            self.holes.extend(fresh);
        }
    }

    /// Drop the first holes while their commands are committed here; an emptied list
    /// gives its allocation back (every replica holds an entry per live key and peer).
    fn pass_committed(&mut self, committed: impl Fn(Dot) -> bool) {
        let before = self.holes.len();
        while self.holes.front().is_some_and(|&(_, dot)| committed(dot)) {
            self.holes.pop_front();
        }
        if self.holes.is_empty() && before > 0 {
            self.holes = VecDeque::new();
        }
    }

    /// How far the promises count: up to the clock, and below the first attached promise
    /// for a command not committed here. Holes found committed are dropped, so each is
    /// passed over once.
    fn frontier(&mut self, committed: impl Fn(Dot) -> bool) -> u64 {
        self.pass_committed(&committed);
        match self.holes.front() {
            Some(&(ts, _)) => self.clock.min(ts.saturating_sub(1)),
            None => self.clock,
        }
    }
}

/// The promises each replica announced, per key (this replica's own included, once
/// durable).
#[derive(Clone, Debug, Default, Hash)]
pub(super) struct PromiseTable {
    /// Found by hash: every replica announces every key its commands touch, so each
    /// command costs an update per peer here (a B-tree's key compares were a sixth of a
    /// simulated `gcp-13` run).
    by_key: KeyMap<BTreeMap<NodeId, Announced>>,
    /// The highest clock announced on a key forgotten here (told to a replica that
    /// rejoins after a lost disk, as the clocks of the keys still here are).
    forgotten: u64,
}

impl PromiseTable {
    /// Take `from`'s announcement, unless an announcement with a higher clock is known
    /// (an older one with the same clock lists at least as many attached promises, so
    /// taking it is only more cautious), keeping the attached promises of commands
    /// `committed` does not know. Returns whether anything changed.
    pub(super) fn update(
        &mut self,
        from: NodeId,
        promise: &KeyPromise,
        committed: impl Fn(Dot) -> bool,
    ) -> bool {
        let known = self
            .by_key
            .get_mut(&promise.key)
            .and_then(|by_node| by_node.get_mut(&from));
        if let Some(known) = known {
            if known.clock > promise.clock {
                return false;
            }
            let builds_on_known = promise.since.is_none_or(|since| known.clock >= since);
            if known.lineage == promise.lineage && builds_on_known {
                known.extend(promise.clock, &promise.attached, committed);
                return true;
            }
        }
        if promise.since.is_some() {
            // Without the announcement it leaves out, it would miss holes.
            return false;
        }
        let announced =
            Announced::new(promise.clock, &promise.attached, promise.lineage, committed);
        match self.by_key.get_mut(&promise.key) {
            Some(by_node) => by_node.insert(from, announced),
            None => self
                .by_key
                .entry_or_default(promise.key.clone())
                .insert(from, announced),
        };
        true
    }

    /// Forget what `node` announced (its former self's, when it rejoins after a lost
    /// disk: `rejoin.rs`).
    pub(super) fn forget_node(&mut self, node: NodeId) {
        self.by_key.retain(|_, by_node| {
            by_node.remove(&node);
            !by_node.is_empty()
        });
    }

    /// Forget every announcement (a state was installed: holes were passed over as
    /// committed by what this replica held before; see `rejoin.rs`, `install`). Missing
    /// entries read as no promise until announced again.
    pub(super) fn forget_announcements(&mut self) {
        self.forget_idle(|_| false);
    }

    /// Forget what was announced on the keys `busy` does not name (the missing entries
    /// read as no promise, which only delays stability until new announcements come).
    pub(super) fn forget_idle(&mut self, busy: impl Fn(&Key) -> bool) {
        let forgotten = &mut self.forgotten;
        self.by_key.retain(|key, by_node| {
            let keep = busy(key);
            if !keep {
                let highest = by_node.values().map(|a| a.clock).max().unwrap_or(0);
                *forgotten = (*forgotten).max(highest);
            }
            keep
        });
    }

    /// Keys with announcements.
    pub(super) fn key_count(&self) -> usize {
        self.by_key.len()
    }

    /// The highest clock announced on a forgotten key.
    pub(super) fn forgotten(&self) -> u64 {
        self.forgotten
    }

    /// Per key, the highest clock any replica announced (in no particular order).
    pub(super) fn highest_all(&self) -> impl Iterator<Item = (&Key, u64)> {
        self.by_key
            .iter_unordered()
            .map(|(k, by_node)| (k, by_node.values().map(|a| a.clock).max().unwrap_or(0)))
    }

    /// The clock `node` announced on `key`, if any is known.
    pub(super) fn clock_of(&self, key: &[u8], node: NodeId) -> Option<u64> {
        self.by_key.get(key)?.get(&node).map(|a| a.clock)
    }

    /// The highest clock on `key` any replica announced.
    pub(super) fn highest(&self, key: &[u8]) -> u64 {
        self.by_key
            .get(key)
            .and_then(|by_node| by_node.values().map(|a| a.clock).max())
            .unwrap_or(0)
    }

    /// The highest timestamp on `key` a majority of `voters` promised up to, counting
    /// attached promises only for commands `committed` says are committed here. Holes
    /// found committed are dropped, so each is passed over once.
    pub(super) fn stable(
        &mut self,
        key: &[u8],
        voters: &[NodeId],
        committed: impl Fn(Dot) -> bool,
    ) -> u64 {
        let Some(by_node) = self.by_key.get_mut(key) else {
            return 0;
        };
        let majority = quorum::majority(voters.len());
        let of_voters = by_node
            .iter_mut()
            .filter(|(node, _)| voters.contains(node))
            .map(|(_, announced)| announced);
        let frontiers = of_voters.map(|announced| announced.frontier(&committed));
        kth_highest(frontiers.collect(), majority)
    }

    /// The highest timestamp on `key` the clocks of a majority of `voters` cover,
    /// whatever their attached promises.
    pub(super) fn covered(&self, key: &[u8], voters: &[NodeId]) -> u64 {
        let Some(by_node) = self.by_key.get(key) else {
            return 0;
        };
        let clocks = by_node
            .iter()
            .filter(|(node, _)| voters.contains(node))
            .map(|(_, a)| a.clock);
        kth_highest(clocks.collect(), quorum::majority(voters.len()))
    }
}

/// The latest floor promise of each replica (`floors.rs`), as sent (to relay) and as counted here.
#[derive(Clone, Debug, Default, Hash)]
pub(super) struct FloorTable {
    by_node: BTreeMap<NodeId, (FloorPromise, Announced)>,
}

impl FloorTable {
    /// Take `promise` unless one with a higher floor is known from its replica. Whether
    /// it changed anything.
    pub(super) fn update(
        &mut self,
        promise: FloorPromise,
        committed: impl Fn(Dot) -> bool,
    ) -> bool {
        let node = promise.node;
        let newer_known = self
            .by_node
            .get(&node)
            .is_some_and(|(known, _)| (known.epoch, known.floor) >= (promise.epoch, promise.floor));
        if newer_known {
            return false;
        }
        let announced = Announced::new(promise.floor, &promise.attached, 0, committed);
        self.by_node.insert(node, (promise, announced));
        true
    }

    /// Forget `node`'s promise (its former self's, when it rejoins after a lost disk).
    pub(super) fn forget_node(&mut self, node: NodeId) {
        self.by_node.remove(&node);
    }

    /// Forget every floor promise (a state was installed, as for
    /// [`PromiseTable::forget_announcements`]); a switch waiting for them asks again.
    pub(super) fn forget_all(&mut self) {
        self.by_node.clear();
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
    pub(super) fn at_least(&self, ts: u64) -> impl Iterator<Item = &FloorPromise> {
        self.by_node
            .values()
            .map(|(promise, _)| promise)
            .filter(move |p| p.floor >= ts)
    }

    /// The floor `node` promised, if known.
    pub(super) fn floor_of(&self, node: NodeId) -> Option<u64> {
        self.by_node.get(&node).map(|(p, _)| p.floor)
    }
}

/// The `k`-th highest of `frontiers` (0 if there are fewer, or `k` is 0).
fn kth_highest(mut frontiers: Vec<u64>, k: usize) -> u64 {
    if frontiers.len() < k || k == 0 {
        return 0;
    }
    frontiers.sort_unstable_by(|a, b| b.cmp(a));
    frontiers[k - 1]
}

#[cfg(test)]
#[path = "clocks_test.rs"]
mod tests;
