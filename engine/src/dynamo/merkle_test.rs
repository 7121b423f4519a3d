use super::*;

#[test]
fn equal_key_sets_give_equal_roots_in_any_insertion_order() {
    let mut a = MerkleIndex::new(16, 2);
    let mut b = MerkleIndex::new(16, 2);
    let r = RangeId(3);
    for i in 0..50u64 {
        a.update(r, &i.to_le_bytes(), None, Some(i * 7));
    }
    for i in (0..50u64).rev() {
        b.update(r, &i.to_le_bytes(), None, Some(i * 7));
    }
    assert_eq!(a.level(r, 0), b.level(r, 0));
    b.update(r, &7u64.to_le_bytes(), Some(49), Some(50));
    assert_ne!(a.level(r, 0), b.level(r, 0));
    let leaf = a.leaf_of(&7u64.to_le_bytes());
    let theirs: Vec<(u32, u64)> = b
        .level(r, 2)
        .into_iter()
        .enumerate()
        .map(|(i, h)| (i as u32, h))
        .collect();
    assert_eq!(
        a.differing(r, 2, &theirs),
        vec![leaf],
        "only the changed key's leaf differs"
    );
    b.update(r, &7u64.to_le_bytes(), Some(50), Some(49));
    assert_eq!(a.level(r, 0), b.level(r, 0), "XOR leaves undo exactly");
}

#[test]
fn an_empty_range_hashes_like_a_range_never_touched() {
    let mut a = MerkleIndex::new(16, 2);
    let b = MerkleIndex::new(16, 2);
    a.update(RangeId(0), b"k", None, Some(1));
    a.update(RangeId(0), b"k", Some(1), None);
    assert_eq!(a.level(RangeId(0), 0), b.level(RangeId(0), 0));
}
