//! The event queue: ordered by `(time, seq)` where `seq` is a global insertion counter, so
//! simultaneous events run in the order they were scheduled and every run is reproducible.
//!
//! A radix heap (Ahuja, Mehlhorn, Orlin and Tarjan, 1990): simulated time never goes back,
//! so every event is scheduled at or after the time of the last one popped, and events go
//! into buckets by the highest bit in which their time differs from that time. A pop takes
//! from bucket 0 (events at exactly that time), and when it is empty, redistributes the
//! lowest non-empty bucket around its earliest time; each event moves down at most 64
//! times, and mostly touches the ends of short vectors instead of walking a binary heap of
//! tens of thousands of entries (the binary heap was 8 to 10% of a large simulation's CPU).
//!
//! Order within a time: a bucket holds its events in insertion order (a push appends the
//! newest `seq`; a redistribution fills only empty buckets, in the order of the bucket it
//! empties), so bucket 0 pops in `seq` order. An event scheduled before the last time
//! popped (never done by the simulator, allowed for tests) rebuilds the buckets around it.
//!
//! The events themselves (messages inline, hundreds of bytes) stay put in a slab whose
//! freed slots are reused, so buckets move 24-byte keys.

use crate::time::Time;
use std::collections::VecDeque;

/// Buckets: 0 for the last time popped, then one per bit of a 64-bit time.
const BUCKETS: usize = 65;

/// A min-queue of events by `(time, insertion order)`.
pub(crate) struct EventQueue<E> {
    /// `(time in µs, seq, slot)` per bucket, each in `seq` order.
    buckets: Vec<VecDeque<(u64, u64, u32)>>,
    /// An empty bucket with capacity, swapped in for the one a redistribution empties, so
    /// buckets keep their allocations (taking a bucket's vector dropped it, and buckets
    /// regrew from nothing: a tenth of a large run's CPU went to fresh pages).
    spare: VecDeque<(u64, u64, u32)>,
    /// The time every bucket index is relative to (the last time popped, or lower).
    last: u64,
    len: usize,
    slots: Vec<Option<E>>,
    free: Vec<u32>,
    next_seq: u64,
}

/// The bucket of `time` relative to `last` (`time >= last`).
fn bucket_of(time: u64, last: u64) -> usize {
    (u64::BITS - (time ^ last).leading_zeros()) as usize
}

impl<E> EventQueue<E> {
    pub(crate) fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| VecDeque::new()).collect(),
            spare: VecDeque::new(),
            last: 0,
            len: 0,
            slots: Vec::new(),
            free: Vec::new(),
            next_seq: 0,
        }
    }

    pub(crate) fn push(&mut self, at: Time, event: E) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(event);
                slot
            }
            None => {
                let slot = u32::try_from(self.slots.len()).expect("fewer than 2^32 pending events");
                self.slots.push(Some(event));
                slot
            }
        };
        let time = at.as_micros();
        if time < self.last {
            self.rebase(time);
        }
        self.buckets[bucket_of(time, self.last)].push_back((time, seq, slot));
        self.len += 1;
    }

    /// Lower the reference time to `time`, re-bucketing every pending event in
    /// `(time, seq)` order.
    fn rebase(&mut self, time: u64) {
        let mut pending: Vec<(u64, u64, u32)> =
            self.buckets.iter_mut().flat_map(|b| b.drain(..)).collect();
        pending.sort_unstable();
        self.last = time;
        for entry in pending {
            self.buckets[bucket_of(entry.0, time)].push_back(entry);
        }
    }

    /// Make bucket 0 hold the earliest events, if any are pending.
    fn settle(&mut self) {
        if !self.buckets[0].is_empty() || self.len == 0 {
            return;
        }
        let lowest = (1..BUCKETS)
            .find(|&i| !self.buckets[i].is_empty())
            .expect("a pending event is in some bucket");
        let spare = std::mem::take(&mut self.spare);
        let mut moving = std::mem::replace(&mut self.buckets[lowest], spare);
        let earliest = moving
            .iter()
            .map(|&(time, _, _)| time)
            .min()
            .expect("a non-empty bucket");
        self.last = earliest;
        for entry in moving.drain(..) {
            // Every bucket below `lowest` is empty: appending keeps `seq` order.
            self.buckets[bucket_of(entry.0, earliest)].push_back(entry);
        }
        self.spare = moving;
    }

    pub(crate) fn peek_time(&mut self) -> Option<Time> {
        self.settle();
        self.buckets[0]
            .front()
            .map(|&(time, _, _)| Time::from_micros(time))
    }

    pub(crate) fn pop(&mut self) -> Option<(Time, E)> {
        self.settle();
        let (time, _, slot) = self.buckets[0].pop_front()?;
        self.len -= 1;
        let event = self.slots[slot as usize]
            .take()
            .expect("a queued slot holds its event");
        self.free.push(slot);
        Some((Time::from_micros(time), event))
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
#[path = "event_test.rs"]
mod tests;
