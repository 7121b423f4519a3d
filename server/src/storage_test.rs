use super::*;
use crate::test_support::TempDir;
use meridian_engine::storage::conformance;
use meridian_engine::storage::record::HEADER_LEN;

fn records(range: std::ops::Range<u32>) -> Vec<Vec<u8>> {
    range.map(|i| format!("record-{i}").into_bytes()).collect()
}

#[test]
fn passes_the_storage_conformance_suite() {
    let mut dirs = Vec::new();
    conformance::run_all(|| {
        let dir = TempDir::new("conformance");
        let log = FileStorage::open(dir.path()).expect("open");
        dirs.push(dir);
        log
    });
}

#[test]
fn synced_records_survive_reopen_and_unsynced_ones_do_not() {
    let dir = TempDir::new("reopen");
    let mut log = FileStorage::open(dir.path()).unwrap();
    assert!(log.open_report().created);
    log.append(&records(0..3)).unwrap();
    assert_eq!(log.sync().unwrap(), 3);
    log.append(&records(3..5)).unwrap();
    drop(log); // a crash: the pending appends never reached the file
    let mut log = FileStorage::open(dir.path()).unwrap();
    assert_eq!(
        log.open_report(),
        &OpenReport {
            records: 3,
            torn_bytes: 0,
            created: false
        }
    );
    assert_eq!(log.replay().unwrap(), records(0..3));
    log.append(&records(3..4)).unwrap();
    assert_eq!(log.sync().unwrap(), 4);
    assert_eq!(log.replay().unwrap(), records(0..4));
}

#[test]
fn group_commit_makes_many_appends_durable_with_one_sync() {
    let dir = TempDir::new("group");
    let mut log = FileStorage::open(dir.path()).unwrap();
    for i in 0..100 {
        log.append(&records(i..i + 1)).unwrap();
    }
    assert_eq!(log.pending_records(), 100);
    // Nothing but the header reaches the file before the sync.
    assert_eq!(
        fs::metadata(log.path()).unwrap().len(),
        FILE_HEADER_LEN as u64
    );
    assert_eq!(log.sync().unwrap(), 100);
    assert_eq!(log.pending_records(), 0);
    assert_eq!(log.replay().unwrap(), records(0..100));
}

#[test]
fn a_truncated_tail_is_cut_on_open_and_later_appends_follow_the_intact_records() {
    let dir = TempDir::new("torn");
    let mut log = FileStorage::open(dir.path()).unwrap();
    log.append(&records(0..4)).unwrap();
    log.sync().unwrap();
    let path = log.path().to_owned();
    let full = log.records_end();
    drop(log);
    // Every cut inside the last record (header or payload) is a torn tail.
    let last_len = (HEADER_LEN + "record-3".len()) as u64;
    for cut in 1..last_len {
        let copy = TempDir::new("torn-copy");
        fs::create_dir_all(copy.path()).unwrap();
        let bytes = fs::read(&path).unwrap();
        fs::write(copy.path().join(LOG_FILE), &bytes[..(full - cut) as usize]).unwrap();
        let mut log = FileStorage::open(copy.path()).unwrap();
        assert_eq!(log.open_report().torn_bytes, last_len - cut, "cut {cut}");
        assert_eq!(log.replay().unwrap(), records(0..3), "cut {cut}");
        log.append(&records(9..10)).unwrap();
        log.sync().unwrap();
        let mut expected = records(0..3);
        expected.extend(records(9..10));
        assert_eq!(log.replay().unwrap(), expected, "append after cut {cut}");
        // The truncation itself was made durable: a second open finds no tear.
        drop(log);
        let log = FileStorage::open(copy.path()).unwrap();
        assert_eq!(log.open_report().torn_bytes, 0);
    }
}

#[test]
fn a_garbled_last_record_is_dropped_as_a_torn_tail() {
    let dir = TempDir::new("garble-tail");
    let mut log = FileStorage::open(dir.path()).unwrap();
    log.append(&records(0..3)).unwrap();
    log.sync().unwrap();
    let path = log.path().to_owned();
    let last = log.records_end() as usize - 1;
    drop(log);
    let mut bytes = fs::read(&path).unwrap();
    bytes[last] ^= 0x5a;
    fs::write(&path, &bytes).unwrap();
    let mut log = FileStorage::open(dir.path()).unwrap();
    assert_eq!(log.replay().unwrap(), records(0..2));
    assert!(log.open_report().torn_bytes > 0);
}

#[test]
fn a_corrupt_middle_record_is_an_error_not_a_silent_skip() {
    let dir = TempDir::new("garble-middle");
    let mut log = FileStorage::open(dir.path()).unwrap();
    log.append(&records(0..3)).unwrap();
    log.sync().unwrap();
    let path = log.path().to_owned();
    drop(log);
    let mut bytes = fs::read(&path).unwrap();
    bytes[FILE_HEADER_LEN + HEADER_LEN + 2] ^= 0x01; // inside the first payload
    fs::write(&path, &bytes).unwrap();
    let err = FileStorage::open(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Corrupt {
                source: FrameError::Corrupt { offset: 0, .. },
                ..
            }
        ),
        "{err}"
    );
    // The file was left as it was, for an operator to inspect.
    assert_eq!(fs::read(&path).unwrap(), bytes);
}

#[test]
fn compaction_survives_reopen_and_a_leftover_compaction_file_is_ignored() {
    let dir = TempDir::new("compact");
    let mut log = FileStorage::open(dir.path()).unwrap();
    log.append(&records(0..10)).unwrap();
    log.sync().unwrap();
    log.compact(&records(7..10)).unwrap();
    log.append(&records(10..11)).unwrap();
    log.sync().unwrap();
    drop(log);
    // A crash in a later compaction, before its rename, leaves a partial file behind.
    fs::write(dir.path().join(COMPACT_FILE), b"partial").unwrap();
    let mut log = FileStorage::open(dir.path()).unwrap();
    assert_eq!(log.replay().unwrap(), records(7..11));
    assert!(!dir.path().join(COMPACT_FILE).exists());
}

#[test]
fn open_creates_missing_directories() {
    let dir = TempDir::new("nested");
    let nested = dir.path().join("a").join("b");
    let mut log = FileStorage::open(&nested).unwrap();
    log.append(&records(0..1)).unwrap();
    log.sync().unwrap();
    assert!(nested.join(LOG_FILE).exists());
}

#[test]
fn a_new_log_starts_with_the_header_and_a_torn_header_is_written_again() {
    let dir = TempDir::new("header");
    let log = FileStorage::open(dir.path()).unwrap();
    let path = log.path().to_owned();
    drop(log);
    assert_eq!(fs::read(&path).unwrap(), file_header(LOG_FORMAT_VERSION));
    // A crash while the header was being written leaves a prefix of it.
    fs::write(&path, &LOG_MAGIC[..5]).unwrap();
    let mut log = FileStorage::open(dir.path()).unwrap();
    log.append(&records(0..2)).unwrap();
    log.sync().unwrap();
    drop(log);
    let mut log = FileStorage::open(dir.path()).unwrap();
    assert_eq!(log.replay().unwrap(), records(0..2));
    assert!(fs::read(&path).unwrap().starts_with(&LOG_MAGIC));
}

#[test]
fn a_log_of_another_format_version_or_without_a_header_is_refused_untouched() {
    let dir = TempDir::new("version");
    let mut log = FileStorage::open(dir.path()).unwrap();
    log.append(&records(0..3)).unwrap();
    log.sync().unwrap();
    let path = log.path().to_owned();
    drop(log);
    let mut future = fs::read(&path).unwrap();
    future[LOG_MAGIC.len()..FILE_HEADER_LEN]
        .copy_from_slice(&(LOG_FORMAT_VERSION + 1).to_le_bytes());
    fs::write(&path, &future).unwrap();
    let err = FileStorage::open(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains(&format!("log format version {}", LOG_FORMAT_VERSION + 1))
            && err.contains(&format!(
                "reads versions {OLDEST_LOG_FORMAT_VERSION} to {LOG_FORMAT_VERSION} only"
            )),
        "{err}"
    );
    assert_eq!(
        fs::read(&path).unwrap(),
        future,
        "the file is left as it was"
    );
    // A log from before versioned formats: records from the first byte.
    let mut legacy = Vec::new();
    for payload in records(0..3) {
        record::encode(&payload, &mut legacy);
    }
    fs::write(&path, &legacy).unwrap();
    let err = FileStorage::open(dir.path()).unwrap_err();
    assert!(matches!(err, StorageError::Format { .. }), "{err}");
    assert!(err.to_string().contains("not a Meridian log"), "{err}");
    assert_eq!(fs::read(&path).unwrap(), legacy);
}

#[test]
fn a_compacted_log_keeps_the_header() {
    let dir = TempDir::new("compact-header");
    let mut log = FileStorage::open(dir.path()).unwrap();
    log.append(&records(0..5)).unwrap();
    log.sync().unwrap();
    log.compact(&records(3..5)).unwrap();
    let bytes = fs::read(log.path()).unwrap();
    assert_eq!(&bytes[..FILE_HEADER_LEN], &file_header(LOG_FORMAT_VERSION));
    drop(log);
    let mut log = FileStorage::open(dir.path()).unwrap();
    assert_eq!(log.replay().unwrap(), records(3..5));
}

#[test]
fn a_sync_writes_into_reserved_space_and_the_zeros_after_the_records_are_no_tear() {
    let dir = TempDir::new("reserve");
    let mut log = FileStorage::open(dir.path()).unwrap();
    log.append(&records(0..3)).unwrap();
    log.sync().unwrap();
    let path = log.path().to_owned();
    assert_eq!(fs::metadata(&path).unwrap().len(), RESERVE_STEP);
    let after_first = log.records_end();
    log.append(&records(3..6)).unwrap();
    log.sync().unwrap();
    // The second sync wrote after the first one's records, inside the file's length.
    assert!(log.records_end() > after_first);
    assert_eq!(fs::metadata(&path).unwrap().len(), RESERVE_STEP);
    let end = log.records_end();
    drop(log);
    let mut log = FileStorage::open(dir.path()).unwrap();
    assert_eq!(log.open_report().torn_bytes, 0);
    assert_eq!(log.records_end(), end);
    assert_eq!(log.replay().unwrap(), records(0..6));
    // Appends after a reopen follow the records, not the end of the file.
    log.append(&records(6..7)).unwrap();
    log.sync().unwrap();
    assert_eq!(log.replay().unwrap(), records(0..7));
}

#[test]
fn records_larger_than_the_reserved_space_extend_it() {
    let dir = TempDir::new("reserve-grow");
    let mut log = FileStorage::open(dir.path()).unwrap();
    let big: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i + 1; 3 << 20]).collect();
    for record in &big {
        log.append(std::slice::from_ref(record)).unwrap();
        log.sync().unwrap();
    }
    let len = fs::metadata(log.path()).unwrap().len();
    assert!(len >= log.records_end() && len % RESERVE_STEP == 0, "{len}");
    drop(log);
    let mut log = FileStorage::open(dir.path()).unwrap();
    assert_eq!(log.replay().unwrap(), big);
}

#[test]
fn a_write_torn_inside_the_reserved_space_is_cut_on_open() {
    let dir = TempDir::new("reserve-torn");
    let mut log = FileStorage::open(dir.path()).unwrap();
    log.append(&records(0..2)).unwrap();
    log.sync().unwrap();
    let path = log.path().to_owned();
    let end = log.records_end();
    drop(log);
    // The next sync's record reached the disk in part: a frame header and some payload,
    // the rest of the reserved space still zeros.
    let mut torn = Vec::new();
    record::encode(b"a record that was never acknowledged", &mut torn);
    torn.truncate(HEADER_LEN + 5);
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&torn, end).unwrap();
    drop(file);
    let mut log = FileStorage::open(dir.path()).unwrap();
    assert!(log.open_report().torn_bytes > 0);
    assert_eq!(log.replay().unwrap(), records(0..2));
    log.append(&records(2..3)).unwrap();
    log.sync().unwrap();
    drop(log);
    let mut log = FileStorage::open(dir.path()).unwrap();
    assert_eq!(log.open_report().torn_bytes, 0);
    assert_eq!(log.replay().unwrap(), records(0..3));
}

#[test]
fn version_5_to_7_logs_are_read_and_their_header_names_the_current_version_after_the_open() {
    for version in [5, 6, 7] {
        let dir = TempDir::new(&format!("version-{version}"));
        fs::create_dir_all(dir.path()).unwrap();
        // Versions 5 to 7 wrote the same records (5 with nothing reserved after them).
        let mut old = file_header(version).to_vec();
        for payload in records(0..3) {
            record::encode(&payload, &mut old);
        }
        let path = dir.path().join(LOG_FILE);
        fs::write(&path, &old).unwrap();
        let mut log = FileStorage::open(dir.path()).unwrap();
        assert_eq!(log.replay().unwrap(), records(0..3));
        assert_eq!(
            &fs::read(&path).unwrap()[..FILE_HEADER_LEN],
            &file_header(LOG_FORMAT_VERSION)
        );
        log.append(&records(3..4)).unwrap();
        log.sync().unwrap();
        drop(log);
        let mut log = FileStorage::open(dir.path()).unwrap();
        assert_eq!(log.replay().unwrap(), records(0..4));
    }
}

#[test]
fn log_has_records_looks_past_the_header_and_the_reserved_zeros() {
    let dir = TempDir::new("has-records");
    let path = dir.path().join(LOG_FILE);
    assert!(!log_has_records(&path), "no file");
    let mut log = FileStorage::open(dir.path()).unwrap();
    assert!(!log_has_records(&path), "a header only");
    log.append(&records(0..1)).unwrap();
    log.sync().unwrap();
    assert!(log_has_records(&path));
    log.compact(&[]).unwrap();
    assert!(
        fs::metadata(&path).unwrap().len() > FILE_HEADER_LEN as u64,
        "the compacted log keeps reserved space"
    );
    assert!(!log_has_records(&path), "reserved zeros only");
}
