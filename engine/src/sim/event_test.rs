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
