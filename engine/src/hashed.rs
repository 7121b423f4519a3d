//! [`HashedMap`]: the hash map of the tables looked up on every command (the key-value
//! map, the session table, [`KeyMap`](crate::key_map::KeyMap), a core's counters).
//!
//! Their keys come from clients (keys, client ids), so the hasher is seeded at random per
//! map, as std's is, and nothing observable may depend on iteration order (each table
//! encodes, hashes and prints in sorted order). std's SipHash-1-3 cost a few per cent of a
//! simulated `gcp-13` run, where every replica looks up every command's key and client
//! several times; foldhash's fast hasher (hashbrown's default) does the same lookups for a
//! fraction of that, keeping a random per-map seed against chosen collisions.

/// A `HashMap` with a fast, randomly seeded hasher.
pub type HashedMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
