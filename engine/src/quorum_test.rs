use super::*;

#[test]
fn fast_quorum_sizes_match_the_paper_for_n_3_to_9() {
    assert_eq!(
        [3, 5, 7, 9].map(epaxos_fast_quorum),
        [2, 3, 5, 6],
        "F + floor((F+1)/2)"
    );
}

#[test]
fn an_even_count_takes_the_fast_quorum_of_the_next_odd_one() {
    assert_eq!([2, 4, 6, 20].map(epaxos_fast_quorum), [2, 3, 5, 15]);
    for n in [2, 4, 6, 20] {
        assert_eq!(epaxos_fast_quorum(n), epaxos_fast_quorum(n + 1));
        assert_eq!(majority(n), majority(n + 1));
        // Any two fast quorums meet, and a fast quorum meets every majority.
        assert!(2 * epaxos_fast_quorum(n) > n);
        assert!(epaxos_fast_quorum(n) + majority(n) > n);
    }
}

#[test]
fn majority_of_odd_and_even_sizes() {
    assert_eq!([1, 2, 3, 4, 5].map(majority), [1, 2, 2, 3, 3]);
}

#[test]
fn flexible_quorums_must_intersect() {
    assert!(PaxosQuorums::flexible(5, 4, 2).is_ok());
    assert!(PaxosQuorums::flexible(5, 3, 2).is_err());
    assert!(PaxosQuorums::flexible(5, 6, 1).is_err());
}

#[test]
fn vote_set_fires_once_and_ignores_duplicates() {
    let mut votes = VoteSet::new(2);
    assert!(!votes.add(NodeId(1)));
    assert!(!votes.add(NodeId(1)));
    assert!(votes.add(NodeId(2)));
    assert!(!votes.add(NodeId(3)));
    assert_eq!(votes.len(), 3);
}
