//! The event queue: ordered by `(time, seq)` where `seq` is a global insertion counter, so
//! simultaneous events run in the order they were scheduled and every run is reproducible.
//!
//! The heap orders small keys (time, seq, slot); the events themselves (messages inline,
//! hundreds of bytes) stay put in a slab whose freed slots are reused, so a push or pop
//! moves 24-byte keys up and down the heap instead of whole events.

use crate::time::Time;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A min-queue of events by `(time, insertion order)`.
pub(crate) struct EventQueue<E> {
    /// `(time, seq, slot)`, earliest first.
    heap: BinaryHeap<Reverse<(Time, u64, u32)>>,
    slots: Vec<Option<E>>,
    free: Vec<u32>,
    next_seq: u64,
}

impl<E> EventQueue<E> {
    pub(crate) fn new() -> Self {
        Self {
            heap: BinaryHeap::new(),
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
        self.heap.push(Reverse((at, seq, slot)));
    }

    pub(crate) fn peek_time(&self) -> Option<Time> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    pub(crate) fn pop(&mut self) -> Option<(Time, E)> {
        let Reverse((at, _, slot)) = self.heap.pop()?;
        let event = self.slots[slot as usize]
            .take()
            .expect("a queued slot holds its event");
        self.free.push(slot);
        Some((at, event))
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
#[path = "event_test.rs"]
mod tests;
