//! Log sync hot path: one 100-byte record appended and synced (`fdatasync`), the file
//! extended 4 MiB ahead of its records (what a replica does, `RESERVE_STEP`) against grown
//! by every sync (as a plain append grows it). The logs live under the system's temporary
//! directory (`TMPDIR`), so the figures are that file system's.

use criterion::{criterion_group, criterion_main, Criterion};
use meridian_engine::storage::Storage;
use meridian_server::storage::{FileStorage, RESERVE_STEP};
use std::path::PathBuf;

/// A fresh directory for one benchmark's log, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "meridian-bench-storage-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sync(c: &mut Criterion) {
    let mut group = c.benchmark_group("log_sync_100B");
    let record = vec![b'x'; 100];
    for (name, step) in [("reserved_4MiB", RESERVE_STEP), ("growing", 0)] {
        let scratch = Scratch::new(name);
        let mut log = FileStorage::open_reserving(&scratch.0, step).expect("opens");
        group.bench_function(name, |b| {
            b.iter(|| {
                log.append(std::slice::from_ref(&record)).expect("appends");
                log.sync().expect("syncs")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, sync);
criterion_main!(benches);
