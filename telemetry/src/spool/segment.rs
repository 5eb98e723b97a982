//! One segment file of the spool: appending, scanning and recovering records.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::SystemTime;

use super::{io, Record, SpoolError};

/// `len u32 | crc32 u32 | id u64`.
pub const HEADER: usize = 16;

pub struct Segment {
    pub path: PathBuf,
    pub first_id: u64,
    pub last_id: Option<u64>,
    /// Bytes of its records, written or still in `unwritten`.
    pub bytes: u64,
    /// Bytes of its records in the file.
    written: u64,
    file: Option<File>,
    /// Records appended and not yet written to the file: appends are written out together by
    /// [`Segment::flush`] (one `write` for many records).
    unwritten: Vec<u8>,
    pub unwritten_records: u64,
    /// Byte offset and id of records, sparse, to start reads near the wanted id.
    index: Vec<(u64, u64)>,
}

/// What recovering a segment found.
#[derive(Default)]
pub struct Scan {
    pub corrupt: u64,
    pub torn_bytes: u64,
}

/// Appends record `id` to `out`.
fn encode(id: u64, payload: &[u8], out: &mut Vec<u8>) {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&id.to_le_bytes());
    hasher.update(payload);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&hasher.finalize().to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Unwritten records past this size are written at once, whatever the caller's flush policy.
const FLUSH_BYTES: usize = 256 * 1024;

/// One step of scanning a segment.
enum Next {
    Record {
        id: u64,
        payload: Vec<u8>,
        size: u64,
    },
    /// A whole record whose checksum fails: skip `size` bytes.
    Corrupt {
        size: u64,
    },
    /// The rest of the file cannot be parsed (torn or garbage length).
    End,
}

fn next(reader: &mut impl Read, max_record: u32) -> Result<Next, std::io::Error> {
    let mut header = [0u8; HEADER];
    match reader.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(Next::End),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
    if len > max_record {
        return Ok(Next::End);
    }
    let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    let id = u64::from_le_bytes(header[8..].try_into().expect("8 bytes"));
    let mut payload = vec![0u8; len as usize];
    match reader.read_exact(&mut payload) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(Next::End),
        Err(e) => return Err(e),
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[8..]);
    hasher.update(&payload);
    let size = (HEADER + payload.len()) as u64;
    if hasher.finalize() != crc {
        return Ok(Next::Corrupt { size });
    }
    Ok(Next::Record { id, payload, size })
}

const INDEX_EVERY: usize = 256;

impl Segment {
    pub fn create(path: PathBuf, first_id: u64) -> Result<Segment, SpoolError> {
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| io(&path, e))?;
        Ok(Segment {
            path,
            first_id,
            last_id: None,
            bytes: 0,
            written: 0,
            file: Some(file),
            unwritten: Vec::new(),
            unwritten_records: 0,
            index: Vec::new(),
        })
    }

    /// Scans an existing segment. In the newest one, an unparsable tail (a torn write) is cut
    /// off; in older ones it is left and counted as corrupt.
    pub fn recover(
        path: PathBuf,
        first_id: u64,
        newest: bool,
        max_record: u32,
    ) -> Result<(Segment, Scan), SpoolError> {
        let file = File::open(&path).map_err(|e| io(&path, e))?;
        let len = file.metadata().map_err(|e| io(&path, e))?.len();
        let mut reader = BufReader::new(file);
        let mut scan = Scan::default();
        let (mut offset, mut last_id, mut index, mut count) = (0u64, None, Vec::new(), 0usize);
        loop {
            match next(&mut reader, max_record).map_err(|e| io(&path, e))? {
                Next::Record { id, size, .. } => {
                    if count % INDEX_EVERY == 0 {
                        index.push((id, offset));
                    }
                    count += 1;
                    last_id = Some(id);
                    offset += size;
                }
                Next::Corrupt { size } => {
                    scan.corrupt += 1;
                    offset += size;
                }
                Next::End => break,
            }
        }
        if offset < len {
            if newest {
                let f = OpenOptions::new().write(true).open(&path).map_err(|e| io(&path, e))?;
                f.set_len(offset).map_err(|e| io(&path, e))?;
                f.sync_all().map_err(|e| io(&path, e))?;
                scan.torn_bytes = len - offset;
            } else {
                scan.corrupt += 1;
            }
        }
        let file = if newest {
            Some(OpenOptions::new().append(true).open(&path).map_err(|e| io(&path, e))?)
        } else {
            None
        };
        let bytes = if newest { offset } else { len };
        let (unwritten, unwritten_records) = (Vec::new(), 0);
        let segment = Segment {
            path,
            first_id,
            last_id,
            bytes,
            written: bytes,
            file,
            unwritten,
            unwritten_records,
            index,
        };
        Ok((segment, scan))
    }

    /// Appends a record in memory; [`Segment::flush`] writes it to the file.
    pub fn append(&mut self, id: u64, payload: &[u8]) -> Result<(), SpoolError> {
        if self.file.is_none() {
            return Err(io(&self.path, std::io::Error::other("segment is closed")));
        }
        let before = self.unwritten.len();
        encode(id, payload, &mut self.unwritten);
        if self.unwritten.len() >= FLUSH_BYTES {
            if let Err(e) = self.flush() {
                // The record is refused, and those before it wait for the next flush.
                self.unwritten.truncate(before);
                return Err(e);
            }
        }
        if ((id - self.first_id) as usize).is_multiple_of(INDEX_EVERY) {
            self.index.push((id, self.bytes));
        }
        self.bytes += (HEADER + payload.len()) as u64;
        self.unwritten_records += 1;
        self.last_id = Some(id);
        Ok(())
    }

    /// Writes the records appended since the last flush to the file, in one write. On an error
    /// they stay in memory for the next flush, and the file keeps no part of them.
    pub fn flush(&mut self) -> Result<(), SpoolError> {
        if self.unwritten.is_empty() {
            return Ok(());
        }
        let path = &self.path;
        let file = self.file.as_mut().ok_or_else(|| io(path, std::io::Error::other("segment is closed")))?;
        if let Err(e) = file.write_all(&self.unwritten) {
            // Leave no half record behind: cut back to the last whole one.
            let _ = file.set_len(self.written);
            return Err(io(path, e));
        }
        self.written += self.unwritten.len() as u64;
        self.unwritten.clear();
        self.unwritten_records = 0;
        Ok(())
    }

    /// Writes what is unwritten and returns a handle of the file to make it durable with.
    pub fn written_file(&mut self) -> Result<Option<File>, SpoolError> {
        self.flush()?;
        self.file.as_ref().map(|f| f.try_clone().map_err(|e| io(&self.path, e))).transpose()
    }

    /// Writes what is unwritten and makes the file durable.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        self.flush()?;
        match &self.file {
            Some(f) => f.sync_data().map_err(|e| io(&self.path, e)),
            None => Ok(()),
        }
    }

    /// Up to `max` good records with id ≥ `from`, and how many corrupt ones were skipped.
    pub fn read_from(
        &self,
        from: u64,
        max: usize,
        max_record: u32,
    ) -> Result<(Vec<Record>, u64), SpoolError> {
        let start = self.index.iter().rev().find(|(id, _)| *id <= from).map_or(0, |(_, off)| *off);
        let mut file = File::open(&self.path).map_err(|e| io(&self.path, e))?;
        file.seek(SeekFrom::Start(start)).map_err(|e| io(&self.path, e))?;
        let mut reader = BufReader::new(file.take(self.bytes.saturating_sub(start)));
        let (mut out, mut corrupt) = (Vec::new(), 0);
        while out.len() < max {
            match next(&mut reader, max_record).map_err(|e| io(&self.path, e))? {
                Next::Record { id, payload, .. } if id >= from => out.push(Record { id, payload }),
                Next::Record { .. } => {}
                Next::Corrupt { .. } => corrupt += 1,
                Next::End => break,
            }
        }
        Ok((out, corrupt))
    }

    pub fn modified(&self) -> Option<SystemTime> {
        std::fs::metadata(&self.path).and_then(|m| m.modified()).ok()
    }

    /// What a killed process leaves: the records not yet written are gone.
    #[cfg(test)]
    pub fn lose_unwritten(&mut self) {
        self.unwritten.clear();
    }

    /// Deletes the file, records not yet written included.
    pub fn delete(mut self) -> Result<(), SpoolError> {
        self.unwritten.clear();
        self.file = None;
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&self.path, e)),
        }
    }
}

impl Drop for Segment {
    /// A spool closed in an orderly way (dropped, not killed) writes what it holds; durable or
    /// not, as before the drop.
    fn drop(&mut self) {
        let _ = self.flush();
    }
}
