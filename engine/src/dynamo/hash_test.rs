use super::*;

#[test]
fn fnv1a_matches_the_published_test_vector_before_mixing() {
    // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c (Noll's reference table).
    let mut h = Hasher64::default();
    h.bytes(b"a");
    assert_eq!(h.state, 0xaf63_dc4c_8601_ec8c);
    assert_eq!(h.finish(), mix64(0xaf63_dc4c_8601_ec8c));
}

#[test]
fn field_framing_separates_concatenations() {
    let a = Hasher64::default().field(b"ab").field(b"c").finish();
    let b = Hasher64::default().field(b"a").field(b"bc").finish();
    assert_ne!(a, b);
}
