//! The commit driver: one working repository per builder, where each planned commit writes the
//! builder's source tree at the next version, commits it, tags it (tag-triggered builders) and
//! pushes with the real `git` client. Commits of one builder go in order; builders push side by
//! side, at most `max_pushes_in_flight` at once. Every push is recorded from the time it was
//! *due* ([`super::KIND_GIT_PUSH`]), and what it pushed goes into the ledger with the moment the
//! push returned: the start of commit → published.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reports::metrics::{Outcome, Recorder};
use serde::{Deserialize, Serialize};
use tokio::process::Command;

use super::{BuildTrigger, BuilderSpec, CommitPlan, KIND_GIT_PUSH, source_tree};
use crate::error::ScenarioError;

/// Where repositories live on the Git server: the harness pushes to `push_base/NAME.git`, the
/// nodes clone `clone_base/NAME.git`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitRemote {
    pub push_base: String,
    pub clone_base: String,
}

impl GitRemote {
    pub fn push_url(&self, name: &str) -> String {
        format!("{}/{name}.git", self.push_base.trim_end_matches('/'))
    }

    pub fn clone_url(&self, name: &str) -> String {
        format!("{}/{name}.git", self.clone_base.trim_end_matches('/'))
    }
}

/// One commit the driver made (or tried to), as the ledger keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PushedCommit {
    /// Builder index and name.
    pub builder: usize,
    pub builder_name: String,
    pub seq: usize,
    pub version: String,
    /// The commit's SHA-1, once committed.
    pub sha: Option<String>,
    /// The tag pushed with it (tag-triggered builders).
    pub tag: Option<String>,
    pub broken: bool,
    /// Seconds since the run start when it was due (negative: before the run, the first
    /// commit).
    pub scheduled_s: f64,
    /// Seconds since the run start when the push returned; `None` when it failed.
    pub pushed_s: Option<f64>,
    /// Why the commit or push failed.
    pub error: Option<String>,
}

/// Drives commits into every builder's repository.
pub struct CommitDriver {
    work_dir: PathBuf,
    remote: GitRemote,
    builders: Vec<BuilderSpec>,
    max_in_flight: usize,
}

impl CommitDriver {
    /// A driver whose working repositories live under `work_dir`.
    pub fn new(
        work_dir: &Path,
        remote: GitRemote,
        builders: Vec<BuilderSpec>,
        max_in_flight: usize,
    ) -> Self {
        CommitDriver {
            work_dir: work_dir.to_path_buf(),
            remote,
            builders,
            max_in_flight: max_in_flight.max(1),
        }
    }

    pub fn builders(&self) -> &[BuilderSpec] {
        &self.builders
    }

    /// Creates every working repository with its first commit (version `1.0.0`, tagged on
    /// tag-triggered builders) and pushes it to its (empty, existing) repository on the server.
    pub async fn init(&self, start: Instant) -> Result<Vec<PushedCommit>, ScenarioError> {
        let slots = Arc::new(tokio::sync::Semaphore::new(self.max_in_flight));
        let mut tasks = Vec::new();
        for builder in &self.builders {
            let dir = self.repo_dir(builder);
            let (builder, push_url, slots) = (
                builder.clone(),
                self.remote.push_url(&builder.name),
                slots.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let _slot = slots.acquire_owned().await;
                if tokio::fs::metadata(&dir).await.is_ok() {
                    tokio::fs::remove_dir_all(&dir)
                        .await
                        .map_err(ScenarioError::Io)?;
                }
                tokio::fs::create_dir_all(&dir)
                    .await
                    .map_err(ScenarioError::Io)?;
                git(&dir, &["init", "-q", "-b", "main"]).await?;
                git(&dir, &["remote", "add", "origin", &push_url]).await?;
                let plan = CommitPlan {
                    builder: builder.index,
                    seq: 0,
                    at: Duration::ZERO,
                    broken: false,
                };
                Ok::<_, ScenarioError>(commit_and_push(&dir, &builder, &plan, start, start).await)
            }));
        }
        let mut first = Vec::new();
        for task in tasks {
            let commit = task
                .await
                .map_err(|e| ScenarioError::Internal(format!("git init task: {e}")))??;
            if let Some(error) = &commit.error {
                return Err(ScenarioError::Git {
                    what: format!("first push of {}", commit.builder_name),
                    detail: error.clone(),
                });
            }
            first.push(commit);
        }
        Ok(first)
    }

    /// Pushes `plan` on schedule from `start` and returns what was pushed, in plan order.
    /// `pushed` hears of each commit as soon as its push returns. Bounded: every commit is due
    /// within the plan, and each git command within its timeout.
    pub async fn run(
        &self,
        plan: &[CommitPlan],
        start: Instant,
        recorder: Arc<Recorder>,
        pushed: tokio::sync::mpsc::UnboundedSender<PushedCommit>,
    ) -> Result<Vec<PushedCommit>, ScenarioError> {
        let slots = Arc::new(tokio::sync::Semaphore::new(self.max_in_flight));
        let mut lanes = Vec::new();
        for builder in &self.builders {
            let mine: Vec<CommitPlan> = plan
                .iter()
                .filter(|c| c.builder == builder.index)
                .cloned()
                .collect();
            if mine.is_empty() {
                continue;
            }
            let (dir, builder, slots, recorder, pushed) = (
                self.repo_dir(builder),
                builder.clone(),
                slots.clone(),
                recorder.clone(),
                pushed.clone(),
            );
            // One lane per builder: its commits in order, each waiting for its due time.
            lanes.push(tokio::spawn(async move {
                let mut done = Vec::with_capacity(mine.len());
                for commit in mine {
                    let due = start + commit.at;
                    recorder.scheduled(KIND_GIT_PUSH, due);
                    tokio::time::sleep_until(due.into()).await;
                    let Ok(slot) = slots.clone().acquire_owned().await else {
                        break;
                    };
                    let entry = commit_and_push(&dir, &builder, &commit, start, due).await;
                    drop(slot);
                    let outcome = match &entry.error {
                        None => Outcome::Ok,
                        Some(_) => Outcome::Error("git".into()),
                    };
                    recorder.record(KIND_GIT_PUSH, due, Instant::now(), outcome);
                    let _ = pushed.send(entry.clone());
                    done.push(entry);
                }
                done
            }));
        }
        let mut all = Vec::with_capacity(plan.len());
        for lane in lanes {
            all.extend(
                lane.await
                    .map_err(|e| ScenarioError::Internal(format!("commit lane: {e}")))?,
            );
        }
        all.sort_by(|a, b| a.scheduled_s.total_cmp(&b.scheduled_s));
        Ok(all)
    }

    fn repo_dir(&self, builder: &BuilderSpec) -> PathBuf {
        self.work_dir.join(&builder.name)
    }
}

/// Writes the tree of `commit`, commits, tags when the builder is tag-triggered, and pushes.
async fn commit_and_push(
    dir: &Path,
    builder: &BuilderSpec,
    commit: &CommitPlan,
    start: Instant,
    due: Instant,
) -> PushedCommit {
    let since = |t: Instant| {
        if t >= start {
            t.duration_since(start).as_secs_f64()
        } else {
            -start.duration_since(t).as_secs_f64()
        }
    };
    let tag = (builder.trigger == BuildTrigger::Tags).then(|| builder.tag_name(commit.seq));
    let mut entry = PushedCommit {
        builder: builder.index,
        builder_name: builder.name.clone(),
        seq: commit.seq,
        version: builder.version(commit.seq),
        sha: None,
        tag: tag.clone(),
        broken: commit.broken,
        scheduled_s: since(due),
        pushed_s: None,
        error: None,
    };
    let result: Result<(), ScenarioError> = async {
        for (path, content) in source_tree(builder, commit.seq, commit.broken) {
            let path = dir.join(path);
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(ScenarioError::Io)?;
            }
            tokio::fs::write(&path, content)
                .await
                .map_err(ScenarioError::Io)?;
        }
        git(dir, &["add", "-A"]).await?;
        let message = format!(
            "{} {}{}",
            builder.package,
            entry.version,
            if commit.broken { " (broken)" } else { "" }
        );
        git(dir, &["commit", "-q", "-m", &message]).await?;
        entry.sha = Some(git(dir, &["rev-parse", "HEAD"]).await?.trim().to_string());
        let mut push = vec!["push", "-q", "origin", "main"];
        let tag_ref;
        if let Some(tag) = &tag {
            git(dir, &["tag", tag]).await?;
            tag_ref = format!("refs/tags/{tag}");
            push.push(&tag_ref);
        }
        git(dir, &push).await?;
        Ok(())
    }
    .await;
    match result {
        Ok(()) => entry.pushed_s = Some(since(Instant::now())),
        Err(e) => entry.error = Some(e.to_string()),
    }
    entry
}

/// How long one git command may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `git ARGS` in `dir` as a fixed author, without the user's or system's config; returns
/// its standard output.
async fn git(dir: &Path, args: &[&str]) -> Result<String, ScenarioError> {
    let failed = |detail: String| ScenarioError::Git {
        what: format!("git {}", args.join(" ")),
        detail,
    };
    let mut command = Command::new("git");
    command
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "pkgnode harness")
        .env("GIT_AUTHOR_EMAIL", "harness@example.org")
        .env("GIT_COMMITTER_NAME", "pkgnode harness")
        .env("GIT_COMMITTER_EMAIL", "harness@example.org")
        .env("GIT_TERMINAL_PROMPT", "0")
        .kill_on_drop(true);
    let output = tokio::time::timeout(GIT_TIMEOUT, command.output())
        .await
        .map_err(|_| failed(format!("no answer within {GIT_TIMEOUT:?}")))?
        .map_err(|e| failed(e.to_string()))?;
    if !output.status.success() {
        return Err(failed(format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
