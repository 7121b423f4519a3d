//! Rebuilding a Dynamo node from its durable records, in order: the last
//! `Record::Object` of a key is its state, `ObjectRemoved` forgets it (tombstone
//! collection), hints come and go with `Hint`/`HintRemoved`, and the last `Epoch` is the
//! previous boot's (the next epoch is derived from it), the last `Ring` the ring state
//! (ranges are re-indexed for it afterwards). Compaction (`Dynamo::maybe_compact`)
//! writes the same records for the live state only.

use super::{DynamoConfig, HintStore, MerkleIndex, Record, Ring, RingState, Store};
use crate::time::Time;

/// A node's durable state folded from its records.
pub(super) struct Replayed {
    pub(super) store: Store,
    pub(super) merkle: MerkleIndex,
    pub(super) hints: HintStore,
    /// The epoch of the last boot that wrote this log (0 on a fresh disk).
    pub(super) previous_epoch: u64,
    /// How many records the log held (compaction compares it with the live state).
    pub(super) records: usize,
    /// The last ring state adopted (`None`: the initial one).
    pub(super) ring_state: Option<RingState>,
}

/// Fold `recovered` into the state it describes.
pub(super) fn replay(ring: &Ring, config: &DynamoConfig, recovered: Vec<Record>) -> Replayed {
    let mut store = Store::default();
    let mut merkle = MerkleIndex::new(config.merkle_fanout, config.merkle_depth);
    let mut hints = HintStore::new(config.hints.clone());
    let mut previous_epoch = 0u64;
    let mut ring_state = None;
    let records = recovered.len();
    for record in recovered {
        match record {
            Record::Epoch { epoch } => previous_epoch = epoch,
            Record::Object { key, object } => {
                let range = ring.range_of(&key);
                let old = store.put(key.clone(), object, range, Time::ZERO);
                let new = store.get(&key).map(|e| e.digest);
                merkle.update(range, &key, old, new);
            }
            Record::ObjectRemoved { key } => {
                if let Some(entry) = store.remove(&key) {
                    merkle.update(entry.range, &key, Some(entry.digest), None);
                }
            }
            Record::Hint {
                seq,
                owner,
                key,
                object,
            } => hints.restore(seq, owner, key, object),
            Record::HintRemoved { owner, key, seq } => {
                hints.remove_exact(owner, &key, seq);
            }
            Record::Ring { state } => ring_state = Some(state),
        }
    }
    Replayed {
        store,
        merkle,
        hints,
        previous_epoch,
        records,
        ring_state,
    }
}
