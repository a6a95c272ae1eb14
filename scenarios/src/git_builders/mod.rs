//! The `git-builders` workload: `builders` Git repositories, each a real R or Python package
//! (from the corpus generator's templates) that a node builds from source; a commit driver that
//! pushes new versions on an open arrival schedule (and tags them, for tag-triggered builders),
//! some deliberately broken; and goose users that poll the repository's index until each good
//! commit's version appears, recording **commit → published** latency from the push time.
//!
//! Nothing here knows how the Git server or the nodes were started: it knows a push URL, a
//! clone URL and the nodes' HTTP base URL.

mod api;
mod driver;
mod schedule;
mod source_tree;
#[cfg(test)]
mod tests;
mod watch;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::corpus::Ecosystem;
use crate::error::ScenarioError;

pub use api::{BuildRow, BuilderApi, NewBuilder};
pub use driver::{CommitDriver, GitRemote, PushedCommit};
pub use schedule::{CommitPlan, commit_plan};
pub use source_tree::{SourceTree, source_tree};
pub use watch::{WatchContext, WatchItem, WatchQueue, WatchTarget, execute as execute_watchers};

/// Recorder kind of commit → published: from the push's return to the version's first
/// appearance in the repository's index.
pub const KIND_COMMIT_TO_PUBLISHED: &str = reports::kinds::COMMIT_KIND;
/// Recorder kind of one push (commit and `git push`), from the time it was due.
pub const KIND_GIT_PUSH: &str = "git_push";
/// Recorder kind (a count: scheduled only) of good commits never published because a newer
/// commit of the same builder was, before the builder's poll saw them.
pub const KIND_COMMIT_SUPERSEDED: &str = "commit_superseded";
/// Recorder kind of the index polls the watchers make (simple pages and `PACKAGES.gz`).
pub const KIND_WATCH_POLL: &str = "watch_poll";
/// Recorder kind of a build's run time on a node (started → finished, from the builds list).
pub const KIND_BUILD_TIME: &str = reports::kinds::BUILD_KIND;
/// Recorder kind of a build's wait in the queue (queued → started).
pub const KIND_BUILD_QUEUE_WAIT: &str = "build_queue_wait";
/// Every recorder kind of the workload: the thresholds naming one judge it.
pub const KINDS: &[&str] = &[
    KIND_COMMIT_TO_PUBLISHED,
    KIND_GIT_PUSH,
    KIND_COMMIT_SUPERSEDED,
    KIND_WATCH_POLL,
    KIND_BUILD_TIME,
    KIND_BUILD_QUEUE_WAIT,
];

/// How the workload runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GitBuildersConfig {
    /// Builders, each with its own repository and package.
    pub builders: usize,
    /// How long commits are pushed.
    pub duration: Duration,
    /// Mean commits per builder per hour (Poisson arrivals); 0 with `burst` pushes the burst
    /// only.
    pub commits_per_builder_per_hour: f64,
    /// Push one commit to every builder within the first second as well.
    pub burst: bool,
    /// Share of commits that are broken on purpose (their build must fail cleanly).
    pub bad_commit_share: f64,
    /// Share of builders triggered by tags rather than commits.
    pub tags_share: f64,
    /// Share of builders that are Python packages (`git-python`); the rest are R (`git`).
    pub python_share: f64,
    /// After the last push, how long a good commit may take to be published before it is lost.
    pub grace: Duration,
    /// How often a watcher polls the index for its commit's version.
    pub watch_interval: Duration,
    /// Pushes in flight at most (a burst queues behind them).
    pub max_pushes_in_flight: usize,
    /// Makes repository and package names unique to this run: lowercase letters and digits.
    pub tag: String,
    /// Seed of every random draw.
    pub seed: u64,
}

impl Default for GitBuildersConfig {
    fn default() -> Self {
        GitBuildersConfig {
            builders: 100,
            duration: Duration::from_secs(300),
            commits_per_builder_per_hour: 12.0,
            burst: false,
            bad_commit_share: 0.02,
            tags_share: 0.2,
            python_share: 0.5,
            grace: Duration::from_secs(60),
            watch_interval: Duration::from_millis(500),
            max_pushes_in_flight: 16,
            tag: "g".into(),
            seed: 1,
        }
    }
}

impl GitBuildersConfig {
    /// Every problem with the configuration, not only the first.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let mut problems = Vec::new();
        if self.builders == 0 || self.builders > 10_000 {
            problems.push(format!(
                "builders must be in 1..=10000, not {}",
                self.builders
            ));
        }
        if self.duration.is_zero() {
            problems.push("the commit schedule's duration must be above 0".into());
        }
        let rate = self.commits_per_builder_per_hour;
        if !(rate.is_finite() && (0.0..=3600.0).contains(&rate)) {
            problems.push(format!(
                "commits per builder per hour must be in [0, 3600], not {rate}"
            ));
        } else if rate == 0.0 && !self.burst {
            problems.push(
                "no commits would be pushed: give --commits-per-builder-per-hour above 0 or --burst"
                    .into(),
            );
        }
        for (name, share) in [
            ("bad commit share", self.bad_commit_share),
            ("tags share", self.tags_share),
            ("python share", self.python_share),
        ] {
            if !(0.0..=1.0).contains(&share) {
                problems.push(format!("{name} must be between 0 and 1, not {share}"));
            }
        }
        if self.bad_commit_share >= 1.0 {
            problems.push("a bad commit share of 1 leaves nothing to publish".into());
        }
        if self.watch_interval < Duration::from_millis(50) {
            problems.push(format!(
                "the watch interval must be at least 50ms, not {:?}",
                self.watch_interval
            ));
        }
        if self.max_pushes_in_flight == 0 {
            problems.push("max pushes in flight must be at least 1".into());
        }
        if self.tag.is_empty()
            || self.tag.len() > 16
            || !self
                .tag
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            problems.push(format!(
                "tag must be 1–16 lowercase letters and digits, not {:?}",
                self.tag
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ScenarioError::InvalidConfig {
                what: "git builders",
                problems,
            })
        }
    }

    /// The builders this configuration describes, in index order: a seeded `tags_share` of
    /// them tag-triggered, a seeded `python_share` Python.
    pub fn builders(&self) -> Vec<BuilderSpec> {
        use rand::seq::SliceRandom;
        use rand::{SeedableRng, rngs::StdRng};
        let mut rng = StdRng::seed_from_u64(crate::corpus::mix_seed(self.seed, 0x6B75_696C));
        let count = self.builders;
        let mut indices: Vec<usize> = (0..count).collect();
        indices.shuffle(&mut rng);
        let python = (count as f64 * self.python_share).round() as usize;
        let tags = (count as f64 * self.tags_share).round() as usize;
        let mut is_python = vec![false; count];
        for &i in indices.iter().take(python) {
            is_python[i] = true;
        }
        indices.shuffle(&mut rng);
        let mut is_tags = vec![false; count];
        for &i in indices.iter().take(tags) {
            is_tags[i] = true;
        }
        (0..count)
            .map(|index| {
                let ecosystem = if is_python[index] {
                    Ecosystem::Python
                } else {
                    Ecosystem::R
                };
                let name = format!("gb-{}-{index}", self.tag);
                let package = match ecosystem {
                    // R names: letters, digits and dots, starting with a letter.
                    Ecosystem::R => format!("gb.{}.{index}", self.tag),
                    Ecosystem::Python => name.clone(),
                };
                BuilderSpec {
                    index,
                    name,
                    package,
                    ecosystem,
                    trigger: if is_tags[index] {
                        BuildTrigger::Tags
                    } else {
                        BuildTrigger::Commits
                    },
                }
            })
            .collect()
    }

    /// Goose users for the watchers: one per builder (a burst has every builder waiting at
    /// once) plus what the steady rate keeps pending for a minute, plus headroom.
    pub fn watch_users(&self) -> usize {
        let per_s = self.builders as f64 * self.commits_per_builder_per_hour / 3600.0;
        self.builders + (per_s * 60.0).ceil() as usize + 4
    }
}

/// What makes a builder build: every new commit on its branch, or every new tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildTrigger {
    Commits,
    Tags,
}

impl BuildTrigger {
    /// The API's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Commits => "commits",
            Self::Tags => "tags",
        }
    }
}

/// One builder: its repository (and builder) name, its package, its ecosystem and trigger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuilderSpec {
    pub index: usize,
    /// Builder name and repository name (`{name}.git` on the Git server).
    pub name: String,
    /// The package's name as its DESCRIPTION or pyproject.toml gives it.
    pub package: String,
    pub ecosystem: Ecosystem,
    pub trigger: BuildTrigger,
}

impl BuilderSpec {
    /// The version commit `seq` carries (0 is the repository's first commit).
    pub fn version(&self, seq: usize) -> String {
        format!("1.0.{seq}")
    }

    /// The tag commit `seq` gets on a tag-triggered builder.
    pub fn tag_name(&self, seq: usize) -> String {
        format!("v{}", self.version(seq))
    }
}
