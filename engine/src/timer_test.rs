use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum T {
    Tick,
    Gc,
    Heartbeat,
}

fn at(us: u64) -> Time {
    Time::from_micros(us)
}

#[test]
fn next_is_the_earliest_armed_deadline() {
    let mut timers = Timers::new();
    assert_eq!(timers.next(), None);
    timers.set(T::Gc, at(50));
    timers.set(T::Tick, at(20));
    timers.set(T::Heartbeat, at(30));
    assert_eq!(timers.next(), Some(at(20)));
    timers.cancel(T::Tick);
    assert_eq!(timers.next(), Some(at(30)));
}

#[test]
fn set_replaces_and_arm_keeps_an_existing_deadline() {
    let mut timers = Timers::new();
    timers.arm(T::Tick, at(10));
    timers.arm(T::Tick, at(5));
    assert_eq!(timers.deadline(T::Tick), Some(at(10)));
    timers.set(T::Tick, at(5));
    assert_eq!(timers.deadline(T::Tick), Some(at(5)));
}

#[test]
fn take_if_due_fires_once() {
    let mut timers = Timers::new();
    timers.set(T::Gc, at(10));
    assert!(!timers.take_if_due(T::Gc, at(9)));
    assert!(timers.take_if_due(T::Gc, at(10)));
    assert!(!timers.take_if_due(T::Gc, at(11)));
    assert!(!timers.is_armed(T::Gc));
}

#[test]
fn iteration_follows_timer_order_not_insertion_order() {
    let mut timers = Timers::new();
    timers.set(T::Heartbeat, at(1));
    timers.set(T::Tick, at(3));
    timers.set(T::Gc, at(2));
    let order: Vec<T> = timers.iter().map(|(k, _)| k).collect();
    assert_eq!(order, vec![T::Tick, T::Gc, T::Heartbeat]);
}
