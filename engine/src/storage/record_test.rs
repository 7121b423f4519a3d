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

#[test]
fn zeros_after_the_records_end_the_log() {
    let records = log_of(&[b"one", b"", b"three"]);
    // Reserved space of every size, a short one (fewer bytes than a frame header) included.
    for zeros in [0, 1, HEADER_LEN - 1, HEADER_LEN, 4096] {
        let mut bytes = records.clone();
        bytes.resize(records.len() + zeros, 0);
        let decoded = decode_all(&bytes).unwrap();
        assert_eq!(decoded.records.len(), 3, "{zeros} zeros");
        assert_eq!(decoded.valid_len, records.len(), "{zeros} zeros");
        assert!(!decoded.torn_tail, "{zeros} zeros");
    }
    let empty = decode_all(&[0; 100]).unwrap();
    assert!(empty.records.is_empty() && empty.valid_len == 0 && !empty.torn_tail);
}

#[test]
fn a_torn_record_in_reserved_space_is_a_torn_tail() {
    let intact = log_of(&[b"one"]);
    let mut bytes = log_of(&[b"one", b"a longer second record"]);
    // The write landed in part: its last bytes are still the reserved zeros.
    let len = bytes.len();
    bytes[len - 5..].fill(0);
    bytes.resize(len + 1000, 0);
    let decoded = decode_all(&bytes).unwrap();
    assert_eq!(decoded.records, vec![b"one".to_vec()]);
    assert_eq!(decoded.valid_len, intact.len());
    assert!(decoded.torn_tail);
}

#[test]
fn a_zeroed_header_before_records_is_an_error() {
    let mut bytes = log_of(&[b"one", b"two", b"three"]);
    bytes[..HEADER_LEN].fill(0);
    assert_eq!(
        decode_all(&bytes),
        Err(FrameError::Corrupt {
            offset: 0,
            reason: "zero record header before more data"
        })
    );
}
