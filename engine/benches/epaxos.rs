//! EPaxos hot paths: dependency computation against a populated per-key index, and SCC
//! execution of 10k-100k committed instances (random interference and long chains
//! committed in reverse order).

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use meridian_engine::epaxos::{Attributes, Executor, InstanceId, KeyIndex, Payload};
use meridian_engine::{ClientId, Command, NodeId, RequestId, Time};
use std::collections::BTreeSet;

fn instance(i: u64, replicas: u16) -> InstanceId {
    InstanceId {
        leader: NodeId((i % u64::from(replicas)) as u16),
        slot: i / u64::from(replicas),
    }
}

fn payload(i: u64, key: u64) -> Payload {
    Payload {
        request: RequestId {
            client: ClientId(i % 64),
            seq: i,
        },
        command: Command::Put {
            key: format!("k{key}").into_bytes(),
            value: b"v".to_vec(),
        },
    }
}

fn dependency_computation(c: &mut Criterion) {
    let mut group = c.benchmark_group("epaxos/dependencies");
    for &n in &[10_000u64, 100_000] {
        let keys = 1_000;
        let mut index = KeyIndex::default();
        for i in 0..n {
            let p = payload(i, i % keys);
            index.insert(instance(i, 5), &p.command, i + 1);
        }
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("attributes_for", n), &n, |b, &n| {
            let mut i = n;
            b.iter(|| {
                i += 1;
                let p = payload(i, i % keys);
                index.attributes_for(instance(i, 5), &p.command)
            });
        });
    }
    group.finish();
}

/// Committed instances where each depends on the previous instance on its key (plus, for
/// a fraction, on an instance of another key, forming cross-key cycles).
fn committed_graph(n: u64, keys: u64) -> Vec<(InstanceId, Payload, Attributes)> {
    let mut last_on_key: Vec<Option<InstanceId>> = vec![None; keys as usize];
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        let key = (i * 7_919) % keys;
        let id = instance(i, 5);
        let mut deps = BTreeSet::new();
        if let Some(prev) = last_on_key[key as usize] {
            deps.insert(prev);
        }
        last_on_key[key as usize] = Some(id);
        out.push((id, payload(i, key), Attributes { seq: i + 1, deps }));
    }
    out
}

fn scc_execution(c: &mut Criterion) {
    let mut group = c.benchmark_group("epaxos/execution");
    group.sample_size(10);
    for &n in &[10_000u64, 100_000] {
        group.throughput(Throughput::Elements(n));
        let in_order = committed_graph(n, 1_000);
        group.bench_with_input(
            BenchmarkId::new("commit_in_order", n),
            &in_order,
            |b, graph| {
                b.iter_batched(
                    || graph.clone(),
                    |graph| {
                        let mut executor = Executor::new(true);
                        for (id, p, a) in graph {
                            executor.commit(Time::ZERO, id, p, a);
                        }
                        executor.order().len()
                    },
                    BatchSize::LargeInput,
                );
            },
        );
        let chain = committed_graph(n, 1);
        group.bench_with_input(
            BenchmarkId::new("chain_committed_in_reverse", n),
            &chain,
            |b, graph| {
                b.iter_batched(
                    || graph.clone(),
                    |graph| {
                        let mut executor = Executor::new(true);
                        for (id, p, a) in graph.into_iter().rev() {
                            executor.commit(Time::ZERO, id, p, a);
                        }
                        executor.order().len()
                    },
                    BatchSize::LargeInput,
                );
            },
        );
    }
    group.finish();
}

criterion_group!(benches, dependency_computation, scc_execution);
criterion_main!(benches);
