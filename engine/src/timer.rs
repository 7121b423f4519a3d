//! One timer table for every protocol core.
//!
//! A core names each periodic or one-shot duty (tick, heartbeat, election, anti-entropy,
//! hint replay, GC, ...) as a variant of its own timer enum and keeps one deadline per
//! variant here. [`Timers::next`] is the earliest deadline, so a core's
//! `poll_timeout` is simply `timers.next()`: no duty can be scheduled without the host
//! knowing when to wake the core for it (docs/design.md, "Timers").

use crate::time::Time;

/// At most one deadline per timer `K`.
///
/// Cores have a handful of timers, so a small vector scanned linearly is both the
/// cheapest and the most predictable representation. Iteration order (and therefore
/// which due timer fires first) is the order of `K`, never insertion order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Timers<K> {
    deadlines: Vec<(K, Time)>,
}

impl<K> Default for Timers<K> {
    fn default() -> Self {
        Self {
            deadlines: Vec::new(),
        }
    }
}

impl<K: Copy + Ord> Timers<K> {
    /// No timer armed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Arm `timer` at `at`, replacing any deadline it had.
    pub fn set(&mut self, timer: K, at: Time) {
        match self.position(timer) {
            Ok(i) => self.deadlines[i].1 = at,
            Err(i) => self.deadlines.insert(i, (timer, at)),
        }
    }

    /// Arm `timer` at `at` unless it is already armed (keeps the earlier schedule).
    pub fn arm(&mut self, timer: K, at: Time) {
        if let Err(i) = self.position(timer) {
            self.deadlines.insert(i, (timer, at));
        }
    }

    /// Disarm `timer` (no-op if it is not armed).
    pub fn cancel(&mut self, timer: K) {
        if let Ok(i) = self.position(timer) {
            self.deadlines.remove(i);
        }
    }

    /// The deadline of `timer`, if armed.
    pub fn deadline(&self, timer: K) -> Option<Time> {
        self.position(timer).ok().map(|i| self.deadlines[i].1)
    }

    /// Whether `timer` is armed.
    pub fn is_armed(&self, timer: K) -> bool {
        self.position(timer).is_ok()
    }

    /// Whether `timer` is armed and its deadline is at or before `now`.
    pub fn is_due(&self, timer: K, now: Time) -> bool {
        self.deadline(timer).is_some_and(|at| at <= now)
    }

    /// Disarm `timer` if it is due at `now`, and say whether it was (fire it once).
    pub fn take_if_due(&mut self, timer: K, now: Time) -> bool {
        let due = self.is_due(timer, now);
        if due {
            self.cancel(timer);
        }
        due
    }

    /// The earliest deadline of any armed timer: what `poll_timeout` returns.
    pub fn next(&self) -> Option<Time> {
        self.deadlines.iter().map(|&(_, at)| at).min()
    }

    /// Every armed timer and its deadline, in timer order.
    pub fn iter(&self) -> impl Iterator<Item = (K, Time)> + '_ {
        self.deadlines.iter().copied()
    }

    fn position(&self, timer: K) -> Result<usize, usize> {
        self.deadlines.binary_search_by(|(k, _)| k.cmp(&timer))
    }
}

#[cfg(test)]
#[path = "timer_test.rs"]
mod tests;
