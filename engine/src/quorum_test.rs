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
fn an_even_voter_count_has_no_fast_path() {
    assert_eq!(
        [1, 2, 3, 4, 5, 6, 7].map(epaxos_fast_path_quorum),
        [Some(0), None, Some(2), None, Some(3), None, Some(5)]
    );
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
