use super::*;
use crate::command::Key;
use crate::id::NodeId;

fn put(key: &str) -> Command {
    Command::Put {
        key: key.into(),
        value: b"v".to_vec(),
    }
}

fn get(key: &str) -> Command {
    Command::Get { key: key.into() }
}

fn at(leader: u16, slot: u64) -> InstanceId {
    InstanceId {
        leader: NodeId(leader),
        slot,
    }
}

/// A key named by one leader holds one entry with room for one, not a map node with
/// room for eleven (every replica indexes every key written in the last seconds).
#[test]
fn a_key_of_one_leader_holds_one_entry() {
    let mut index = KeyIndex::default();
    index.insert(at(3, 7), &put("k"), 1);
    let leaders = &index.keys[&b"k".to_vec()];
    assert_eq!(leaders.0.len(), 1);
    assert_eq!(leaders.0.capacity(), 1);
}

/// Entries stay sorted by leader whatever the insertion order, so attributes and
/// encodings do not depend on the order instances arrived in.
#[test]
fn entries_of_several_leaders_stay_sorted_and_all_count() {
    let mut index = KeyIndex::default();
    index.insert(at(4, 1), &put("k"), 3);
    index.insert(at(0, 2), &put("k"), 1);
    index.insert(at(2, 5), &get("k"), 2);
    index.insert(at(0, 3), &put("k"), 4);
    let leaders: Vec<NodeId> = index.keys[&b"k".to_vec()].0.iter().map(|e| e.0).collect();
    assert_eq!(leaders, [NodeId(0), NodeId(2), NodeId(4)]);
    let attributes = index.attributes_for(at(1, 0), &put("k"), &RanEverywhere::new());
    let deps: Vec<InstanceId> = attributes.deps.iter().copied().collect();
    assert_eq!(deps, [at(0, 3), at(2, 5), at(4, 1)]);
    assert_eq!(attributes.seq, 5);
}

/// The keys encode as the map of maps the sorted vectors replaced, followed by the
/// barriers in the same shape; the index decodes to itself.
#[test]
fn the_index_encodes_as_the_maps_it_replaced() {
    let mut index = KeyIndex::default();
    index.insert(at(1, 4), &put("a"), 2);
    index.insert(at(0, 9), &get("a"), 3);
    index.insert(at(2, 1), &put("b"), 1);
    let mut old: BTreeMap<Key, BTreeMap<NodeId, KeyEntry>> = BTreeMap::new();
    for (key, leaders) in index.keys.iter_unordered() {
        let map = old.entry(key.clone()).or_default();
        for (leader, entry) in &leaders.0 {
            map.insert(*leader, entry.clone());
        }
    }
    assert_eq!(old[&b"a".to_vec()].len(), 2);
    let bytes = crate::transfer::encode(&index);
    let no_barriers: BTreeMap<NodeId, KeyEntry> = BTreeMap::new();
    assert_eq!(bytes, crate::transfer::encode(&(old, no_barriers)));
    let decoded: KeyIndex = crate::transfer::decode(&bytes).expect("decodes");
    assert_eq!(decoded, index);
}

/// Pruning drops the leaders whose instances all ran everywhere, then empty keys.
#[test]
fn prune_drops_collected_leaders_then_empty_keys() {
    let mut index = KeyIndex::default();
    index.insert(at(0, 1), &put("a"), 1);
    index.insert(at(1, 8), &put("a"), 2);
    index.insert(at(0, 2), &put("b"), 1);
    let floor: BTreeMap<NodeId, u64> = [(NodeId(0), 5), (NodeId(1), 5)].into();
    assert_eq!(index.prune(&floor), 1);
    let leaders: Vec<NodeId> = index.keys[&b"a".to_vec()].0.iter().map(|e| e.0).collect();
    assert_eq!(leaders, [NodeId(1)]);
    assert!(!index.keys.contains_key(b"b".as_slice()));
}

/// Instances below a leader's ran-everywhere floor are neither dependencies nor counted
/// in the sequence number; the other leaders' entries still are.
#[test]
fn what_ran_everywhere_is_left_out() {
    let mut index = KeyIndex::default();
    index.insert(at(0, 2), &put("k"), 7);
    index.insert(at(2, 5), &put("k"), 3);
    let floor: RanEverywhere = [(NodeId(0), 3), (NodeId(2), 5)].into_iter().collect();
    let attributes = index.attributes_for(at(1, 0), &put("k"), &floor);
    let deps: Vec<InstanceId> = attributes.deps.iter().copied().collect();
    assert_eq!(deps, [at(2, 5)]);
    assert_eq!(attributes.seq, 4);
}

fn switch() -> Batch {
    use crate::configuration::{Change, ProposedChange};
    let change = ProposedChange {
        from_epoch: 0,
        change: Change::Remove(NodeId(9)),
    };
    Batch::single(super::super::Payload::switch(
        crate::id::RequestId {
            client: crate::id::ClientId(u64::MAX),
            seq: 1,
        },
        change,
    ))
}

/// A switch is a barrier (docs/design.md, "EPaxos epochs", rule 2): it follows the
/// latest write and the reads after it of every key, and every later command, read or
/// write, on any key follows it.
#[test]
fn a_switch_follows_every_key_and_everything_follows_it() {
    let mut index = KeyIndex::default();
    index.insert(at(0, 1), &put("a"), 1);
    index.insert(at(1, 1), &get("a"), 2);
    index.insert(at(2, 4), &put("b"), 5);
    let none = RanEverywhere::new();
    let attributes = index.attributes_for_batch(at(1, 2), &switch(), &none);
    let deps: Vec<InstanceId> = attributes.deps.iter().copied().collect();
    assert_eq!(deps, [at(0, 1), at(1, 1), at(2, 4)]);
    assert_eq!(attributes.seq, 6);
    index.insert_batch(at(1, 2), &switch(), attributes.seq);
    for command in [get("a"), put("c")] {
        let later = index.attributes_for(at(0, 2), &command, &none);
        assert!(
            later.deps.contains(&at(1, 2)),
            "{command:?} follows the switch"
        );
        assert!(later.seq > 6);
    }
    let next_switch = index.attributes_for_batch(at(0, 3), &switch(), &none);
    assert!(
        next_switch.deps.contains(&at(1, 2)),
        "switches are ordered too"
    );
    assert!(
        !index.keys.contains_key(b"".as_slice()),
        "a switch names no key"
    );
}

/// A switch every replica executed is pruned like any entry.
#[test]
fn a_switch_that_ran_everywhere_is_pruned() {
    let mut index = KeyIndex::default();
    index.insert_batch(at(1, 2), &switch(), 1);
    index.prune(&[(NodeId(1), 2)].into());
    assert!(
        !index.barriers.0.is_empty(),
        "slot 2 is not below the floor"
    );
    index.prune(&[(NodeId(1), 3)].into());
    assert!(index.barriers.0.is_empty());
    let later = index.attributes_for(at(0, 0), &put("a"), &RanEverywhere::new());
    assert!(later.deps.is_empty());
}
