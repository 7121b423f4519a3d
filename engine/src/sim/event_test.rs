use super::*;

#[test]
fn pops_by_time_then_insertion_order() {
    let mut queue = EventQueue::new();
    queue.push(Time::from_micros(5), "b");
    queue.push(Time::from_micros(1), "a");
    queue.push(Time::from_micros(5), "c");
    let order: Vec<_> = std::iter::from_fn(|| queue.pop().map(|(_, e)| e)).collect();
    assert_eq!(order, vec!["a", "b", "c"]);
}

#[test]
fn freed_slots_are_reused_in_order() {
    let mut queue = EventQueue::new();
    for i in 0..4u64 {
        queue.push(Time::from_micros(10 - i), i);
    }
    assert_eq!(queue.pop(), Some((Time::from_micros(7), 3)));
    assert_eq!(queue.pop(), Some((Time::from_micros(8), 2)));
    queue.push(Time::from_micros(8), 4);
    queue.push(Time::from_micros(1), 5);
    assert_eq!(queue.len(), 4);
    let order: Vec<_> = std::iter::from_fn(|| queue.pop().map(|(_, e)| e)).collect();
    assert_eq!(order, vec![5, 4, 1, 0]);
    assert_eq!(queue.slots.len(), 4, "two freed slots were reused");
}

/// Times reach every bucket (down to equal times and up to the top bit), pushes are
/// interleaved with pops, some before the last time popped: the queue pops what a sort
/// by `(time, insertion order)` of the pending events says.
mod against_a_sorted_reference {
    use super::*;
    use proptest::prelude::*;

    fn time(spread: u8, raw: u64) -> u64 {
        raw >> (spread % 64)
    }

    proptest! {
        #[test]
        fn pops_in_time_then_insertion_order(
            steps in proptest::collection::vec((any::<bool>(), any::<u8>(), any::<u64>(), any::<bool>()), 1..300),
        ) {
            let mut queue = EventQueue::new();
            let mut reference: Vec<(u64, u64)> = Vec::new();
            let (mut seq, mut now) = (0u64, 0u64);
            for (is_push, spread, raw, in_the_past) in steps {
                if is_push {
                    let at = if in_the_past { time(spread, raw) } else { now.saturating_add(time(spread, raw)) };
                    queue.push(Time::from_micros(at), seq);
                    reference.push((at, seq));
                    seq += 1;
                } else {
                    reference.sort_unstable();
                    let expected = (!reference.is_empty()).then(|| reference.remove(0));
                    prop_assert_eq!(queue.peek_time(), expected.map(|(at, _)| Time::from_micros(at)));
                    let popped = queue.pop().map(|(at, e)| (at.as_micros(), e));
                    prop_assert_eq!(popped, expected);
                    if let Some((at, _)) = expected {
                        now = at;
                    }
                }
                prop_assert_eq!(queue.len(), reference.len());
            }
        }
    }
}
