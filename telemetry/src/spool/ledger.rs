//! The ledger: the highest acknowledged id, overwritten in place (one `pwrite`, no new file and
//! rename per acknowledgement). It holds two slots of `id u64 | crc32 u32` written in turn, so
//! a torn write spoils at most the slot being written while the other still holds the id
//! before it; the highest id whose checksum holds is the ledger's. A ledger of one slot (as
//! earlier versions wrote it) is read as slot 0.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{io, SpoolError};

const FILE: &str = "acked";
const SLOT: usize = 12;

pub struct Ledger {
    path: PathBuf,
    /// Opened at the first write.
    file: Option<File>,
    /// The slot the next write goes to: never the one holding the newest id.
    next: usize,
    /// Written since the last sync.
    dirty: bool,
}

fn slot(bytes: &[u8]) -> Option<u64> {
    let id = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let crc = u32::from_le_bytes(bytes.get(8..SLOT)?.try_into().ok()?);
    (crc32fast::hash(&bytes[..8]) == crc).then_some(id)
}

impl Ledger {
    /// The ledger of the spool in `dir` and the id it holds (0: nothing acknowledged). A ledger
    /// that cannot be read means nothing acknowledged: resending beats losing.
    pub fn open(dir: &Path) -> Result<(Ledger, u64), SpoolError> {
        let path = dir.join(FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(&path, e)),
        };
        let slots = [bytes.get(..SLOT).and_then(slot), bytes.get(SLOT..2 * SLOT).and_then(slot)];
        let (newest, id) = match slots {
            [Some(a), Some(b)] if b > a => (1, b),
            [Some(a), _] => (0, a),
            [None, Some(b)] => (1, b),
            [None, None] => (1, 0),
        };
        Ok((Ledger { path, file: None, next: 1 - newest, dirty: false }, id))
    }

    /// Records `id` as the highest acknowledged (durable at the next [`Ledger::sync`]).
    pub fn write(&mut self, id: u64) -> Result<(), SpoolError> {
        let file = match &mut self.file {
            Some(f) => f,
            None => {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&self.path)
                    .map_err(|e| io(&self.path, e))?;
                self.file.insert(f)
            }
        };
        let mut bytes = [0u8; SLOT];
        bytes[..8].copy_from_slice(&id.to_le_bytes());
        let crc = crc32fast::hash(&bytes[..8]);
        bytes[8..].copy_from_slice(&crc.to_le_bytes());
        file.write_all_at(&bytes, (self.next * SLOT) as u64).map_err(|e| io(&self.path, e))?;
        self.next = 1 - self.next;
        self.dirty = true;
        Ok(())
    }

    /// A handle of the ledger file if it was written since the last sync (which it then
    /// counts as synced: [`Ledger::sync_failed`] takes that back).
    pub fn take_unsynced(&mut self) -> Result<Option<(PathBuf, File)>, SpoolError> {
        match (self.dirty, &self.file) {
            (true, Some(f)) => {
                let handle = f.try_clone().map_err(|e| io(&self.path, e))?;
                self.dirty = false;
                Ok(Some((self.path.clone(), handle)))
            }
            _ => Ok(None),
        }
    }

    pub fn sync_failed(&mut self) {
        self.dirty = true;
    }

    pub fn sync(&mut self) -> Result<(), SpoolError> {
        if let (true, Some(f)) = (self.dirty, &self.file) {
            f.sync_data().map_err(|e| io(&self.path, e))?;
            self.dirty = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_slot_leaves_the_id_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut l, id) = Ledger::open(dir.path()).unwrap();
        assert_eq!(id, 0);
        for id in [5, 9, 12] {
            l.write(id).unwrap();
        }
        l.sync().unwrap();
        drop(l);
        assert_eq!(Ledger::open(dir.path()).unwrap().1, 12);
        // 12 went to slot 0 (5, 9, 12 went to slots 0, 1, 0): tear it; 9 remains.
        let path = dir.path().join(FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[3] ^= 0xFF;
        std::fs::write(&path, &bytes).unwrap();
        let (mut l, id) = Ledger::open(dir.path()).unwrap();
        assert_eq!(id, 9);
        l.write(13).unwrap();
        assert_eq!(Ledger::open(dir.path()).unwrap().1, 13, "the torn slot is the one written next");
    }

    #[test]
    fn reads_the_one_slot_ledger_of_earlier_versions() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = 41u64.to_le_bytes().to_vec();
        old.extend_from_slice(&crc32fast::hash(&old).to_le_bytes());
        std::fs::write(dir.path().join(FILE), &old).unwrap();
        let (mut l, id) = Ledger::open(dir.path()).unwrap();
        assert_eq!(id, 41);
        l.write(42).unwrap();
        assert_eq!(std::fs::read(dir.path().join(FILE)).unwrap()[..SLOT], old[..], "slot 0 kept");
        assert_eq!(Ledger::open(dir.path()).unwrap().1, 42);
    }
}
