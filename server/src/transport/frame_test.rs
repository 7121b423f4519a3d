use super::*;
use proptest::prelude::*;
use serde::Deserialize;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Sample {
    Ping(u64),
    Data { key: Vec<u8>, value: Option<String> },
}

fn sample() -> Sample {
    Sample::Data {
        key: b"k".to_vec(),
        value: Some("v".into()),
    }
}

#[test]
fn frames_round_trip_back_to_back() {
    let mut bytes = encode(&Sample::Ping(7), 1024).unwrap();
    bytes.extend(encode(&sample(), 1024).unwrap());
    let (first, used) = decode::<Sample>(&bytes, 1024).unwrap().unwrap();
    assert_eq!(first, Sample::Ping(7));
    let (second, used2) = decode::<Sample>(&bytes[used..], 1024).unwrap().unwrap();
    assert_eq!(second, sample());
    assert_eq!(used + used2, bytes.len());
}

#[test]
fn a_partial_frame_asks_for_more() {
    let bytes = encode(&sample(), 1024).unwrap();
    for cut in 0..bytes.len() {
        assert!(decode::<Sample>(&bytes[..cut], 1024).unwrap().is_none());
    }
}

#[test]
fn an_oversized_length_is_refused_before_reading_the_payload() {
    let bytes = (1u32 << 30).to_le_bytes();
    assert!(matches!(
        decode::<Sample>(&bytes, 1024),
        Err(FrameError::Oversized { len, max: 1024 }) if len == 1 << 30
    ));
    assert!(matches!(
        encode(&vec![0u8; 2000], 1024),
        Err(FrameError::Oversized { .. })
    ));
}

#[test]
fn a_one_frame_stream_holds_exactly_one_frame() {
    let bytes = encode(&sample(), 1024).unwrap();
    assert_eq!(decode_sole::<Sample>(&bytes, 1024).unwrap(), Some(sample()));
    assert_eq!(decode_sole::<Sample>(&[], 1024).unwrap(), None);
    for cut in 1..bytes.len() {
        let expected = if cut < HEADER_LEN {
            HEADER_LEN
        } else {
            bytes.len()
        };
        assert!(
            matches!(
                decode_sole::<Sample>(&bytes[..cut], 1024),
                Err(FrameError::Truncated { got, expected: e }) if got == cut && e == expected
            ),
            "cut at {cut}"
        );
    }
    let mut two = bytes.clone();
    two.extend(encode(&Sample::Ping(2), 1024).unwrap());
    assert!(matches!(
        decode_sole::<Sample>(&two, 1024),
        Err(FrameError::AfterFrame { extra }) if extra == two.len() - bytes.len()
    ));
    assert!(matches!(
        decode_sole::<Sample>(&(1u32 << 30).to_le_bytes(), 1024),
        Err(FrameError::Oversized { .. })
    ));
}

#[test]
fn trailing_bytes_inside_a_frame_are_malformed() {
    let mut bytes = encode(&Sample::Ping(1), 1024).unwrap();
    bytes.push(0);
    let len = (bytes.len() - HEADER_LEN) as u32;
    bytes[..HEADER_LEN].copy_from_slice(&len.to_le_bytes());
    assert!(matches!(
        decode::<Sample>(&bytes, 1024),
        Err(FrameError::Malformed(_))
    ));
}

#[tokio::test]
async fn reader_tells_clean_end_from_truncation() {
    let bytes = encode(&sample(), 1024).unwrap();
    let mut whole = &bytes[..];
    assert_eq!(
        read::<Sample, _>(&mut whole, 1024).await.unwrap(),
        Some(sample())
    );
    assert!(read::<Sample, _>(&mut whole, 1024).await.unwrap().is_none());
    let mut cut = &bytes[..bytes.len() - 1];
    assert!(matches!(
        read::<Sample, _>(&mut cut, 1024).await,
        Err(FrameError::Truncated { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Peer input never panics the decoder: any bytes give a message, a request for
    /// more, or an error.
    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode::<Sample>(&bytes, 64);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let mut reader = &bytes[..];
            while let Ok(Some(_)) = read::<Sample, _>(&mut reader, 64).await {}
        });
    }

    /// Arbitrary bytes behind a valid length prefix never panic either.
    #[test]
    fn arbitrary_payloads_never_panic_the_decoder(payload in proptest::collection::vec(any::<u8>(), 0..128)) {
        let mut bytes = (payload.len() as u32).to_le_bytes().to_vec();
        bytes.extend(&payload);
        let _ = decode::<Sample>(&bytes, 1024);
        let _ = decode::<meridian_engine::ClientRequest>(&bytes, 1024);
    }
}
