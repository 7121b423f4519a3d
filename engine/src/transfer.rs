//! Chunked state transfer: a replica behind its peers' compaction point fetches a
//! snapshot from one of them, a chunk at a time, over the protocol's own messages.
//!
//! ```text
//!  receiver ──SnapshotRequest{at: 0, offset: 0}──▶ source: encode the state now (at = A)
//!           ◀─SnapshotChunk{at: A, offset, total, bytes}──
//!           ──SnapshotRequest{at: A, offset'}───▶ source: next chunk of the same encoding
//!           ...                                   (a source that dropped A starts anew)
//! ```
//! The receiver drives: it asks for the next chunk when one arrives and asks again when
//! one is late, so lost, duplicated and reordered messages only cost time. The source
//! holds one encoding at a time. Protocols keep their own snapshot types; this module
//! only moves bytes (encoded with `postcard`, whose format is compact and stable).

use crate::id::NodeId;
use crate::time::Time;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;

/// Largest encoding a receiver accepts (a larger `total` is malformed).
pub const MAX_SNAPSHOT_BYTES: u64 = 1 << 34;

/// Encode a snapshot for transfer.
pub fn encode<T: Serialize>(snapshot: &T) -> Vec<u8> {
    // Serializing plain data into a Vec cannot fail; an empty encoding would be refused
    // by the receiver's decode, never installed.
    postcard::to_allocvec(snapshot).unwrap_or_default()
}

/// The length of `value`'s encoding, without encoding it.
pub fn encoded_len<T: Serialize>(value: &T) -> u64 {
    postcard::experimental::serialized_size(value).map_or(0, |n| n as u64)
}

/// Decode a transferred snapshot; `None` if the bytes are not one.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    postcard::from_bytes(bytes).ok()
}

/// The encoding a source serves chunks of.
#[derive(Clone, Debug)]
pub struct Outgoing {
    at: u64,
    bytes: Vec<u8>,
    last_used: Time,
}

impl Outgoing {
    /// Serve `bytes`, the encoding of the snapshot taken at `at`.
    pub fn new(at: u64, bytes: Vec<u8>, now: Time) -> Self {
        Self {
            at,
            bytes,
            last_used: now,
        }
    }

    /// The snapshot's frontier.
    pub fn at(&self) -> u64 {
        self.at
    }

    /// When a chunk was last served.
    pub fn last_used(&self) -> Time {
        self.last_used
    }

    /// Encoded size.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Whether the encoding is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The chunk at `offset`, at most `max` bytes, or `None` past the end.
    pub fn chunk(&mut self, offset: u64, max: usize, now: Time) -> Option<Vec<u8>> {
        let start = usize::try_from(offset).ok()?;
        if start >= self.bytes.len() {
            return None;
        }
        self.last_used = now;
        let end = start.saturating_add(max.max(1)).min(self.bytes.len());
        Some(self.bytes[start..end].to_vec())
    }
}

/// One chunk as served: `(at, offset, total, bytes)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// The encoding's id.
    pub at: u64,
    /// Byte offset.
    pub offset: u64,
    /// Encoded length.
    pub total: u64,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// Answers a source encoded for receivers that rejoin after a lost disk, one per
/// receiver, named by the receiver's attempt (a nonce drawn at its boot). Retries and
/// duplicated requests of one attempt are served from the same encoding (from the start
/// if another encoding was asked for), so they never make the source encode anew; an
/// answer taken for an earlier attempt is never served to a later one.
#[derive(Clone, Debug, Default)]
pub struct Answers {
    held: BTreeMap<NodeId, (u64, Outgoing)>,
    /// The last encoding's id.
    encodings: u64,
}

impl Answers {
    /// Whether an answer for `to`'s attempt `nonce` is held (no new encoding needed).
    pub fn holds(&self, to: NodeId, nonce: u64) -> bool {
        self.held.get(&to).is_some_and(|(held, _)| *held == nonce)
    }

    /// The chunk (at most `max` bytes) at `offset` of answer `at` for `to`'s attempt
    /// `nonce`; the held answer's first chunk if it is another, and a new answer from
    /// `encode` if none is held for this attempt. `None` past the end.
    pub fn serve(
        &mut self,
        to: NodeId,
        nonce: u64,
        (at, offset): (u64, u64),
        max: usize,
        now: Time,
        encode: impl FnOnce() -> Vec<u8>,
    ) -> Option<Chunk> {
        let (at, offset) = match self.held.get(&to) {
            Some((held, outgoing)) if *held == nonce && outgoing.at() == at => (at, offset),
            Some((held, outgoing)) if *held == nonce => (outgoing.at(), 0),
            _ => {
                let fresh = (self.encodings + 1).max(now.as_micros());
                self.encodings = fresh;
                let outgoing = Outgoing::new(fresh, encode(), now);
                self.held.insert(to, (nonce, outgoing));
                (fresh, 0)
            }
        };
        let (_, outgoing) = self.held.get_mut(&to)?;
        let total = outgoing.len();
        let bytes = outgoing.chunk(offset, max, now)?;
        Some(Chunk {
            at,
            offset,
            total,
            bytes,
        })
    }

    /// Forget the answer held for `to` (it rejoined).
    pub fn forget(&mut self, to: NodeId) {
        self.held.remove(&to);
    }
}

/// What a receiver does after a chunk.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// Ask the source for the chunk at `offset` of the snapshot at `at`.
    Next {
        /// Snapshot frontier.
        at: u64,
        /// Byte offset.
        offset: u64,
    },
    /// Every byte is here: decode and install.
    Complete(Vec<u8>),
    /// Not the chunk expected (another source, a duplicate, out of order, malformed).
    Ignored,
}

/// A transfer in progress at the receiver.
#[derive(Clone, Debug)]
pub struct Incoming {
    from: NodeId,
    at: u64,
    total: u64,
    bytes: Vec<u8>,
    started: Time,
    last_progress: Time,
}

impl Incoming {
    /// Start fetching from `from`.
    pub fn new(from: NodeId, now: Time) -> Self {
        Self {
            from,
            at: 0,
            total: 0,
            bytes: Vec::new(),
            started: now,
            last_progress: now,
        }
    }

    /// Time since the transfer started, in whole milliseconds (the `last_state_transfer_ms`
    /// gauge an operator reads to see how long catching up by snapshot took).
    pub fn elapsed_ms(&self, now: Time) -> u64 {
        u64::try_from(now.saturating_since(self.started).as_millis()).unwrap_or(u64::MAX)
    }

    /// The source.
    pub fn source(&self) -> NodeId {
        self.from
    }

    /// When the last useful chunk arrived (or the transfer started).
    pub fn last_progress(&self) -> Time {
        self.last_progress
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// What to ask the source for next (`at == 0`: a new snapshot).
    pub fn request(&self) -> (u64, u64) {
        (self.at, self.bytes.len() as u64)
    }

    /// A chunk arrived from `from`.
    pub fn receive(
        &mut self,
        from: NodeId,
        at: u64,
        offset: u64,
        total: u64,
        chunk: Vec<u8>,
        now: Time,
    ) -> Received {
        let end = offset.checked_add(chunk.len() as u64);
        if from != self.from
            || chunk.is_empty()
            || total > MAX_SNAPSHOT_BYTES
            || end.is_none_or(|end| end > total)
        {
            return Received::Ignored;
        }
        if at != self.at {
            // The source serves a newer snapshot (it dropped the one we were fetching):
            // start over with it.
            if offset != 0 {
                return Received::Ignored;
            }
            self.at = at;
            self.total = total;
            self.bytes.clear();
        }
        if offset != self.bytes.len() as u64 || total != self.total {
            return Received::Ignored;
        }
        self.bytes.extend_from_slice(&chunk);
        self.last_progress = now;
        if self.bytes.len() as u64 == self.total {
            return Received::Complete(std::mem::take(&mut self.bytes));
        }
        Received::Next {
            at,
            offset: self.bytes.len() as u64,
        }
    }
}

#[cfg(test)]
#[path = "transfer_test.rs"]
mod tests;
