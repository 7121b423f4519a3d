use super::*;

fn log_of(payloads: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in payloads {
        encode(p, &mut out);
    }
    out
}

#[test]
fn round_trips_records() {
    let bytes = log_of(&[b"one", b"", b"three"]);
    let decoded = decode_all(&bytes).unwrap();
    assert_eq!(
        decoded.records,
        vec![b"one".to_vec(), vec![], b"three".to_vec()]
    );
    assert!(!decoded.torn_tail);
    assert_eq!(decoded.valid_len, bytes.len());
}

#[test]
fn a_truncated_last_record_is_a_torn_tail() {
    let bytes = log_of(&[b"one", b"two"]);
    for cut in (bytes.len() - 10)..bytes.len() {
        let decoded = decode_all(&bytes[..cut]).unwrap();
        assert_eq!(decoded.records, vec![b"one".to_vec()], "cut at {cut}");
        assert!(decoded.torn_tail);
        assert_eq!(decoded.valid_len, HEADER_LEN + 3);
    }
}

#[test]
fn a_garbled_last_record_is_a_torn_tail() {
    let mut bytes = log_of(&[b"one", b"two"]);
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    let decoded = decode_all(&bytes).unwrap();
    assert_eq!(decoded.records, vec![b"one".to_vec()]);
    assert!(decoded.torn_tail);
}

#[test]
fn corruption_before_the_tail_is_an_error() {
    let mut bytes = log_of(&[b"one", b"two", b"three"]);
    bytes[HEADER_LEN] ^= 0xff; // first payload byte
    assert_eq!(
        decode_all(&bytes),
        Err(FrameError::Corrupt {
            offset: 0,
            reason: "checksum mismatch"
        })
    );
}
