//! A crash-safe, size- and age-capped queue of records on disk, after Vector's disk buffer.
//! The gateway spools readings while the broker is unreachable; ingest keeps its write-ahead
//! log in one.
//!
//! Layout: segment files `{first id:020}.seg` of records `len u32 | crc32 u32 | id u64 |
//! payload` (little-endian; the CRC covers id and payload), and a ledger file `acked` holding the
//! highest acknowledged id (overwritten in place: `ledger.rs`). Ids start at 1 and only grow.
//! Appends are gathered in memory and written to the segment together (`flush`, `sync`), so a
//! burst of records costs one write and one `fdatasync`. Records are read in order and
//! acknowledged as a prefix; a segment is deleted only once every record in it is acknowledged
//! (or dropped by a cap, which is counted).
//!
//! On open, a torn record at the end of the newest segment (a crash mid-write) is cut off, and
//! records whose checksum fails are skipped and counted, never returned.
//!
//! One process per folder: the owner takes a [`FolderLock`] (`folder_lock.rs`) before opening.

mod folder_lock;
mod ledger;
mod segment;

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub use folder_lock::{FolderLock, LockError, LOCK_FILE};
use ledger::Ledger;
use segment::{Segment, HEADER};

/// What to do when the spool is at `max_bytes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenFull {
    /// Refuse the record (`SpoolError::Full`); the caller waits or sheds.
    Block,
    /// Delete the oldest segment, counting its unacknowledged records as dropped.
    DropOldest,
}

#[derive(Clone, Debug)]
pub struct SpoolConfig {
    pub max_bytes: u64,
    /// Records older than this are dropped (counted) by [`Spool::expire`]; `None`: kept.
    pub max_age: Option<Duration>,
    pub when_full: WhenFull,
    /// A new segment is started past this size.
    pub segment_bytes: u64,
    /// Largest payload accepted.
    pub max_record_bytes: u32,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            max_bytes: 512 * 1024 * 1024,
            max_age: None,
            when_full: WhenFull::DropOldest,
            segment_bytes: 16 * 1024 * 1024,
            max_record_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Parses a size: a number of bytes, optionally with a unit (`512MiB`, `2 GiB`, `64kB`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("`{s}` is not a size like 512MiB"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        other => return Err(format!("`{s}`: unknown unit `{other}` (B, kB, KiB, MB, MiB, GB, GiB, TiB)")),
    };
    n.checked_mul(factor).ok_or_else(|| format!("`{s}` is too large"))
}

/// A size in a config file: `536870912` or `"512MiB"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> serde::Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(t) => parse_size(&t).map(ByteSize).map_err(serde::de::Error::custom),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("spool is full ({bytes} bytes of {max_bytes})")]
    Full { bytes: u64, max_bytes: u64 },
    #[error("record of {0} bytes is larger than the spool accepts")]
    TooLarge(usize),
}

pub(crate) fn io(path: &Path, source: std::io::Error) -> SpoolError {
    SpoolError::Io { path: path.display().to_string(), source }
}

/// Everything the spool did that an operator should see.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpoolStats {
    pub appended: u64,
    pub acked: u64,
    /// Unacknowledged records deleted because the spool was full.
    pub dropped_full: u64,
    /// Unacknowledged records deleted because they were older than `max_age`.
    pub dropped_age: u64,
    /// Records skipped because their checksum failed.
    pub corrupt: u64,
    /// Bytes cut off the newest segment on open (a torn write).
    pub torn_bytes: u64,
}

/// One record read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub id: u64,
    pub payload: Vec<u8>,
}

/// The file syncs of [`Spool::begin_sync`], run apart from the spool.
pub struct PendingSync {
    files: Vec<(PathBuf, File)>,
    /// The ledger is among them.
    ledger: bool,
}

impl PendingSync {
    /// Makes the files durable. Blocking: one `fdatasync` per file.
    pub fn run(&self) -> Result<(), SpoolError> {
        self.files.iter().try_for_each(|(path, f)| f.sync_data().map_err(|e| io(path, e)))
    }
}

pub struct Spool {
    dir: PathBuf,
    cfg: SpoolConfig,
    segments: VecDeque<Segment>,
    next_id: u64,
    acked: u64,
    /// The next id to hand to a reader (everything below it was read since the last rewind).
    read_from: u64,
    ledger: Ledger,
    stats: SpoolStats,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, recovering from a crash.
    pub fn open(dir: &Path, cfg: SpoolConfig) -> Result<Spool, SpoolError> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let (ledger, acked) = Ledger::open(dir)?;
        let mut paths: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
            .map_err(|e| io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|p| {
                let first = p.file_name()?.to_str()?.strip_suffix(".seg")?.parse().ok()?;
                Some((first, p))
            })
            .collect();
        paths.sort();
        let mut stats = SpoolStats::default();
        let mut segments = VecDeque::new();
        let last = paths.len().saturating_sub(1);
        for (i, (first, path)) in paths.into_iter().enumerate() {
            let (segment, scan) = Segment::recover(path, first, i == last, cfg.max_record_bytes)?;
            stats.corrupt += scan.corrupt;
            stats.torn_bytes += scan.torn_bytes;
            segments.push_back(segment);
        }
        let next_id = segments.iter().rev().find_map(|s| s.last_id).map_or(acked + 1, |l| l.max(acked) + 1);
        let read_from = acked + 1;
        let mut spool =
            Spool { dir: dir.to_path_buf(), cfg, segments, next_id, acked, read_from, ledger, stats };
        spool.delete_acked_segments()?;
        Ok(spool)
    }

    pub fn stats(&self) -> SpoolStats {
        self.stats
    }

    /// Bytes on disk in segments.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Records appended and not yet acknowledged (nor dropped).
    pub fn pending(&self) -> u64 {
        self.next_id - 1 - self.acked
    }

    /// The highest acknowledged id.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Records appended and not yet written to a file (see [`Spool::flush`]).
    pub fn unwritten(&self) -> u64 {
        self.segments.back().map_or(0, |s| s.unwritten_records)
    }

    /// Closes the spool as a killed process would: without writing what is held in memory.
    #[cfg(test)]
    fn crash(mut self) {
        self.segments.iter_mut().for_each(Segment::lose_unwritten);
    }

    /// Appends a record. It is held in memory until [`Spool::flush`] (or a read, a sync, a new
    /// segment, a drop, or enough records held) writes it to the segment file, together with
    /// the others appended since: a kill before that loses it, like a power loss before the
    /// sync. It is durable once [`Spool::sync`] returns.
    pub fn append(&mut self, payload: &[u8]) -> Result<u64, SpoolError> {
        if payload.len() > self.cfg.max_record_bytes as usize {
            return Err(SpoolError::TooLarge(payload.len()));
        }
        let size = HEADER as u64 + payload.len() as u64;
        while self.bytes() + size > self.cfg.max_bytes {
            match self.cfg.when_full {
                WhenFull::Block => {
                    return Err(SpoolError::Full { bytes: self.bytes(), max_bytes: self.cfg.max_bytes })
                }
                WhenFull::DropOldest => {
                    if !self.drop_oldest(false)? {
                        break;
                    }
                }
            }
        }
        let needs_segment = self.segments.back().is_none_or(|s| s.bytes >= self.cfg.segment_bytes);
        if needs_segment {
            if let Some(s) = self.segments.back_mut() {
                s.sync()?;
            }
            let path = self.dir.join(format!("{:020}.seg", self.next_id));
            self.segments.push_back(Segment::create(path, self.next_id)?);
        }
        let id = self.next_id;
        let segment = self.segments.back_mut().expect("a segment exists");
        segment.append(id, payload)?;
        self.next_id += 1;
        self.stats.appended += 1;
        Ok(id)
    }

    /// Writes the records appended since the last flush to the segment file in one write (not
    /// durable yet: that is [`Spool::sync`]). A process killed after it loses none of them.
    pub fn flush(&mut self) -> Result<(), SpoolError> {
        match self.segments.back_mut() {
            Some(s) => s.flush(),
            None => Ok(()),
        }
    }

    /// Makes every appended record durable (and the ledger, if it moved).
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        if let Some(s) = self.segments.back_mut() {
            s.sync()?;
        }
        self.ledger.sync()
    }

    /// Writes out what is held in memory and hands back the file syncs that make every record
    /// appended so far (and the ledger) durable, for a caller that keeps the spool behind a
    /// lock to run without it: a slow disk then holds up no append. A failed
    /// [`PendingSync::run`] goes back through [`Spool::sync_failed`].
    pub fn begin_sync(&mut self) -> Result<PendingSync, SpoolError> {
        let mut files = Vec::new();
        if let Some(s) = self.segments.back_mut() {
            if let Some(f) = s.written_file()? {
                files.push((s.path.clone(), f));
            }
        }
        let ledger = self.ledger.take_unsynced()?;
        let ledger_synced = ledger.is_some();
        files.extend(ledger);
        Ok(PendingSync { files, ledger: ledger_synced })
    }

    /// The sync `pending` did not go through: the ledger is synced again next time.
    pub fn sync_failed(&mut self, pending: PendingSync) {
        if pending.ledger {
            self.ledger.sync_failed();
        }
    }

    /// Up to `max` records not yet read since the last rewind, oldest first.
    pub fn read(&mut self, max: usize) -> Result<Vec<Record>, SpoolError> {
        // Reads go to the files.
        self.flush()?;
        let mut out = Vec::new();
        for segment in &self.segments {
            if out.len() >= max {
                break;
            }
            if segment.last_id.is_none_or(|l| l < self.read_from) {
                continue;
            }
            let (records, corrupt) =
                segment.read_from(self.read_from, max - out.len(), self.cfg.max_record_bytes)?;
            self.stats.corrupt += corrupt;
            if let Some(r) = records.last() {
                self.read_from = r.id + 1;
            }
            out.extend(records);
            if out.len() < max {
                // Everything left in this segment was read (or was corrupt): go on after it.
                self.read_from = self.read_from.max(segment.last_id.map_or(0, |l| l + 1));
            }
        }
        Ok(out)
    }

    /// Reads again from the oldest unacknowledged record (after a failed send).
    pub fn rewind(&mut self) {
        self.read_from = self.acked + 1;
    }

    /// Acknowledges every record up to and including `id`.
    pub fn ack_through(&mut self, id: u64) -> Result<(), SpoolError> {
        let id = id.min(self.next_id - 1);
        if id <= self.acked {
            return Ok(());
        }
        self.stats.acked += id - self.acked;
        self.acked = id;
        self.read_from = self.read_from.max(id + 1);
        self.ledger.write(id)?;
        self.delete_acked_segments()
    }

    /// Drops (and counts) records in segments last written before `now - max_age`.
    pub fn expire(&mut self, now: SystemTime) -> Result<u64, SpoolError> {
        let Some(max_age) = self.cfg.max_age else { return Ok(0) };
        let mut dropped = 0;
        while let Some(front) = self.segments.front() {
            let old = front.modified().is_some_and(|m| now.duration_since(m).is_ok_and(|age| age > max_age));
            if !old {
                break;
            }
            let before = self.stats.dropped_age;
            if !self.drop_oldest(true)? {
                break;
            }
            dropped += self.stats.dropped_age - before;
        }
        Ok(dropped)
    }

    /// Deletes the oldest segment, acknowledging (and counting) its unacknowledged records.
    fn drop_oldest(&mut self, for_age: bool) -> Result<bool, SpoolError> {
        let Some(front) = self.segments.pop_front() else { return Ok(false) };
        let last = front.last_id.unwrap_or(front.first_id.saturating_sub(1));
        let unacked = last.saturating_sub(self.acked.max(front.first_id - 1));
        if for_age {
            self.stats.dropped_age += unacked;
        } else {
            self.stats.dropped_full += unacked;
        }
        front.delete()?;
        if last > self.acked {
            self.acked = last;
            self.read_from = self.read_from.max(last + 1);
            self.ledger.write(last)?;
        }
        Ok(true)
    }

    fn delete_acked_segments(&mut self) -> Result<(), SpoolError> {
        // The newest segment stays, so appends continue in it.
        while self.segments.len() > 1
            && self.segments.front().is_some_and(|s| s.last_id.is_none_or(|l| l <= self.acked))
        {
            if let Some(s) = self.segments.pop_front() {
                s.delete()?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
