use super::*;

fn t(ms: u64) -> Time {
    Time::from_millis(ms)
}

/// Serve every chunk `incoming` asks for from `outgoing` until done.
fn run(outgoing: &mut Outgoing, incoming: &mut Incoming, max: usize) -> (Vec<u8>, usize) {
    let mut messages = 0;
    let (mut at, mut offset) = (outgoing.at(), 0);
    loop {
        let chunk = outgoing.chunk(offset, max, t(1)).expect("in range");
        messages += 1;
        match incoming.receive(NodeId(1), at, offset, outgoing.len(), chunk, t(1)) {
            Received::Next { at: a, offset: o } => (at, offset) = (a, o),
            Received::Complete(bytes) => return (bytes, messages),
            Received::Ignored => panic!("chunk at {offset} ignored"),
        }
    }
}

#[test]
fn a_snapshot_moves_in_chunks_and_decodes_to_the_same_value() {
    let state: Vec<(String, u64)> = (0..1_000).map(|i| (format!("key{i}"), i)).collect();
    let bytes = encode(&state);
    let mut outgoing = Outgoing::new(7, bytes.clone(), t(0));
    let mut incoming = Incoming::new(NodeId(1), t(0));
    let (received, messages) = run(&mut outgoing, &mut incoming, 1_000);
    assert_eq!(received, bytes);
    assert_eq!(messages, bytes.len().div_ceil(1_000));
    assert_eq!(decode::<Vec<(String, u64)>>(&received), Some(state));
}

#[test]
fn duplicates_strangers_and_gaps_are_ignored() {
    let mut incoming = Incoming::new(NodeId(1), t(0));
    let chunk = |n: u8| vec![n; 4];
    assert_eq!(
        incoming.receive(NodeId(2), 5, 0, 8, chunk(1), t(1)),
        Received::Ignored,
        "another source"
    );
    assert_eq!(
        incoming.receive(NodeId(1), 5, 4, 8, chunk(1), t(1)),
        Received::Ignored,
        "a gap before the first chunk"
    );
    assert_eq!(
        incoming.receive(NodeId(1), 5, 0, 8, chunk(1), t(1)),
        Received::Next { at: 5, offset: 4 }
    );
    assert_eq!(
        incoming.receive(NodeId(1), 5, 0, 8, chunk(1), t(2)),
        Received::Ignored,
        "a duplicate"
    );
    assert_eq!(
        incoming.receive(NodeId(1), 5, 4, 9, chunk(2), t(2)),
        Received::Ignored,
        "a different total"
    );
    assert_eq!(
        incoming.receive(NodeId(1), 5, 6, 8, chunk(2), t(2)),
        Received::Ignored,
        "past the end"
    );
    assert_eq!(
        incoming.receive(NodeId(1), 5, 4, 8, chunk(2), t(3)),
        Received::Complete([chunk(1), chunk(2)].concat())
    );
}

#[test]
fn a_source_that_moved_to_a_newer_snapshot_restarts_the_transfer() {
    let mut incoming = Incoming::new(NodeId(1), t(0));
    incoming.receive(NodeId(1), 5, 0, 8, vec![1; 4], t(1));
    assert_eq!(incoming.request(), (5, 4));
    assert_eq!(
        incoming.receive(NodeId(1), 9, 4, 8, vec![2; 4], t(2)),
        Received::Ignored,
        "the middle of another snapshot"
    );
    assert_eq!(
        incoming.receive(NodeId(1), 9, 0, 6, vec![2; 4], t(2)),
        Received::Next { at: 9, offset: 4 }
    );
    assert_eq!(incoming.received(), 4);
}

#[test]
fn garbage_never_decodes_into_a_snapshot_and_past_the_end_is_none() {
    assert_eq!(decode::<Vec<(String, u64)>>(&[0xff, 0xff, 0xff]), None);
    let mut outgoing = Outgoing::new(1, vec![1, 2, 3], t(0));
    assert_eq!(outgoing.chunk(3, 10, t(1)), None);
    assert_eq!(outgoing.chunk(u64::MAX, 10, t(1)), None);
    assert_eq!(outgoing.chunk(1, 10, t(1)), Some(vec![2, 3]));
}

#[test]
fn elapsed_counts_from_the_start_not_from_the_last_chunk() {
    let mut incoming = Incoming::new(NodeId(1), t(100));
    incoming.receive(NodeId(1), 5, 0, 8, vec![1; 4], t(300));
    assert_eq!(incoming.elapsed_ms(t(350)), 250);
    assert_eq!(incoming.elapsed_ms(t(50)), 0, "a clock before the start");
}
