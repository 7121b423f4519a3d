//! Lease arithmetic.

use super::lease::{shrink, stretch};
use std::time::Duration;

#[test]
fn shrink_and_stretch_bracket_real_time() {
    let d = Duration::from_millis(1_000);
    assert_eq!(shrink(d, 0), d);
    assert_eq!(stretch(d, 0), d);
    // 1% drift: 1 s becomes 980.2 ms one way and 1020.2 ms the other.
    assert_eq!(shrink(d, 10_000), Duration::from_micros(980_198));
    assert_eq!(stretch(d, 10_000), Duration::from_micros(1_020_203));
    // A holder's lease on a clock 1% slow ends (in real time) before a grantor's grant
    // on a clock 1% fast.
    let holder_real = shrink(d, 10_000).as_secs_f64() / 0.99;
    let grantor_real = d.as_secs_f64() / 1.01;
    assert!(holder_real <= grantor_real + 1e-9);
}
