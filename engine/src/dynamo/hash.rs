//! Deterministic 64-bit hashing for ring positions, Merkle trees and object digests.
//!
//! FNV-1a (Fowler, Noll, Vo) over the bytes, then the splitmix64 finalizer so that short
//! inputs still spread over all 64 bits (plain FNV-1a has weak high bits on short keys,
//! which would cluster ring positions). No seed, no `RandomState`: every node computes
//! the same value on every platform.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// splitmix64's finalizer: a bijective avalanche of one word.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hash of two words, order-sensitive.
pub(crate) fn mix2(a: u64, b: u64) -> u64 {
    mix64(a ^ mix64(b).wrapping_add(0x9E37_79B9_7F4A_7C15))
}

/// An incremental FNV-1a hasher with a mixed output.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hasher64 {
    state: u64,
}

impl Default for Hasher64 {
    fn default() -> Self {
        Self { state: FNV_OFFSET }
    }
}

impl Hasher64 {
    pub(crate) fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        for &b in bytes {
            self.state ^= u64::from(b);
            self.state = self.state.wrapping_mul(FNV_PRIME);
        }
        self
    }

    pub(crate) fn u64(&mut self, value: u64) -> &mut Self {
        self.bytes(&value.to_le_bytes())
    }

    /// A length-prefixed byte string, so `("ab","c")` and `("a","bc")` differ.
    pub(crate) fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.u64(bytes.len() as u64).bytes(bytes)
    }

    pub(crate) fn finish(&self) -> u64 {
        mix64(self.state)
    }
}

/// Hash of one byte string.
pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    Hasher64::default().bytes(bytes).finish()
}

#[cfg(test)]
#[path = "hash_test.rs"]
mod tests;
