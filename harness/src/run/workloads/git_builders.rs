//! The git builders as a workload: before the clock, one repository per builder on the
//! cluster's Git server, each repository's first commit pushed and its builder created through
//! the nodes' API, and those first builds settled (not measured); then commits pushed on the
//! open schedule while goose users wait for each good commit's version (commit → published).
//! At the end: the builds listing of both Git sources, build times and queue waits into the
//! recorder, the publications and the polls' sightings read from the primary database, the
//! `builds` checker and the counters the thresholds judge (`lost`, `duplicates`, …). The
//! sightings decide which unbuilt commits were superseded; on the time line they are one
//! summary note plus a note per commit a poll saw and no build followed.
//!
//! **Architecture Invariant:** like the rest of `run/`, nothing here knows which provider runs
//! the cluster: the Git server comes from [`Infra::git`](crate::infra::Infra::git) and
//! [`Infra::create_git_repository`](crate::infra::Infra::create_git_repository).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use reports::record::{CheckerResult, Event, EventKind, WorkloadSection};
use scenarios::git_builders::{
    self, BuildRow, BuilderSpec, CommitPlan, GitBuildersConfig, PushedCommit, WatchContext,
    WatchItem, WatchQueue, WatchTarget,
};

use super::{BoxFuture, Clock, History, RunContext, Workload, asked, latency_ms, out_of_order};
use crate::checkers::{self, CheckerKind};
use crate::error::HarnessError;

mod database;
mod figures;
mod setup;

pub use database::{read_publications, read_sightings};
pub use figures::COUNTERS;
use figures::{makespan, record_build_times};
use setup::Ready;

/// The checkers about the builds.
const CHECKERS: &[CheckerKind] = &[CheckerKind::Builds];

/// The git builders.
pub struct GitBuilders {
    config: GitBuildersConfig,
    builders: Vec<BuilderSpec>,
    /// Set by `prepare`.
    ready: Option<Ready>,
    /// Set by `start`, taken by `stop`.
    running: Option<Running>,
    /// Set by `stop` and `finish`.
    done: Done,
}

/// The commits under way.
struct Running {
    commits: usize,
    drive: tokio::task::JoinHandle<Result<Vec<PushedCommit>, scenarios::ScenarioError>>,
    forward: tokio::task::JoinHandle<()>,
    watchers: tokio::task::JoinHandle<Result<(), scenarios::ScenarioError>>,
    watch: Arc<WatchContext>,
}

/// What the run left, and the judgement.
#[derive(Default)]
struct Done {
    commits_scheduled: usize,
    users: usize,
    watch: Option<Arc<WatchContext>>,
    all_commits: Vec<PushedCommit>,
    builds: Vec<BuildRow>,
    result: Option<CheckerResult>,
    counters: Vec<(String, f64)>,
    poll_events: Vec<Event>,
}

impl GitBuilders {
    pub fn new(config: GitBuildersConfig) -> Self {
        GitBuilders {
            builders: config.builders(),
            config,
            ready: None,
            running: None,
            done: Done::default(),
        }
    }

    fn description(&self) -> String {
        let config = &self.config;
        format!(
            "{} git builders, {} commits/builder/hour{}, {:.0}% broken, {:.0}% tag-triggered, {:.0}% Python; {:?} of commits and {:?} grace",
            config.builders,
            config.commits_per_builder_per_hour,
            if config.burst { " plus a burst" } else { "" },
            config.bad_commit_share * 100.0,
            config.tags_share * 100.0,
            config.python_share * 100.0,
            config.duration,
            config.grace,
        )
    }
}

impl Workload for GitBuilders {
    fn name(&self) -> &'static str {
        "git-builders"
    }

    fn run_time(&self) -> Duration {
        self.config.duration + self.config.grace
    }

    fn prepare<'a>(
        &'a mut self,
        ctx: &'a RunContext<'a>,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            let ready = setup::set_up(ctx, &self.config, &self.builders).await?;
            self.ready = Some(ready);
            Ok(())
        })
    }

    fn start(&mut self, ctx: &RunContext<'_>, clock: &Clock) -> Result<(), HarnessError> {
        let ready = self
            .ready
            .as_mut()
            .ok_or(out_of_order("git-builders", "start"))?;
        let driver = ready
            .driver
            .take()
            .ok_or(out_of_order("git-builders", "start"))?;
        let config = &self.config;
        let commits: Vec<CommitPlan> = git_builders::commit_plan(config);
        let run_time = self.run_time();
        let start = clock.start;
        let queue = Arc::new(WatchQueue::default());
        let watch = Arc::new(WatchContext {
            target: WatchTarget {
                base_url: ctx.endpoints.base_url.clone(),
                pypi_repo: ctx.endpoints.pypi_repo.clone(),
                cran_repo: ctx.endpoints.cran_repo.clone(),
            },
            queue: queue.clone(),
            recorder: clock.recorder.clone(),
            interval: config.watch_interval,
            deadline: start + run_time,
            seen: Default::default(),
        });
        let users = config.watch_users();
        eprintln!(
            "harness: {} commits over {:?} ({} broken), then {:?} grace; {users} goose users wait for them",
            commits.len(),
            config.duration,
            commits.iter().filter(|c| c.broken).count(),
            config.grace
        );
        let watchers = {
            let watch = watch.clone();
            tokio::spawn(async move {
                git_builders::execute_watchers(watch, users, run_time)
                    .await
                    .map(|_| ())
            })
        };
        // Good pushed commits go to the watchers as soon as their push returns.
        let (pushed_tx, mut pushed_rx) = tokio::sync::mpsc::unbounded_channel::<PushedCommit>();
        let forward = {
            let builders = self.builders.clone();
            tokio::spawn(async move {
                while let Some(commit) = pushed_rx.recv().await {
                    let (Some(pushed_s), false) = (commit.pushed_s, commit.broken) else {
                        continue;
                    };
                    let builder = &builders[commit.builder];
                    queue.push(WatchItem {
                        builder: commit.builder,
                        package: builder.package.clone(),
                        ecosystem: builder.ecosystem,
                        version: commit.version.clone(),
                        pushed: start + Duration::from_secs_f64(pushed_s.max(0.0)),
                    });
                }
            })
        };
        let recorder = clock.recorder.clone();
        let scheduled = commits.len();
        let drive =
            tokio::spawn(async move { driver.run(&commits, start, recorder, pushed_tx).await });
        self.done.commits_scheduled = scheduled;
        self.done.users = users;
        self.running = Some(Running {
            commits: scheduled,
            drive,
            forward,
            watchers,
            watch,
        });
        Ok(())
    }

    fn stop<'a>(&'a mut self, _clock: &'a Clock) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            let running = self
                .running
                .take()
                .ok_or(out_of_order("git-builders", "stop"))?;
            let pushed = running
                .drive
                .await
                .map_err(|e| HarnessError::Internal(format!("commit driver: {e}")))??;
            debug_assert!(pushed.len() <= running.commits);
            let _ = running.forward.await;
            running
                .watchers
                .await
                .map_err(|e| HarnessError::Internal(format!("watchers: {e}")))??;
            let ready = self
                .ready
                .as_ref()
                .ok_or(out_of_order("git-builders", "stop"))?;
            let mut all_commits = ready.first_commits.clone();
            all_commits.extend(pushed);
            self.done.all_commits = all_commits;
            self.done.watch = Some(running.watch);
            Ok(())
        })
    }

    fn finish<'a>(
        &'a mut self,
        ctx: &'a RunContext<'a>,
        clock: &'a Clock,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            let ready = self
                .ready
                .as_ref()
                .ok_or(out_of_order("git-builders", "finish"))?;
            let watch = (self.done.watch.clone()).ok_or(out_of_order("git-builders", "finish"))?;
            let builds = ready.apis.all_builds().await?;
            record_build_times(&clock.recorder, &builds, clock.start, clock.started_at);
            let seen: BTreeSet<(usize, String)> = watch
                .seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|(b, v, _)| (*b, v.clone()))
                .collect();
            let pushed = &self.done.all_commits[ready.first_commits.len()..];
            let makespan_s = makespan(pushed, &watch, clock.start);
            let publications = read_publications(ctx.infra);
            let sightings = read_sightings(ctx.infra, clock.started_at);
            let history = checkers::builds::BuildsHistory {
                builders: &self.builders,
                commits: &self.done.all_commits,
                builds: &builds,
                seen: &seen,
                publications: &publications,
                sightings: &sightings,
            };
            let (result, counts) = checkers::builds::check(&history);
            self.done.poll_events = checkers::builds::poll_events(&history, &counts);
            // Node ids as the nodes' names (`node-1`…) where the infrastructure knows them.
            let info = ctx.infra.info();
            let node_name = |id: &str| {
                info.nodes
                    .iter()
                    .position(|n| n.id == id)
                    .and_then(|i| ctx.endpoints.nodes.get(i))
                    .map(|(name, _)| name.clone())
                    .unwrap_or_else(|| id.to_string())
            };
            let counters = figures::counters(&counts, makespan_s, node_name);
            self.done.counters = counters;
            self.done.builds = builds;
            self.done.result = Some(result);
            Ok(())
        })
    }

    fn record(&mut self, _clock: &Clock, history: &mut History) -> Result<(), HarnessError> {
        for (name, value) in &self.done.counters {
            history.metrics.counters.insert(name.clone(), *value);
        }
        history.events.push(Event {
            at_s: 0.0,
            end_s: None,
            kind: EventKind::Note,
            message: format!(
                "{} builders, {} commits scheduled, {} goose users waiting",
                self.builders.len(),
                self.done.commits_scheduled,
                self.done.users
            ),
        });
        history.events.push(Event {
            at_s: self.config.duration.as_secs_f64(),
            end_s: Some(self.run_time().as_secs_f64()),
            kind: EventKind::Note,
            message: "last commit due: the grace period for publication begins".into(),
        });
        history.events.extend(self.done.poll_events.iter().cloned());
        Ok(())
    }

    fn check<'a>(
        &'a self,
        ctx: &'a RunContext<'a>,
        _history: &'a History,
        _client: Result<&'a reqwest::Client, &'a str>,
    ) -> BoxFuture<'a, Vec<CheckerResult>> {
        Box::pin(async move {
            // Judged in `finish`, where the builds, publications and sightings were read.
            let Some(result) = self.done.result.clone() else {
                return Vec::new();
            };
            if asked(ctx.plan, CHECKERS).is_empty() {
                return Vec::new();
            }
            vec![result]
        })
    }

    fn section(&self, history: &History) -> WorkloadSection {
        let metrics = &history.metrics;
        let mut figures = BTreeMap::from([("builders".to_string(), self.builders.len() as f64)]);
        for (name, q) in [
            ("commit_to_published_p50_s", 0.5),
            ("commit_to_published_p95_s", 0.95),
            ("commit_to_published_p99_s", 0.99),
        ] {
            if let Some(ms) = latency_ms(metrics, git_builders::KIND_COMMIT_TO_PUBLISHED, q) {
                figures.insert(name.to_string(), ms / 1000.0);
            }
        }
        for name in [
            "commits",
            "builds_succeeded",
            "builds_failed",
            "lost",
            "duplicates",
            "makespan_s",
        ] {
            if let Some(value) = metrics.counters.get(name) {
                figures.insert(name.to_string(), *value);
            }
        }
        WorkloadSection {
            name: self.name().into(),
            description: self.description(),
            kinds: git_builders::KINDS.iter().map(|k| k.to_string()).collect(),
            counters: (COUNTERS.iter().map(|c| c.to_string()))
                .chain(
                    (self.done.counters.iter())
                        .map(|(name, _)| name.clone())
                        .filter(|name| name.starts_with("builds_by_node.")),
                )
                .collect(),
            checkers: CHECKERS.iter().map(|k| k.name().to_string()).collect(),
            figures,
        }
    }

    fn config(&self) -> serde_json::Value {
        serde_json::json!({
            "model": "git-builders",
            "description": self.description(),
            "users": self.done.users,
            "git_builders": self.config,
        })
    }

    fn files(&self) -> Result<Vec<(String, String)>, HarnessError> {
        Ok(vec![
            (
                "commits.jsonl".to_string(),
                jsonl(self.done.all_commits.iter()).map_err(HarnessError::Internal)?,
            ),
            (
                "builds.jsonl".to_string(),
                jsonl(self.done.builds.iter()).map_err(HarnessError::Internal)?,
            ),
        ])
    }
}

fn jsonl<'a, T: serde::Serialize + 'a>(
    items: impl Iterator<Item = &'a T>,
) -> Result<String, String> {
    let mut text = String::new();
    for item in items {
        text.push_str(&serde_json::to_string(item).map_err(|e| e.to_string())?);
        text.push('\n');
    }
    Ok(text)
}
