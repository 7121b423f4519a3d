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

#[test]
fn metrics_encode_and_print_in_name_order_as_the_b_tree_they_were() {
    let mut metrics = Metrics::new();
    for name in [
        "slow_path",
        "executed",
        "fast_path",
        "executed",
        "zeta",
        "alpha",
    ] {
        metrics.incr(name);
    }
    metrics.add("fast_path", 4);
    metrics.set("gauge", 7);
    let mut old = BTreeMap::new();
    for (name, value) in [
        ("alpha", 1),
        ("executed", 2),
        ("fast_path", 5),
        ("gauge", 7),
        ("slow_path", 1),
        ("zeta", 1),
    ] {
        old.insert(name.to_owned(), value);
    }
    let listed: Vec<(&str, u64)> = metrics.iter().collect();
    let expected: Vec<(&str, u64)> = old.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(listed, expected);

    #[derive(Serialize)]
    struct Before {
        counters: BTreeMap<String, u64>,
    }
    let printed = format!("Metrics {{ counters: {old:?} }}");
    let bytes = postcard::to_allocvec(&Before { counters: old }).expect("encodes");
    assert_eq!(postcard::to_allocvec(&metrics).expect("encodes"), bytes);
    assert_eq!(format!("{metrics:?}"), printed);
    let decoded: Metrics = postcard::from_bytes(&bytes).expect("decodes");
    assert_eq!(decoded, metrics);
    let mut doubled = metrics.clone();
    doubled.merge(&metrics);
    assert_eq!(doubled.get("fast_path"), 10);
}
