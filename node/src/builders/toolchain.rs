//! The real toolchains, run offline in a scratch directory that is removed afterwards:
//! `git clone` and a checkout of the commit, then `R CMD build --no-build-vignettes` (an R source
//! tarball) for `git` sources or `python3 -m build --no-isolation` (an sdist and a wheel, nothing
//! downloaded) for `git-python` sources.
//!
//! Every command runs in its own process group: at the time limit, at the output limit, or when the
//! worker stops (lease lost, node shutting down) the whole group is killed, so no compiler or
//! test process the build started outlives it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::ingest::Product;
use crate::store::SourceKind;

/// The part of a build's log kept and served (its start: where clone and build errors are).
pub const LOG_KEPT_BYTES: usize = 1024 * 1024;

/// Why a build step did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("cannot run {program}: {message}")]
    Spawn { program: String, message: String },
    #[error("{command} failed ({status})")]
    Failed { command: String, status: String },
    #[error("the build ran longer than build_timeout ({})", humantime::format_duration(*.0))]
    TimedOut(Duration),
    #[error("the build wrote more than max_output_bytes ({0} bytes)")]
    OutputTooLarge(u64),
    #[error("the build was stopped")]
    Stopped,
    #[error("{0}")]
    Products(String),
    #[error("scratch directory: {0}")]
    Io(#[from] std::io::Error),
}

/// A build's log: the first [`LOG_KEPT_BYTES`] are kept; every byte counts against the limit.
#[derive(Debug, Default)]
pub struct BuildLog {
    text: Vec<u8>,
    written: u64,
}

impl BuildLog {
    pub fn note(&mut self, line: &str) {
        self.push(line.as_bytes());
        self.push(b"\n");
    }

    fn push(&mut self, bytes: &[u8]) {
        self.written += bytes.len() as u64;
        let room = LOG_KEPT_BYTES.saturating_sub(self.text.len());
        self.text.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    pub fn into_text(self) -> String {
        let mut text = String::from_utf8_lossy(&self.text).into_owned();
        if self.written > self.text.len() as u64 {
            text.push_str(&format!(
                "\n[log cut at {} of {} bytes]\n",
                self.text.len(),
                self.written
            ));
        }
        text
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    pub url: String,
    pub commit_sha: String,
    /// The branch or tag to clone, when known.
    pub clone_ref: Option<String>,
    pub clone_depth: i64,
    pub sub_dir: Option<String>,
    pub kind: SourceKind,
}

/// The limits of one build.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    pub max_output_bytes: u64,
}

/// A scratch directory removed when dropped, whatever happened in it.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.0.display(), error = %e, "cannot remove a build's scratch directory");
        }
    }
}

/// Removes scratch directories under `scratch_root` not touched for `older_than`: what builds of a
/// node that was killed left behind (a live build of this node is never that old: the time limit
/// ends it). Returns how many were removed.
pub fn remove_stale_scratch(scratch_root: &Path, older_than: Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(scratch_root) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > older_than);
        let ours = entry.file_name().to_string_lossy().starts_with("build-");
        if stale && ours && std::fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Clones and builds `spec` under `scratch_root`; returns the products. The log is written
/// whatever the outcome.
pub async fn build(
    spec: &BuildSpec,
    limits: Limits,
    scratch_root: &Path,
    stop: watch::Receiver<bool>,
    log: &mut BuildLog,
) -> Result<Vec<Product>, ToolError> {
    std::fs::create_dir_all(scratch_root)?;
    let scratch = Scratch(scratch_root.join(format!("build-{}", uuid::Uuid::new_v4())));
    std::fs::create_dir_all(&scratch.0)?;
    let src = scratch.0.join("src");
    let out = scratch.0.join("out");
    std::fs::create_dir_all(&out)?;
    let mut run = Runner {
        deadline: Instant::now() + limits.timeout,
        limits,
        stop,
        log,
    };

    let mut clone: Vec<String> = vec!["clone".into(), "--quiet".into(), "--no-checkout".into()];
    if spec.clone_depth > 0 {
        clone.push(format!("--depth={}", spec.clone_depth));
    }
    if let Some(r) = &spec.clone_ref {
        clone.push(format!("--branch={r}"));
    }
    clone.push("--".into());
    clone.push(spec.url.clone());
    clone.push(src.display().to_string());
    run.run("git", &clone, &scratch.0).await?;
    let checkout = [
        "checkout".to_string(),
        "--quiet".into(),
        "--detach".into(),
        spec.commit_sha.clone(),
    ];
    if run.run("git", &checkout, &src).await.is_err() {
        // The ref moved on since the poll and the shallow clone lacks the commit: fetch it by id.
        run.log
            .note("# the commit is not in the clone; fetching it by id");
        let mut fetch = vec!["fetch".to_string(), "--quiet".into()];
        if spec.clone_depth > 0 {
            fetch.push(format!("--depth={}", spec.clone_depth));
        }
        fetch.extend(["origin".to_string(), spec.commit_sha.clone()]);
        run.run("git", &fetch, &src).await?;
        run.run("git", &checkout, &src).await?;
    }
    let package_dir = match &spec.sub_dir {
        Some(dir) => src.join(dir),
        None => src.clone(),
    };
    if !package_dir.is_dir() {
        return Err(ToolError::Products(format!(
            "sub_dir {:?} is not a directory at commit {}",
            spec.sub_dir.as_deref().unwrap_or(""),
            spec.commit_sha
        )));
    }
    let dir = package_dir.display().to_string();
    match spec.kind {
        SourceKind::Git | SourceKind::Local => {
            let args = [
                "CMD".to_string(),
                "build".into(),
                "--no-build-vignettes".into(),
                "--no-manual".into(),
                dir,
            ];
            run.run("R", &args, &out).await?;
        }
        SourceKind::GitPython | SourceKind::LocalPython => {
            let args = [
                "-m".to_string(),
                "build".into(),
                "--no-isolation".into(),
                "--outdir".into(),
                out.display().to_string(),
                dir,
            ];
            run.run("python3", &args, &scratch.0).await?;
        }
    }
    collect(&out, spec.kind, limits.max_output_bytes)
}

/// Reads the products: one R tarball, or one sdist and one wheel.
fn collect(out: &Path, kind: SourceKind, max_bytes: u64) -> Result<Vec<Product>, ToolError> {
    let mut products = Vec::new();
    let mut total = 0u64;
    for entry in std::fs::read_dir(out)? {
        let entry = entry?;
        let filename = entry.file_name().to_string_lossy().into_owned();
        if !(filename.ends_with(".tar.gz") || filename.ends_with(".whl")) {
            continue;
        }
        total += entry.metadata()?.len();
        if total > max_bytes {
            return Err(ToolError::OutputTooLarge(max_bytes));
        }
        products.push(Product {
            filename,
            bytes: std::fs::read(entry.path())?.into(),
        });
    }
    products.sort_by(|a, b| a.filename.cmp(&b.filename));
    let tarballs = products
        .iter()
        .filter(|p| p.filename.ends_with(".tar.gz"))
        .count();
    let wheels = products.len() - tarballs;
    let expected = match kind {
        SourceKind::Git | SourceKind::Local => tarballs == 1 && wheels == 0,
        SourceKind::GitPython | SourceKind::LocalPython => tarballs == 1 && wheels == 1,
    };
    if !expected {
        let names: Vec<&str> = products.iter().map(|p| p.filename.as_str()).collect();
        return Err(ToolError::Products(format!(
            "the build produced {names:?}; expected {}",
            match kind {
                SourceKind::Git | SourceKind::Local => "one R source tarball",
                _ => "one sdist and one wheel",
            }
        )));
    }
    Ok(products)
}

struct Runner<'a> {
    deadline: Instant,
    limits: Limits,
    stop: watch::Receiver<bool>,
    log: &'a mut BuildLog,
}

impl Runner<'_> {
    /// Runs one command of the build, its output (stdout and stderr, interleaved) into the log.
    async fn run(&mut self, program: &str, args: &[String], cwd: &Path) -> Result<(), ToolError> {
        let command_line = format!("{program} {}", args.join(" "));
        self.log.note(&format!("$ {command_line}"));
        let (reader, writer) = std::io::pipe()?;
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .current_dir(cwd)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("PIP_NO_INDEX", "1")
            .stdin(std::process::Stdio::null())
            .stdout(writer.try_clone()?)
            .stderr(writer)
            .process_group(0)
            .kill_on_drop(true);
        let spawned = command.spawn();
        // The command holds the pipe's write ends: drop it, so the reader sees the end.
        drop(command);
        let mut child = spawned.map_err(|e| ToolError::Spawn {
            program: program.to_string(),
            message: e.to_string(),
        })?;
        let pgid = child.id().map(|pid| pid as i32);
        let budget = self
            .limits
            .max_output_bytes
            .saturating_sub(self.log.written);
        let (overflow_tx, mut overflow_rx) = watch::channel(false);
        let reading = tokio::task::spawn_blocking(move || read_capped(reader, budget, overflow_tx));
        // A closed channel (its sender dropped) disables its branch: only a real signal counts.
        let outcome = tokio::select! {
            status = child.wait() => Ok(status),
            _ = tokio::time::sleep_until(self.deadline) => Err(ToolError::TimedOut(self.limits.timeout)),
            Ok(_) = self.stop.wait_for(|stop| *stop) => Err(ToolError::Stopped),
            Ok(_) = overflow_rx.wait_for(|over| *over) => Err(ToolError::OutputTooLarge(self.limits.max_output_bytes)),
        };
        // Whatever happened, nothing the command started may outlive it (or hold the pipe open).
        if let Some(pgid) = pgid {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if outcome.is_err() {
            let _ = child.wait().await;
        }
        let output = reading.await.unwrap_or_default();
        self.log.push(&output);
        match outcome? {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => {
                self.log.note(&format!("# {status}"));
                Err(ToolError::Failed {
                    command: format!("{program} {}", args.first().cloned().unwrap_or_default()),
                    status: status.to_string(),
                })
            }
            Err(e) => Err(ToolError::Io(e)),
        }
    }
}

/// Reads a command's output until it ends, keeping what fits the log and flagging when the
/// output passes `budget` bytes.
fn read_capped(
    mut reader: std::io::PipeReader,
    budget: u64,
    overflow: watch::Sender<bool>,
) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut seen = 0u64;
    let mut buf = [0u8; 16 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                seen += n as u64;
                if kept.len() < LOG_KEPT_BYTES {
                    let room = LOG_KEPT_BYTES - kept.len();
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
                if seen > budget {
                    let _ = overflow.send(true);
                }
            }
        }
    }
    kept
}

/// Runs a short git command (ls-remote) and returns its standard output.
pub async fn run_git_quick(args: &[String], timeout: Duration) -> Result<String, String> {
    let output = tokio::time::timeout(
        timeout,
        tokio::process::Command::new("git")
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| format!("no answer within {}", humantime::format_duration(timeout)))?
    .map_err(|e| format!("cannot run git: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(format!(
            "{} ({})",
            stderr.trim().chars().take(500).collect::<String>(),
            output.status
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_old_scratch_directories_are_removed() {
        let root = std::env::temp_dir().join(format!("pkgnode-scratch-{}", uuid::Uuid::new_v4()));
        for name in ["build-old", "build-new", "other-old"] {
            std::fs::create_dir_all(root.join(name).join("src")).unwrap();
        }
        let long_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        for name in ["build-old", "other-old"] {
            std::fs::File::open(root.join(name))
                .unwrap()
                .set_modified(long_ago)
                .unwrap();
        }
        assert_eq!(remove_stale_scratch(&root, Duration::from_secs(600)), 1);
        assert!(!root.join("build-old").exists());
        assert!(root.join("build-new").exists() && root.join("other-old").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
