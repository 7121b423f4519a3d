//! Catching up a replica that missed commits.

use super::*;
use crate::tempo::test_support::{config, new_pump, request, synced, timed};
use crate::tempo::Tempo;
use crate::Protocol;
use std::time::Duration;

/// The seqs of the commits node 0 sends node 2 for one report of node 2's (which
/// executed nothing).
fn catch_up_batch(pump: &mut crate::tempo::test_support::Pump) -> Vec<u64> {
    let report = Message::Executed {
        prefix: Vec::new(),
        epoch: 0,
    };
    pump.with_core(NodeId(0), |core: &mut Tempo, now| {
        core.handle_message(now, NodeId(2), report);
        synced(core)
            .1
            .into_iter()
            .filter_map(|(to, message)| match message {
                Message::Commit { dot, .. } if to == NodeId(2) => Some(dot.seq),
                _ => None,
            })
            .collect()
    })
    .expect("node 0 is up")
}

/// A lagging replica's prefix can be held by a command waiting for a commit far above
/// it; successive reports must therefore reach every commit it lacks, batch after batch,
/// and start over once past the end, instead of resending the batch above its prefix.
#[test]
fn catch_up_batches_move_on_past_a_held_prefix_and_wrap_around() {
    let mut pump = new_pump(3, 7, timed(), config(1));
    pump.isolate(NodeId(2));
    let total = CATCH_UP_BATCH * 2 + 10;
    for seq in 1..=total {
        pump.request(NodeId(0), request(seq, &format!("k{seq}")));
    }
    pump.run_for(Duration::from_secs(2));
    let batches: Vec<Vec<u64>> = (0..4).map(|_| catch_up_batch(&mut pump)).collect();
    let first = batches[0].first().copied().expect("a first batch");
    let offsets = |batch: &Vec<u64>| -> Vec<u64> { batch.iter().map(|s| s - first).collect() };
    assert_eq!(
        offsets(&batches[0]),
        (0..CATCH_UP_BATCH).collect::<Vec<_>>()
    );
    assert_eq!(
        offsets(&batches[1]),
        (CATCH_UP_BATCH..2 * CATCH_UP_BATCH).collect::<Vec<_>>()
    );
    assert_eq!(
        offsets(&batches[2]),
        (2 * CATCH_UP_BATCH..total).collect::<Vec<_>>()
    );
    assert_eq!(batches[3], batches[0], "past the end it starts over");
}
