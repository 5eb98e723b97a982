//! One process per spool folder: an exclusive lock (`flock`-style, through `File::try_lock`) on
//! the folder's `lock` file, held while the [`FolderLock`] lives and released by the operating
//! system when the process dies, however it dies. The holder's pid is written into the file
//! for the error message only; the lock alone decides.
//!
//! The lock belongs to the open file, not the process, so a second open in the same process is
//! refused too. The file is never deleted: a process that deleted it could leave a waiting
//! opener locking a file no one else sees.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The name of the lock file inside a locked folder.
pub const LOCK_FILE: &str = "lock";

/// Why a folder could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{dir}: in use by {holder}")]
    InUse { dir: String, holder: String },
    #[error("{dir}: cannot lock {LOCK_FILE}: {why}")]
    Io { dir: String, why: std::io::Error },
}

/// An exclusive lock on a folder, held until dropped.
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
    dir: PathBuf,
}

impl FolderLock {
    /// Creates `dir` if needed and locks it, or says which process holds it.
    pub fn take(dir: &Path) -> Result<FolderLock, LockError> {
        let io = |why| LockError::Io { dir: dir.display().to_string(), why };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!("process {pid}"),
                    Err(_) => "another process".to_string(),
                };
                return Err(LockError::InUse { dir: dir.display().to_string(), holder });
            }
            Err(TryLockError::Error(why)) => return Err(io(why)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(FolderLock { _file: file, dir: dir.to_path_buf() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_folder_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("spool");
        let first = FolderLock::take(&folder).unwrap();
        assert_eq!(
            std::fs::read_to_string(folder.join(LOCK_FILE)).unwrap(),
            format!("{}\n", std::process::id())
        );
        let err = FolderLock::take(&folder).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}: in use by process {}", folder.display(), std::process::id())
        );
        drop(first);
        let again = FolderLock::take(&folder).unwrap();
        assert_eq!(again.dir(), folder);
    }

    #[test]
    fn a_lock_file_left_behind_does_not_lock_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), "4000000000 and more\n").unwrap();
        FolderLock::take(dir.path()).unwrap();
        let pid = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(pid, format!("{}\n", std::process::id()), "the stale text is replaced");
    }
}
