use super::*;

#[test]
fn by_distance_puts_self_first_then_nearest() {
    let mut cluster = Membership::local(3);
    cluster.rtt_us = vec![vec![0, 50, 10], vec![50, 0, 20], vec![10, 20, 0]];
    assert_eq!(
        cluster.by_distance(NodeId(0)),
        vec![NodeId(0), NodeId(2), NodeId(1)]
    );
    assert_eq!(
        cluster.by_distance(NodeId(1)),
        vec![NodeId(1), NodeId(2), NodeId(0)]
    );
}

#[test]
fn outbox_keeps_production_order() {
    let mut outbox: Outbox<u8, u8> = Outbox::new();
    outbox.persist(
        vec![1],
        vec![Effect::Send {
            to: NodeId(1),
            message: 7,
        }],
    );
    outbox.send(NodeId(2), 8);
    assert!(matches!(outbox.pop(), Some(Output::Persist { .. })));
    assert_eq!(
        outbox.pop(),
        Some(Output::Now(Effect::Send {
            to: NodeId(2),
            message: 8
        }))
    );
    assert_eq!(outbox.pop(), None);
}
