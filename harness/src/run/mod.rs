//! One run of a [`RunPlan`] against any [`Infra`]: one loop over the plan's workloads (the
//! daily-installs reads, the upload writer, the git builders: [`workloads`]). Each is prepared
//! (the corpus; the repositories and builders), then all start on one clock beside the
//! observer, the resource sampler and the nemesis, stop together once the nemesis is done,
//! make their final reads, add what they recorded to one history, and are judged together:
//! every workload's checkers, the cluster's (statuses, the HA checklist before and after) and
//! the thresholds over the merged metrics; each workload is a section of the run record.
//!
//! **Architecture Invariant:** nothing here knows which provider runs the cluster; it sees only
//! [`Endpoints`](crate::infra::Endpoints) and [`Monitored`] processes.

pub mod checklist;
pub mod corpus;
pub mod generators;
pub mod ground_truth;
pub mod metrics_text;
pub mod node_metrics;
pub mod node_share;
pub mod observer;
pub mod progress;
pub mod record;
pub mod resources;
pub mod workloads;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reports::Recorder;
use reports::record::{CheckerResult, RunMeta, RunRecord};
use scenarios::writes;

use crate::checkers::{self, CheckerKind};
use crate::error::HarnessError;
use crate::http::http_client;
use crate::infra::{Infra, Monitored};
use crate::nemesis;
use crate::plan::{RunPlan, WorkloadPlan};
use workloads::{Clock, History, RunContext, Workload};

/// What the default run must hold: every install succeeds, the arrival rate is held, and
/// each request kind answers within 50 ms at p99.
pub const DEFAULT_THRESHOLDS: &[&str] = &[
    "install:error_rate<=0",
    "install:rate_ratio>=0.99",
    "pypi_simple:p99<50ms",
    "pypi_file:p99<50ms",
    "cran_packages:p99<50ms",
    "cran_tarball:p99<50ms",
];

/// What a run produced: the judged record, the upload ledger (empty without a writer) and
/// other files for the run directory (name, content), such as the git builders' commits.
#[derive(Debug)]
pub struct RunOutcome {
    pub record: RunRecord,
    pub ledger: Vec<writes::LedgerEntry>,
    pub files: Vec<(String, String)>,
}

/// Runs `plan` against `infra` and returns the judged run record: prepares every workload,
/// runs them, the observer and the nemesis side by side from one start; once the last fault
/// is healed, the cluster recovered and every workload stopped, makes the final reads and
/// runs the checkers.
pub async fn run(plan: &RunPlan, infra: &dyn Infra) -> Result<RunOutcome, HarnessError> {
    let endpoints = infra.endpoints().clone();
    let ctx = RunContext {
        plan,
        infra,
        endpoints: &endpoints,
    };
    let mut workloads = workloads_of(plan);
    for workload in &mut workloads {
        workload.prepare(&ctx).await?;
    }
    // A run on a cluster that breaks the HA rules cannot pass: the checklist before and after.
    let mut ha_checks = Vec::new();
    if plan.ha_checklist && infra.info().provider != "target" {
        ha_checks.push(checklist::ha_checklist(infra, "ha-checklist-at-start").await);
    }

    let clock = clock(plan, &workloads);
    describe_nemesis(plan);
    for workload in &mut workloads {
        workload.start(&ctx, &clock)?;
    }
    // The load generator too: when it saturates, the report must say so. The cluster's
    // processes (children of this one on the local provider) are sampled on their own.
    let children = plan.generators.children > 1;
    let mut monitored = infra.monitored();
    monitored.push(Monitored {
        name: if children {
            "harness"
        } else {
            "load-generator"
        }
        .into(),
        pid: std::process::id(),
    });
    monitored.extend(workloads.iter().flat_map(|w| w.monitored()));
    let sampler = resources::Sampler::start(monitored, clock.start, Duration::from_secs(1));
    let (stop_observer, observer_rx) = tokio::sync::oneshot::channel();
    let observer = tokio::spawn(observer::observe(
        run_client(Duration::from_secs(2))?,
        endpoints.nodes.clone(),
        clock.start,
        observer_rx,
    ));
    // The nemesis runs here: its controls block in place while the load runs on.
    let nemesis_log = nemesis::run(&plan.nemesis, infra, clock.start).await;
    for workload in &mut workloads {
        workload.stop(&clock).await?;
    }
    let _ = stop_observer.send(());
    let observed = observer
        .await
        .map_err(|e| HarnessError::Internal(format!("observer task: {e}")))?;
    let samples = sampler.finish().await;

    // The final reads, the history and the judgement.
    for workload in &mut workloads {
        workload.finish(&ctx, &clock).await?;
    }
    let mut history = History {
        metrics: clock.recorder.finish(),
        events: nemesis_log.events.clone(),
        ledger: Vec::new(),
        nemesis: nemesis_log,
        observed,
    };
    for workload in &mut workloads {
        workload.record(&clock, &mut history)?;
    }
    history.events.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    let reads_client = http_client(Duration::from_secs(20));
    let mut checker_results = Vec::new();
    for workload in &workloads {
        let client = reads_client.as_ref().map_err(String::as_str);
        for result in workload.check(&ctx, &history, client).await {
            eprintln!(
                "harness: checker {}: {} — {}",
                result.name,
                result.validity.as_str(),
                result.summary
            );
            checker_results.push(result);
        }
    }
    checker_results.extend(cluster_checks(&ctx, &history, reads_client.as_ref()).await);
    if !ha_checks.is_empty() {
        ha_checks.push(checklist::ha_checklist(infra, "ha-checklist-at-end").await);
    }
    checker_results.extend(ha_checks);

    let mut files = Vec::new();
    for workload in &workloads {
        files.extend(workload.files()?);
    }
    let meta = RunMeta {
        scenario: plan.name.clone(),
        started_at: clock.started_at,
        duration_s: clock.run_time.as_secs_f64(),
        config: run_config(plan, &workloads),
        infra: infra.info(),
    };
    let measured = record::Measured {
        workloads: workloads.iter().map(|w| w.section(&history)).collect(),
        metrics: history.metrics,
        events: history.events,
        samples,
        observed: history.observed,
    };
    let record = record::judged(meta, measured, checker_results, &plan.thresholds);
    Ok(RunOutcome {
        record,
        ledger: history.ledger,
        files,
    })
}

/// The run's one clock, set once every workload is prepared. Every generator of a run starts
/// its schedule (and bucket 0) at the same wall-clock instant, so their buckets align; alone,
/// a second's lead lets every goose user start before the first operation is due (children
/// need a few to start and build the corpus).
fn clock(plan: &RunPlan, workloads: &[Box<dyn Workload>]) -> Clock {
    let run_time = (workloads.iter().map(|w| w.run_time()))
        .max()
        .unwrap_or_default();
    let lead_s = if plan.generators.children > 1 { 5 } else { 1 };
    let started_at = plan
        .generators
        .start_at
        .unwrap_or_else(|| chrono::Utc::now() + chrono::Duration::seconds(lead_s));
    let start = instant_of(started_at);
    Clock {
        started_at,
        start,
        run_time,
        recorder: Arc::new(Recorder::new(start, bucket_width(run_time))),
    }
}

fn describe_nemesis(plan: &RunPlan) {
    if plan.nemesis.faults.is_empty() {
        return;
    }
    eprintln!(
        "harness: nemesis: {}",
        plan.nemesis
            .faults
            .iter()
            .map(|f| format!("{} at {:?} for {:?}", f.fault.name(), f.at, f.hold))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// The run configuration on the page: every workload's part (the first to name a key keeps
/// it; `model` and `description` name them all) and the run's own settings.
fn run_config(plan: &RunPlan, workloads: &[Box<dyn Workload>]) -> serde_json::Value {
    let mut config = serde_json::Map::new();
    let mut models = Vec::new();
    let mut descriptions = Vec::new();
    for workload in workloads {
        let serde_json::Value::Object(part) = workload.config() else {
            continue;
        };
        for (key, value) in part {
            match key.as_str() {
                "model" => models.extend(value.as_str().map(str::to_string)),
                "description" => descriptions.extend(value.as_str().map(str::to_string)),
                _ => {
                    config.entry(key).or_insert(value);
                }
            }
        }
    }
    if !models.is_empty() {
        config.insert("model".into(), models.join(" + ").into());
        config.insert("description".into(), descriptions.join("\n").into());
    }
    config.insert("workloads".into(), plan.describe()["workloads"].clone());
    config.insert("generators".into(), plan.generators.children.max(1).into());
    config.insert(
        "slice".into(),
        serde_json::to_value(plan.generators.slice).unwrap_or_default(),
    );
    config.insert(
        "corpus_source".into(),
        serde_json::to_value(plan.generators.corpus).unwrap_or_default(),
    );
    config.insert(
        "machine_cores".into(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .into(),
    );
    config.insert(
        "thresholds".into(),
        (plan.thresholds.thresholds.iter())
            .map(|t| t.expr.clone())
            .collect::<Vec<_>>()
            .into(),
    );
    config.insert("plan".into(), plan.describe());
    serde_json::Value::Object(config)
}

/// The cluster's own checkers (no workload's): every fault injected and healed, every node
/// Online at the end.
async fn cluster_checks(
    ctx: &RunContext<'_>,
    history: &History,
    client: Result<&reqwest::Client, &String>,
) -> Vec<CheckerResult> {
    if !ctx.plan.checkers.contains(&CheckerKind::ClusterStatus) {
        return Vec::new();
    }
    let client = match client {
        Ok(client) => client,
        Err(why) => {
            return checkers::not_checked(
                &[CheckerKind::ClusterStatus],
                &format!("the HTTP client for the final reads could not be built: {why}"),
            );
        }
    };
    let mut finals = Vec::new();
    for (name, url) in &ctx.endpoints.nodes {
        finals.push(crate::http::status(client, name, url).await);
    }
    let result = checkers::cluster::check(
        &history.nemesis.errors,
        history.nemesis.completed,
        ctx.plan.nemesis.faults.len(),
        &history.observed.status_changes,
        &finals,
    );
    eprintln!(
        "harness: checker {}: {} — {}",
        result.name,
        result.validity.as_str(),
        result.summary
    );
    vec![result]
}

/// The monotonic instant of a wall-clock time (now, if it has passed).
fn instant_of(at: chrono::DateTime<chrono::Utc>) -> Instant {
    let now = Instant::now();
    match (at - chrono::Utc::now()).to_std() {
        Ok(ahead) => now + ahead,
        Err(_) => {
            let behind = (chrono::Utc::now() - at).to_std().unwrap_or_default();
            now.checked_sub(behind).unwrap_or(now)
        }
    }
}

/// The HTTP client the load, the observer and the reads go through; when it cannot be built
/// nothing can be measured, so the run is undecided (exit 5), not an error nor a pass.
fn run_client(timeout: Duration) -> Result<reqwest::Client, HarnessError> {
    http_client(timeout).map_err(|why| {
        HarnessError::Undecided(format!("the HTTP client could not be built: {why}"))
    })
}

/// About 120 buckets a run (so the report's time charts stay readable), never under a second.
pub(crate) fn bucket_width(run_time: Duration) -> Duration {
    let seconds = (run_time.as_secs_f64() / 120.0).ceil().max(1.0);
    Duration::from_secs_f64(seconds)
}

/// The workloads of `plan`, in its order.
fn workloads_of(plan: &RunPlan) -> Vec<Box<dyn Workload>> {
    plan.workloads
        .iter()
        .map(|w| -> Box<dyn Workload> {
            match w {
                WorkloadPlan::Installs(reads) => {
                    Box::new(workloads::installs::Installs::new(reads.clone()))
                }
                WorkloadPlan::Uploads(writes) => {
                    Box::new(workloads::uploads::Uploads::new(writes.clone()))
                }
                WorkloadPlan::GitBuilders(git) => {
                    Box::new(workloads::git_builders::GitBuilders::new(git.clone()))
                }
            }
        })
        .collect()
}
