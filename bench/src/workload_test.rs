use super::*;
use rand::SeedableRng;

#[test]
fn conflict_share_matches_the_knob() {
    let mut generator = WorkloadSpec::conflicts(25.0).generator();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let hot = (0..10_000)
        .filter(|_| generator.next_command(ClientId(0), &mut rng).key() == HOT_KEY)
        .count();
    assert!((2_300..2_700).contains(&hot), "hot share {hot}/10000");
}

#[test]
fn non_hot_keys_are_unique_per_client_and_request() {
    let mut a = WorkloadSpec::conflicts(0.0).generator();
    let mut b = WorkloadSpec::conflicts(0.0).generator();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let ka = a.next_command(ClientId(1), &mut rng).key().clone();
    let kb = b.next_command(ClientId(2), &mut rng).key().clone();
    let ka2 = a.next_command(ClientId(1), &mut rng).key().clone();
    assert_ne!(ka, kb);
    assert_ne!(ka, ka2);
}

#[test]
fn client_keys_cycle_and_are_the_clients_own() {
    let spec = WorkloadSpec {
        keys: KeyChoice::Conflict {
            conflict_pct: 0.0,
            client_keys: 3,
        },
        ..WorkloadSpec::conflicts(0.0)
    };
    let mut a = spec.generator();
    let mut b = spec.generator();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let keys_a: Vec<_> = (0..6)
        .map(|_| a.next_command(ClientId(1), &mut rng).key().clone())
        .collect();
    let keys_b: Vec<_> = (0..6)
        .map(|_| b.next_command(ClientId(2), &mut rng).key().clone())
        .collect();
    assert_eq!(keys_a[..3], keys_a[3..], "three keys in turn");
    assert_eq!(
        keys_a[..3]
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        3
    );
    assert!(keys_a.iter().all(|k| !keys_b.contains(k)), "own keys");
}

fn dynamo_write_answer(op: &ClientOp, context: &[u8]) -> OpRecord {
    use meridian_engine::request::{Receipt, VersionedResponse};
    use meridian_engine::{ClientRequest, NodeId, RequestId};

    let id = RequestId {
        client: ClientId(1),
        seq: 1,
    };
    OpRecord {
        client: ClientId(1),
        region: 0,
        node: NodeId(0),
        request: ClientRequest {
            consistency: op.consistency,
            context: op.context.clone(),
            ..ClientRequest::new(id, op.command.clone())
        },
        call: Time::ZERO,
        commit: None,
        ret: Some(Time::ZERO),
        reply: Some(ClientReply {
            id,
            outcome: Ok(Response::Versioned(VersionedResponse {
                siblings: Vec::new(),
                context: context.to_vec(),
                receipt: Receipt::default(),
            })),
        }),
        timed_out: false,
    }
}

#[test]
fn dynamo_rewrites_of_a_key_carry_the_last_answers_context() {
    let dynamo = Consistency::Dynamo(meridian_engine::Level::Quorum);
    let reused = WorkloadSpec {
        keys: KeyChoice::Conflict {
            conflict_pct: 0.0,
            client_keys: 1,
        },
        consistency: dynamo,
        ..WorkloadSpec::conflicts(0.0)
    };
    let mut generator = reused.generator();
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let first = generator
        .next_op(ClientId(1), &mut rng, Time::ZERO)
        .unwrap();
    assert!(first.context.is_empty());
    generator.observe(&dynamo_write_answer(&first, b"ctx-1"));
    let second = generator
        .next_op(ClientId(1), &mut rng, Time::ZERO)
        .unwrap();
    assert_eq!(second.command.key(), first.command.key());
    assert_eq!(second.context, b"ctx-1");

    // A key used once is never remembered.
    let unique = WorkloadSpec {
        consistency: dynamo,
        ..WorkloadSpec::conflicts(0.0)
    };
    let mut generator = unique.generator();
    let op = generator
        .next_op(ClientId(1), &mut rng, Time::ZERO)
        .unwrap();
    generator.observe(&dynamo_write_answer(&op, b"ctx-1"));
    assert!(generator.contexts.is_empty());
}

#[test]
fn values_have_the_requested_size_and_are_printable() {
    let mut spec = WorkloadSpec::conflicts(100.0);
    spec.value_size = 64;
    let mut generator = spec.generator();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let Command::Put { value, .. } = generator.next_command(ClientId(7), &mut rng) else {
        panic!("write-only workload produced a read");
    };
    assert_eq!(value.len(), 64);
    assert!(value.iter().all(|b| b.is_ascii_graphic()));
}

#[test]
fn zipf_skews_towards_the_first_keys() {
    let spec = WorkloadSpec {
        keys: KeyChoice::Zipf {
            theta: 0.99,
            keys: 1_000,
        },
        ..WorkloadSpec::conflicts(0.0)
    };
    let mut generator = spec.generator();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let first = (0..10_000)
        .filter(|_| generator.next_command(ClientId(0), &mut rng).key() == b"key0")
        .count();
    assert!(
        first > 500,
        "key0 drawn {first} times of 10000 under zipf 0.99"
    );
}
