//! Moving ranges when the ring changes: a joining node bootstraps by pulling from the
//! current owners; every node hands the keys it no longer owns to their next owners; a
//! leaving node leaves once it handed everything off (docs/design.md#dynamo-membership).
//!
//! ```text
//!  joining j ──StreamRequest{ring, after}──▶ every read-ring member s
//!            ◀─StreamPage{objects j will own, next}──
//!  merge, persist, then (self) StreamSynced ─▶ next page; every source done ─▶ j normal
//!
//!  any node, each key it holds but does not own in the write ring ("foreign"):
//!     Handoff{key, object} ──▶ each write-ring owner: merge, persist, then HandoffAck
//!     all acked this version ─▶ not a read-ring owner either: forget the key
//!  leaving l: every key foreign; all acked and no hint left ─▶ l leaves the ring
//! ```
//! A joining node pulls from every read-ring member rather than from one owner per range:
//! a member that holds a key it does not own (a late write from a coordinator that had
//! an older ring) is covered too. Progress is not durable: a joining node that restarts
//! pulls again from the start (merging is idempotent).
//!
//! A node that forgets a key after handing it off takes a fresh actor (epoch) if the key
//! held dots of its current one: were it to own the key again, it would issue dots from
//! an object that lacks its earlier ones, which breaks the prefix property of `dvv`.

use crate::command::Key;
use crate::dynamo::dvv::Object;
use crate::dynamo::hash::mix2;
use crate::dynamo::messages::{Message, Record};
use crate::dynamo::ring_state::MemberStatus;
use crate::dynamo::Dynamo;
use crate::id::NodeId;
use crate::protocol::Effect;
use crate::time::Time;
use std::collections::{BTreeMap, BTreeSet};

/// Keys scanned for one stream page, per key the page may carry.
const SCAN_PER_KEY: usize = 4;

/// Handoff progress of one foreign key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Handoff {
    /// Digest of the version being handed off (a newer one starts over).
    digest: u64,
    /// Next owners that acknowledged that version durably.
    acked: BTreeSet<NodeId>,
    sent_at: Option<Time>,
}

/// Pull progress from one source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Source {
    /// Keys up to here are in (`None`: from the start).
    after: Option<Key>,
    done: bool,
    sent_at: Option<Time>,
}

/// A joining node's bootstrap at one ring epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Bootstrap {
    ring: u64,
    sources: BTreeMap<NodeId, Source>,
}

/// Range-movement state of one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Moves {
    /// Keys held that this node does not own in the write ring.
    pub(crate) foreign: BTreeSet<Key>,
    handoff: BTreeMap<Key, Handoff>,
    bootstrap: Option<Bootstrap>,
}

impl Moves {
    /// Forget progress made under the previous ring; pull from `sources` if joining.
    pub(crate) fn reset(&mut self, ring: u64, joining_from: Option<Vec<NodeId>>) {
        self.handoff.clear();
        self.bootstrap = joining_from.map(|sources| Bootstrap {
            ring,
            sources: sources
                .into_iter()
                .map(|s| (s, Source::default()))
                .collect(),
        });
    }

    /// Whether this node is bootstrapping.
    pub(crate) fn bootstrapping(&self) -> bool {
        self.bootstrap.is_some()
    }
}

impl Dynamo {
    /// Whether this node owns `key` in the write ring (after the move).
    pub(crate) fn owns_next(&self, key: &[u8]) -> bool {
        let ring = self.write_ring();
        ring.is_primary(self.id, ring.range_of(key))
    }

    /// Whether this node owns `key` in the read ring (before the move).
    pub(crate) fn owns_now(&self, key: &[u8]) -> bool {
        self.ring.is_primary(self.id, self.ring.range_of(key))
    }

    /// Keep the foreign set in step with a key just stored.
    pub(crate) fn track_foreign(&mut self, key: &Key) {
        if self.owns_next(key) {
            self.moves.foreign.remove(key);
        } else {
            self.moves.foreign.insert(key.clone());
        }
    }

    /// One round of range movement: pull pages, hand keys off, then promote or leave.
    pub(crate) fn moves_tick(&mut self, now: Time) {
        self.pull_pages(now);
        let drained = self.hand_off(now);
        let status = self.state.status_of(self.id);
        if status == Some(MemberStatus::Leaving) && drained && self.hints.is_empty() {
            if let Some(next) = self.state.finish_leave(self.id) {
                self.metrics.incr("ring_left");
                self.set_state(now, next);
            }
        }
    }

    /// (Re)send the page request of every source not done and not answering.
    fn pull_pages(&mut self, now: Time) {
        let Some(bootstrap) = self.moves.bootstrap.as_mut() else {
            return;
        };
        let retry = self.config.hint_retry;
        for (&source, progress) in bootstrap.sources.iter_mut() {
            let due = progress.sent_at.is_none_or(|t| now >= t + retry);
            if progress.done || !due || !self.detector.is_alive(source, now) {
                continue;
            }
            progress.sent_at = Some(now);
            self.outbox.send(
                source,
                Message::StreamRequest {
                    ring: bootstrap.ring,
                    after: progress.after.clone(),
                },
            );
        }
    }

    /// Send due handoffs; forget keys every next owner holds. Returns whether every
    /// foreign key is handed off.
    fn hand_off(&mut self, now: Time) -> bool {
        let write_ring = self.next_ring.as_ref().unwrap_or(&self.ring);
        let mut budget = self.config.hint_replay_batch;
        let mut drained = true;
        let mut complete = Vec::new();
        let mut sends = Vec::new();
        for key in &self.moves.foreign {
            let Some(entry) = self.store.get(key) else {
                continue;
            };
            let handoff = self.moves.handoff.entry(key.clone()).or_default();
            if handoff.digest != entry.digest {
                *handoff = Handoff {
                    digest: entry.digest,
                    ..Handoff::default()
                };
            }
            let missing: Vec<NodeId> = write_ring
                .preference_for(key)
                .iter()
                .copied()
                .filter(|&o| o != self.id && !handoff.acked.contains(&o))
                .collect();
            if missing.is_empty() {
                complete.push(key.clone());
                continue;
            }
            drained = false;
            let due = handoff
                .sent_at
                .is_none_or(|t| now >= t + self.config.hint_retry);
            if budget == 0 || !due {
                continue;
            }
            let alive: Vec<NodeId> = missing
                .into_iter()
                .filter(|&o| self.detector.is_alive(o, now))
                .collect();
            if alive.is_empty() {
                continue;
            }
            budget -= 1;
            handoff.sent_at = Some(now);
            for owner in alive {
                sends.push((owner, key.clone(), entry.object.clone()));
            }
        }
        self.metrics.add("handoffs_sent", sends.len() as u64);
        for (owner, key, object) in sends {
            self.outbox.send(owner, Message::Handoff { key, object });
        }
        let forget: Vec<Key> = complete
            .into_iter()
            .filter(|key| !self.owns_now(key))
            .collect();
        self.forget_handed_off(forget);
        drained
    }

    /// Drop keys every next owner acknowledged and this node no longer reads for.
    fn forget_handed_off(&mut self, keys: Vec<Key>) {
        let mut records = Vec::new();
        let mut renew = false;
        let actor = self.actor();
        for key in keys {
            self.moves.foreign.remove(&key);
            self.moves.handoff.remove(&key);
            if let Some(entry) = self.store.remove(&key) {
                renew |= entry.object.context().get(&actor) > 0;
                self.merkle
                    .update(entry.range, &key, Some(entry.digest), None);
                records.push(Record::ObjectRemoved { key });
            }
        }
        if renew {
            // See the module doc: never issue dots from an object missing earlier ones.
            self.epoch = mix2(self.epoch, self.next_counter);
            self.metrics.incr("actor_renewals");
        }
        if !records.is_empty() {
            self.metrics
                .add("handoff_keys_forgotten", records.len() as u64);
            self.persist(records, Vec::new());
        }
    }

    /// A node holding keys this node owns next hands one over.
    pub(crate) fn on_handoff(&mut self, now: Time, from: NodeId, key: Key, object: Object) {
        if !self.state.contains(self.id) {
            return self.metrics.incr("dropped_messages");
        }
        let digest = object.digest();
        let (merged, _) = self.merge_local(now, &key, &object);
        self.metrics.incr("handoffs_received");
        let ack = Effect::Send {
            to: from,
            message: Message::HandoffAck {
                key: key.clone(),
                digest,
            },
        };
        self.persist(
            vec![Record::Object {
                key,
                object: merged,
            }],
            vec![ack],
        );
    }

    pub(crate) fn on_handoff_ack(&mut self, from: NodeId, key: Key, digest: u64) {
        match self.moves.handoff.get_mut(&key) {
            Some(handoff) if handoff.digest == digest => {
                handoff.acked.insert(from);
            }
            _ => self.metrics.incr("late_replies"),
        }
    }

    /// A joining node asks for the keys it will own, after `after`.
    pub(crate) fn on_stream_request(&mut self, from: NodeId, ring: u64, after: Option<Key>) {
        if ring != self.state.epoch() || self.state.status_of(from) != Some(MemberStatus::Joining) {
            return self.metrics.incr("dropped_messages");
        }
        let write_ring = self.next_ring.as_ref().unwrap_or(&self.ring);
        let max_keys = self.config.anti_entropy_max_keys.max(1);
        let mut budget = self.config.max_object_bytes;
        let mut objects = Vec::new();
        let mut last = None;
        let mut exhausted = true;
        for (scanned, (key, entry)) in self.store.entries_after(after.as_ref()).enumerate() {
            if scanned >= max_keys * SCAN_PER_KEY || objects.len() >= max_keys {
                exhausted = false;
                break;
            }
            if write_ring.is_primary(from, write_ring.range_of(key)) {
                let bytes = key.len() + entry.object.approx_bytes();
                if bytes > budget && !objects.is_empty() {
                    exhausted = false;
                    break;
                }
                budget = budget.saturating_sub(bytes);
                objects.push((key.clone(), entry.object.clone()));
            }
            last = Some(key.clone());
        }
        // `next`: every key up to it was considered; `None`: the store's end was reached.
        let next = if exhausted { None } else { last };
        self.metrics.add("stream_keys_sent", objects.len() as u64);
        self.outbox.send(
            from,
            Message::StreamPage {
                ring,
                after,
                objects,
                next,
            },
        );
    }

    /// A page from a source: merge what this node will own, persist, then move on.
    pub(crate) fn on_stream_page(
        &mut self,
        now: Time,
        from: NodeId,
        ring: u64,
        after: Option<Key>,
        objects: Vec<(Key, Object)>,
        next: Option<Key>,
    ) {
        let expected = self.moves.bootstrap.as_ref().and_then(|b| {
            (b.ring == ring)
                .then(|| b.sources.get(&from))
                .flatten()
                .filter(|s| !s.done && s.after == after)
        });
        if expected.is_none() {
            return self.metrics.incr("late_replies");
        }
        let mut records = Vec::new();
        for (key, object) in objects {
            if !self.owns_next(&key) {
                self.metrics.incr("dropped_messages");
                continue;
            }
            let (merged, changed) = self.merge_local(now, &key, &object);
            if changed {
                records.push(Record::Object {
                    key,
                    object: merged,
                });
            }
        }
        self.metrics
            .add("stream_keys_received", records.len() as u64);
        let synced = Message::StreamSynced {
            ring,
            source: from,
            after,
            next,
        };
        self.persist(
            records,
            vec![Effect::Send {
                to: self.id,
                message: synced,
            }],
        );
    }

    /// A page is durable: ask for the next one, or promote once every source is done.
    pub(crate) fn on_stream_synced(
        &mut self,
        now: Time,
        from: NodeId,
        ring: u64,
        source: NodeId,
        after: Option<Key>,
        next: Option<Key>,
    ) {
        if from != self.id {
            return self.metrics.incr("dropped_messages");
        }
        let Some(bootstrap) = self.moves.bootstrap.as_mut() else {
            return;
        };
        let Some(progress) = bootstrap.sources.get_mut(&source) else {
            return;
        };
        if bootstrap.ring != ring || progress.done || progress.after != after {
            return;
        }
        match next {
            None => progress.done = true,
            Some(key) => {
                progress.after = Some(key.clone());
                progress.sent_at = Some(now);
                self.outbox.send(
                    source,
                    Message::StreamRequest {
                        ring,
                        after: Some(key),
                    },
                );
            }
        }
        if bootstrap.sources.values().all(|s| s.done) {
            self.moves.bootstrap = None;
            if let Some(next) = self.state.finish_join(self.id) {
                self.metrics.incr("ring_joined");
                self.set_state(now, next);
            }
        }
    }
}
