//! `FileStorage`: the on-disk [`Storage`] — one append-only log file per keyspace.
//!
//! ```text
//!  append(records) ──encode (len+crc)──▶ pending buffer (memory)
//!  sync()          ──write(pending) at the end──▶ log ──fdatasync──▶ durable   (one fsync per batch)
//!  compact(snap)   ──write log.tmp, fsync──▶ rename over log ──fsync dir──▶ durable
//!  open(dir)       ──read log, decode_all──▶ torn tail? truncate + fsync : corrupt? error
//! ```
//!
//! Every log file starts with a 12-byte header: the magic `MERIDLOG` and the log format
//! version (u32 LE, [`LOG_FORMAT_VERSION`]). A file whose header is missing or names
//! another version is refused with an error that says so, never read as records (the
//! records are postcard, which does not describe itself). A header cut short by a crash
//! while the file was being created is written again.
//!
//! Group commit comes from `append` only buffering: the host appends every record that is
//! waiting and pays one `sync`.
//!
//! The file is kept longer than its records, in steps of [`RESERVE_STEP`] (sparse: the
//! space costs nothing until written), so a sync writes inside the file's length: an
//! `fdatasync` that must also record a new file size writes the inode as well, and on
//! this project's test machine (ext4) takes about 1.4x the wall and CPU time of one that
//! need not (docs/design.md, "Durability"). The reserved space reads as zeros, which end
//! the log ([`record::decode_all`]). A new file's directory entry is fsynced when the file is
//! created and after every rename, so a crash can neither lose the file nor resurrect
//! the old one.

use meridian_engine::storage::record::{self, FrameError};
use meridian_engine::storage::Storage;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The log file's name inside a storage directory.
pub const LOG_FILE: &str = "log";
/// First bytes of every log file.
pub const LOG_MAGIC: [u8; 8] = *b"MERIDLOG";
/// The log format this binary writes and reads. Bump it whenever the bytes of a record
/// (the framing or any protocol's `Record`) change meaning; see docs/deployment.md,
/// "Upgrades". (2: EPaxos instance records say whether they witness the leader's
/// initial-ballot attributes; 3: Tempo snapshots hold the floor of forgotten clocks, and
/// a `Floor` record raises it; 4: EPaxos attributes, in instance records and snapshots,
/// carry the instance's configuration epoch, payloads a membership switch, and snapshots
/// the configurations and the key index's switches; 5: the same for Tempo; 6: the file
/// may end in reserved zeros; 7: an EPaxos fence may be `Stage::AnnouncingUnfenced`, and
/// EPaxos logs may hold `BoundTold` records; 8: a Tempo fence may be one of the stages of a
/// rejoin that keeps its records, `QueryingWithRecords` and `FetchingWithRecords`.)
pub const LOG_FORMAT_VERSION: u32 = 8;
/// The oldest log format this binary reads. Versions 5 to 7 hold a subset of version
/// 8's records (5 without reserved space), so their header is rewritten to 8 when the
/// log is opened: an older binary then refuses it by its version instead of misreading
/// the zeros as corruption or failing on a record it does not know.
pub const OLDEST_LOG_FORMAT_VERSION: u32 = 5;
/// How far ahead of its records the log file is extended at a time.
pub const RESERVE_STEP: u64 = 4 << 20;
/// Bytes of the file header: magic, then the format version.
pub const FILE_HEADER_LEN: usize = LOG_MAGIC.len() + 4;

/// The header of a log file of format `version`.
fn file_header(version: u32) -> [u8; FILE_HEADER_LEN] {
    let mut header = [0u8; FILE_HEADER_LEN];
    header[..LOG_MAGIC.len()].copy_from_slice(&LOG_MAGIC);
    header[LOG_MAGIC.len()..].copy_from_slice(&version.to_le_bytes());
    header
}

/// The format version and the records part of a log file's bytes, after checking its
/// header.
fn records_part<'a>(path: &Path, bytes: &'a [u8]) -> Result<(u32, &'a [u8]), StorageError> {
    let format = |message: String| StorageError::Format {
        path: path.to_owned(),
        message,
    };
    if bytes.len() < FILE_HEADER_LEN || bytes[..LOG_MAGIC.len()] != LOG_MAGIC {
        return Err(format(format!(
            "not a Meridian log of format {OLDEST_LOG_FORMAT_VERSION} or later: it does not start \
             with the header {:?} (a log written before format versions existed, or another \
             file); move it away and let the replica catch up from its peers",
            String::from_utf8_lossy(&LOG_MAGIC)
        )));
    }
    let mut version = [0u8; 4];
    version.copy_from_slice(&bytes[LOG_MAGIC.len()..FILE_HEADER_LEN]);
    let version = u32::from_le_bytes(version);
    if !(OLDEST_LOG_FORMAT_VERSION..=LOG_FORMAT_VERSION).contains(&version) {
        return Err(format(format!(
            "log format version {version}; this binary reads versions \
             {OLDEST_LOG_FORMAT_VERSION} to {LOG_FORMAT_VERSION} only (run the release that \
             wrote it, or see docs/deployment.md, \"Upgrades\")"
        )));
    }
    Ok((version, &bytes[FILE_HEADER_LEN..]))
}

/// Where a compaction writes the new log before renaming it over [`LOG_FILE`].
const COMPACT_FILE: &str = "log.compact";

/// What can go wrong with the on-disk log.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file system call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A record before the end of the log is damaged; the log cannot be trusted.
    #[error("{path}: {source}")]
    Corrupt {
        /// The log file.
        path: PathBuf,
        /// Where and how.
        source: FrameError,
    },
    /// The file is not a log this binary can read (no header, or another format version).
    #[error("{path}: {message}")]
    Format {
        /// The log file.
        path: PathBuf,
        /// What the header said and what to do.
        message: String,
    },
    /// An earlier sync failed: after a failed fsync the kernel may have dropped dirty
    /// pages, so the log refuses further writes instead of pretending they are durable.
    #[error("{path}: an earlier fsync failed; the log is read-only until restart")]
    Poisoned {
        /// The log file.
        path: PathBuf,
    },
}

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StorageError + 'a {
    move |source| StorageError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// What [`FileStorage::open`] found on disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Intact records in the log.
    pub records: u64,
    /// Bytes cut from the end because the last write was torn.
    pub torn_bytes: u64,
    /// Whether the log file was created by this open.
    pub created: bool,
}

/// The file length that reserves space for a log of `len` bytes: the next multiple of
/// `step` at or above it (`len` itself if `step` is 0).
fn reserved_len(len: u64, step: u64) -> u64 {
    match step {
        0 => len,
        step => len.div_ceil(step).saturating_mul(step),
    }
}

/// Whether the log file at `path` holds a record (reads its first bytes only; a missing
/// or unreadable file holds none).
pub fn log_has_records(path: &Path) -> bool {
    let want = FILE_HEADER_LEN + record::HEADER_LEN;
    let mut start = Vec::with_capacity(want);
    let read = File::open(path).and_then(|file| file.take(want as u64).read_to_end(&mut start));
    // A record's frame header is never all zeros; reserved space is.
    read.is_ok()
        && start.len() > FILE_HEADER_LEN
        && start[FILE_HEADER_LEN..].iter().any(|&b| b != 0)
}

/// An append-only, checksummed log in one directory.
#[derive(Debug)]
pub struct FileStorage {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    /// Where the next record goes: the end of the records.
    end: u64,
    /// The file's length: `end` and the space reserved after it.
    reserved: u64,
    /// How far ahead the file is extended at a time ([`RESERVE_STEP`]).
    reserve_step: u64,
    /// Framed records appended since the last sync.
    pending: Vec<u8>,
    pending_records: u64,
    durable_records: u64,
    poisoned: bool,
    report: OpenReport,
}

impl FileStorage {
    /// Open (or create) the log in `dir`, creating `dir` if needed. A torn tail is cut
    /// off (and the cut made durable); corruption before the tail is an error.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        Self::open_reserving(dir, RESERVE_STEP)
    }

    /// [`FileStorage::open`], extending the file `reserve_step` bytes ahead of its
    /// records at a time; 0 grows it with every sync, as a plain append would (the
    /// storage benchmark compares the two).
    pub fn open_reserving(dir: &Path, reserve_step: u64) -> Result<Self, StorageError> {
        if !dir.exists() {
            fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        // A leftover compaction file is from a compaction that did not reach its rename:
        // the old log is still the truth.
        let leftover = dir.join(COMPACT_FILE);
        if leftover.exists() {
            fs::remove_file(&leftover).map_err(io_error("remove", &leftover))?;
        }
        let path = dir.join(LOG_FILE);
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error("open", &path))?;
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0))
            .map_err(io_error("seek", &path))?;
        file.read_to_end(&mut bytes)
            .map_err(io_error("read", &path))?;
        let header = file_header(LOG_FORMAT_VERSION);
        if bytes.len() < FILE_HEADER_LEN && header.starts_with(&bytes) {
            // New, or its creation was cut short: (re)write the header.
            file.set_len(0).map_err(io_error("truncate", &path))?;
            file.write_all_at(&header, 0)
                .map_err(io_error("write", &path))?;
            file.sync_all().map_err(io_error("fsync", &path))?;
            sync_dir(dir)?;
            bytes = header.to_vec();
        }
        let (version, records_bytes) = records_part(&path, &bytes)?;
        let decoded =
            record::decode_all(records_bytes).map_err(|source| StorageError::Corrupt {
                path: path.clone(),
                source,
            })?;
        if version < LOG_FORMAT_VERSION {
            tracing::info!(path = %path.display(), version, "log of an older format; its header now says {LOG_FORMAT_VERSION}");
            file.write_all_at(&header, 0)
                .map_err(io_error("write", &path))?;
            file.sync_all().map_err(io_error("fsync", &path))?;
        }
        let end = (FILE_HEADER_LEN + decoded.valid_len) as u64;
        let mut reserved = bytes.len() as u64;
        let mut torn_bytes = 0;
        if decoded.torn_tail {
            reserved = end;
            torn_bytes = (records_bytes.len() - decoded.valid_len) as u64;
            tracing::warn!(path = %path.display(), torn_bytes, "log ends in a torn write; truncating it");
            file.set_len(end).map_err(io_error("truncate", &path))?;
            file.sync_all().map_err(io_error("fsync", &path))?;
        }
        let records = decoded.records.len() as u64;
        Ok(Self {
            dir: dir.to_owned(),
            path,
            file,
            end,
            reserved,
            reserve_step,
            pending: Vec::new(),
            pending_records: 0,
            durable_records: records,
            poisoned: false,
            report: OpenReport {
                records,
                torn_bytes,
                created,
            },
        })
    }

    /// What the open found.
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of the header and the records written so far, without the space reserved
    /// after them.
    pub fn records_end(&self) -> u64 {
        self.end
    }

    /// Records appended but not yet synced.
    pub fn pending_records(&self) -> u64 {
        self.pending_records
    }

    fn check_poisoned(&self) -> Result<(), StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    /// Make the file at least `end` bytes long, a `reserve_step` at a time. The sync
    /// that follows records the new length (`fdatasync` writes a changed size).
    fn reserve(&mut self, end: u64) -> io::Result<()> {
        if end > self.reserved {
            let reserved = reserved_len(end, self.reserve_step);
            self.file.set_len(reserved)?;
            self.reserved = reserved;
        }
        Ok(())
    }
}

/// Fsync a directory so entries created or renamed in it survive a crash.
fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("fsync directory", dir))
}

impl Storage for FileStorage {
    type Error = StorageError;

    fn append(&mut self, records: &[Vec<u8>]) -> Result<(), StorageError> {
        self.check_poisoned()?;
        for payload in records {
            record::encode(payload, &mut self.pending);
        }
        self.pending_records += records.len() as u64;
        Ok(())
    }

    fn sync(&mut self) -> Result<u64, StorageError> {
        self.check_poisoned()?;
        if self.pending_records == 0 {
            return Ok(self.durable_records);
        }
        let end = self.end + self.pending.len() as u64;
        let written = self
            .reserve(end)
            .and_then(|()| self.file.write_all_at(&self.pending, self.end))
            .and_then(|()| self.file.sync_data());
        if let Err(source) = written {
            self.poisoned = true;
            return Err(StorageError::Io {
                op: "write and fsync",
                path: self.path.clone(),
                source,
            });
        }
        self.end = end;
        self.pending.clear();
        self.durable_records += self.pending_records;
        self.pending_records = 0;
        Ok(self.durable_records)
    }

    fn replay(&mut self) -> Result<Vec<Vec<u8>>, StorageError> {
        let bytes = fs::read(&self.path).map_err(io_error("read", &self.path))?;
        let decoded =
            record::decode_all(records_part(&self.path, &bytes)?.1).map_err(|source| {
                StorageError::Corrupt {
                    path: self.path.clone(),
                    source,
                }
            })?;
        Ok(decoded.records)
    }

    fn compact(&mut self, records: &[Vec<u8>]) -> Result<(), StorageError> {
        self.check_poisoned()?;
        let tmp = self.dir.join(COMPACT_FILE);
        let mut bytes = file_header(LOG_FORMAT_VERSION).to_vec();
        for payload in records {
            record::encode(payload, &mut bytes);
        }
        let end = bytes.len() as u64;
        let reserved = reserved_len(end, self.reserve_step);
        {
            let mut file = File::create(&tmp).map_err(io_error("create", &tmp))?;
            file.write_all(&bytes).map_err(io_error("write", &tmp))?;
            file.set_len(reserved).map_err(io_error("extend", &tmp))?;
            file.sync_all().map_err(io_error("fsync", &tmp))?;
        }
        fs::rename(&tmp, &self.path).map_err(io_error("rename", &tmp))?;
        sync_dir(&self.dir)?;
        self.file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(io_error("open", &self.path))?;
        self.end = end;
        self.reserved = reserved;
        // Unsynced appends made before the compaction are superseded by the snapshot.
        self.pending.clear();
        self.pending_records = 0;
        self.durable_records = records.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
#[path = "storage_test.rs"]
mod tests;
