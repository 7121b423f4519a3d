//! Snapshots, log compaction and state transfer (docs/design.md#multi-paxos-compaction).
//!
//! ```text
//!  execute ─▶ once snapshot_interval slots executed and the log written since the last
//!             compaction is as long as its snapshot, in encoded bytes: Compact[Promised, Fence*,
//!             (Rejoining), Snapshot{executed, kv, sessions}, Accepted for each slot >=
//!             executed]
//!          ─▶ every snapshot_interval slots: memory keeps retained_slots executed slots;
//!             below them: the floor
//!  a peer asks below our floor (phase 1, catch-up) ─▶ Compacted{floor}
//!  Compacted{floor > our executed} ─▶ SnapshotRequest ⇄ SnapshotChunk ... ─▶ install,
//!             compact, catch up the tail from the leader
//! ```
//! A compaction's records rebuild the node as of the output (the promise and fences
//! rise only through earlier `Persist`s, which the host syncs first); a crash before the
//! swap leaves the old log, which rebuilds an older but consistent state.

use super::messages::{Message, Record, Slot, Snapshot};
use super::{MultiPaxos, Timer};
use crate::id::NodeId;
use crate::time::Time;
use crate::transfer::{self, Incoming, Outgoing, Received};

/// What the last compaction left (when the next one is due).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct LastSnapshot {
    /// Its executed frontier.
    pub(super) executed: Slot,
    /// Encoded bytes of its records.
    snapshot_bytes: u64,
    /// Encoded bytes persisted by this incarnation then.
    log_bytes: u64,
}

impl LastSnapshot {
    /// A snapshot of unknown size at `executed` (the one a restart recovered).
    pub(super) fn at(executed: Slot) -> Self {
        Self {
            executed,
            ..Self::default()
        }
    }
}

impl MultiPaxos {
    /// Compact once `snapshot_interval` slots executed since the last compaction and
    /// the records persisted since are at least as many encoded bytes as its snapshot: a
    /// snapshot costs in proportion to the state, so the cost per executed slot stays
    /// constant however long the history, and the durable log within twice the snapshot. Executed slots are forgotten in memory every `snapshot_interval`
    /// slots whether or not a compaction is due (the durable log still holds them until
    /// the next one; a peer asking below the floor is sent a snapshot).
    pub(super) fn maybe_compact(&mut self, now: Time) {
        let executed = self.log.next_execute();
        let interval = self.config.snapshot_interval;
        let logged = self.outbox.persisted_bytes() - self.last_snapshot.log_bytes;
        if executed >= self.last_snapshot.executed + interval
            && logged >= self.last_snapshot.snapshot_bytes
        {
            self.compact(now);
        } else if executed >= self.log.floor() + self.config.retained_slots + interval {
            self.log
                .trim(executed.saturating_sub(self.config.retained_slots));
        }
    }

    /// The host wrote the last compaction's records in `bytes` encoded bytes
    /// ([`Protocol::compacted`](crate::protocol::Protocol::compacted)).
    pub(super) fn note_compacted(&mut self, bytes: u64) {
        self.last_snapshot.snapshot_bytes = bytes;
        self.metrics.set("snapshot_bytes", bytes);
    }

    /// Replace the durable log with a snapshot of the state plus the unexecuted accepted
    /// slots, and forget executed slots but the last `retained_slots`.
    pub(super) fn compact(&mut self, now: Time) {
        let executed = self.log.next_execute();
        let records = self.snapshot_records();
        self.last_snapshot = LastSnapshot {
            executed,
            snapshot_bytes: 0,
            log_bytes: self.outbox.persisted_bytes(),
        };
        self.outbox.compact(records);
        self.log
            .trim(executed.saturating_sub(self.config.retained_slots));
        self.metrics.incr("compactions");
        self.metrics.set("last_compaction_slot", executed);
        // A transfer source nobody asked for a while is dropped with its copy.
        let idle_after = self.config.election_timeout * 4;
        if self
            .outgoing
            .as_ref()
            .is_some_and(|o| now >= o.last_used() + idle_after)
        {
            self.outgoing = None;
        }
    }

    /// The records that alone rebuild this replica as of now.
    fn snapshot_records(&self) -> Vec<Record> {
        let mut records = vec![Record::Promised(self.promised)];
        records.extend(
            self.fences
                .iter()
                .map(|(&node, &ballot)| Record::Fence { node, ballot }),
        );
        if self.rejoining {
            records.push(Record::Rejoining);
        }
        records.push(Record::Snapshot(Box::new(self.log.snapshot())));
        records.extend(self.log.tail_records());
        records
    }

    /// A peer compacted past what we asked for: fetch its snapshot if it is ahead of us.
    pub(super) fn on_compacted(&mut self, now: Time, from: NodeId, floor: Slot) {
        if floor <= self.log.next_execute() {
            self.drop_message(false);
            return;
        }
        if self.incoming.is_some() {
            // A transfer is running (a silent source is given up by `retry_transfer`).
            return;
        }
        self.metrics.incr("state_transfers_started");
        self.incoming = Some(Incoming::new(from, now));
        self.request_chunk(now);
    }

    /// How long a transfer waits for a chunk before asking again.
    fn transfer_patience(&self) -> std::time::Duration {
        self.config.election_timeout
    }

    fn request_chunk(&mut self, now: Time) {
        let Some(incoming) = &self.incoming else {
            return;
        };
        let (at, offset) = incoming.request();
        let source = incoming.source();
        self.outbox
            .send(source, Message::SnapshotRequest { at, offset });
        self.timers
            .set(Timer::Transfer, now + self.transfer_patience());
    }

    /// The transfer's next chunk is late: ask again, or give up on a silent source (the
    /// next `Compacted` starts over, perhaps from another peer).
    pub(super) fn retry_transfer(&mut self, now: Time) {
        self.timers.cancel(Timer::Transfer);
        let Some(incoming) = &self.incoming else {
            return;
        };
        if now >= incoming.last_progress() + self.transfer_patience() * 4 {
            self.metrics.incr("state_transfers_abandoned");
            self.incoming = None;
            return;
        }
        self.request_chunk(now);
    }

    /// Serve a chunk of our snapshot: of the one asked for if we still hold it, else from
    /// the start of the one we hold (requesters share it), else of a new one of our
    /// current state. A held snapshot below our floor is replaced: a replica that took it
    /// could not catch up the rest from our log.
    pub(super) fn on_snapshot_request(&mut self, now: Time, from: NodeId, at: Slot, offset: u64) {
        let floor = self.log.floor();
        let held = self
            .outgoing
            .as_ref()
            .map(Outgoing::at)
            .filter(|&held| held >= floor);
        let (at, offset) = match held {
            Some(held) if held == at => (at, offset),
            Some(held) => (held, 0),
            None => {
                let executed = self.log.next_execute();
                let bytes = transfer::encode(&self.log.snapshot());
                self.metrics.incr("snapshots_encoded");
                self.outgoing = Some(Outgoing::new(executed, bytes, now));
                (executed, 0)
            }
        };
        let max = self.config.snapshot_chunk_bytes;
        let Some(outgoing) = self.outgoing.as_mut() else {
            return;
        };
        let total = outgoing.len();
        let Some(bytes) = outgoing.chunk(offset, max, now) else {
            self.drop_message(true);
            return;
        };
        self.metrics
            .add("state_transfer_bytes_sent", bytes.len() as u64);
        self.outbox.send(
            from,
            Message::SnapshotChunk {
                at,
                offset,
                total,
                bytes,
            },
        );
    }

    /// A chunk of the snapshot we are fetching.
    pub(super) fn on_snapshot_chunk(
        &mut self,
        now: Time,
        from: NodeId,
        at: Slot,
        offset: u64,
        total: u64,
        bytes: Vec<u8>,
    ) {
        let Some(incoming) = self.incoming.as_mut() else {
            self.drop_message(false);
            return;
        };
        let len = bytes.len() as u64;
        match incoming.receive(from, at, offset, total, bytes, now) {
            Received::Ignored => self.drop_message(false),
            Received::Next { .. } => {
                self.metrics.add("state_transfer_bytes_received", len);
                self.request_chunk(now);
            }
            Received::Complete(encoded) => {
                self.metrics.add("state_transfer_bytes_received", len);
                let elapsed = incoming.elapsed_ms(now);
                self.metrics.set("last_state_transfer_ms", elapsed);
                self.incoming = None;
                self.timers.cancel(Timer::Transfer);
                match transfer::decode::<Snapshot>(&encoded) {
                    Some(snapshot) if snapshot.executed == at => {
                        self.install_snapshot(now, from, snapshot)
                    }
                    _ => self.drop_message(true),
                }
            }
        }
    }

    /// Take a transferred snapshot, make it durable by a compaction, and catch up the tail.
    fn install_snapshot(&mut self, now: Time, from: NodeId, snapshot: Snapshot) {
        if snapshot.executed > self.log.next_execute() {
            self.release_covered_slots(snapshot.executed);
        }
        if !self.log.install(snapshot) {
            // We caught up another way meanwhile.
            return;
        }
        self.metrics.incr("state_transfers_completed");
        self.compact(now);
        self.execute(now);
        self.propose(now);
        let source = self.leader_hint.filter(|&l| l != self.id).unwrap_or(from);
        self.request_catch_up(now, source, true);
    }
}
