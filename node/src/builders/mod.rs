//! Git builders after Posit Package Manager: a builder watches one Git remote (a branch's new
//! commits, or new tags) and builds each new commit into packages for its `git` (R) or
//! `git-python` source with the real toolchain, offline.
//!
//! - `queue` — the builders and the build queue in the database: claims with a lease
//!   (PostgreSQL `FOR UPDATE SKIP LOCKED`; SQLite `BEGIN IMMEDIATE`), renewals, expiries.
//! - `remote` — `git ls-remote`: what a builder's remote holds now, and one poll of it.
//! - `sightings` — what the checks saw (the first sighting of each commit per builder), written
//!   before anything is queued, so a commit seen and never queued stays on record.
//! - `poller` — every node checks due builders; a poll lease on the builder row makes one node
//!   poll a given builder at a time.
//! - `toolchain` — `git clone`, `R CMD build`, `python3 -m build` in a scratch directory, with a
//!   time limit (the process group is killed) and an output limit.
//! - `build_index` — with `[git] python_build_index`, the node's own simple index of that repo
//!   (and a read token for the build when the repo is authenticated), where an isolated Python
//!   build's pip finds the project's build backend.
//! - `worker` — `[git] build_concurrency` workers per node claim, build and publish.
//!
//! What follows Posit Package Manager's documentation (docs.posit.co/rspm: "Building Git
//! Packages", `rspm create git-builder`, `rspm rerun`): source types `git` (R source tarballs
//! only, no binaries) and `git-python` (sdist and wheel, built with the `build` module); builder
//! options `--branch` (the remote's default branch when absent), `--build-trigger commits|tags`
//! (default `commits`), `--sub-dir`, `--clone-depth` (default 1, a shallow clone; 0 the whole
//! history), `--name`; `rerun git-builder --commit-sha X | --tag T` with `--wait` the default.
//! Where those pages say nothing we could find — what a commit that keeps an already published
//! version does, what rerunning a published commit does — a published version never changes
//! (like an upload of the same file name): such a commit fails with "already exists … with
//! different content", and a rerun of a published commit is refused (409); a failed or never
//! built commit is queued again. A poll builds the branch's newest commit (not every commit
//! pushed since the last poll) and every tag not built yet.
//!
//! **Architecture Invariant:** a build is published at most once per (builder, commit): the
//! queue holds one row per (builder, commit), and its `succeeded` state is written in the same
//! database transaction as its package files, only while the worker still holds the build's
//! lease (`lease_token`). A worker that lost its lease (expired, handed back) can never commit.
//!
//! **Architecture Invariant:** a node that is not Online (Starting, Offline, draining) claims no
//! build; on shutdown it hands back (re-queues) the builds it holds.

pub mod build_index;
pub mod poller;
pub mod queue;
pub mod remote;
pub mod sightings;
pub mod toolchain;
pub mod worker;

use serde::{Deserialize, Serialize};

use crate::auth::SecureKey;
use crate::blobs::Blobs;
use crate::config::{Config, valid_name};
use crate::store::{Store, StoreError};
use crate::telemetry::Telemetry;

/// What the builders see of the running node (which `http::NodeState` implements): the builders
/// know nothing of `http` or `server`.
pub trait BuilderSide: Send + Sync {
    fn config(&self) -> &Config;
    fn store(&self) -> &Store;
    fn blobs(&self) -> &Blobs;
    /// The secure key, to issue a build's read token for an authenticated build index.
    fn key(&self) -> &SecureKey;
    fn telemetry(&self) -> &Telemetry;
    fn node_id(&self) -> String;
    /// Whether the node may start work: Online (not Starting, Offline, draining or refused) and
    /// serving.
    fn may_work(&self) -> bool;
    /// A build published transaction `tx`: `latest` moves on at once on this node (after a read
    /// of the head that checks the history the node holds).
    fn published(&self, tx: i64);
}

/// The running node, as the builders hold it.
pub type Node = std::sync::Arc<dyn BuilderSide>;

/// Sleeps `wait`, or less when the node stops; true when it stops. Every builder loop (the
/// workers, the poller, the reaper) waits with it.
pub async fn pause(
    stop: &mut tokio::sync::watch::Receiver<bool>,
    wait: std::time::Duration,
) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(wait) => false,
        Ok(_) = stop.wait_for(|s| *s) => true,
    };
    stopped || *stop.borrow()
}

/// What makes a builder build: a new commit on its branch, or a new tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildTrigger {
    Commits,
    Tags,
}

impl BuildTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Commits => "commits",
            Self::Tags => "tags",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "commits" => Some(Self::Commits),
            "tags" => Some(Self::Tags),
            _ => None,
        }
    }
}

/// Where a build is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildState {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl BuildState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "queued" => Some(Self::Queued),
            "running" => Some(Self::Running),
            "succeeded" => Some(Self::Succeeded),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// Errors of the git builders.
#[derive(Debug, thiserror::Error)]
pub enum BuilderError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The remote could not be read (`git ls-remote` failed or timed out).
    #[error("{0}")]
    Remote(String),
}

/// A builder's settings as given by the operator, checked by [`NewBuilder::validate`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBuilder {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default = "default_trigger")]
    pub build_trigger: BuildTrigger,
    #[serde(default)]
    pub sub_dir: Option<String>,
    /// Commits fetched: 1 (PPM's default) is a shallow clone, 0 the whole history.
    #[serde(default = "default_depth")]
    pub clone_depth: i64,
}

fn default_trigger() -> BuildTrigger {
    BuildTrigger::Commits
}

fn default_depth() -> i64 {
    1
}

impl NewBuilder {
    /// Every problem with the settings, so the operator can fix them all at once.
    pub fn validate(&self) -> Result<(), BuilderError> {
        let mut problems = Vec::new();
        if !valid_name(&self.name) {
            problems.push(format!(
                "invalid builder name {:?}: {}",
                self.name,
                crate::config::NAME_RULE
            ));
        }
        if !valid_url(&self.url) {
            problems.push(format!(
                "invalid url {:?}: give a git://, http(s)://, ssh:// or file:// URL, or an absolute path",
                self.url
            ));
        }
        if let Some(branch) = &self.branch
            && !valid_ref(branch)
        {
            problems.push(format!("invalid branch name {branch:?}"));
        }
        if let Some(dir) = &self.sub_dir
            && !valid_sub_dir(dir)
        {
            problems.push(format!(
                "invalid sub_dir {dir:?}: give a relative path inside the repository, without '..'"
            ));
        }
        if self.clone_depth < 0 {
            problems.push(format!(
                "clone_depth must be 0 (full history) or more, got {}",
                self.clone_depth
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(BuilderError::Invalid(problems.join("; ")))
        }
    }
}

fn valid_url(url: &str) -> bool {
    let schemes = ["git://", "http://", "https://", "ssh://", "file://"];
    !url.is_empty()
        && url.len() <= 2048
        && !url.chars().any(|c| c.is_control() || c.is_whitespace())
        && (schemes.iter().any(|s| url.starts_with(s)) || url.starts_with('/'))
}

/// A conservative `git check-ref-format`: never an option, never a range or a revision
/// expression.
pub fn valid_ref(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('-')
        && !name.starts_with('/')
        && !name.ends_with('/')
        && !name.ends_with(".lock")
        && !name.contains("..")
        && !name.contains("@{")
        && !name.contains("//")
        && name
            .chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && !"~^:?*[\\".contains(c))
}

fn valid_sub_dir(dir: &str) -> bool {
    let path = std::path::Path::new(dir);
    !dir.is_empty()
        && path.is_relative()
        && path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// A full hexadecimal commit id (SHA-1 or SHA-256).
pub fn valid_sha(sha: &str) -> bool {
    (sha.len() == 40 || sha.len() == 64) && sha.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Epoch milliseconds as RFC 3339 (UTC), millisecond precision.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| format!("{ms} ms"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_options_and_escapes() {
        let ok = NewBuilder {
            name: "pkg".into(),
            url: "git://127.0.0.1/pkg.git".into(),
            branch: Some("main".into()),
            build_trigger: BuildTrigger::Commits,
            sub_dir: Some("pkgs/r".into()),
            clone_depth: 1,
        };
        assert!(ok.validate().is_ok());
        let bad = NewBuilder {
            name: "-x".into(),
            url: "--upload-pack=touch /tmp/x".into(),
            branch: Some("--orphan".into()),
            build_trigger: BuildTrigger::Tags,
            sub_dir: Some("../../etc".into()),
            clone_depth: -1,
        };
        let message = bad.validate().unwrap_err().to_string();
        for word in ["name", "url", "branch", "sub_dir", "clone_depth"] {
            assert!(message.contains(word), "{word} not named in: {message}");
        }
        assert!(valid_sha(&"a".repeat(40)));
        assert!(!valid_sha("HEAD"));
    }
}
