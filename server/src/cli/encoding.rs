//! How the CLI spells keys and values: UTF-8 text, hex or base64 (RFC 4648, padded).
//!
//! `--encoding` applies to every key and value given on the command line and to every
//! key and value printed. Bytes read with `--value-file` are taken as they are.

use clap::ValueEnum;

/// A spelling of bytes as text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Encoding {
    /// UTF-8 text (printed lossily in text output; JSON output switches to base64 for
    /// bytes that are not UTF-8 and says so in its `encoding` field).
    #[default]
    Utf8,
    /// Two lowercase hex digits per byte (either case accepted).
    Hex,
    /// Standard base64 with padding.
    Base64,
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

impl Encoding {
    /// The name used in `--encoding` and in JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Utf8 => "utf8",
            Self::Hex => "hex",
            Self::Base64 => "base64",
        }
    }

    /// The bytes `text` spells.
    pub fn decode(self, text: &str) -> Result<Vec<u8>, String> {
        match self {
            Self::Utf8 => Ok(text.as_bytes().to_vec()),
            Self::Hex => decode_hex(text),
            Self::Base64 => decode_base64(text),
        }
    }

    /// `bytes` spelled in this encoding (UTF-8: lossily).
    pub fn encode(self, bytes: &[u8]) -> String {
        match self {
            Self::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
            Self::Hex => encode_hex(bytes),
            Self::Base64 => encode_base64(bytes),
        }
    }
}

/// Lowercase hex.
pub fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// Hex in either case, an even number of digits.
pub fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits = text.as_bytes();
    if digits.len() % 2 != 0 {
        return Err(format!("hex {text:?} has an odd number of digits"));
    }
    let nibble = |c: u8| -> Result<u8, String> {
        char::from(c)
            .to_digit(16)
            .map(|d| d as u8)
            .ok_or_else(|| format!("{:?} is not a hex digit", char::from(c)))
    };
    digits
        .chunks(2)
        .map(|pair| Ok(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// Standard base64 with `=` padding.
pub fn encode_base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let index = (n >> (18 - 6 * i)) & 0x3f;
                out.push(char::from(BASE64[index as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64; padding is required to complete the last group of four.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim_end();
    if text.len() % 4 != 0 {
        return Err(format!(
            "base64 of {} characters: the length must be a multiple of 4 (pad with =)",
            text.len()
        ));
    }
    let value = |c: u8| -> Result<u32, String> {
        BASE64
            .iter()
            .position(|&d| d == c)
            .map(|p| p as u32)
            .ok_or_else(|| format!("{:?} is not a base64 character", char::from(c)))
    };
    let groups = text.len() / 4;
    let mut out = Vec::with_capacity(groups * 3);
    for (g, quad) in text.as_bytes().chunks(4).enumerate() {
        let padding = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if padding > 2 || (padding > 0 && g + 1 != groups) {
            return Err("misplaced base64 padding".to_owned());
        }
        let mut n = 0u32;
        for &c in &quad[..4 - padding] {
            n = n << 6 | value(c)?;
        }
        n <<= 6 * padding as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - padding]);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "encoding_test.rs"]
mod tests;
