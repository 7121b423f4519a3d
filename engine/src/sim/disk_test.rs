use super::*;
use crate::id::NodeId;

type Disk = SimDisk<u8, u32>;

fn append(records: Vec<u32>, then: Vec<Effect<u8>>) -> PendingWrite<u8, u32> {
    PendingWrite {
        op: DiskOp::Append(records),
        then,
    }
}

fn send(message: u8) -> Effect<u8> {
    Effect::Send {
        to: NodeId(1),
        message,
    }
}

fn synced(disk: &Disk) -> Vec<u32> {
    disk.synced
        .iter()
        .map(|stored| match stored {
            Stored::Appended(record) => *record,
            Stored::Encoded(_) => panic!("no compaction here"),
        })
        .collect()
}

fn finish(disk: &mut Disk) -> (Vec<Effect<u8>>, bool) {
    match disk.finish_sync(false) {
        SyncOutcome::Done { effects, again } => (effects, again),
        SyncOutcome::CrashedInCompaction => panic!("no compaction here"),
    }
}

/// An append no effect waits for starts no sync; the next awaited write's sync covers it,
/// in order.
#[test]
fn an_unawaited_append_waits_for_the_next_awaited_sync() {
    let mut disk = Disk::new();
    assert!(!disk.enqueue(append(vec![1], Vec::new())));
    assert!(!disk.sync_running);
    assert!(disk.enqueue(append(vec![2], vec![send(7)])));
    disk.start_sync();
    let (effects, again) = finish(&mut disk);
    assert_eq!(synced(&disk), vec![1, 2]);
    assert_eq!(effects.len(), 1);
    assert!(!again);
}

/// Unawaited appends queued behind a running sync do not ask for another one; an awaited
/// one does.
#[test]
fn only_an_awaited_write_queued_during_a_sync_asks_for_another() {
    let mut disk = Disk::new();
    assert!(disk.enqueue(append(vec![1], vec![send(1)])));
    disk.start_sync();
    assert!(!disk.enqueue(append(vec![2], Vec::new())));
    let (_, again) = finish(&mut disk);
    assert!(!again, "nothing waits for record 2");
    assert_eq!(synced(&disk), vec![1]);
    assert!(!disk.enqueue(append(vec![3], Vec::new())));
    assert!(disk.enqueue(append(Vec::new(), vec![send(2)])));
    disk.start_sync();
    finish(&mut disk);
    assert_eq!(synced(&disk), vec![1, 2, 3]);
}

/// A crash loses unawaited appends however long they waited.
#[test]
fn a_crash_loses_unawaited_appends() {
    let mut disk = Disk::new();
    assert!(disk.enqueue(append(vec![1], vec![send(1)])));
    disk.start_sync();
    finish(&mut disk);
    assert!(!disk.enqueue(append(vec![2], Vec::new())));
    disk.crash();
    assert_eq!(synced(&disk), vec![1]);
    assert!(disk.queued.is_empty());
}

/// A compaction is synced at once even though no effect waits for it.
#[test]
fn a_compaction_starts_a_sync() {
    let mut disk = Disk::new();
    assert!(!disk.enqueue(append(vec![1], Vec::new())));
    assert!(disk.enqueue(PendingWrite {
        op: DiskOp::Replace(vec![Encoded::from(&[9u8][..])]),
        then: Vec::new(),
    }));
}
