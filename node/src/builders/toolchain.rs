//! The real toolchains, run offline in a scratch directory that is removed afterwards:
//! `git clone` and a checkout of the commit, then `R CMD build --no-build-vignettes` (an R source
//! tarball) for `git` sources or `python3 -m build` (an sdist and a wheel) for `git-python`
//! sources: `--no-isolation` with the node's own Python packages, or, given a [`PythonIndex`]
//! (`[git] python_build_index`), isolated, its pip installing the build requirements from that
//! one index and nothing else (no other index, no pip configuration file, no cache).
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
    /// `[git] python_build_index` names no repo a build can use.
    #[error("{0}")]
    BuildIndex(String),
    #[error(
        "the build requirement {requirement} is not in repo {repo:?} ([git] python_build_index), \
         so the build backend {backend} cannot be installed; add it (and what it depends on) to a \
         source that repo subscribes to"
    )]
    MissingBuildRequirement {
        requirement: String,
        backend: String,
        repo: String,
    },
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
    /// Where a Python build installs its build requirements; `None` builds `--no-isolation`.
    pub python_index: Option<PythonIndex>,
}

/// The simple index an isolated Python build's pip installs build requirements from.
#[derive(Clone)]
pub struct PythonIndex {
    /// The repo it is the index of (named when a requirement is missing).
    pub repo: String,
    /// The URL as pip is given it; it may carry a read token, so it is never logged.
    pub url: String,
    /// The URL as the build log shows it.
    pub shown: String,
}

impl std::fmt::Debug for PythonIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PythonIndex({} at {})", self.repo, self.shown)
    }
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
        last_output: Vec::new(),
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
    run.run("git", &clone, &scratch.0, Pip::Offline).await?;
    let checkout = [
        "checkout".to_string(),
        "--quiet".into(),
        "--detach".into(),
        spec.commit_sha.clone(),
    ];
    if run.run("git", &checkout, &src, Pip::Offline).await.is_err() {
        // The ref moved on since the poll and the shallow clone lacks the commit: fetch it by id.
        run.log
            .note("# the commit is not in the clone; fetching it by id");
        let mut fetch = vec!["fetch".to_string(), "--quiet".into()];
        if spec.clone_depth > 0 {
            fetch.push(format!("--depth={}", spec.clone_depth));
        }
        fetch.extend(["origin".to_string(), spec.commit_sha.clone()]);
        run.run("git", &fetch, &src, Pip::Offline).await?;
        run.run("git", &checkout, &src, Pip::Offline).await?;
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
            run.run("R", &args, &out, Pip::Offline).await?;
        }
        SourceKind::GitPython | SourceKind::LocalPython => {
            let mut args = vec!["-m".to_string(), "build".into()];
            if spec.python_index.is_none() {
                args.push("--no-isolation".into());
            }
            args.extend(["--outdir".into(), out.display().to_string(), dir]);
            match &spec.python_index {
                None => run.run("python3", &args, &scratch.0, Pip::Offline).await?,
                Some(index) => {
                    let system = BuildSystem::read(&package_dir);
                    run.log.note(&format!(
                        "# build backend {}, requires {:?}; build requirements from repo {}: {}",
                        system.backend, system.requires, index.repo, index.shown
                    ));
                    let built = run
                        .run("python3", &args, &scratch.0, Pip::Index(&index.url))
                        .await;
                    if let Err(ToolError::Failed { .. }) = &built
                        && let Some(requirement) = missing_requirement(&run.last_output)
                    {
                        return Err(ToolError::MissingBuildRequirement {
                            requirement,
                            backend: system.backend,
                            repo: index.repo.clone(),
                        });
                    }
                    built?
                }
            }
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

/// A project's PEP 517 build system, as `pyproject.toml` declares it (for the log and for the
/// error that names a missing backend).
#[derive(Debug, PartialEq)]
struct BuildSystem {
    backend: String,
    requires: Vec<String>,
}

impl BuildSystem {
    /// Reads `dir/pyproject.toml`; without a `[build-system]` table, what `build` assumes then
    /// (PEP 517's legacy setuptools). A file that cannot be read is left for the build to report.
    fn read(dir: &Path) -> Self {
        let legacy = || Self {
            backend: "setuptools.build_meta:__legacy__".into(),
            requires: vec!["setuptools>=40.8.0".into()],
        };
        let text = match std::fs::read_to_string(dir.join("pyproject.toml")) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return legacy(),
            Err(e) => {
                return Self {
                    backend: format!("(pyproject.toml unreadable: {e})"),
                    requires: Vec::new(),
                };
            }
        };
        let table: toml::Table = match toml::from_str(&text) {
            Ok(table) => table,
            Err(e) => {
                return Self {
                    backend: format!("(pyproject.toml is not valid TOML: {})", e.message()),
                    requires: Vec::new(),
                };
            }
        };
        let Some(system) = table.get("build-system").and_then(|s| s.as_table()) else {
            return legacy();
        };
        let requires = system
            .get("requires")
            .and_then(|r| r.as_array())
            .map(|r| {
                r.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let backend = system
            .get("build-backend")
            .and_then(|b| b.as_str())
            .map_or_else(|| legacy().backend, str::to_string);
        Self { backend, requires }
    }
}

/// The requirement pip could not find, from its "No matching distribution found for X" line.
fn missing_requirement(output: &[u8]) -> Option<String> {
    const MARKER: &str = "No matching distribution found for ";
    let text = String::from_utf8_lossy(output);
    let at = text.find(MARKER)? + MARKER.len();
    let requirement = text[at..].lines().next()?.trim();
    (!requirement.is_empty()).then(|| requirement.to_string())
}

/// What pip may reach from a command of the build.
#[derive(Clone, Copy)]
enum Pip<'a> {
    /// No index at all (`PIP_NO_INDEX`): the build uses what is installed.
    Offline,
    /// This simple index only, no cache, no configuration file, no keyring, no prompt.
    Index(&'a str),
}

struct Runner<'a> {
    deadline: Instant,
    limits: Limits,
    stop: watch::Receiver<bool>,
    log: &'a mut BuildLog,
    /// The start of the last command's output (what the log kept of it).
    last_output: Vec<u8>,
}

impl Runner<'_> {
    /// Runs one command of the build, its output (stdout and stderr, interleaved) into the log.
    /// The node's own `PIP_*` settings never reach a build (they could name another index).
    async fn run(
        &mut self,
        program: &str,
        args: &[String],
        cwd: &Path,
        pip: Pip<'_>,
    ) -> Result<(), ToolError> {
        let command_line = format!("{program} {}", args.join(" "));
        self.log.note(&format!("$ {command_line}"));
        let (reader, writer) = std::io::pipe()?;
        let mut command = tokio::process::Command::new(program);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("PIP_") {
                command.env_remove(name);
            }
        }
        match pip {
            Pip::Offline => {
                command.env("PIP_NO_INDEX", "1");
            }
            Pip::Index(url) => {
                command
                    .env("PIP_INDEX_URL", url)
                    .env("PIP_NO_CACHE_DIR", "1")
                    .env("PIP_CONFIG_FILE", "/dev/null")
                    .env("PIP_KEYRING_PROVIDER", "disabled")
                    .env("PIP_NO_INPUT", "1")
                    .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
                    // `build` wraps its output at the terminal's width: one line per message.
                    .env("COLUMNS", "1000");
            }
        }
        command
            .args(args)
            .current_dir(cwd)
            .env("GIT_TERMINAL_PROMPT", "0")
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
        self.last_output = output;
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
    fn a_missing_requirement_is_read_from_pips_output() {
        let output = b"< Looking in indexes: http://127.0.0.1:4242/py/latest/simple/\n\
            < ERROR: Could not find a version that satisfies the requirement flit_core>=3.12 (from versions: none)\n\
            < ERROR: No matching distribution found for flit_core>=3.12\nERROR Command failed\n";
        assert_eq!(
            missing_requirement(output).as_deref(),
            Some("flit_core>=3.12")
        );
        assert_eq!(missing_requirement(b"ERROR Backend failed"), None);
    }

    #[test]
    fn the_build_system_is_read_from_pyproject() {
        let dir = std::env::temp_dir().join(format!("pkgnode-pyproject-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(
            BuildSystem::read(&dir).backend,
            "setuptools.build_meta:__legacy__"
        );
        std::fs::write(
            dir.join("pyproject.toml"),
            "[build-system]\nrequires = [\"flit_core >=3.12\"]\nbuild-backend = \"flit_core.buildapi\"\n",
        )
        .unwrap();
        assert_eq!(
            BuildSystem::read(&dir),
            BuildSystem {
                backend: "flit_core.buildapi".into(),
                requires: vec!["flit_core >=3.12".into()],
            }
        );
        std::fs::write(dir.join("pyproject.toml"), "[build-system\n").unwrap();
        assert!(BuildSystem::read(&dir).backend.contains("not valid TOML"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

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
