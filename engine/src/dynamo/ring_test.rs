//! Ring and preference lists.
//! Reference: DeCandia et al., "Dynamo" (SOSP 2007) §4.2 (virtual nodes), §4.3
//! (preference list of N distinct physical nodes), §4.6 (hinted handoff to the next
//! nodes on the ring).

use super::ring::Ring;
use crate::id::NodeId;
use crate::protocol::{Member, Membership};
use std::collections::{BTreeMap, BTreeSet};

fn cluster(regions: &[(&str, u16)]) -> Membership {
    let mut members = Vec::new();
    for (region, count) in regions {
        for _ in 0..*count {
            members.push(Member {
                id: NodeId(members.len() as u16),
                region: (*region).to_owned(),
            });
        }
    }
    Membership {
        members,
        rtt_us: Vec::new(),
    }
}

fn keys() -> impl Iterator<Item = Vec<u8>> {
    (0..2_000u32).map(|i| format!("key-{i}").into_bytes())
}

#[test]
fn every_preference_list_has_n_distinct_nodes() {
    let ring = Ring::new(&Membership::local(5), 16, 3);
    for key in keys() {
        let list = ring.preference_for(&key);
        assert_eq!(list.len(), 3);
        let distinct: BTreeSet<_> = list.iter().collect();
        assert_eq!(distinct.len(), 3, "{list:?}");
    }
}

#[test]
fn preference_lists_spread_over_regions_when_possible() {
    let three = Ring::new(&cluster(&[("va", 2), ("ca", 2), ("ie", 2)]), 16, 3);
    let two = Ring::new(&cluster(&[("va", 3), ("ie", 2)]), 16, 3);
    for key in keys() {
        let regions: BTreeSet<&str> = three
            .preference_for(&key)
            .iter()
            .map(|&n| three.region_of(n))
            .collect();
        assert_eq!(
            regions.len(),
            3,
            "one owner per region with 3 regions and N=3"
        );
        let regions: BTreeSet<&str> = two
            .preference_for(&key)
            .iter()
            .map(|&n| two.region_of(n))
            .collect();
        assert_eq!(regions.len(), 2, "both regions hold a copy");
    }
}

#[test]
fn the_ring_is_deterministic() {
    let a = Ring::new(&cluster(&[("va", 2), ("ie", 3)]), 8, 3);
    let b = Ring::new(&cluster(&[("va", 2), ("ie", 3)]), 8, 3);
    assert_eq!(a, b);
    // Pinned: FNV-1a + splitmix, no per-process hasher state.
    let owners = a.preference_for(b"alpha").to_vec();
    assert_eq!(owners, b.preference_for(b"alpha"));
    assert_eq!(a.range_of(b"alpha"), b.range_of(b"alpha"));
}

#[test]
fn ownership_is_spread_over_every_node() {
    let ring = Ring::new(&Membership::local(5), 16, 3);
    let mut owned: BTreeMap<NodeId, usize> = BTreeMap::new();
    for key in keys() {
        for &n in ring.preference_for(&key) {
            *owned.entry(n).or_default() += 1;
        }
    }
    assert_eq!(owned.len(), 5);
    let fair = 2_000 * 3 / 5;
    for (node, count) in owned {
        assert!(
            count > fair / 2 && count < fair * 2,
            "{node} owns {count} of 6000 copies (fair share {fair})"
        );
    }
}

#[test]
fn replicas_are_capped_at_the_cluster_size() {
    let ring = Ring::new(&Membership::local(2), 4, 3);
    assert_eq!(ring.replicas(), 2);
    assert_eq!(ring.preference_for(b"k").len(), 2);
}

#[test]
fn fallbacks_are_non_owners_preferring_the_owners_region() {
    let ring = Ring::new(&cluster(&[("va", 3), ("ie", 3)]), 16, 2);
    for key in keys().take(200) {
        let range = ring.range_of(&key);
        let owners = ring.preference(range);
        let fallbacks = ring.fallbacks(range);
        assert_eq!(owners.len() + fallbacks.len(), 6);
        assert!(fallbacks.iter().all(|f| !owners.contains(f)));
        let owner = owners[0];
        let taken: BTreeSet<NodeId> = owners.iter().copied().collect();
        let chosen = ring
            .fallback_for(range, owner, &taken, |_| true)
            .expect("four non-owners exist");
        assert_eq!(ring.region_of(chosen), ring.region_of(owner));
        let none_usable = ring.fallback_for(range, owner, &taken, |_| false);
        assert_eq!(none_usable, None);
    }
}

#[test]
fn keys_of_a_range_share_its_preference_list() {
    let ring = Ring::new(&Membership::local(4), 8, 3);
    let mut seen: BTreeMap<_, Vec<NodeId>> = BTreeMap::new();
    for key in keys() {
        let range = ring.range_of(&key);
        let list = ring.preference_for(&key).to_vec();
        let first = seen.entry(range).or_insert_with(|| list.clone());
        assert_eq!(*first, list);
    }
    let lists: BTreeSet<Vec<NodeId>> = ring.ranges().map(|r| ring.preference(r).to_vec()).collect();
    assert_eq!(
        lists.len(),
        ring.range_count(),
        "one range per distinct preference list"
    );
}
