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
