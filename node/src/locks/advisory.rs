//! Advisory locks: an fcntl write lock on the whole lock file, taken through an open file
//! description (`F_OFD_SETLK`), so it excludes other threads of this process as well as other
//! processes and — through the NFS lock manager — other nodes. The kernel drops it when its
//! holder dies, so an advisory lock is never stale.
//!
//! The holder removes the file on release; an acquirer checks that the name still leads to the
//! file it locked, so a waiter that opened the file before its removal cannot hold a ghost lock.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, fcntl};

use super::owner;

/// A held advisory lock: the open file carries it.
pub struct Held {
    file: File,
    lock: PathBuf,
}

fn write_lock() -> libc::flock {
    // SAFETY: `flock` is a plain C struct; all-zero is a valid value that we then fill in.
    let mut request: libc::flock = unsafe { std::mem::zeroed() };
    request.l_type = libc::F_WRLCK as libc::c_short;
    request.l_whence = libc::SEEK_SET as libc::c_short;
    request.l_start = 0;
    request.l_len = 0;
    request
}

fn same_file(file: &File, path: &Path) -> io::Result<bool> {
    let open = file.metadata()?;
    match std::fs::metadata(path) {
        Ok(named) => Ok(named.ino() == open.ino() && named.dev() == open.dev()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// One attempt: `Ok(Ok(held))` when acquired, `Ok(Err(holder))` when someone else holds it.
pub fn try_acquire(lock: &Path) -> io::Result<Result<Held, String>> {
    loop {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(lock)?;
        match fcntl(&file, FcntlArg::F_OFD_SETLK(&write_lock())) {
            Ok(_) => {}
            Err(Errno::EAGAIN) | Err(Errno::EACCES) => {
                let holder = std::fs::read_to_string(lock)
                    .map(|t| t.trim().to_string())
                    .ok()
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| "an unknown holder".into());
                return Ok(Err(holder));
            }
            Err(e) => return Err(io::Error::from(e)),
        }
        if !same_file(&file, lock)? {
            // Released and removed after we opened it: try the current file.
            continue;
        }
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        writeln!(file, "{}", owner())?;
        return Ok(Ok(Held {
            file,
            lock: lock.to_path_buf(),
        }));
    }
}

impl Held {
    /// Touches the file for people looking at the directory; false when the name no longer
    /// leads to it.
    pub fn refresh(&self) -> io::Result<bool> {
        if !same_file(&self.file, &self.lock)? {
            return Ok(false);
        }
        self.file.set_modified(SystemTime::now())?;
        Ok(true)
    }

    /// Removes the file while still holding the lock; closing the file then releases it.
    pub fn release(&self) -> io::Result<()> {
        if same_file(&self.file, &self.lock)? {
            std::fs::remove_file(&self.lock)?;
        }
        Ok(())
    }
}
