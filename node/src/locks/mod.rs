//! Cross-node file locks for state in the shared directory, configured as Workbench's
//! `file-locks`: `linkbased` (the default: a hard link — or a symlink — made atomically at the
//! lock's name) or `advisory` (fcntl open-file-description locks). Holders refresh their locks
//! every `refresh_rate`; a link-based lock not refreshed for `timeout_interval` belongs to a dead
//! holder and is reaped by the next node that wants it. Advisory locks die with their process.
//!
//! **Invariant:** a lock name ends in `.lock`; every other file next to it (`*.lock.<host>.<pid>.<n>`,
//! `*.lock.reaped.<n>`) is the lock's own bookkeeping, removed on release or by [`FileLocks::reap_stale`].

pub mod advisory;
pub mod linkbased;
pub mod tester;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use crate::config::LocksConfig;

/// Which mechanism a lock uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// A hard link (or, with `symlinks`, a symbolic link) created at the lock's name.
    LinkBased { symlinks: bool },
    /// An fcntl lock on the lock file, held through an open file description.
    Advisory,
}

impl LockKind {
    /// The kind named by the configuration (`type` and `use_symlinks`).
    pub fn from_config(config: &LocksConfig) -> Self {
        if config.kind == "advisory" {
            Self::Advisory
        } else {
            Self::LinkBased {
                symlinks: config.use_symlinks,
            }
        }
    }

    /// A label for reports.
    pub fn label(self) -> &'static str {
        match self {
            Self::LinkBased { symlinks: false } => "linkbased (hard links)",
            Self::LinkBased { symlinks: true } => "linkbased (symlinks)",
            Self::Advisory => "advisory (fcntl)",
        }
    }

    /// Every kind, in the order the locktester tries them.
    pub const ALL: [LockKind; 3] = [
        Self::LinkBased { symlinks: false },
        Self::LinkBased { symlinks: true },
        Self::Advisory,
    ];
}

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("lock {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("lock {path} was not acquired within {waited:?}: held by {holder}")]
    Timeout {
        path: PathBuf,
        waited: Duration,
        holder: String,
    },
    #[error("lock names must end in .lock: {0}")]
    BadName(PathBuf),
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> LockError + '_ {
    move |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Timing and mechanism of a set of locks.
#[derive(Debug, Clone, Copy)]
pub struct LockSettings {
    pub kind: LockKind,
    pub refresh_rate: Duration,
    pub timeout_interval: Duration,
}

impl LockSettings {
    pub fn from_config(config: &LocksConfig) -> Self {
        Self {
            kind: LockKind::from_config(config),
            refresh_rate: config.refresh_rate,
            timeout_interval: config.timeout_interval,
        }
    }
}

/// The outcome of one attempt.
pub enum Attempt {
    Acquired(LockGuard),
    /// Someone else holds it; `holder` says who (`host pid`), as far as the lock file tells.
    Busy {
        holder: String,
    },
}

/// This process's identity as written into the locks it takes.
pub(crate) fn owner() -> String {
    format!("{} {}", hostname(), std::process::id())
}

/// The host name, or `localhost` when it cannot be read.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// A fresh suffix for a private file name.
pub(crate) fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}.{}.{}{:x}",
        hostname(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    )
}

/// How long ago a file was modified (zero when its clock is ahead of ours).
pub(crate) fn age(modified: SystemTime) -> Duration {
    SystemTime::now()
        .duration_since(modified)
        .unwrap_or(Duration::ZERO)
}

enum Mechanism {
    Link(linkbased::Held),
    Advisory(advisory::Held),
}

struct Held {
    path: PathBuf,
    mechanism: Mechanism,
    lost: AtomicBool,
}

impl Held {
    /// Touches the lock so others see it alive; false when it is no longer ours.
    fn refresh(&self) -> bool {
        let result = match &self.mechanism {
            Mechanism::Link(held) => held.refresh(),
            Mechanism::Advisory(held) => held.refresh(),
        };
        match result {
            Ok(owned) => owned,
            Err(e) => {
                tracing::warn!(lock = %self.path.display(), error = %e, "could not refresh a lock");
                true
            }
        }
    }
}

#[derive(Default)]
struct Registry {
    held: Mutex<HashMap<u64, Arc<Held>>>,
    next: AtomicU64,
    refresher: std::sync::OnceLock<()>,
}

/// A held lock; released when dropped.
pub struct LockGuard {
    id: u64,
    held: Arc<Held>,
    registry: Arc<Registry>,
    /// The holder of a stale lock this acquisition reaped, if any.
    pub reaped: Option<String>,
}

impl LockGuard {
    pub fn path(&self) -> &Path {
        &self.held.path
    }

    /// Whether another process took the lock from us (it went stale while we held it).
    pub fn lost(&self) -> bool {
        self.held.lost.load(Ordering::Acquire)
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Ok(mut held) = self.registry.held.lock() {
            held.remove(&self.id);
        }
        let result = match &self.held.mechanism {
            Mechanism::Link(held) => held.release(),
            Mechanism::Advisory(held) => held.release(),
        };
        if let Err(e) = result {
            tracing::warn!(lock = %self.held.path.display(), error = %e, "could not release a lock cleanly");
        }
    }
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LockGuard({})", self.held.path.display())
    }
}

/// Takes and refreshes locks with one set of settings.
#[derive(Clone)]
pub struct FileLocks {
    settings: LockSettings,
    registry: Arc<Registry>,
}

impl std::fmt::Debug for FileLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileLocks({:?})", self.settings)
    }
}

impl FileLocks {
    pub fn new(settings: LockSettings) -> Self {
        Self {
            settings,
            registry: Arc::default(),
        }
    }

    pub fn settings(&self) -> LockSettings {
        self.settings
    }

    /// One attempt at `path`, reaping it first when its holder stopped refreshing it.
    pub fn try_lock(&self, path: &Path) -> Result<Attempt, LockError> {
        self.try_lock_as(path, self.settings.kind)
    }

    /// One attempt with a given mechanism (the locktester tries each).
    pub fn try_lock_as(&self, path: &Path, kind: LockKind) -> Result<Attempt, LockError> {
        if path.extension().and_then(|e| e.to_str()) != Some("lock") {
            return Err(LockError::BadName(path.to_path_buf()));
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        }
        let (mechanism, reaped) = match kind {
            LockKind::LinkBased { symlinks } => {
                match linkbased::try_acquire(path, symlinks, self.settings.timeout_interval)
                    .map_err(io_error(path))?
                {
                    Ok((held, reaped)) => (Mechanism::Link(held), reaped),
                    Err(holder) => return Ok(Attempt::Busy { holder }),
                }
            }
            LockKind::Advisory => match advisory::try_acquire(path).map_err(io_error(path))? {
                Ok(held) => (Mechanism::Advisory(held), None),
                Err(holder) => return Ok(Attempt::Busy { holder }),
            },
        };
        let held = Arc::new(Held {
            path: path.to_path_buf(),
            mechanism,
            lost: AtomicBool::new(false),
        });
        let id = self.registry.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut map) = self.registry.held.lock() {
            map.insert(id, held.clone());
        }
        self.start_refresher();
        Ok(Attempt::Acquired(LockGuard {
            id,
            held,
            registry: self.registry.clone(),
            reaped,
        }))
    }

    /// Waits up to `wait` for `path` (blocking the calling thread).
    pub fn lock(&self, path: &Path, wait: Duration) -> Result<LockGuard, LockError> {
        self.lock_as(path, self.settings.kind, wait)
    }

    /// Waits up to `wait` for `path` with a given mechanism.
    pub fn lock_as(
        &self,
        path: &Path,
        kind: LockKind,
        wait: Duration,
    ) -> Result<LockGuard, LockError> {
        let deadline = Instant::now() + wait;
        let mut pause = Duration::from_millis(1);
        loop {
            match self.try_lock_as(path, kind)? {
                Attempt::Acquired(guard) => return Ok(guard),
                Attempt::Busy { holder } => {
                    if Instant::now() >= deadline {
                        return Err(LockError::Timeout {
                            path: path.to_path_buf(),
                            waited: wait,
                            holder,
                        });
                    }
                    // Jitter keeps waiters on several nodes from retrying in lockstep.
                    std::thread::sleep(pause + Duration::from_micros(rand::random::<u64>() % 2000));
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
            }
        }
    }

    /// As [`FileLocks::lock`], without blocking the async runtime.
    pub async fn lock_async(&self, path: &Path, wait: Duration) -> Result<LockGuard, LockError> {
        let locks = self.clone();
        let path_owned = path.to_path_buf();
        tokio::task::spawn_blocking(move || locks.lock(&path_owned, wait))
            .await
            .map_err(|e| LockError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::other(e.to_string()),
            })?
    }

    /// Removes the stale locks and leftovers of dead holders in `dir`; returns how many.
    pub fn reap_stale(&self, dir: &Path) -> Result<usize, LockError> {
        linkbased::reap_dir(dir, self.settings.timeout_interval).map_err(io_error(dir))
    }

    fn start_refresher(&self) {
        let registry: Weak<Registry> = Arc::downgrade(&self.registry);
        let rate = self.settings.refresh_rate;
        self.registry.refresher.get_or_init(move || {
            let spawned = std::thread::Builder::new()
                .name("lock-refresher".into())
                .spawn(move || refresh_forever(registry, rate));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start the lock refresher; held locks may be reaped");
            }
        });
    }
}

fn refresh_forever(registry: Weak<Registry>, rate: Duration) {
    loop {
        std::thread::sleep(rate);
        let Some(registry) = registry.upgrade() else {
            return;
        };
        let held: Vec<Arc<Held>> = match registry.held.lock() {
            Ok(map) => map.values().cloned().collect(),
            Err(_) => return,
        };
        for lock in held {
            if !lock.lost.load(Ordering::Acquire) && !lock.refresh() {
                lock.lost.store(true, Ordering::Release);
                tracing::error!(lock = %lock.path.display(), "lost a lock: another holder reaped it as stale");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(kind: LockKind) -> LockSettings {
        LockSettings {
            kind,
            refresh_rate: Duration::from_millis(50),
            timeout_interval: TIMEOUT,
        }
    }

    const TIMEOUT: Duration = Duration::from_millis(300);

    /// Polls `ready` until it holds; panics naming `what` after ten seconds.
    fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready() {
            assert!(Instant::now() < deadline, "{what}: not within 10 s");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// When `path` (through a symlink: the file it names) was last touched, as the staleness
    /// rule reads it.
    fn touched(path: &Path) -> SystemTime {
        std::fs::metadata(path).unwrap().modified().unwrap()
    }

    /// How long ago `path` itself was last touched.
    fn age(path: &Path) -> Duration {
        let meta = std::fs::symlink_metadata(path).unwrap();
        meta.modified().unwrap().elapsed().unwrap_or_default()
    }

    #[test]
    fn every_kind_excludes_within_a_process_and_cleans_up() {
        for kind in LockKind::ALL {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("a.lock");
            let locks = FileLocks::new(settings(kind));
            let Attempt::Acquired(guard) = locks.try_lock(&path).unwrap() else {
                panic!("{kind:?}: first attempt busy");
            };
            match locks.try_lock(&path).unwrap() {
                Attempt::Busy { holder } => {
                    assert!(holder.contains(&std::process::id().to_string()), "{holder}")
                }
                Attempt::Acquired(_) => panic!("{kind:?}: second attempt acquired"),
            }
            // Refreshed, so never stale while held: once an untouched lock would be stale, the
            // refresher has touched it since.
            let taken = touched(&path);
            wait_until("a refresh past the stale age", || {
                touched(&path) > taken + TIMEOUT
            });
            assert!(
                matches!(locks.try_lock(&path).unwrap(), Attempt::Busy { .. }),
                "{kind:?}"
            );
            assert!(!guard.lost());
            drop(guard);
            let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
            assert!(left.is_empty(), "{kind:?} left {left:?}");
            assert!(matches!(
                locks.try_lock(&path).unwrap(),
                Attempt::Acquired(_)
            ));
        }
    }

    #[test]
    fn a_stale_link_lock_is_reaped() {
        for symlinks in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("b.lock");
            let locks = FileLocks::new(settings(LockKind::LinkBased { symlinks }));
            let Attempt::Acquired(guard) = locks.try_lock(&path).unwrap() else {
                panic!("busy");
            };
            // A holder that dies leaves its files behind and stops refreshing.
            std::mem::forget(guard);
            if let Ok(mut map) = locks.registry.held.lock() {
                map.clear();
            }
            assert!(matches!(
                locks.try_lock(&path).unwrap(),
                Attempt::Busy { .. }
            ));
            wait_until("the unrefreshed lock goes stale", || {
                touched(&path).elapsed().unwrap_or_default() > TIMEOUT
            });
            let Attempt::Acquired(guard) = locks.try_lock(&path).unwrap() else {
                panic!("stale lock not reaped (symlinks {symlinks})");
            };
            assert!(guard.reaped.is_some());
            drop(guard);
            wait_until("what the dead holder left goes stale", || {
                std::fs::read_dir(dir.path())
                    .unwrap()
                    .all(|entry| age(&entry.unwrap().path()) > TIMEOUT)
            });
            locks.reap_stale(dir.path()).unwrap();
            let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
            assert!(left.is_empty(), "symlinks {symlinks}: left {left:?}");
        }
    }
}
