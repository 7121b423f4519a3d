//! Quorum bookkeeping: a leader tracking votes for many in-flight slots/instances at once
//! (one VoteSet each, replies arriving interleaved), for N = 3, 5, 9.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use meridian_engine::quorum::{epaxos_fast_quorum, majority, VoteSet};
use meridian_engine::NodeId;
use std::collections::BTreeMap;

/// Count replies for `in_flight` instances until each reaches `needed`; returns how many
/// completed (all of them).
fn track(in_flight: u64, n: u16, needed: usize) -> usize {
    let mut open: BTreeMap<u64, VoteSet> = (0..in_flight)
        .map(|slot| (slot, VoteSet::new(needed)))
        .collect();
    let mut done = 0;
    // Replies arrive replica by replica, each covering every in-flight instance.
    for voter in 0..n {
        for slot in 0..in_flight {
            if let Some(votes) = open.get_mut(&slot) {
                votes.add(NodeId(voter));
                if votes.is_complete() {
                    open.remove(&slot);
                    done += 1;
                }
            }
        }
    }
    done
}

fn bookkeeping(c: &mut Criterion) {
    let mut group = c.benchmark_group("quorum");
    let in_flight = 1_000u64;
    group.throughput(Throughput::Elements(in_flight));
    for n in [3u16, 5, 9] {
        let n_usize = usize::from(n);
        group.bench_with_input(BenchmarkId::new("majority_votes", n), &n, |b, &n| {
            b.iter(|| assert_eq!(track(in_flight, n, majority(n_usize)), 1_000))
        });
        group.bench_with_input(
            BenchmarkId::new("epaxos_fast_quorum_votes", n),
            &n,
            |b, &n| b.iter(|| assert_eq!(track(in_flight, n, epaxos_fast_quorum(n_usize)), 1_000)),
        );
    }
    group.finish();
}

criterion_group!(benches, bookkeeping);
criterion_main!(benches);
