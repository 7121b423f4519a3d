use super::*;
use std::collections::BTreeSet;

fn at(leader: u16, slot: u64) -> InstanceId {
    InstanceId {
        leader: NodeId(leader),
        slot,
    }
}

#[test]
fn deps_keep_set_order_without_repeats() {
    let mut deps = Deps::new();
    assert!(deps.insert(at(2, 5)));
    assert!(deps.insert(at(0, 9)));
    assert!(!deps.insert(at(2, 5)), "a repeat is not new");
    deps.extend([at(1, 1), at(0, 9), at(2, 0)]);
    let listed: Vec<InstanceId> = deps.iter().copied().collect();
    assert_eq!(listed, [at(0, 9), at(1, 1), at(2, 0), at(2, 5)]);
    assert!(deps.contains(&at(1, 1)));
    assert!(deps.remove(&at(1, 1)));
    assert!(!deps.remove(&at(1, 1)), "already gone");
    assert!(!deps.contains(&at(1, 1)));
    assert_eq!(deps.len(), 3);
}

#[test]
fn deps_encode_and_compare_as_the_set_they_replaced() {
    let ids = [at(3, 1), at(0, 7), at(3, 0), at(0, 7)];
    let set: BTreeSet<InstanceId> = ids.into_iter().collect();
    let deps: Deps = ids.into_iter().collect();
    let set_bytes = postcard::to_allocvec(&set).expect("encodes");
    assert_eq!(postcard::to_allocvec(&deps).expect("encodes"), set_bytes);
    assert_eq!(format!("{deps:?}"), format!("{set:?}"));
    let smaller: Deps = [at(0, 7), at(3, 0)].into_iter().collect();
    let smaller_set: BTreeSet<InstanceId> = smaller.iter().copied().collect();
    assert_eq!(smaller.cmp(&deps), smaller_set.cmp(&set));
}

#[test]
fn decoded_deps_are_sorted_and_without_repeats_whatever_the_sender_wrote() {
    let unsorted = vec![at(4, 2), at(1, 0), at(4, 2), at(0, 3)];
    let bytes = postcard::to_allocvec(&unsorted).expect("encodes");
    let deps: Deps = postcard::from_bytes(&bytes).expect("decodes");
    let listed: Vec<InstanceId> = deps.iter().copied().collect();
    assert_eq!(listed, [at(0, 3), at(1, 0), at(4, 2)]);
}
