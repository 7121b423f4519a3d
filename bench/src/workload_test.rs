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
