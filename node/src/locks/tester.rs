//! `pkgnode locktester`, after Workbench's: run it on one node and it takes every kind of lock in
//! the shared directory and holds them until interrupted; run it on a second node meanwhile and it
//! tries the same locks, reports which it could not acquire — those exclude across nodes — and
//! concludes which lock types the filesystem supports. Also the counter used to prove exclusion
//! under contention (`pkgnode lock-increment`).

use std::future::Future;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{
    Attempt, FileLocks, LockError, LockGuard, LockKind, LockSettings, age, hostname, io_error,
};

const MARKER: &str = "locktester.marker";

fn lock_path(dir: &Path, kind: LockKind) -> PathBuf {
    dir.join(match kind {
        LockKind::LinkBased { symlinks: false } => "locktester-hardlink.lock",
        LockKind::LinkBased { symlinks: true } => "locktester-symlink.lock",
        LockKind::Advisory => "locktester-advisory.lock",
    })
}

fn kind_key(kind: LockKind) -> &'static str {
    match kind {
        LockKind::LinkBased { symlinks: false } => "hardlink",
        LockKind::LinkBased { symlinks: true } => "symlink",
        LockKind::Advisory => "advisory",
    }
}

/// What a run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// This was the first instance: it held the locks until interrupted.
    Held,
    /// This was the second instance.
    Concluded(Conclusion),
}

/// The second instance's verdict per lock type.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Conclusion {
    /// Types it could not acquire while the first instance held them: they work here.
    pub excluded: Vec<LockKind>,
    /// Types it acquired although the first instance held them: they do not work here.
    pub not_excluded: Vec<LockKind>,
    /// Types the first instance could not take, so nothing was tested.
    pub untested: Vec<LockKind>,
}

impl Conclusion {
    /// Whether locks of `kind` exclude on this filesystem.
    pub fn supports(&self, kind: LockKind) -> bool {
        self.excluded.contains(&kind)
    }
}

enum Role {
    First(PathBuf),
    Second { holder: String },
}

fn pid_alive(pid: i32) -> bool {
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::ESRCH) => false,
        Err(_) => true,
    }
}

/// Claims the first-instance role with an exclusively created marker file, removing a marker
/// whose writer is gone (not refreshed within the timeout, or a dead process on this host).
fn claim(dir: &Path, timeout: Duration, report: &mut dyn FnMut(&str)) -> io::Result<Role> {
    let marker = dir.join(MARKER);
    loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&marker)
        {
            Ok(mut file) => {
                writeln!(file, "{} {}", hostname(), std::process::id())?;
                return Ok(Role::First(marker));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let text = match std::fs::read_to_string(&marker) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let holder = text.lines().next().unwrap_or("").trim().to_string();
        let mut words = holder.split_whitespace();
        let same_host_dead = match (words.next(), words.next().and_then(|p| p.parse().ok())) {
            (Some(host), Some(pid)) => host == hostname() && !pid_alive(pid),
            _ => false,
        };
        let stale = std::fs::metadata(&marker)
            .and_then(|m| m.modified())
            .map(|m| age(m) > timeout)
            .unwrap_or(false);
        if same_host_dead || stale {
            report(&format!(
                "removed the marker of a locktester that is gone ({holder})"
            ));
            let _ = std::fs::remove_file(&marker);
            continue;
        }
        return Ok(Role::Second { holder });
    }
}

/// Runs the locktester in `dir`; `report` receives each line for the user.
pub async fn run(
    dir: &Path,
    settings: LockSettings,
    report: &mut (dyn FnMut(&str) + Send),
    interrupted: impl Future<Output = ()>,
) -> Result<Outcome, LockError> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let role = claim(dir, settings.timeout_interval, report).map_err(io_error(dir))?;
    match role {
        Role::First(marker) => {
            let result = hold(dir, &marker, settings, report, interrupted).await;
            let _ = std::fs::remove_file(&marker);
            result.map(|()| Outcome::Held)
        }
        Role::Second { holder } => second(dir, settings, &holder, report).map(Outcome::Concluded),
    }
}

async fn hold(
    dir: &Path,
    marker: &Path,
    settings: LockSettings,
    report: &mut (dyn FnMut(&str) + Send),
    interrupted: impl Future<Output = ()>,
) -> Result<(), LockError> {
    report(&format!(
        "locktester in {} on {} (pid {}): first instance",
        dir.display(),
        hostname(),
        std::process::id()
    ));
    let locks = FileLocks::new(settings);
    // Long enough to reap a lock left by a holder that was killed.
    let wait = settings.timeout_interval * 2 + Duration::from_secs(1);
    let mut guards: Vec<LockGuard> = Vec::new();
    let mut holds = Vec::new();
    for kind in LockKind::ALL {
        let locks = locks.clone();
        let path = lock_path(dir, kind);
        let attempt = tokio::task::spawn_blocking(move || locks.lock_as(&path, kind, wait))
            .await
            .map_err(|e| LockError::Io {
                path: dir.to_path_buf(),
                source: io::Error::other(e.to_string()),
            })?;
        match attempt {
            Ok(guard) => {
                match &guard.reaped {
                    Some(dead) => report(&format!(
                        "  {}: acquired, after reaping a stale lock left by {dead}",
                        kind.label()
                    )),
                    None => report(&format!("  {}: acquired", kind.label())),
                }
                holds.push(kind_key(kind));
                guards.push(guard);
            }
            Err(e) => report(&format!("  {}: NOT acquired: {e}", kind.label())),
        }
    }
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(marker)
        .map_err(io_error(marker))?;
    writeln!(file, "holds {}\nready", holds.join(",")).map_err(io_error(marker))?;
    drop(file);
    report(&format!(
        "holding {} lock(s); run `pkgnode locktester --dir {}` on another node now, then interrupt this one",
        guards.len(),
        dir.display()
    ));
    let marker_owned = marker.to_path_buf();
    let rate = settings.refresh_rate;
    let keep_marker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(rate).await;
            if let Ok(file) = std::fs::OpenOptions::new().write(true).open(&marker_owned) {
                let _ = file.set_modified(std::time::SystemTime::now());
            }
        }
    });
    interrupted.await;
    keep_marker.abort();
    drop(guards);
    report("released the locks");
    Ok(())
}

fn second(
    dir: &Path,
    settings: LockSettings,
    holder: &str,
    report: &mut (dyn FnMut(&str) + Send),
) -> Result<Conclusion, LockError> {
    report(&format!(
        "locktester in {} on {} (pid {}): second instance; the first is {holder}",
        dir.display(),
        hostname(),
        std::process::id()
    ));
    let marker = dir.join(MARKER);
    // The first instance may still be reaping stale locks.
    let deadline = Instant::now() + settings.timeout_interval * 3 + Duration::from_secs(5);
    let holds = loop {
        let text = std::fs::read_to_string(&marker).map_err(io_error(&marker))?;
        if text.lines().any(|l| l.trim() == "ready") {
            break text
                .lines()
                .find_map(|l| l.strip_prefix("holds "))
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .map(str::to_string)
                .collect::<Vec<_>>();
        }
        if Instant::now() > deadline {
            return Err(LockError::Timeout {
                path: marker,
                waited: settings.timeout_interval * 3,
                holder: holder.to_string(),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let locks = FileLocks::new(settings);
    let mut conclusion = Conclusion::default();
    for kind in LockKind::ALL {
        if !holds.iter().any(|h| h == kind_key(kind)) {
            report(&format!(
                "  {}: not tested: the first instance could not acquire it",
                kind.label()
            ));
            conclusion.untested.push(kind);
            continue;
        }
        match locks.try_lock_as(&lock_path(dir, kind), kind)? {
            Attempt::Busy { holder } => {
                report(&format!(
                    "  {}: could not acquire (held by {holder}): it excludes",
                    kind.label()
                ));
                conclusion.excluded.push(kind);
            }
            Attempt::Acquired(guard) => {
                drop(guard);
                report(&format!(
                    "  {}: ACQUIRED although the first instance holds it: it does not exclude",
                    kind.label()
                ));
                conclusion.not_excluded.push(kind);
            }
        }
    }
    let names = |kinds: &[LockKind]| {
        kinds
            .iter()
            .map(|k| k.label())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if conclusion.excluded.is_empty() {
        report(
            "conclusion: no lock type excludes across nodes here; do not share this directory between nodes",
        );
    } else {
        report(&format!(
            "conclusion: this filesystem supports {}",
            names(&conclusion.excluded)
        ));
    }
    if !conclusion.not_excluded.is_empty() {
        report(&format!(
            "            and does NOT support {}",
            names(&conclusion.not_excluded)
        ));
    }
    Ok(conclusion)
}

/// Adds one to the counter in `dir/counter` under `dir/counter.lock`, `times` times; returns the
/// last value written. Without the lock, concurrent incrementers lose updates.
pub fn increment(dir: &Path, locks: &FileLocks, times: u64) -> Result<u64, LockError> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let counter = dir.join("counter");
    let lock = dir.join("counter.lock");
    let wait = locks.settings().timeout_interval * 4 + Duration::from_secs(30);
    let mut last = 0;
    for _ in 0..times {
        let guard = locks.lock(&lock, wait)?;
        let value = match std::fs::read_to_string(&counter) {
            Ok(text) => text.trim().parse::<u64>().map_err(|e| LockError::Io {
                path: counter.clone(),
                source: io::Error::new(io::ErrorKind::InvalidData, e),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_error(&counter)(e)),
        };
        last = value + 1;
        let temp = dir.join(format!("counter.tmp.{}", super::unique_suffix()));
        std::fs::write(&temp, format!("{last}\n")).map_err(io_error(&temp))?;
        std::fs::rename(&temp, &counter).map_err(io_error(&counter))?;
        drop(guard);
    }
    Ok(last)
}
