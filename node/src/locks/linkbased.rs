//! Link-based locks, Workbench's default: the holder writes a private file
//! (`name.lock.<host>.<pid>.<n>`) and links it to `name.lock`; `link(2)` and `symlink(2)` fail
//! when the name exists, on local disks and on NFS alike. The holder keeps the private file's
//! modification time fresh; a lock older than the timeout belongs to a dead holder.
//!
//! Reaping renames the stale lock aside first, so two reapers cannot both delete: the second
//! one's rename finds nothing, or finds a fresh lock, which it puts back.

use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{age, owner, unique_suffix};

/// A held link-based lock.
pub struct Held {
    lock: PathBuf,
    private: PathBuf,
    symlink: bool,
}

fn private_name(lock: &Path) -> PathBuf {
    let mut name = lock.as_os_str().to_owned();
    name.push(".");
    name.push(unique_suffix());
    PathBuf::from(name)
}

fn file_name(path: &Path) -> &std::ffi::OsStr {
    path.file_name().unwrap_or(path.as_os_str())
}

/// Who holds `lock`, from the private file it points at.
pub fn holder(lock: &Path) -> String {
    std::fs::read_to_string(lock)
        .map(|text| text.trim().to_string())
        .ok()
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "an unknown holder".into())
}

/// How long ago the lock (or, for a symlink, the file it points at) was refreshed;
/// `None` when there is no lock any more.
fn lock_age(lock: &Path) -> io::Result<Option<Duration>> {
    match std::fs::metadata(lock) {
        Ok(meta) => Ok(Some(age(meta.modified()?))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => match std::fs::symlink_metadata(lock) {
            // A dangling symlink: its holder removed or lost the private file.
            Ok(meta) => Ok(Some(age(meta.modified()?))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// One attempt. `Ok(Ok((held, reaped)))` when acquired (`reaped` names the dead holder whose
/// stale lock was removed), `Ok(Err(holder))` when someone else holds it.
pub fn try_acquire(
    lock: &Path,
    symlink: bool,
    timeout: Duration,
) -> io::Result<Result<(Held, Option<String>), String>> {
    let private = private_name(lock);
    {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&private)?;
        writeln!(file, "{}", owner())?;
    }
    let held = Held {
        lock: lock.to_path_buf(),
        private,
        symlink,
    };
    let mut reaped = None;
    // A few rounds: the lock may be released or reaped between our attempts.
    for _ in 0..3 {
        match held.link() {
            Ok(true) => return Ok(Ok((held, reaped))),
            Ok(false) => {}
            Err(e) => {
                let _ = std::fs::remove_file(&held.private);
                return Err(e);
            }
        }
        match lock_age(lock) {
            Ok(None) => continue,
            Ok(Some(age)) if age > timeout => {
                if let Some(dead) = reap(lock, timeout)? {
                    tracing::warn!(lock = %lock.display(), holder = %dead, "reaped a stale lock");
                    reaped = Some(dead);
                }
            }
            Ok(Some(_)) => break,
            Err(e) => {
                let _ = std::fs::remove_file(&held.private);
                return Err(e);
            }
        }
    }
    let _ = std::fs::remove_file(&held.private);
    Ok(Err(holder(lock)))
}

impl Held {
    /// Links the private file at the lock name; false when the name is taken.
    fn link(&self) -> io::Result<bool> {
        let result = if self.symlink {
            std::os::unix::fs::symlink(file_name(&self.private), &self.lock)
        } else {
            std::fs::hard_link(&self.private, &self.lock)
        };
        match result {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            // NFS may report failure for a link that was made (a lost reply to a retried
            // request): the link count says what really happened.
            Err(e) if !self.symlink => match std::fs::metadata(&self.private) {
                Ok(meta) if meta.nlink() == 2 => Ok(true),
                _ => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Whether the lock name still leads to our private file.
    fn owned(&self) -> io::Result<bool> {
        if self.symlink {
            match std::fs::read_link(&self.lock) {
                Ok(target) => Ok(target.as_os_str() == file_name(&self.private)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(false),
                Err(e) => Err(e),
            }
        } else {
            let mine = std::fs::metadata(&self.private)?;
            match std::fs::symlink_metadata(&self.lock) {
                Ok(theirs) => Ok(theirs.ino() == mine.ino() && theirs.dev() == mine.dev()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            }
        }
    }

    /// Marks the lock alive; false when it is no longer ours.
    pub fn refresh(&self) -> io::Result<bool> {
        if !self.owned()? {
            return Ok(false);
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.private)?;
        file.set_modified(SystemTime::now())?;
        Ok(true)
    }

    /// Removes the lock (when still ours) and the private file.
    pub fn release(&self) -> io::Result<()> {
        let owned = self.owned().unwrap_or(false);
        if owned {
            std::fs::remove_file(&self.lock)?;
        }
        match std::fs::remove_file(&self.private) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Moves a stale lock aside and removes it with its private file. Returns the dead holder, or
/// `None` when the lock vanished or turned out to be fresh (then it is put back).
fn reap(lock: &Path, timeout: Duration) -> io::Result<Option<String>> {
    let mut aside = lock.as_os_str().to_owned();
    aside.push(".reaped.");
    aside.push(unique_suffix());
    let aside = PathBuf::from(aside);
    match std::fs::rename(lock, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    }
    let fresh = matches!(lock_age(&aside)?, Some(age) if age <= timeout);
    if fresh {
        // Another node took the lock after we judged it stale: give it back.
        match std::fs::hard_link(&aside, lock) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                tracing::error!(lock = %lock.display(), "a fresh lock was displaced while reaping; its holder will notice at its next refresh");
            }
            Err(e) => return Err(e),
        }
        std::fs::remove_file(&aside)?;
        return Ok(None);
    }
    let dead = holder(&aside);
    // The dead holder's private file: the symlink's target, or the other name of the inode.
    if let Ok(target) = std::fs::read_link(&aside) {
        if let Some(dir) = lock.parent() {
            let _ = std::fs::remove_file(dir.join(target));
        }
    } else if let Ok(meta) = std::fs::symlink_metadata(&aside) {
        remove_other_names(lock, meta.ino(), &aside);
    }
    std::fs::remove_file(&aside)?;
    Ok(Some(dead))
}

fn remove_other_names(lock: &Path, ino: u64, except: &Path) {
    let (Some(dir), Some(prefix)) = (lock.parent(), lock.file_name()) else {
        return;
    };
    let mut prefix = prefix.to_owned();
    prefix.push(".");
    let prefix = prefix.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path != except
            && entry.file_name().to_string_lossy().starts_with(&prefix)
            && entry.metadata().map(|m| m.ino() == ino).unwrap_or(false)
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The stale-lock scan: reaps stale locks, then removes private files and set-aside locks that
/// nobody refreshed within the timeout (their holders died between two steps).
pub fn reap_dir(dir: &Path, timeout: Duration) -> io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut locks = Vec::new();
    let mut leftovers = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".lock") {
            locks.push(entry.path());
        } else if name.contains(".lock.") {
            leftovers.push(entry.path());
        }
    }
    let mut removed = 0;
    for lock in locks {
        // Advisory lock files are plain files that are not links; they are never stale.
        let is_link = std::fs::symlink_metadata(&lock)
            .map(|m| m.file_type().is_symlink() || m.nlink() > 1)
            .unwrap_or(false);
        if is_link
            && matches!(lock_age(&lock)?, Some(age) if age > timeout)
            && reap(&lock, timeout)?.is_some()
        {
            removed += 1;
        }
    }
    for path in leftovers {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let stale = meta.modified().map(|m| age(m) > timeout).unwrap_or(false);
        if stale && meta.nlink() == 1 && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}
