//! On-disk record framing: `[len: u32 LE][crc32: u32 LE][payload]`.
//!
//! The CRC (IEEE CRC-32, via `crc32fast`) covers the length and the payload, so a torn
//! length field is detected too. [`decode_all`] tells a torn tail (the last write did not
//! finish: ignored) from corruption before the tail (an error).
//!
//! A log may end in zeros: space its file holds ahead of the records, so that a sync
//! writes inside the file's length and `fdatasync` need not record a new size. A frame
//! header of eight zero bytes ends the log (no record has one: a record's CRC covers its
//! length, and the CRC of a zero length is not zero); the bytes after it must be zeros too.

/// Bytes of framing before each payload.
pub const HEADER_LEN: usize = 8;
/// Largest payload accepted; a bigger length field is corruption.
pub const MAX_RECORD_LEN: usize = 64 * 1024 * 1024;

/// Why a log could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A complete record before the end failed its checksum or had an impossible length.
    #[error("corrupt record at byte offset {offset}: {reason}")]
    Corrupt {
        /// Offset of the bad record's header.
        offset: usize,
        /// What was wrong.
        reason: &'static str,
    },
}

/// What [`decode_all`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Every intact record in order.
    pub records: Vec<Vec<u8>>,
    /// Bytes covered by intact records; a torn tail starts here.
    pub valid_len: usize,
    /// Whether bytes after `valid_len` were dropped as a torn tail (not counting zeros
    /// reserved after the last record, which are no tail).
    pub torn_tail: bool,
}

/// Whether `bytes` holds nothing but zeros (space reserved after the log's records).
fn all_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

fn checksum(len_bytes: [u8; 4], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len_bytes);
    hasher.update(payload);
    hasher.finalize()
}

/// Append one framed record to `out`.
pub fn encode(payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let len_bytes = len.to_le_bytes();
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(&checksum(len_bytes, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Decode a whole log.
///
/// A record whose frame runs past the end of `bytes`, or the last record when its checksum
/// fails (only zeros after it), is a torn tail. A failing record followed by more data is
/// corruption: a write that was acknowledged later depends on it, so it must not be
/// skipped. A zero frame header ends the log if only zeros follow it, and is corruption
/// otherwise (a zeroed header would hide the records after it).
pub fn decode_all(bytes: &[u8]) -> Result<Decoded, FrameError> {
    let mut records = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let torn = Ok(Decoded {
            records: Vec::new(),
            valid_len: offset,
            torn_tail: true,
        });
        let rest = &bytes[offset..];
        let header = rest.get(..HEADER_LEN);
        // Only a zero (or short) header can start the reserved zeros; checking the rest
        // just then keeps the scan linear.
        if header.is_none_or(all_zero) && all_zero(rest) {
            return Ok(Decoded {
                records,
                valid_len: offset,
                torn_tail: false,
            });
        }
        let Some(header) = header else {
            return torn.map(|d| Decoded { records, ..d });
        };
        if all_zero(header) {
            return Err(FrameError::Corrupt {
                offset,
                reason: "zero record header before more data",
            });
        }
        let len_bytes = [header[0], header[1], header[2], header[3]];
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let len = u32::from_le_bytes(len_bytes) as usize;
        let end = offset + HEADER_LEN + len;
        if len > MAX_RECORD_LEN || end > bytes.len() {
            // A length past the end is what a torn write looks like; an absurd one that
            // still leaves data after it is corruption.
            if len > MAX_RECORD_LEN && bytes.len() - offset > HEADER_LEN + MAX_RECORD_LEN {
                return Err(FrameError::Corrupt {
                    offset,
                    reason: "length field out of range",
                });
            }
            return torn.map(|d| Decoded { records, ..d });
        }
        let payload = &bytes[offset + HEADER_LEN..end];
        if checksum(len_bytes, payload) != crc {
            if all_zero(&bytes[end..]) {
                return torn.map(|d| Decoded { records, ..d });
            }
            return Err(FrameError::Corrupt {
                offset,
                reason: "checksum mismatch",
            });
        }
        records.push(payload.to_vec());
        offset = end;
    }
    Ok(Decoded {
        records,
        valid_len: offset,
        torn_tail: false,
    })
}

#[cfg(test)]
#[path = "record_test.rs"]
mod tests;
