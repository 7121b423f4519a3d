//! Per-replica clocks: an offset (skew) and a rate error (drift) against the simulator's
//! real time. Cores see only their own clock; timers they ask for are converted back.

use crate::id::NodeId;
use crate::time::Time;
use rand::Rng;
use std::time::Duration;

/// How far replica clocks may be from real time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClockConfig {
    /// Each clock starts up to this far ahead of real time (drawn per replica).
    pub max_skew: Duration,
    /// Each clock runs at a rate within `1 ± max_drift_ppm` parts per million of real time
    /// (drawn per replica).
    pub max_drift_ppm: u32,
    /// Fixed drift for some replicas, in parts per million (negative = slow), from a
    /// real time on (before it, the drawn drift), beyond any bound if a test wants it
    /// (negative controls).
    pub drift_overrides: Vec<(NodeId, i64, Time)>,
}

impl ClockConfig {
    /// Clocks skewed up to `max_skew` and drifting up to `max_drift_ppm`.
    pub fn bounded(max_skew: Duration, max_drift_ppm: u32) -> Self {
        Self {
            max_skew,
            max_drift_ppm,
            drift_overrides: Vec::new(),
        }
    }

    /// The same clocks, with `node` drifting by exactly `ppm` from real time `from` on.
    pub fn with_drift(mut self, node: NodeId, ppm: i64, from: Time) -> Self {
        self.drift_overrides.push((node, ppm, from));
        self
    }
}

/// One replica's clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeClock {
    /// Microseconds ahead of real time at real time zero.
    pub offset_us: u64,
    /// Rate error in parts per million (above -1,000,000).
    pub drift_ppm: i64,
    /// Real time the drift starts (zero: from the start; before it the clock is exact
    /// apart from its offset).
    pub drift_from: Time,
}

impl NodeClock {
    /// Draw a clock for `node` within `config`.
    pub fn draw(config: &ClockConfig, node: NodeId, rng: &mut impl Rng) -> Self {
        let skew = u64::try_from(config.max_skew.as_micros()).unwrap_or(u64::MAX);
        let offset_us = if skew == 0 {
            0
        } else {
            rng.gen_range(0..=skew)
        };
        let bound = i64::from(config.max_drift_ppm);
        let mut drift_ppm = if bound == 0 {
            0
        } else {
            rng.gen_range(-bound..=bound)
        };
        let mut drift_from = Time::ZERO;
        if let Some(&(_, ppm, from)) = config.drift_overrides.iter().find(|(n, ..)| *n == node) {
            drift_ppm = ppm;
            drift_from = from;
        }
        Self {
            offset_us,
            drift_ppm: drift_ppm.max(-999_999),
            drift_from,
        }
    }

    /// The replica's clock reading at real time `real`.
    pub fn local(&self, real: Time) -> Time {
        if *self == Self::default() {
            return real;
        }
        let r = i128::from(real.as_micros());
        let drifting = (r - i128::from(self.drift_from.as_micros())).max(0);
        let local =
            i128::from(self.offset_us) + r + drifting * i128::from(self.drift_ppm) / 1_000_000;
        Time::from_micros(u64::try_from(local.max(0)).unwrap_or(u64::MAX))
    }

    /// The earliest real time at which the clock reads at least `local`.
    pub fn real(&self, local: Time) -> Time {
        if *self == Self::default() || local == Time::MAX {
            return local;
        }
        let target = i128::from(local.as_micros()) - i128::from(self.offset_us);
        let from = i128::from(self.drift_from.as_micros());
        let rate = 1_000_000 + i128::from(self.drift_ppm);
        let mut real = if target <= from {
            target.max(0)
        } else {
            from + (target - from) * 1_000_000 / rate
        };
        let mut at = Time::from_micros(u64::try_from(real).unwrap_or(u64::MAX));
        while self.local(at) < local {
            real += 1;
            at = Time::from_micros(u64::try_from(real).unwrap_or(u64::MAX));
        }
        at
    }
}
