use super::*;

#[test]
fn cas_applies_only_when_expected_matches() {
    let mut kv = KvStore::new();
    let cas = |expected: Option<&str>, new: &str| Command::Cas {
        key: b"k".to_vec(),
        expected: expected.map(|e| e.as_bytes().to_vec()),
        new: new.as_bytes().to_vec(),
    };
    assert_eq!(
        kv.apply(&cas(None, "a")),
        CommandResult::Cas {
            applied: true,
            previous: None
        }
    );
    assert_eq!(
        kv.apply(&cas(None, "b")),
        CommandResult::Cas {
            applied: false,
            previous: Some(b"a".to_vec())
        }
    );
    assert_eq!(
        kv.apply(&cas(Some("a"), "c")),
        CommandResult::Cas {
            applied: true,
            previous: Some(b"a".to_vec())
        }
    );
    assert_eq!(kv.read(b"k"), Some(&b"c".to_vec()));
}

#[test]
fn delete_makes_the_key_absent() {
    let mut kv = KvStore::new();
    kv.apply(&Command::Put {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
    });
    kv.apply(&Command::Delete { key: b"k".to_vec() });
    assert_eq!(
        kv.apply(&Command::Get { key: b"k".to_vec() }),
        CommandResult::Value(None)
    );
}

fn store(keys: &[&str]) -> KvStore {
    let mut kv = KvStore::new();
    for key in keys {
        kv.apply(&Command::Put {
            key: key.as_bytes().to_vec(),
            value: format!("v{key}").into_bytes(),
        });
    }
    kv
}

fn keys(result: &CommandResult) -> (Vec<String>, bool) {
    match result {
        CommandResult::Entries { entries, more } => (
            entries
                .iter()
                .map(|(k, _)| String::from_utf8(k.clone()).unwrap())
                .collect(),
            *more,
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_scan_returns_exactly_the_keys_under_its_prefix_in_order() {
    let kv = store(&["a", "a/", "a/2", "a/1", "a0", "a/1/x", "b/1", "`"]);
    let scan = |prefix: &str, after: Option<&str>, limit| {
        keys(
            &kv.read_only(&Command::Scan {
                prefix: prefix.into(),
                after: after.map(Into::into),
                limit,
            })
            .expect("a read"),
        )
    };
    let all_a = ["a/", "a/1", "a/1/x", "a/2"];
    assert_eq!(
        scan("a/", None, 10),
        (all_a.iter().map(|s| s.to_string()).collect(), false)
    );
    assert_eq!(scan("a/", None, 2), (vec!["a/".into(), "a/1".into()], true));
    assert_eq!(
        scan("a/", Some("a/1"), 10),
        (vec!["a/1/x".into(), "a/2".into()], false)
    );
    // An `after` before the prefix starts at the prefix; one past it finds nothing.
    assert_eq!(scan("a/", Some("0"), 1), (vec!["a/".into()], true));
    assert_eq!(scan("a/", Some("b"), 10), (vec![], false));
    assert_eq!(scan("", None, 100).0.len(), 8);
    assert_eq!(scan("c", None, 10), (vec![], false));
    assert_eq!(scan("a/", None, 0), (vec![], true));
    let value = kv.scan(b"a/2", None, 1);
    assert_eq!(
        value,
        CommandResult::Entries {
            entries: vec![(b"a/2".to_vec(), b"va/2".to_vec())],
            more: false
        }
    );
    assert_eq!(kv.count(b"a/"), CommandResult::Count(4));
    assert_eq!(
        kv.read_only(&Command::Count { prefix: Vec::new() }),
        Some(CommandResult::Count(8))
    );
}

/// The reply fits a frame: a scan stops before the entry that would pass the byte
/// budget, but always returns its first entry.
#[test]
fn a_scan_stops_at_its_byte_budget() {
    let mut kv = KvStore::new();
    let big = vec![7u8; SCAN_MAX_BYTES / 3];
    for key in ["k1", "k2", "k3", "k4"] {
        kv.apply(&Command::Put {
            key: key.into(),
            value: big.clone(),
        });
    }
    let (found, more) = keys(&kv.scan(b"k", None, 100));
    assert_eq!(found, vec!["k1", "k2"], "three values pass the budget");
    assert!(more);
    let huge = vec![1u8; SCAN_MAX_BYTES + 1];
    kv.apply(&Command::Put {
        key: b"h".to_vec(),
        value: huge,
    });
    let (found, more) = keys(&kv.scan(b"h", None, 100));
    assert_eq!((found, more), (vec!["h".to_owned()], false));
}

#[test]
fn range_reads_change_nothing_and_writes_are_not_read_only() {
    let mut kv = store(&["a", "b"]);
    let before = kv.clone();
    kv.apply(&Command::Count { prefix: Vec::new() });
    kv.apply(&Command::Scan {
        prefix: Vec::new(),
        after: None,
        limit: 5,
    });
    assert_eq!(kv, before);
    assert_eq!(kv.read_only(&Command::Delete { key: b"a".to_vec() }), None);
}

/// Random puts, deletes and compare-and-sets: the map encodes to the bytes of the
/// `BTreeMap<Key, Value>` it was (the same entries), scans see the same keys, and a
/// decoded copy equals it.
#[test]
fn the_map_encodes_and_scans_as_the_b_tree_map_it_replaced() {
    use rand::{Rng, SeedableRng};
    #[derive(serde::Serialize)]
    struct Reference<'a> {
        entries: &'a BTreeMap<Key, Value>,
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut kv = KvStore::new();
    let mut reference = BTreeMap::new();
    for step in 0..3_000u32 {
        let key = format!("k{}", rng.gen_range(0..200)).into_bytes();
        let value = format!("v{step}").into_bytes();
        let command = match rng.gen_range(0..4) {
            0 => Command::Delete { key: key.clone() },
            1 => Command::Cas {
                key: key.clone(),
                expected: reference.get(&key).cloned(),
                new: value.clone(),
            },
            _ => Command::Put {
                key: key.clone(),
                value: value.clone(),
            },
        };
        kv.apply(&command);
        match command {
            Command::Delete { .. } => {
                reference.remove(&key);
            }
            _ => {
                reference.insert(key, value);
            }
        }
        if step % 101 == 0 {
            let bytes = postcard::to_allocvec(&kv).expect("encode");
            let expected = postcard::to_allocvec(&Reference {
                entries: &reference,
            })
            .expect("encode");
            assert_eq!(bytes, expected, "step {step}");
            let decoded: KvStore = postcard::from_bytes(&bytes).expect("decode");
            assert_eq!(decoded, kv);
            let scanned: Vec<_> = kv.prefixed(b"k1", None).map(|(k, _)| k.clone()).collect();
            let expected: Vec<_> = reference
                .keys()
                .filter(|k| k.starts_with(b"k1"))
                .cloned()
                .collect();
            assert_eq!(scanned, expected, "step {step}");
            assert_eq!(kv.len(), reference.len());
        }
    }
}
