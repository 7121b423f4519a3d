use super::*;

fn hello(version: u32) -> Hello {
    Hello {
        version,
        instance: 0x0123_4567_89ab_cdef,
        started_ms: 1_700_000_000_000,
    }
}

fn prefix(bytes: &[u8; HELLO_LEN]) -> [u8; PREFIX_LEN] {
    let mut prefix = [0u8; PREFIX_LEN];
    prefix.copy_from_slice(&bytes[..PREFIX_LEN]);
    prefix
}

#[test]
fn a_hello_of_the_same_version_passes_and_others_are_told_apart() {
    assert!(check(&prefix(&hello(WIRE_VERSION).encode()), WIRE_VERSION).is_ok());
    let err = check(&prefix(&hello(WIRE_VERSION + 1).encode()), WIRE_VERSION).unwrap_err();
    assert!(
        matches!(err, HelloError::Version { theirs, ours } if theirs == WIRE_VERSION + 1 && ours == WIRE_VERSION)
    );
    assert!(
        err.to_string()
            .contains(&format!("wire version {}", WIRE_VERSION + 1)),
        "{err}"
    );
    // A frame length prefix where a hello should be.
    let frame_start = [3, 0, 0, 0, 0xff, 0xff, 0x7f, 0];
    assert!(matches!(
        check(&frame_start, WIRE_VERSION),
        Err(HelloError::NotMeridian)
    ));
}

#[tokio::test]
async fn a_hello_round_trips_and_a_cut_one_is_an_io_error() {
    let bytes = hello(WIRE_VERSION).encode();
    let mut cut = &bytes[..5];
    assert!(matches!(
        read(&mut cut, WIRE_VERSION).await,
        Err(HelloError::Io(_))
    ));
    let mut cut_after_version = &bytes[..PREFIX_LEN + 3];
    assert!(matches!(
        read(&mut cut_after_version, WIRE_VERSION).await,
        Err(HelloError::Io(_))
    ));
    let mut whole = &bytes[..];
    assert_eq!(
        read(&mut whole, WIRE_VERSION).await.unwrap(),
        hello(WIRE_VERSION)
    );
}

/// A release-1 node sends only the magic and its version: it is refused on those 8
/// bytes, not left waiting for an instance that never comes.
#[tokio::test]
async fn an_older_hello_is_refused_on_its_first_eight_bytes() {
    let mut old = [0u8; PREFIX_LEN];
    old[..4].copy_from_slice(&WIRE_MAGIC);
    old[4..].copy_from_slice(&1u32.to_le_bytes());
    let mut stream = &old[..];
    assert!(matches!(
        read(&mut stream, WIRE_VERSION).await,
        Err(HelloError::Version { theirs: 1, .. })
    ));
}
