//! EPaxos hot paths: dependency computation against a populated per-key index, and SCC
//! execution of 10k-100k committed instances (random interference and long chains
//! committed in reverse order, a restart's replay in log order, a hot key whose first
//! command commits last).

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use meridian_engine::epaxos::{
    Attributes, Batch, Deps, Executor, InstanceId, KeyIndex, Payload, RanEverywhere,
};
use meridian_engine::session::KEY_SESSION_WINDOW;
use meridian_engine::{ClientId, Command, NodeId, RequestId, Time};

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
        resend: false,
        command: Command::Put {
            key: format!("k{key}").into_bytes(),
            value: b"v".to_vec(),
        },
        change: None,
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
                index.attributes_for(instance(i, 5), &p.command, &RanEverywhere::new())
            });
        });
    }
    group.finish();
}

/// Instance `id`, the `i`-th committed: a put on `key` after `deps`, in epoch 0.
fn committed(id: InstanceId, i: u64, key: u64, deps: Deps) -> (InstanceId, Payload, Attributes) {
    let attributes = Attributes {
        seq: i + 1,
        deps,
        epoch: 0,
    };
    (id, payload(i, key), attributes)
}

/// Committed instances where each depends on the previous instance on its key (plus, for
/// a fraction, on an instance of another key, forming cross-key cycles).
fn committed_graph(n: u64, keys: u64) -> Graph {
    let mut last_on_key: Vec<Option<InstanceId>> = vec![None; keys as usize];
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        let key = (i * 7_919) % keys;
        let id = instance(i, 5);
        let mut deps = Deps::new();
        if let Some(prev) = last_on_key[key as usize] {
            deps.insert(prev);
        }
        last_on_key[key as usize] = Some(id);
        out.push(committed(id, i, key, deps));
    }
    out
}

/// One command in seven on one of 11 hot keys (each depending on the previous one on its
/// key, which another leader proposed), the rest on keys of their own.
fn hot_and_unique_graph(n: u64) -> Graph {
    let mut last_on_key: Vec<Option<InstanceId>> = vec![None; 11];
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        let id = instance(i, 5);
        let mut deps = Deps::new();
        let key = if i % 7 == 0 {
            let hot = ((i / 7) % 11) as usize;
            if let Some(prev) = last_on_key[hot] {
                deps.insert(prev);
            }
            last_on_key[hot] = Some(id);
            hot as u64
        } else {
            11 + i
        };
        out.push(committed(id, i, key, deps));
    }
    out
}

/// Every command on one key, proposed by 13 leaders in turn: each depends on the 13
/// before it (100% conflicts at 13 replicas), and the first one commits last, so every
/// other commit finds the whole backlog waiting for it.
fn hot_key_first_committed_last(n: u64) -> Graph {
    let replicas = 13;
    let mut out: Graph = (0..n)
        .map(|i| {
            let deps = (i.saturating_sub(replicas)..i)
                .map(|d| instance(d, replicas as u16))
                .collect();
            committed(instance(i, replicas as u16), i, 0, deps)
        })
        .collect();
    out.rotate_left(1);
    out
}

type Graph = Vec<(InstanceId, Payload, Attributes)>;

/// Commit every instance of `graph`, in its order, into a fresh executor.
fn bench_commits(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    graph: Graph,
) {
    let n = graph.len();
    group.bench_with_input(BenchmarkId::new(name, n), &graph, |b, graph| {
        b.iter_batched(
            || graph.clone(),
            |graph| {
                let mut executor = Executor::new(true, KEY_SESSION_WINDOW);
                for (id, p, a) in graph {
                    executor.commit(Time::ZERO, id, Batch::single(p), a);
                }
                executor.order().len()
            },
            BatchSize::LargeInput,
        );
    });
}

fn scc_execution(c: &mut Criterion) {
    let mut group = c.benchmark_group("epaxos/execution");
    group.sample_size(10);
    for &n in &[10_000u64, 100_000] {
        group.throughput(Throughput::Elements(n));
        bench_commits(&mut group, "commit_in_order", committed_graph(n, 1_000));
        let mut chain = committed_graph(n, 1);
        chain.reverse();
        bench_commits(&mut group, "chain_committed_in_reverse", chain);
        // A restart replays the log in instance order (leader by leader): commits on a
        // hot key arrive before the other leaders' instances they depend on and wait,
        // while the commits on unique keys around them run at once.
        let mut replay = hot_and_unique_graph(n);
        replay.sort_by_key(|(id, _, _)| *id);
        bench_commits(&mut group, "commit_in_log_order", replay);
    }
    for &n in &[1_000u64, 4_000] {
        group.throughput(Throughput::Elements(n));
        let hot = hot_key_first_committed_last(n);
        bench_commits(&mut group, "hot_key_first_committed_last", hot);
    }
    group.finish();
}

criterion_group!(benches, dependency_computation, scc_execution);
criterion_main!(benches);
