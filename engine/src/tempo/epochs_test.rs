//! Ranges of timestamps per configuration epoch (`epochs.rs`).

use super::Epochs;
use crate::configuration::{Change, Configuration, ProposedChange};
use crate::id::NodeId;
use crate::protocol::Membership;

fn remove(from_epoch: u64, id: u16) -> ProposedChange {
    ProposedChange {
        from_epoch,
        change: Change::Remove(NodeId(id)),
    }
}

#[test]
fn epoch_zero_owns_every_timestamp_until_a_switch_closes_it() {
    let epochs = Epochs::new(Configuration::initial(&Membership::local(5)));
    assert_eq!(epochs.current().epoch(), 0);
    assert!(epochs.runs(0, 1));
    assert!(epochs.runs(0, u64::MAX));
    let span = epochs.span_at(7);
    assert_eq!((span.low, span.high), (0, None));
}

#[test]
fn a_switch_splits_the_timestamps_between_the_epochs() {
    let mut epochs = Epochs::new(Configuration::initial(&Membership::local(5)));
    let next = epochs.apply(&remove(0, 4), 100).unwrap();
    assert_eq!(next.epoch(), 1);
    assert_eq!(next.voter_count(), 4);
    epochs.apply(&remove(1, 3), 250).unwrap();
    // Epoch 0 owns (0, 100], epoch 1 (100, 250], epoch 2 the rest; each end belongs
    // to the epoch its switch closed.
    assert!(epochs.runs(0, 100) && !epochs.runs(0, 101));
    assert!(epochs.runs(1, 101) && epochs.runs(1, 250) && !epochs.runs(1, 100));
    assert!(epochs.runs(2, 251) && !epochs.runs(2, 250));
    let spans: Vec<(u64, u64, Option<u64>)> = epochs
        .spans_from(150)
        .map(|s| (s.configuration.epoch(), s.low, s.high))
        .collect();
    assert_eq!(spans, [(1, 100, Some(250)), (2, 250, None)]);
    assert_eq!(epochs.get(1).map(|c| c.voter_count()), Some(4));
    assert_eq!(epochs.get(3), None);
}

#[test]
fn a_switch_from_an_ended_epoch_changes_nothing() {
    let mut epochs = Epochs::new(Configuration::initial(&Membership::local(5)));
    epochs.apply(&remove(0, 4), 100).unwrap();
    let before = epochs.clone();
    assert!(epochs.apply(&remove(0, 3), 120).is_err());
    assert_eq!(epochs, before);
}
