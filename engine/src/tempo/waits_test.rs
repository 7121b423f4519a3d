//! Waits are found per key, and a promise looks only at the waits it may still move.

use super::*;
use crate::id::NodeId;

fn dot(seq: u64) -> Dot {
    Dot {
        node: NodeId(0),
        seq,
    }
}

fn wait(key: &[u8], ts: u64, epoch: u64, blind: bool) -> OwnWait {
    OwnWait {
        key: key.to_vec(),
        ts,
        epoch,
        committed: Time::ZERO,
        promised: None,
        blind,
    }
}

#[test]
fn a_promise_moves_only_the_waits_of_its_key_and_epoch_up_to_what_is_covered() {
    let mut waits = OwnWaits::default();
    waits.insert(dot(1), wait(b"k", 5, 1, true));
    waits.insert(dot(2), wait(b"k", 9, 1, false));
    waits.insert(dot(3), wait(b"k", 4, 2, true));
    waits.insert(dot(4), wait(b"j", 1, 1, true));
    assert_eq!(waits.unpromised_epochs(b"k"), vec![1, 2]);
    let now = Time::from_micros(7);
    waits.promise(b"k", 1, 8, now, true);
    // Only dot 1: dot 2 is above 8, dot 3 of another epoch, dot 4 on another key.
    assert_eq!(waits.by_dot[&dot(1)].promised, Some(now));
    assert!([2, 3, 4]
        .iter()
        .all(|&s| waits.by_dot[&dot(s)].promised.is_none()));
    assert_eq!(waits.to_answer(b"k"), vec![(dot(1), 5, 1)]);
    // Only a key with a promised write to answer looks again when the switch lane's
    // stability moves, once it passes the write, and once.
    assert!(waits.keys_the_lane_passed(4).is_empty());
    assert_eq!(waits.keys_the_lane_passed(5), vec![b"k".to_vec()]);
    assert!(waits.keys_the_lane_passed(5).is_empty());
    // Capped below it and passing it again, the lane looks at it again.
    assert!(waits.keys_the_lane_passed(3).is_empty());
    assert_eq!(waits.keys_the_lane_passed(6), vec![b"k".to_vec()]);
    waits.promise(b"k", 1, 20, now, true);
    // Dot 2 is promised but is no blind write: nothing more to answer.
    assert_eq!(waits.to_answer(b"k"), vec![(dot(1), 5, 1)]);
    assert_eq!(waits.unpromised_epochs(b"k"), vec![2]);
    waits.answered(dot(1));
    assert!(waits.to_answer(b"k").is_empty());
    assert!(waits.to_answer_by_ts.is_empty());
    // Without early answers, a promised write is not listed.
    waits.promise(b"k", 2, 4, now, false);
    assert!(waits.to_answer(b"k").is_empty());
    assert!(waits.unpromised_epochs(b"k").is_empty());
}

#[test]
fn a_wait_that_ran_leaves_every_index() {
    let mut waits = OwnWaits::default();
    waits.insert(dot(1), wait(b"k", 5, 1, true));
    waits.insert(dot(2), wait(b"k", 6, 1, true));
    waits.promise(b"k", 1, 5, Time::ZERO, true);
    assert_eq!(waits.remove(dot(1)).map(|w| w.ts), Some(5));
    assert!(waits.to_answer(b"k").is_empty());
    assert_eq!(waits.remove(dot(2)).map(|w| w.ts), Some(6));
    assert!(waits.is_empty());
    assert!(!waits.by_key.contains_key(b"k".as_slice()));
    assert!(waits.to_answer_by_ts.is_empty());
    assert!(waits.remove(dot(2)).is_none());
}
