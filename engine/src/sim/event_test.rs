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
