//! Rate-limited warnings: a misconfigured peer redials for as long as it runs, and each
//! of its attempts fails the same way. The first failure of a kind is logged at once; the
//! same kind again only after [`LOG_INTERVAL`], with the number left out meanwhile.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the same refusal is logged again.
pub const LOG_INTERVAL: Duration = Duration::from_secs(30);

/// Keys remembered at most (a flood of distinct remote addresses forgets the oldest).
const KEYS_MAX: usize = 1024;

/// Decides which occurrences of a repeated event are logged.
#[derive(Debug)]
pub struct LogThrottle {
    interval: Duration,
    seen: Mutex<BTreeMap<String, (Instant, u64)>>,
}

impl Default for LogThrottle {
    fn default() -> Self {
        Self::new(LOG_INTERVAL)
    }
}

impl LogThrottle {
    /// Log each key at most once per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            seen: Mutex::new(BTreeMap::new()),
        }
    }

    /// Whether to log an occurrence of `key` at `now`: `Some(n)` with the occurrences
    /// left out since the last logged one, `None` to leave this one out.
    pub fn admit(&self, key: &str, now: Instant) -> Option<u64> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((last, suppressed)) = seen.get_mut(key) {
            if now.saturating_duration_since(*last) < self.interval {
                *suppressed += 1;
                return None;
            }
            let left_out = *suppressed;
            *last = now;
            *suppressed = 0;
            return Some(left_out);
        }
        if seen.len() >= KEYS_MAX {
            if let Some(oldest) = seen
                .iter()
                .min_by_key(|(_, (last, _))| *last)
                .map(|(k, _)| k.clone())
            {
                seen.remove(&oldest);
            }
        }
        seen.insert(key.to_owned(), (now, 0));
        Some(0)
    }
}

#[cfg(test)]
#[path = "throttle_test.rs"]
mod tests;
