//! The hello that opens every peer stream: `[magic "MRDN"][wire version: u32 LE]`.
//!
//! ```text
//!  writer: open_uni ─▶ hello(WIRE_VERSION) ─▶ frame, frame, ...
//!  reader: accept_uni ─▶ read hello ─┬─ same version ─▶ frames
//!                                    └─ other version ─▶ close the connection (CLOSE_VERSION,
//!                                       reason names both versions), log, count
//! ```
//!
//! Frames are postcard, which does not describe itself: a peer of another release could
//! decode into the wrong message without any error. The hello is fixed-layout bytes that
//! every release can read, so a mixed-version pair refuses each other clearly instead.
//! The peer ALPN (`meridian-peer/1`) names the kind of connection and stays fixed while
//! this hello layout does; the wire version is what changes between releases.

use tokio::io::{AsyncRead, AsyncReadExt};

/// First bytes of every peer stream.
pub const WIRE_MAGIC: [u8; 4] = *b"MRDN";
/// The peer wire format this binary speaks: the frame layout and every protocol's
/// `Message` encoding. Bump it whenever either changes meaning; see docs/deployment.md,
/// "Upgrades".
pub const WIRE_VERSION: u32 = 1;
/// Bytes of a hello.
pub const HELLO_LEN: usize = WIRE_MAGIC.len() + 4;

/// The hello announcing `version`.
pub fn hello(version: u32) -> [u8; HELLO_LEN] {
    let mut bytes = [0u8; HELLO_LEN];
    bytes[..WIRE_MAGIC.len()].copy_from_slice(&WIRE_MAGIC);
    bytes[WIRE_MAGIC.len()..].copy_from_slice(&version.to_le_bytes());
    bytes
}

/// Why a stream's hello was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum HelloError {
    /// The stream ended or failed before a whole hello arrived.
    #[error("stream ended before its hello: {0}")]
    Io(#[from] std::io::Error),
    /// The stream does not start with the magic: not a Meridian peer stream.
    #[error("the stream does not start with a Meridian hello")]
    NotMeridian,
    /// The peer speaks another wire version.
    #[error(
        "the peer speaks wire version {theirs}; this node speaks version {ours} \
         (a cluster runs one wire version: see docs/deployment.md, \"Upgrades\")"
    )]
    Version {
        /// The peer's version.
        theirs: u32,
        /// This node's version.
        ours: u32,
    },
}

/// Read a stream's hello and check it against `ours`.
pub async fn read<R: AsyncRead + Unpin>(reader: &mut R, ours: u32) -> Result<(), HelloError> {
    let mut bytes = [0u8; HELLO_LEN];
    reader.read_exact(&mut bytes).await?;
    check(&bytes, ours)
}

/// Check a hello's bytes against `ours`.
pub fn check(bytes: &[u8; HELLO_LEN], ours: u32) -> Result<(), HelloError> {
    if bytes[..WIRE_MAGIC.len()] != WIRE_MAGIC {
        return Err(HelloError::NotMeridian);
    }
    let mut version = [0u8; 4];
    version.copy_from_slice(&bytes[WIRE_MAGIC.len()..]);
    let theirs = u32::from_le_bytes(version);
    if theirs != ours {
        return Err(HelloError::Version { theirs, ours });
    }
    Ok(())
}

#[cfg(test)]
#[path = "hello_test.rs"]
mod tests;
