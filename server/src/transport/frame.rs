//! Length-delimited postcard frames: `[len: u32 LE][postcard payload of len bytes]`.
//!
//! The length is checked against a maximum before anything is allocated, and a payload
//! must decode exactly (no trailing bytes). Any error here is fatal for the stream it
//! came on: the caller logs it and closes that connection; other connections go on.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes of the length prefix.
pub const HEADER_LEN: usize = 4;
/// Default largest payload accepted (16 MiB).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix exceeds the limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    Oversized {
        /// Announced (or encoded) payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The payload is not a valid message.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({got} of {expected} bytes)")]
    Truncated {
        /// Bytes received of the frame.
        got: usize,
        /// Bytes the frame needed.
        expected: usize,
    },
    /// A stream meant to carry one frame carries more.
    #[error("a one-frame stream carries {extra} bytes after its frame")]
    AfterFrame {
        /// Bytes after the frame (at least; the read stopped at the limit).
        extra: usize,
    },
    /// The stream failed.
    #[error("stream error: {0}")]
    Io(#[from] std::io::Error),
}

/// Encode `message` as one frame.
pub fn encode<T: Serialize>(message: &T, max_bytes: usize) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![0u8; HEADER_LEN];
    out = postcard::to_extend(message, out).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let len = out.len() - HEADER_LEN;
    if len > max_bytes {
        return Err(FrameError::Oversized {
            len,
            max: max_bytes,
        });
    }
    let prefix = u32::try_from(len).map_err(|_| FrameError::Oversized {
        len,
        max: max_bytes,
    })?;
    out[..HEADER_LEN].copy_from_slice(&prefix.to_le_bytes());
    Ok(out)
}

fn payload_len(header: [u8; HEADER_LEN], max_bytes: usize) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(header) as usize;
    if len > max_bytes {
        return Err(FrameError::Oversized {
            len,
            max: max_bytes,
        });
    }
    Ok(len)
}

fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    match postcard::take_from_bytes(payload) {
        Ok((message, [])) => Ok(message),
        Ok((_, rest)) => Err(FrameError::Malformed(format!(
            "{} trailing bytes after the message",
            rest.len()
        ))),
        Err(e) => Err(FrameError::Malformed(e.to_string())),
    }
}

/// Decode the first frame of `bytes`: `Ok(None)` if more bytes are needed, else the
/// message and the bytes it used.
pub fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    max_bytes: usize,
) -> Result<Option<(T, usize)>, FrameError> {
    let Some(header) = bytes.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let len = payload_len([header[0], header[1], header[2], header[3]], max_bytes)?;
    let Some(payload) = bytes.get(HEADER_LEN..HEADER_LEN + len) else {
        return Ok(None);
    };
    Ok(Some((decode_payload(payload)?, HEADER_LEN + len)))
}

/// The one frame `bytes` (a whole stream) holds: `Ok(None)` if it is empty; an error if
/// the frame is cut short or followed by anything.
pub fn decode_sole<T: DeserializeOwned>(
    bytes: &[u8],
    max_bytes: usize,
) -> Result<Option<T>, FrameError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    match decode(bytes, max_bytes)? {
        Some((message, used)) if used == bytes.len() => Ok(Some(message)),
        Some((_, used)) => Err(FrameError::AfterFrame {
            extra: bytes.len() - used,
        }),
        None => Err(FrameError::Truncated {
            got: bytes.len(),
            expected: match bytes.get(..HEADER_LEN) {
                Some(h) => HEADER_LEN + u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize,
                None => HEADER_LEN,
            },
        }),
    }
}

/// Read the one frame a request or reply stream carries, and the stream's end. Reading to
/// the end, not just the frame, lets the stream close cleanly: a receive stream dropped
/// before its end sends the peer a STOP_SENDING, one more frame per request each way.
pub async fn read_sole<T: DeserializeOwned>(
    recv: &mut quinn::RecvStream,
    max_bytes: usize,
) -> Result<Option<T>, FrameError> {
    let limit = max_bytes.saturating_add(HEADER_LEN);
    let bytes = recv.read_to_end(limit).await.map_err(|e| match e {
        // More than the largest frame: at least one byte over the limit.
        quinn::ReadToEndError::TooLong => FrameError::Oversized {
            len: limit.saturating_sub(HEADER_LEN).saturating_add(1),
            max: max_bytes,
        },
        quinn::ReadToEndError::Read(e) => FrameError::Io(e.into()),
    })?;
    decode_sole(&bytes, max_bytes)
}

/// Read one frame. `Ok(None)` when the stream ends cleanly between frames.
pub async fn read<T: DeserializeOwned, R: AsyncRead + Unpin>(
    reader: &mut R,
    max_bytes: usize,
) -> Result<Option<T>, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        let n = reader.read(&mut header[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(FrameError::Truncated {
                got,
                expected: HEADER_LEN,
            });
        }
        got += n;
    }
    let len = payload_len(header, max_bytes)?;
    let mut payload = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        let n = reader.read(&mut payload[filled..]).await?;
        if n == 0 {
            return Err(FrameError::Truncated {
                got: HEADER_LEN + filled,
                expected: HEADER_LEN + len,
            });
        }
        filled += n;
    }
    decode_payload(&payload).map(Some)
}

/// Write one frame (not flushed past the writer's own buffering).
pub async fn write<T: Serialize, W: AsyncWrite + Unpin>(
    writer: &mut W,
    message: &T,
    max_bytes: usize,
) -> Result<(), FrameError> {
    let bytes = encode(message, max_bytes)?;
    writer.write_all(&bytes).await?;
    Ok(())
}

#[cfg(test)]
#[path = "frame_test.rs"]
mod tests;
