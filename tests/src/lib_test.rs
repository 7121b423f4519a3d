use super::*;

#[test]
fn uniform_topologies_have_n_replicas() {
    assert_eq!(uniform_topology(7, 10.0).replicas().len(), 7);
}

#[test]
fn prefix_check_accepts_lagging_replicas_and_rejects_divergence() {
    let a = [1, 2, 3];
    let b = [1, 2];
    let c = [1, 3];
    assert!(all_prefixes_of_longest(&[&a[..], &b[..]]).is_ok());
    assert!(all_prefixes_of_longest(&[&a[..], &c[..]]).is_err());
}

#[test]
fn agreement_by_slot_tolerates_lag_and_gaps_but_not_a_different_entry() {
    let a = [(0, 'a'), (1, 'b'), (2, 'c')];
    let lagging = [(0, 'a'), (1, 'b')];
    let with_gap = [(2, 'c'), (3, 'd')];
    assert!(agree_by_slot(&[&a[..], &lagging[..], &with_gap[..]]).is_ok());
    let diverged = [(0, 'a'), (1, 'x')];
    assert!(agree_by_slot(&[&a[..], &diverged[..]]).is_err());
}
