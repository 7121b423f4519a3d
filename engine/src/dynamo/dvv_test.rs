//! Dotted version vector sets.
//! Reference: Almeida et al., "Scalable and Accurate Causality Tracking for Eventually
//! Consistent Stores" (DAIS 2014), §4 (DVV sets: update, sync, join laws).

use super::dvv::{Actor, ContextError, Dot, Object, Sibling, VersionVector};
use crate::id::NodeId;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

fn actor(node: u16) -> Actor {
    Actor {
        node: NodeId(node),
        epoch: 0xE0 + u64::from(node),
    }
}

fn dot(node: u16, counter: u64) -> Dot {
    Dot {
        actor: actor(node),
        counter,
    }
}

fn value(v: &str) -> Sibling {
    Sibling {
        value: Some(v.as_bytes().to_vec()),
        timestamp_us: 0,
    }
}

fn values(object: &Object) -> Vec<String> {
    object
        .values()
        .into_iter()
        .map(|v| {
            v.map_or("<deleted>".to_owned(), |v| {
                String::from_utf8_lossy(&v).into_owned()
            })
        })
        .collect()
}

/// §4: two writes with the same (empty) context are concurrent: both survive.
#[test]
fn concurrent_writes_become_siblings() {
    let at_a = Object::new().update(&VersionVector::new(), dot(0, 1), value("a"));
    let at_b = Object::new().update(&VersionVector::new(), dot(1, 1), value("b"));
    let merged = at_a.join(&at_b);
    assert_eq!(values(&merged), vec!["a", "b"]);
    assert_eq!(merged, at_b.join(&at_a));
}

/// A write carrying a read's context supersedes exactly the siblings the read returned.
#[test]
fn a_write_with_the_read_context_supersedes_exactly_what_it_saw() {
    let a = Object::new().update(&VersionVector::new(), dot(0, 1), value("a"));
    let b = Object::new().update(&VersionVector::new(), dot(1, 1), value("b"));
    let read = a.join(&b);
    // Meanwhile a third client writes c at node 2 without having read.
    let c = Object::new().update(&VersionVector::new(), dot(2, 1), value("c"));
    let node0 = read.join(&c);
    let resolved = node0.update(read.context(), dot(0, 2), value("ab"));
    assert_eq!(
        values(&resolved),
        vec!["ab", "c"],
        "a and b were seen and replaced; c was not seen and stays"
    );
    // Any replica that still holds a or b drops them on merge.
    assert_eq!(values(&b.join(&resolved)), vec!["ab", "c"]);
}

/// The DVV point: a write without context at the same actor does not hide that actor's
/// earlier sibling (a plain version vector would claim it saw counter 1).
#[test]
fn a_contextless_write_does_not_supersede_the_same_actors_older_sibling() {
    let first = Object::new().update(&VersionVector::new(), dot(0, 1), value("x"));
    let second = first.update(&VersionVector::new(), dot(0, 2), value("y"));
    assert_eq!(values(&second), vec!["x", "y"]);
    let stale_replica = first.clone();
    assert_eq!(values(&stale_replica.join(&second)), vec!["x", "y"]);
}

#[test]
fn a_delete_is_a_tombstone_sibling_until_superseded() {
    let a = Object::new().update(&VersionVector::new(), dot(0, 1), value("a"));
    let deleted = a.update(
        a.context(),
        dot(0, 2),
        Sibling {
            value: None,
            timestamp_us: 0,
        },
    );
    assert!(deleted.is_tombstone());
    assert_eq!(deleted.values(), vec![None]);
    let rewritten = deleted.update(deleted.context(), dot(1, 1), value("b"));
    assert!(!rewritten.is_tombstone());
    assert_eq!(values(&rewritten), vec!["b"]);
}

#[test]
fn context_bytes_round_trip_and_reject_garbage() {
    let vv: VersionVector = [dot(0, 3), dot(7, 9), dot(0, 1)].into_iter().collect();
    let bytes = vv.encode();
    assert_eq!(VersionVector::decode(&bytes), Ok(vv.clone()));
    assert_eq!(VersionVector::decode(&[]), Ok(VersionVector::new()));
    assert_eq!(VersionVector::decode(&[9]), Err(ContextError::Version(9)));
    assert_eq!(
        VersionVector::decode(&bytes[..bytes.len() - 1]),
        Err(ContextError::Length(bytes.len() - 1))
    );
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(VersionVector::decode(&trailing).is_err());
}

#[test]
fn lww_keeps_only_the_latest_timestamp() {
    let a = Object::new().update(
        &VersionVector::new(),
        dot(0, 1),
        Sibling {
            value: Some(b"old".to_vec()),
            timestamp_us: 5,
        },
    );
    let b = Object::new().update(
        &VersionVector::new(),
        dot(1, 1),
        Sibling {
            value: Some(b"new".to_vec()),
            timestamp_us: 9,
        },
    );
    let mut merged = a.join(&b);
    assert_eq!(merged.keep_last_writer(), 1);
    assert_eq!(values(&merged), vec!["new"]);
}

/// One step of a small replicated system: `Write(at, ctx_from, v)` issues a dot at
/// replica `at` from its own object (as the Dynamo core does), with the context a client
/// read from replica `ctx_from` (or none); `Sync(from, to)` merges one object into another.
#[derive(Clone, Debug)]
enum Step {
    Write {
        at: usize,
        ctx_from: Option<usize>,
        value: u8,
        delete: bool,
    },
    Sync {
        from: usize,
        to: usize,
    },
}

const REPLICAS: usize = 3;

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (
            0..REPLICAS,
            proptest::option::of(0..REPLICAS),
            any::<u8>(),
            proptest::bool::weighted(0.15)
        )
            .prop_map(|(at, ctx_from, value, delete)| Step::Write {
                at,
                ctx_from,
                value,
                delete
            }),
        (0..REPLICAS, 0..REPLICAS).prop_map(|(from, to)| Step::Sync { from, to }),
    ]
}

/// Runs the steps; returns every object state reached and, per issued dot, whether some
/// later write's context covered it (so it may legitimately disappear).
fn run(steps: &[Step]) -> (Vec<Object>, Vec<Object>, Vec<(Dot, bool)>) {
    let mut replicas = vec![Object::new(); REPLICAS];
    let mut counters = [0u64; REPLICAS];
    let mut states = vec![Object::new()];
    let mut issued: Vec<(Dot, bool)> = Vec::new();
    for step in steps {
        match *step {
            Step::Write {
                at,
                ctx_from,
                value,
                delete,
            } => {
                let context = ctx_from
                    .map(|i| replicas[i].context().clone())
                    .unwrap_or_default();
                for (dot, superseded) in &mut issued {
                    if context.contains(dot) {
                        *superseded = true;
                    }
                }
                counters[at] += 1;
                let d = dot(at as u16, counters[at]);
                let sibling = Sibling {
                    value: (!delete).then(|| vec![value]),
                    timestamp_us: 0,
                };
                replicas[at] = replicas[at].update(&context, d, sibling);
                issued.push((d, false));
                states.push(replicas[at].clone());
            }
            Step::Sync { from, to } => {
                let source = replicas[from].clone();
                replicas[to].merge(&source);
                states.push(replicas[to].clone());
            }
        }
    }
    (states, replicas, issued)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        rng_seed: RngSeed::Fixed(0x00D0_77ED),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// §4 sync is a join: commutative, idempotent, associative on reachable states.
    #[test]
    fn merge_is_commutative_idempotent_and_associative(
        steps in proptest::collection::vec(step(), 1..40),
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 3),
    ) {
        let (states, _, _) = run(&steps);
        let a = picks[0].get(&states);
        let b = picks[1].get(&states);
        let c = picks[2].get(&states);
        prop_assert_eq!(a.join(b), b.join(a), "commutative");
        prop_assert_eq!(a.join(a), a.clone(), "idempotent");
        prop_assert_eq!(a.join(b).join(c), a.join(&b.join(c)), "associative");
        let mut changed = a.clone();
        prop_assert!(!changed.merge(a), "merging itself reports no change");
    }

    /// No version disappears unless a write that saw it (its dot in the write's context)
    /// replaced it: the join of all replicas keeps every other issued version.
    #[test]
    fn only_versions_a_later_write_saw_are_ever_dropped(
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        let (_, replicas, issued) = run(&steps);
        let all = replicas.iter().fold(Object::new(), |acc, o| acc.join(o));
        let survivors: Vec<Dot> = all.siblings().map(|(d, _)| *d).collect();
        for (d, superseded) in issued {
            prop_assert!(
                superseded || survivors.contains(&d),
                "version {:?} was never seen by a write yet is gone", d
            );
            prop_assert!(all.context().contains(&d), "every issued dot is in the context");
        }
    }
}
