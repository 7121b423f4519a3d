use super::*;

#[test]
fn a_silent_peer_is_down_after_the_timeout_and_up_when_heard_again() {
    let timeout = Duration::from_millis(500);
    let mut fd = FailureDetector::new(NodeId(0), [NodeId(0), NodeId(1)], timeout, Time::ZERO);
    assert!(fd.is_alive(NodeId(1), Time::from_millis(499)));
    assert!(!fd.is_alive(NodeId(1), Time::from_millis(500)));
    assert_eq!(fd.down(Time::from_millis(600)), vec![NodeId(1)]);
    assert!(fd.heard(NodeId(1), Time::from_millis(600)));
    assert!(fd.is_alive(NodeId(1), Time::from_millis(700)));
    assert!(fd.is_alive(NodeId(0), Time::MAX), "self is always alive");
}
