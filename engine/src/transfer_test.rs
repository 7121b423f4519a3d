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

#[test]
fn answers_serve_one_encoding_per_attempt_and_a_new_one_for_a_new_attempt() {
    let mut answers = Answers::default();
    let to = NodeId(2);
    let now = Time::from_millis(5);
    let mut encoded = 0;
    let mut encode = |bytes: &[u8]| {
        encoded += 1;
        bytes.to_vec()
    };
    let first = answers
        .serve(to, 7, (0, 0), 2, now, || encode(b"abcde"))
        .expect("a chunk");
    assert_eq!(
        (first.offset, first.total, first.bytes.clone()),
        (0, 5, b"ab".to_vec())
    );
    assert!(answers.holds(to, 7) && !answers.holds(to, 9));
    // The same attempt: the held encoding, never encoded again.
    let next = answers
        .serve(to, 7, (first.at, 2), 2, now, || encode(b"other"))
        .expect("a chunk");
    assert_eq!((next.at, next.bytes), (first.at, b"cd".to_vec()));
    // The same attempt asking for another encoding: the held one from its start.
    let restart = answers
        .serve(to, 7, (first.at + 1, 4), 2, now, || encode(b"other"))
        .expect("a chunk");
    assert_eq!((restart.at, restart.offset), (first.at, 0));
    assert!(answers
        .serve(to, 7, (first.at, 5), 2, now, || encode(b"other"))
        .is_none());
    // A new attempt gets a new encoding.
    let fresh = answers
        .serve(to, 9, (first.at, 0), 8, now, || encode(b"xyz"))
        .expect("a chunk");
    assert!(fresh.at > first.at);
    assert_eq!(fresh.bytes, b"xyz".to_vec());
    answers.forget(to);
    assert!(!answers.holds(to, 9));
    assert_eq!(encoded, 2);
}
