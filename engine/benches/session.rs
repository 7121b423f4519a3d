//! Exactly-once bookkeeping per executed command: the Multi-Paxos session table
//! (`admit` then `record`) with 1,000 clients taking turns, the table full (results
//! expiring by age), and the key-value map's write of a rewritten key.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meridian_engine::session::{Admission, SessionTable};
use meridian_engine::state_machine::{KvStore, StateMachine};
use meridian_engine::{ClientId, Command, CommandResult, RequestId};

const CLIENTS: u64 = 1_000;

fn request(i: u64) -> RequestId {
    RequestId {
        client: ClientId(i % CLIENTS),
        seq: i / CLIENTS,
    }
}

fn session_table(c: &mut Criterion) {
    let mut group = c.benchmark_group("session_table");
    group.throughput(Throughput::Elements(1));
    let mut table = SessionTable::new();
    // Past the default result age (50,000 commands), so every record also forgets one.
    let warm = 200_000;
    for i in 0..warm {
        table.record(request(i), CommandResult::Written);
    }
    let mut i = warm;
    group.bench_function("admit_and_record", |b| {
        b.iter(|| {
            let id = request(i);
            i += 1;
            if table.admit(id) == Admission::Execute {
                table.record(id, CommandResult::Written);
            }
        });
    });
    group.finish();
}

fn key_value_write(c: &mut Criterion) {
    let mut group = c.benchmark_group("kv_store");
    group.throughput(Throughput::Elements(1));
    let keys = 8_000u64;
    let put = |i: u64| Command::Put {
        key: format!("client-{:06}-key-{}", i % keys / 8, i % 8).into_bytes(),
        value: vec![b'v'; 16],
    };
    let mut kv = KvStore::new();
    for i in 0..keys {
        kv.apply(&put(i));
    }
    let commands: Vec<Command> = (0..keys).map(put).collect();
    let mut i = 0usize;
    group.bench_function("rewrite_of_8k_keys", |b| {
        b.iter(|| {
            i = (i + 7_919) % commands.len();
            kv.apply(&commands[i])
        });
    });
    group.finish();
}

criterion_group!(benches, session_table, key_value_write);
criterion_main!(benches);
