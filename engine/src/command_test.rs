use super::*;

fn get(k: &str) -> Command {
    Command::Get { key: k.into() }
}
fn put(k: &str) -> Command {
    Command::Put {
        key: k.into(),
        value: b"v".to_vec(),
    }
}

#[test]
fn reads_of_the_same_key_do_not_interfere() {
    assert!(!get("a").interferes(&get("a")));
}

#[test]
fn a_write_interferes_with_any_command_on_its_key() {
    assert!(put("a").interferes(&get("a")));
    assert!(get("a").interferes(&put("a")));
    assert!(put("a").interferes(&put("a")));
    let cas = Command::Cas {
        key: b"a".to_vec(),
        expected: None,
        new: b"x".to_vec(),
    };
    assert!(cas.interferes(&get("a")));
    assert!(Command::Delete { key: b"a".to_vec() }.interferes(&cas));
}

#[test]
fn commands_on_different_keys_never_interfere() {
    assert!(!put("a").interferes(&put("b")));
    assert!(!put("a").interferes(&get("b")));
}

#[test]
fn a_range_read_interferes_with_writes_under_its_prefix_only() {
    let scan = Command::Scan {
        prefix: b"a/".to_vec(),
        after: None,
        limit: 10,
    };
    let count = Command::Count {
        prefix: b"a/".to_vec(),
    };
    for range in [&scan, &count] {
        assert!(range.is_read());
        assert!(range.interferes(&put("a/x")) && put("a/x").interferes(range));
        assert!(range.interferes(&put("a/")));
        assert!(!range.interferes(&put("a")) && !put("b/x").interferes(range));
        assert!(!range.interferes(&get("a/x")) && !range.interferes(&scan));
    }
    let everything = Command::Count { prefix: Vec::new() };
    assert!(everything.interferes(&put("")) && everything.interferes(&put("z")));
}

#[test]
fn batch_len_stops_at_the_count_or_the_bytes_but_takes_one_always() {
    let put = |value_len: usize| Command::Put {
        key: b"k".to_vec(),
        value: vec![0; value_len],
    };
    let commands = [put(9), put(9), put(9), put(9)];
    assert_eq!(put(9).payload_bytes(), 10);
    assert_eq!(batch_len(commands.iter(), 3, 1_000), 3);
    assert_eq!(batch_len(commands.iter(), 10, 1_000), 4);
    assert_eq!(batch_len(commands.iter(), 10, 25), 2);
    assert_eq!(
        batch_len(commands.iter(), 10, 1),
        1,
        "the first goes in alone"
    );
    assert_eq!(batch_len(commands.iter(), 0, 1_000), 1);
    assert_eq!(batch_len(std::iter::empty(), 10, 1_000), 0);
}
