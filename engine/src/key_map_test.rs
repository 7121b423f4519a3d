use super::KeyMap;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

fn filled(order: &[&str]) -> KeyMap<u32> {
    let mut map = KeyMap::default();
    for (i, key) in order.iter().enumerate() {
        map.insert(key.as_bytes().to_vec(), i as u32 % 3);
    }
    map
}

/// Encoding is the sorted map's, whatever the insertion order, and decodes back.
#[test]
fn encodes_as_the_sorted_map_and_decodes_back() {
    let map = filled(&["user-0003", "a", "user-0001", "zz", "user-0002"]);
    let sorted: BTreeMap<Vec<u8>, u32> =
        map.iter_unordered().map(|(k, v)| (k.clone(), *v)).collect();
    let bytes = crate::transfer::encode(&map);
    assert_eq!(bytes, crate::transfer::encode(&sorted));
    let decoded: KeyMap<u32> = crate::transfer::decode(&bytes).expect("decodes");
    assert_eq!(decoded, map);
}

/// Two maps with the same entries, filled in different orders, are equal, hash the
/// same and print the same (in key order).
#[test]
fn order_of_insertion_is_not_observable() {
    let a = filled(&["k1", "k2", "k3", "k4"]);
    let mut b = KeyMap::default();
    for key in ["k4", "k2", "k1", "k3"] {
        let value = a.get(key.as_bytes()).copied().expect("present");
        b.insert(key.as_bytes().to_vec(), value);
    }
    assert_eq!(a, b);
    let hasher = BuildHasherDefault::<DefaultHasher>::default();
    assert_eq!(hasher.hash_one(&a), hasher.hash_one(&b));
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    let keys: Vec<&[u8]> = a.sorted().into_iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(keys, [b"k1", b"k2", b"k3", b"k4"]);
}

/// Lookups, in-place changes, defaults, and retain (which gives memory back once most
/// keys are gone).
#[test]
fn lookups_changes_and_retain() {
    let mut map: KeyMap<Vec<u32>> = KeyMap::default();
    map.entry_or_default(b"a".to_vec()).push(1);
    map.entry_or_default(b"a".to_vec()).push(2);
    assert_eq!(map[b"a".as_slice()], [1, 2]);
    if let Some(v) = map.get_mut(b"a".as_slice()) {
        v.clear();
    }
    assert!(map.get(b"a".as_slice()).is_some_and(Vec::is_empty));
    assert!(!map.contains_key(b"b".as_slice()));
    for i in 0..10_000u32 {
        map.insert(format!("key-{i:05}").into_bytes(), vec![i]);
    }
    assert_eq!(map.len(), 10_001);
    map.retain(|_, v| v.first().is_some_and(|&i| i < 10));
    assert_eq!(map.len(), 10);
    assert!(map.map.capacity() < 100, "retain gave memory back");
    assert!(!map.is_empty());
}
