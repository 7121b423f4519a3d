use super::*;

#[test]
fn hex_round_trips_every_byte_and_rejects_bad_digits() {
    let all: Vec<u8> = (0..=255).collect();
    let text = encode_hex(&all);
    assert_eq!(&text[..6], "000102");
    assert_eq!(decode_hex(&text).unwrap(), all);
    assert_eq!(decode_hex("FFfe").unwrap(), vec![0xff, 0xfe]);
    assert!(decode_hex("abc").is_err());
    assert!(decode_hex("zz").is_err());
}

#[test]
fn base64_matches_rfc4648_vectors_and_round_trips() {
    let vectors = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];
    for (plain, encoded) in vectors {
        assert_eq!(encode_base64(plain.as_bytes()), encoded);
        assert_eq!(decode_base64(encoded).unwrap(), plain.as_bytes());
    }
    let all: Vec<u8> = (0..=255).rev().collect();
    assert_eq!(decode_base64(&encode_base64(&all)).unwrap(), all);
    assert!(decode_base64("Zm9").is_err());
    assert!(decode_base64("Zg==Zm9v").is_err());
    assert!(decode_base64("Z!==").is_err());
}

#[test]
fn utf8_takes_text_as_it_is() {
    assert_eq!(Encoding::Utf8.decode("héllo").unwrap(), "héllo".as_bytes());
    assert_eq!(Encoding::Hex.decode("00ff").unwrap(), vec![0, 255]);
    assert_eq!(Encoding::Base64.encode(&[0, 255]), "AP8=");
}
