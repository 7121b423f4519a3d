use super::*;

#[test]
fn a_hello_of_the_same_version_passes_and_others_are_told_apart() {
    assert!(check(&hello(WIRE_VERSION), WIRE_VERSION).is_ok());
    let err = check(&hello(WIRE_VERSION + 1), WIRE_VERSION).unwrap_err();
    assert!(
        matches!(err, HelloError::Version { theirs, ours } if theirs == WIRE_VERSION + 1 && ours == WIRE_VERSION)
    );
    assert!(err.to_string().contains("wire version 2"), "{err}");
    // A frame length prefix where a hello should be.
    let frame_start = [3, 0, 0, 0, 0xff, 0xff, 0x7f, 0];
    assert!(matches!(
        check(&frame_start, WIRE_VERSION),
        Err(HelloError::NotMeridian)
    ));
}

#[tokio::test]
async fn a_stream_cut_inside_its_hello_is_an_io_error() {
    let bytes = hello(WIRE_VERSION);
    let mut cut = &bytes[..5];
    assert!(matches!(
        read(&mut cut, WIRE_VERSION).await,
        Err(HelloError::Io(_))
    ));
    let mut whole = &bytes[..];
    read(&mut whole, WIRE_VERSION).await.unwrap();
}
