//! The git-builders run: create one repository per builder on the cluster's Git server, push
//! each repository's first commit and create the builders through the nodes' API, wait until
//! those first builds settle, then push commits on the open schedule while goose users wait for
//! each good commit's version, the observer samples the build queue and the nemesis injects its
//! faults. At the end: the builds listing of both Git sources, the builds checker, build times
//! and queue waits into the recorder, and the counters the thresholds judge (`lost`,
//! `duplicates`, …). The polls' sightings (what each poll saw, from the database) decide which
//! unbuilt commits were superseded; on the time line they are one summary note plus a note per
//! commit a poll saw and no build followed.
//!
//! **Architecture Invariant:** like the rest of `run/`, nothing here knows which provider runs
//! the cluster: the Git server comes from [`Infra::git`] and [`Infra::create_git_repository`].

use std::collections::BTreeSet;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use reports::record::{Event, EventKind, RunMeta, RunRecord};
use reports::{Recorder, Verdict};
use scenarios::corpus::Ecosystem;
use scenarios::git_builders::{
    self, BuildRow, BuilderApi, BuilderSpec, CommitDriver, GitBuildersConfig, NewBuilder,
    PushedCommit, WatchContext, WatchItem, WatchQueue, WatchTarget,
};

use super::{RunOutcome, observer, resources, run_client};
use crate::checkers;
use crate::error::HarnessError;
use crate::infra::{GitEndpoints, Infra};
use crate::nemesis;
use crate::plan::RunPlan;

/// Runs the git-builders workload of `plan` against `infra`.
pub async fn run(
    plan: &RunPlan,
    config: &GitBuildersConfig,
    infra: &dyn Infra,
) -> Result<RunOutcome, HarnessError> {
    config.validate()?;
    let endpoints = infra.endpoints().clone();
    let git = infra.git().cloned().ok_or_else(|| {
        HarnessError::Config(vec![
            "this cluster has no Git server: git-builders needs one (local provider)".into(),
        ])
    })?;
    let client = run_client(Duration::from_secs(30))?;
    let builders = config.builders();
    let apis = Apis::new(&client, &endpoints.base_url, &git);

    // Setup: repositories, first commits, builders; the first builds are not measured.
    let setup = Instant::now();
    for builder in &builders {
        infra.create_git_repository(&builder.name)?;
    }
    let work = tempfile::Builder::new()
        .prefix("harness-git-work-")
        .tempdir()?;
    let driver = CommitDriver::new(
        work.path(),
        git.remote.clone(),
        builders.clone(),
        config.max_pushes_in_flight,
    );
    let first_commits = driver.init(setup).await?;
    for builder in &builders {
        apis.of(builder)
            .create(&NewBuilder {
                name: builder.name.clone(),
                url: git.remote.clone_url(&builder.name),
                branch: Some("main".into()),
                build_trigger: builder.trigger.as_str().into(),
                sub_dir: None,
                clone_depth: None,
            })
            .await?;
    }
    eprintln!(
        "harness: {} git builders created ({} R, {} Python, {} tag-triggered) in {:.1} s",
        builders.len(),
        builders
            .iter()
            .filter(|b| b.ecosystem == Ecosystem::R)
            .count(),
        builders
            .iter()
            .filter(|b| b.ecosystem == Ecosystem::Python)
            .count(),
        builders
            .iter()
            .filter(|b| b.trigger == git_builders::BuildTrigger::Tags)
            .count(),
        setup.elapsed().as_secs_f64()
    );
    let settled = settle(&apis, &builders).await?;
    eprintln!(
        "harness: first builds settled ({settled} builds) {:.1} s after setup began",
        setup.elapsed().as_secs_f64()
    );
    let mut ha_checks = Vec::new();
    if plan.ha_checklist {
        ha_checks.push(super::ha_checklist(infra, "ha-checklist-at-start").await);
    }

    // The measured run.
    let commits = git_builders::commit_plan(config);
    let run_time = config.duration + config.grace;
    let bucket_width = super::bucket_width(run_time);
    let start = Instant::now() + Duration::from_secs(1);
    let started_at = chrono::Utc::now() + chrono::Duration::seconds(1);
    let recorder = Arc::new(Recorder::new(start, bucket_width));
    let queue = Arc::new(WatchQueue::default());
    let watch = Arc::new(WatchContext {
        target: WatchTarget {
            base_url: endpoints.base_url.clone(),
            pypi_repo: endpoints.pypi_repo.clone(),
            cran_repo: endpoints.cran_repo.clone(),
        },
        queue: queue.clone(),
        recorder: recorder.clone(),
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
    let mut monitored = infra.monitored();
    monitored.push(crate::infra::Monitored {
        name: "load-generator".into(),
        pid: std::process::id(),
    });
    let sampler = resources::Sampler::start(monitored, start, Duration::from_secs(1));
    let (stop_observer, observer_rx) = tokio::sync::oneshot::channel();
    let observer = tokio::spawn(observer::observe(
        run_client(Duration::from_secs(2))?,
        endpoints.nodes.clone(),
        start,
        observer_rx,
    ));
    let watchers = tokio::spawn(git_builders::execute_watchers(
        watch.clone(),
        users,
        run_time,
    ));
    // Good pushed commits go to the watchers as soon as their push returns.
    let (pushed_tx, mut pushed_rx) = tokio::sync::mpsc::unbounded_channel::<PushedCommit>();
    let forward = {
        let (queue, builders) = (queue.clone(), builders.clone());
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
    let drive = driver.run(&commits, start, recorder.clone(), pushed_tx);
    let (pushed, nemesis_log) = tokio::join!(drive, nemesis::run(&plan.nemesis, infra, start));
    let pushed = pushed?;
    let _ = forward.await;
    watchers
        .await
        .map_err(|e| HarnessError::Internal(format!("watchers: {e}")))??;
    let _ = stop_observer.send(());
    let observed = observer
        .await
        .map_err(|e| HarnessError::Internal(format!("observer task: {e}")))?;
    let samples = sampler.finish().await;

    // The final reads and the judgement.
    let builds = apis.all_builds().await?;
    record_build_times(&recorder, &builds, start, started_at);
    let seen: BTreeSet<(usize, String)> = watch
        .seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|(b, v, _)| (*b, v.clone()))
        .collect();
    let makespan_s = makespan(&pushed, &watch, start);
    let mut metrics = recorder.finish();
    let mut all_commits = first_commits.clone();
    all_commits.extend(pushed.iter().cloned());
    let publications = read_publications(infra);
    let sightings = read_sightings(infra, started_at);
    let history = checkers::builds::BuildsHistory {
        builders: &builders,
        commits: &all_commits,
        builds: &builds,
        seen: &seen,
        publications: &publications,
        sightings: &sightings,
    };
    let (builds_result, counts) = checkers::builds::check(&history);
    let poll_events = checkers::builds::poll_events(&history, &counts);
    for (name, value) in [
        ("commits", counts.commits as f64),
        ("good_commits", counts.good as f64),
        ("broken_commits", counts.broken as f64),
        ("builds_succeeded", counts.succeeded as f64),
        ("builds_failed", counts.failed as f64),
        ("builds_unfinished", counts.unfinished as f64),
        ("builds_retried", counts.retried as f64),
        ("duplicates", counts.duplicates as f64),
        ("lost", counts.lost as f64),
        ("superseded", counts.superseded as f64),
        ("seen_not_built", counts.seen_not_built as f64),
        ("unexpected_failures", counts.unexpected_failures as f64),
        ("broken_published", counts.broken_published as f64),
    ] {
        metrics.counters.insert(name.into(), value);
    }
    if let Some(makespan_s) = makespan_s {
        metrics.counters.insert("makespan_s".into(), makespan_s);
    }
    // Node ids as the nodes' names (`node-1`…) where the infrastructure knows them.
    let info = infra.info();
    let node_name = |id: &str| {
        info.nodes
            .iter()
            .position(|n| n.id == id)
            .and_then(|i| endpoints.nodes.get(i))
            .map(|(name, _)| name.clone())
            .unwrap_or_else(|| id.to_string())
    };
    for (node, n) in &counts.per_node {
        metrics
            .counters
            .insert(format!("builds_by_node.{}", node_name(node)), *n as f64);
    }
    eprintln!(
        "harness: checker {}: {} — {}",
        builds_result.name,
        builds_result.validity.as_str(),
        builds_result.summary
    );

    let mut events = vec![Event {
        at_s: 0.0,
        end_s: None,
        kind: EventKind::Note,
        message: format!(
            "{} builders, {} commits scheduled, {users} goose users waiting",
            builders.len(),
            commits.len()
        ),
    }];
    events.push(Event {
        at_s: config.duration.as_secs_f64(),
        end_s: Some(run_time.as_secs_f64()),
        kind: EventKind::Note,
        message: "last commit due: the grace period for publication begins".into(),
    });
    events.extend(poll_events);
    events.extend(nemesis_log.events.iter().cloned());
    events.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    let mut checker_results = vec![builds_result];
    checker_results
        .extend(super::check(plan, infra, &metrics, &events, &[], &nemesis_log, &observed).await);
    if !ha_checks.is_empty() {
        ha_checks.push(super::ha_checklist(infra, "ha-checklist-at-end").await);
    }
    checker_results.extend(ha_checks);
    let mut record = RunRecord {
        meta: RunMeta {
            scenario: plan.name.clone(),
            started_at,
            duration_s: run_time.as_secs_f64(),
            config: serde_json::json!({
                "model": "git-builders",
                "description": format!(
                    "{} git builders, {} commits/builder/hour{}, {:.0}% broken, {:.0}% tag-triggered, {:.0}% Python; {:?} of commits and {:?} grace",
                    config.builders,
                    config.commits_per_builder_per_hour,
                    if config.burst { " plus a burst" } else { "" },
                    config.bad_commit_share * 100.0,
                    config.tags_share * 100.0,
                    config.python_share * 100.0,
                    config.duration,
                    config.grace,
                ),
                "users": users,
                "git_builders": config,
                "machine_cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
                "thresholds": plan.thresholds.thresholds.iter().map(|t| t.expr.clone()).collect::<Vec<_>>(),
                "plan": plan.describe(),
            }),
            infra: infra.info(),
        },
        metrics,
        events,
        samples,
        node_requests: observed.served.clone(),
        node_request_rates: observed.rates.clone(),
        gauges: observed.gauges.clone(),
        thresholds: Vec::new(),
        checkers: checker_results,
        workloads: Vec::new(),
        verdict: Verdict::Fail,
    };
    record.judge(&plan.thresholds);
    let mut files = vec![(
        "commits.jsonl".to_string(),
        jsonl(all_commits.iter()).map_err(HarnessError::Internal)?,
    )];
    files.push((
        "builds.jsonl".to_string(),
        jsonl(builds.iter()).map_err(HarnessError::Internal)?,
    ));
    Ok(RunOutcome {
        record,
        ledger: Vec::new(),
        files,
    })
}

/// The API of each Git source.
struct Apis {
    r: BuilderApi,
    python: BuilderApi,
}

impl Apis {
    fn new(client: &reqwest::Client, base_url: &str, git: &GitEndpoints) -> Self {
        let api = |source: &str, token: &str| BuilderApi {
            base_url: base_url.to_string(),
            source: source.to_string(),
            token: token.to_string(),
            client: client.clone(),
        };
        Apis {
            r: api(&git.r_source, &git.r_token),
            python: api(&git.python_source, &git.python_token),
        }
    }

    fn of(&self, builder: &BuilderSpec) -> &BuilderApi {
        match builder.ecosystem {
            Ecosystem::R => &self.r,
            Ecosystem::Python => &self.python,
        }
    }

    async fn all_builds(&self) -> Result<Vec<BuildRow>, HarnessError> {
        let mut builds = self.r.all_builds().await?;
        builds.extend(self.python.all_builds().await?);
        Ok(builds)
    }
}

/// Asks every builder to check its remote now, then waits until no build is queued or
/// running. Bounded: a minute plus ten seconds a builder (a loaded two-core machine takes about
/// three a builder). Returns the builds listed.
async fn settle(apis: &Apis, builders: &[BuilderSpec]) -> Result<usize, HarnessError> {
    for builder in builders {
        apis.of(builder).run(&builder.name).await?;
    }
    let limit = Duration::from_secs(60 + 10 * builders.len() as u64);
    let deadline = Instant::now() + limit;
    // Two quiet reads in a row a second apart: a build queued between them is seen.
    let mut quiet = 0;
    loop {
        let builds = apis.all_builds().await?;
        let busy = builds
            .iter()
            .filter(|b| matches!(b.state.as_str(), "queued" | "running"))
            .count();
        quiet = if busy == 0 { quiet + 1 } else { 0 };
        if quiet >= 2 {
            return Ok(builds.len());
        }
        if Instant::now() > deadline {
            return Err(HarnessError::Target(format!(
                "the first builds did not settle within {limit:?}: {busy} still queued or running"
            )));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Build run times (started → finished) and queue waits (queued → started) of the builds
/// queued during the run, into the recorder, at their place in the run's time line.
fn record_build_times(
    recorder: &Recorder,
    builds: &[BuildRow],
    start: Instant,
    started_at: chrono::DateTime<chrono::Utc>,
) {
    let at = |text: &Option<String>| -> Option<Instant> {
        let time = chrono::DateTime::parse_from_rfc3339(text.as_deref()?).ok()?;
        let since = time.with_timezone(&chrono::Utc) - started_at;
        // Builds of the setup (before the run) are not measured.
        let since = since.to_std().ok()?;
        Some(start + since)
    };
    for build in builds {
        let (queued, began, finished) = (
            at(&build.queued_at),
            at(&build.started_at),
            at(&build.finished_at),
        );
        if let (Some(queued), Some(began)) = (queued, began) {
            recorder.scheduled(git_builders::KIND_BUILD_QUEUE_WAIT, queued);
            recorder.record(
                git_builders::KIND_BUILD_QUEUE_WAIT,
                queued,
                began,
                reports::metrics::Outcome::Ok,
            );
        }
        if let (Some(began), Some(finished)) = (began, finished) {
            let outcome = match build.state.as_str() {
                "succeeded" => reports::metrics::Outcome::Ok,
                _ => reports::metrics::Outcome::Error("build_failed".into()),
            };
            recorder.scheduled(git_builders::KIND_BUILD_TIME, began);
            recorder.record(git_builders::KIND_BUILD_TIME, began, finished, outcome);
        }
    }
}

/// From the first push of the run to the last commit seen published, in seconds.
fn makespan(pushed: &[PushedCommit], watch: &WatchContext, start: Instant) -> Option<f64> {
    let first = pushed
        .iter()
        .filter_map(|c| c.pushed_s)
        .min_by(f64::total_cmp)?;
    let last = watch
        .seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|(_, _, at)| at.saturating_duration_since(start).as_secs_f64())
        .max_by(f64::total_cmp)?;
    Some((last - first).max(0.0))
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

/// The transactions that added package files, per build they describe
/// (`{source}/{builder}@{sha12}`), read from the current primary database: what was
/// published, whatever the build rows say.
pub fn read_publications(infra: &dyn Infra) -> Result<checkers::builds::Publications, String> {
    const SQL: &str = "SELECT t.description, count(DISTINCT t.id) FROM transactions t \
                       JOIN packages p ON p.added_tx = t.id \
                       WHERE t.kind = 'git-build' GROUP BY t.description";
    parse_publications(&read_primary(
        infra,
        "reading the builds' transactions",
        SQL,
    )?)
}

/// `sql` on the current primary database, off the runtime; why not, as text.
fn read_primary(infra: &dyn Infra, what: &str, sql: &str) -> Result<String, String> {
    crate::infra::off_runtime(what, || infra.query_primary(sql).transpose())
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "the {} provider cannot read the database",
                infra.info().provider
            )
        })
}

/// The first sighting of every commit the polls (and `run`) saw on the builders' remotes, read
/// from the current primary database, on the run's time line: a node's epoch milliseconds minus
/// `started_at`, the harness's wall clock at the run start (see
/// [`checkers::builds::Sighting::seen_at_s`] for how the two clocks compare).
pub fn read_sightings(
    infra: &dyn Infra,
    started_at: chrono::DateTime<chrono::Utc>,
) -> Result<checkers::builds::Sightings, String> {
    const SQL: &str = "SELECT g.name, t.commit_sha, t.first_seen_at_ms, t.node_id \
                       FROM git_tip_sightings t JOIN git_builders g ON g.id = t.builder_id";
    let text = read_primary(infra, "reading the polls' sightings", SQL)?;
    parse_sightings(&text, started_at.timestamp_millis())
}

fn parse_sightings(text: &str, started_at_ms: i64) -> Result<checkers::builds::Sightings, String> {
    let mut sightings = checkers::builds::Sightings::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split('|').collect();
        let [builder, sha, at_ms, node] = fields[..] else {
            return Err(format!("unexpected sighting row {line:?}"));
        };
        let at_ms: i64 = at_ms
            .trim()
            .parse()
            .map_err(|_| format!("unexpected sighting time in {line:?}"))?;
        sightings.insert(
            (builder.to_string(), sha.to_string()),
            checkers::builds::Sighting {
                seen_at_s: (at_ms - started_at_ms) as f64 / 1000.0,
                node_id: node.to_string(),
            },
        );
    }
    Ok(sightings)
}

fn parse_publications(text: &str) -> Result<checkers::builds::Publications, String> {
    let mut publications = checkers::builds::Publications::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let parsed = line.rsplit_once('|').and_then(|(description, count)| {
            let (_source, build) = description.split_once('/')?;
            let (builder, sha) = build.rsplit_once('@')?;
            Some((builder, sha, count.trim().parse::<usize>().ok()?))
        });
        let Some((builder, sha, count)) = parsed else {
            return Err(format!("unexpected transaction row {line:?}"));
        };
        *publications
            .entry(checkers::builds::publication_key(builder, sha))
            .or_default() += count;
    }
    Ok(publications)
}

#[cfg(test)]
mod publication_tests {
    #[test]
    fn transactions_are_counted_per_build() {
        let publications = super::parse_publications(
            "pypi-git/gb-a-1@0123456789ab|2\ncran-git/gb-b-0@ffffffffffff|1\n",
        )
        .unwrap();
        assert_eq!(
            publications[&("gb-a-1".to_string(), "0123456789ab".to_string())],
            2
        );
        assert!(super::parse_publications("no bar here").is_err());
    }

    #[test]
    fn sightings_are_placed_on_the_run_time_line() {
        let sightings =
            super::parse_sightings("gb-a-1|abc|1500|node-x\ngb-b-0|def|500|cli\n", 1000).unwrap();
        let seen = &sightings[&("gb-a-1".to_string(), "abc".to_string())];
        assert_eq!((seen.seen_at_s, seen.node_id.as_str()), (0.5, "node-x"));
        assert_eq!(
            sightings[&("gb-b-0".to_string(), "def".to_string())].seen_at_s,
            -0.5
        );
        assert!(super::parse_sightings("gb-a-1|abc|soon|n", 0).is_err());
        assert!(super::parse_sightings("gb-a-1|abc", 0).is_err());
    }
}
