//! Replica clocks: readings and their inverse.

use super::{ClockConfig, NodeClock};
use crate::id::NodeId;
use crate::time::Time;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

#[test]
fn an_exact_clock_reads_real_time() {
    let clock = NodeClock::default();
    assert_eq!(clock.local(Time::from_millis(7)), Time::from_millis(7));
    assert_eq!(clock.real(Time::from_millis(7)), Time::from_millis(7));
}

#[test]
fn drawn_clocks_stay_within_the_bounds_and_timers_map_back() {
    let config = ClockConfig::bounded(Duration::from_secs(1), 1_000);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for i in 0..50 {
        let clock = NodeClock::draw(&config, NodeId(i), &mut rng);
        assert!(clock.offset_us <= 1_000_000);
        assert!(clock.drift_ppm.abs() <= 1_000);
        for real in [0, 1, 999, 5_000_000, 86_400_000_000] {
            let real = Time::from_micros(real);
            let local = clock.local(real);
            // The earliest real time reading `local` is at most `real`, and reads it.
            let back = clock.real(local);
            assert!(
                back <= real && clock.local(back) >= local,
                "{clock:?} {real}"
            );
        }
    }
}

#[test]
fn an_override_drifts_from_its_start_on() {
    let config = ClockConfig::default().with_drift(NodeId(1), -500_000, Time::from_secs(4));
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let clock = NodeClock::draw(&config, NodeId(1), &mut rng);
    assert_eq!(clock.local(Time::from_secs(4)), Time::from_secs(4));
    // Half speed after 4 s: 2 s of real time read as 1 s.
    assert_eq!(clock.local(Time::from_secs(6)), Time::from_secs(5));
    assert_eq!(clock.real(Time::from_secs(5)), Time::from_secs(6));
    let other = NodeClock::draw(&config, NodeId(2), &mut rng);
    assert_eq!(other, NodeClock::default());
}
