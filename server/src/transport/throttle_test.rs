use super::*;

#[test]
fn a_key_is_admitted_once_per_interval_with_the_count_left_out() {
    let throttle = LogThrottle::new(Duration::from_secs(30));
    let t0 = Instant::now();
    assert_eq!(throttle.admit("peer 1: bad certificate", t0), Some(0));
    for ms in 1..=500u64 {
        assert_eq!(
            throttle.admit("peer 1: bad certificate", t0 + Duration::from_millis(ms)),
            None
        );
    }
    // Another key is not held back by the first.
    assert_eq!(
        throttle.admit("peer 2: bad certificate", t0 + Duration::from_secs(1)),
        Some(0)
    );
    assert_eq!(
        throttle.admit("peer 1: bad certificate", t0 + Duration::from_secs(31)),
        Some(500)
    );
    assert_eq!(
        throttle.admit("peer 1: bad certificate", t0 + Duration::from_secs(32)),
        None
    );
}

#[test]
fn a_flood_of_distinct_keys_stays_bounded() {
    let throttle = LogThrottle::new(Duration::from_secs(30));
    let t0 = Instant::now();
    for i in 0..(KEYS_MAX as u64 + 100) {
        assert_eq!(
            throttle.admit(&format!("remote {i}"), t0 + Duration::from_micros(i)),
            Some(0)
        );
    }
    assert_eq!(throttle.seen.lock().unwrap().len(), KEYS_MAX);
}
