//! The hello that opens every peer stream:
//! `[magic "MRDN"][wire version: u32 LE][instance: u64 LE][started: u64 LE, ms since the epoch]`.
//!
//! ```text
//!  connection up ─▶ each side opens a stream with its hello ─▶ reads the other's hello
//!                     ├─ other version ─▶ close the connection (CLOSE_VERSION, reason
//!                     │                   names both versions), log, count
//!                     └─ same version ─▶ the instance decides: the link of a live
//!                                        established instance stays, another instance
//!                                        of the same node id is refused (CLOSE_DUPLICATE)
//!  writer: open_uni ─▶ hello ─▶ frame, frame, ...    (every later stream opens the same way)
//! ```
//!
//! Frames are postcard, which does not describe itself: a peer of another release could
//! decode into the wrong message without any error. The first 8 bytes (magic and wire
//! version) are fixed-layout bytes that every release can read, so a mixed-version pair
//! refuses each other clearly instead; what follows the version is that version's.
//! The peer ALPN (`meridian-peer/1`) names the kind of connection and stays fixed while
//! this hello layout does; the wire version is what changes between releases.
//!
//! The instance is a random number each transport draws when it starts: two processes
//! holding the same node's certificate (a copied config, a replica started twice) tell
//! themselves apart by it. It is not an incarnation: nothing persists it.

use tokio::io::{AsyncRead, AsyncReadExt};

/// First bytes of every peer stream.
pub const WIRE_MAGIC: [u8; 4] = *b"MRDN";
/// The peer wire format this binary speaks: the hello after the version, the frame
/// layout and every protocol's `Message` encoding. Bump it whenever any changes meaning;
/// see docs/deployment.md, "Upgrades". (2: the hello carries the instance; 3: EPaxos
/// recovery reports say whether they witness the leader's initial-ballot attributes; 4:
/// EPaxos PreAccepts carry what ran everywhere, Dynamo messages the ring version, Tempo's
/// rejoin answer the floor of forgotten clocks; 5: Tempo's `AskPromises`; 6: Tempo's
/// `Inquire`, catch-up by asking; 7: EPaxos attributes carry the instance's configuration
/// epoch, payloads a membership switch, and `EpochMoved` refuses an ended epoch; 8: EPaxos
/// `Executed` reports name the last switch their sender executed; 9: Tempo's epochs (a
/// switch and an epoch in payloads, collected prefixes and configuration epochs in
/// promises and reports); 10: Tempo's floor promises, `Floors` and `AskFloors`; 11: EPaxos
/// rejoin answers say whether the asker may have led instances; `AskNextSlot`, `NextSlot`;
/// 12: EPaxos `AskNextSlot` names the asker's own start; 13: Tempo's key promises carry
/// their announcer's lineage, and may list only the proposals above a clock (`since`).)
pub const WIRE_VERSION: u32 = 13;
/// Bytes every release reads: the magic and the wire version.
pub const PREFIX_LEN: usize = WIRE_MAGIC.len() + 4;
/// Bytes of a hello of this wire version.
pub const HELLO_LEN: usize = PREFIX_LEN + 8 + 8;

/// What a peer says about itself when a stream opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Its wire version.
    pub version: u32,
    /// The random number its transport drew at start.
    pub instance: u64,
    /// When its transport started, in milliseconds since the Unix epoch.
    pub started_ms: u64,
}

impl Hello {
    /// The bytes of this hello.
    pub fn encode(&self) -> [u8; HELLO_LEN] {
        let mut bytes = [0u8; HELLO_LEN];
        bytes[..WIRE_MAGIC.len()].copy_from_slice(&WIRE_MAGIC);
        bytes[WIRE_MAGIC.len()..PREFIX_LEN].copy_from_slice(&self.version.to_le_bytes());
        bytes[PREFIX_LEN..PREFIX_LEN + 8].copy_from_slice(&self.instance.to_le_bytes());
        bytes[PREFIX_LEN + 8..].copy_from_slice(&self.started_ms.to_le_bytes());
        bytes
    }
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

/// Read a stream's hello and check it against `ours`. A hello of another version is
/// refused after its first 8 bytes, whatever follows them.
pub async fn read<R: AsyncRead + Unpin>(reader: &mut R, ours: u32) -> Result<Hello, HelloError> {
    let mut prefix = [0u8; PREFIX_LEN];
    reader.read_exact(&mut prefix).await?;
    let version = check(&prefix, ours)?;
    let mut rest = [0u8; HELLO_LEN - PREFIX_LEN];
    reader.read_exact(&mut rest).await?;
    let word = |at: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&rest[at..at + 8]);
        u64::from_le_bytes(bytes)
    };
    Ok(Hello {
        version,
        instance: word(0),
        started_ms: word(8),
    })
}

/// Check a hello's first 8 bytes against `ours`; returns the version.
pub fn check(prefix: &[u8; PREFIX_LEN], ours: u32) -> Result<u32, HelloError> {
    if prefix[..WIRE_MAGIC.len()] != WIRE_MAGIC {
        return Err(HelloError::NotMeridian);
    }
    let mut version = [0u8; 4];
    version.copy_from_slice(&prefix[WIRE_MAGIC.len()..]);
    let theirs = u32::from_le_bytes(version);
    if theirs != ours {
        return Err(HelloError::Version { theirs, ours });
    }
    Ok(theirs)
}

#[cfg(test)]
#[path = "hello_test.rs"]
mod tests;
