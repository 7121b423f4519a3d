use super::*;

#[test]
fn passes_the_storage_conformance_suite() {
    super::super::conformance::run_all(MemStorage::new);
}

#[test]
fn crash_loses_exactly_the_unsynced_records() {
    let mut disk = MemStorage::new();
    disk.append(&[b"a".to_vec()]).unwrap();
    disk.sync().unwrap();
    disk.append(&[b"b".to_vec()]).unwrap();
    disk.crash();
    assert_eq!(disk.replay().unwrap(), vec![b"a".to_vec()]);
}
