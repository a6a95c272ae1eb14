//! One run of a [`RunPlan`] against any [`Infra`]: publish the corpus, drive goose from the
//! shared schedule while the writer uploads and the nemesis injects faults, sample resources
//! and node shares, read every upload back, run the checkers, and assemble the run record.
//!
//! **Architecture Invariant:** nothing here knows which provider runs the cluster; it sees only
//! [`Endpoints`] and [`Monitored`] processes.

pub mod generators;
pub mod git_builders;
pub mod ground_truth;
pub mod metrics_text;
pub mod node_metrics;
pub mod node_share;
pub mod observer;
pub mod progress;
pub mod resources;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reports::record::{Event, EventKind, RunMeta, RunRecord};
use reports::{Recorder, Verdict};
use scenarios::corpus::Corpus;
use scenarios::daily_installs::{self, InstallContext, InstallTarget};
use scenarios::load_model::LoadModel;
use scenarios::writes;

use crate::checkers::{self, CheckerKind};
use crate::error::HarnessError;
use crate::infra::Infra;
use crate::nemesis;
use crate::plan::{CorpusSource, RunPlan};

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

/// Runs `plan` against `infra` and returns the judged run record: publishes the corpus, then
/// runs the read load, the writer, the observer and the nemesis side by side; once the last
/// fault is healed and the cluster recovered, reads every upload back and runs the checkers.
pub async fn run(plan: &RunPlan, infra: &dyn Infra) -> Result<RunOutcome, HarnessError> {
    if let Some(git) = &plan.git_builders {
        return git_builders::run(plan, git, infra).await;
    }
    let config = &plan.reads;
    let model = LoadModel::DailyInstalls(config.clone());
    model.check()?;
    let endpoints = infra.endpoints().clone();
    let client = run_client(Duration::from_secs(120))?;
    let target = InstallTarget {
        base_url: endpoints.base_url.clone(),
        pypi_repo: endpoints.pypi_repo.clone(),
        cran_repo: endpoints.cran_repo.clone(),
    };
    let (corpus, seeding) = load_corpus(plan, infra, &client, &endpoints, &target).await?;
    let corpus_stats = corpus.stats();
    let uploaded = &seeding.uploaded;
    // A run on a cluster that breaks the HA rules cannot pass: the checklist before and after.
    let mut ha_checks = Vec::new();
    if plan.ha_checklist && infra.info().provider != "target" {
        ha_checks.push(ha_checklist(infra, "ha-checklist-at-start").await);
    }

    let full_schedule = config.arrival.schedule(&corpus);
    let schedule = Arc::new(match plan.generators.slice {
        Some(slice) => full_schedule.slice(slice.index, slice.count),
        None => full_schedule,
    });
    let run_time = config.arrival.wall_duration();
    let bucket_width = bucket_width(run_time);
    let children = plan.generators.children > 1;
    // Every generator of a run starts its schedule (and bucket 0) at the same wall-clock
    // instant, so their buckets align; alone, a second's lead lets every goose user start
    // before the first install is due (children need a few to start and build the corpus).
    let started_at = plan.generators.start_at.unwrap_or_else(|| {
        chrono::Utc::now() + chrono::Duration::seconds(if children { 5 } else { 1 })
    });
    let start = instant_of(started_at);
    let recorder = Arc::new(Recorder::new(start, bucket_width));
    let mut context =
        InstallContext::new(target, corpus.clone(), schedule.clone(), recorder.clone());
    context.late_tolerance = config.late_tolerance();
    let users = match plan.generators.slice {
        // Little's law over this slice's share of the rate.
        Some(slice) => config.users().div_ceil(slice.count).max(10),
        None => config.users(),
    };
    eprintln!(
        "harness: {}",
        config.description().replace('\n', "\nharness: ")
    );
    if !plan.nemesis.faults.is_empty() {
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

    let generators = match (children, &plan.generators.records_dir) {
        (false, _) => None,
        (true, Some(dir)) => {
            eprintln!(
                "harness: {} load generators, one slice of the schedule each, records in {}",
                plan.generators.children,
                dir.display()
            );
            Some(generators::spawn(plan, &endpoints, started_at, dir)?)
        }
        (true, None) => {
            return Err(HarnessError::Internal(
                "--generators needs a directory for the generators' records".into(),
            ));
        }
    };
    // The load generator too: when it saturates, the report must say so. The cluster's
    // processes (children of this one on the local provider) are sampled on their own.
    let mut monitored = infra.monitored();
    monitored.push(crate::infra::Monitored {
        name: if children {
            "harness"
        } else {
            "load-generator"
        }
        .into(),
        pid: std::process::id(),
    });
    if let Some(generators) = &generators {
        monitored.extend(generators.monitored());
    }
    let sampler = resources::Sampler::start(monitored, start, Duration::from_secs(1));
    let (stop_progress, stop_rx) = tokio::sync::oneshot::channel();
    let progress = progress::spawn(
        recorder.clone(),
        schedule.len() as u64,
        run_time,
        plan.quiet || children,
        stop_rx,
    );
    let (stop_observer, observer_rx) = tokio::sync::oneshot::channel();
    let observer = tokio::spawn(observer::observe(
        run_client(Duration::from_secs(2))?,
        endpoints.nodes.clone(),
        start,
        observer_rx,
    ));
    let writer = plan.writes.clone().map(|writes| {
        let target = endpoints.write_target();
        let client = client.clone();
        tokio::spawn(async move { writes::run_writer(&client, &target, &writes, start).await })
    });
    let began = Instant::now();
    let attack = match generators {
        None => Load::InProcess(tokio::spawn(async move {
            daily_installs::execute(Arc::new(context), users, run_time).await
        })),
        Some(generators) => {
            // The schedule, its drain, the children's start-up and their record writing.
            let timeout = run_time
                + Duration::from_millis(config.drain_ms)
                + (started_at - chrono::Utc::now())
                    .to_std()
                    .unwrap_or_default()
                + Duration::from_secs(120);
            Load::Children(tokio::spawn(generators.wait(timeout)))
        }
    };
    // The nemesis runs here: its controls block in place while the load runs on.
    let nemesis_log = nemesis::run(&plan.nemesis, infra, start).await;
    let slices = match attack {
        Load::InProcess(task) => {
            task.await
                .map_err(|e| HarnessError::Internal(format!("load task: {e}")))??;
            None
        }
        Load::Children(task) => Some(
            task.await
                .map_err(|e| HarnessError::Internal(format!("generators: {e}")))??,
        ),
    };
    let ran_for = began.elapsed();
    let ledger = match writer {
        Some(writer) => writer
            .await
            .map_err(|e| HarnessError::Internal(format!("writer task: {e}")))??,
        None => Vec::new(),
    };
    let _ = stop_progress.send(());
    let _ = progress.await;
    let _ = stop_observer.send(());
    let observed = observer
        .await
        .map_err(|e| HarnessError::Internal(format!("observer task: {e}")))?;
    let samples = sampler.finish().await;
    // goose stops early only when interrupted (its own Ctrl-C handler).
    if slices.is_none() && ran_for + Duration::from_millis(500) < run_time {
        return Err(HarnessError::Interrupted);
    }

    // Arrivals due within the run that no user ever took: k6's dropped iterations. They count as
    // scheduled and late, so the achieved rate and `rate_ratio` show the shortfall.
    let mut dropped = 0;
    while slices.is_none()
        && let Some(a) = schedule.next_before(run_time)
    {
        recorder.scheduled(daily_installs::KIND_INSTALL, start + a.offset);
        recorder.late(daily_installs::KIND_INSTALL, start + a.offset);
        dropped += 1;
    }
    let merged = match &slices {
        Some(records) => generators::merge(records)?,
        None => None,
    };
    let metrics = match &merged {
        Some(merged) => merged.metrics.clone(),
        None => recorder.finish(),
    };
    let mut events = match &merged {
        // Each slice's own notes (users, late starts, dropped installs), named after it.
        Some(merged) => merged.events.clone(),
        None => vec![Event {
            at_s: 0.0,
            end_s: None,
            kind: EventKind::Note,
            message: format!("{users} goose users; {} installs scheduled", schedule.len()),
        }],
    };
    let late = metrics
        .kinds
        .get(daily_installs::KIND_INSTALL)
        .map(|k| k.late())
        .unwrap_or(0);
    if late > 0 && merged.is_none() {
        events.push(Event {
            at_s: run_time.as_secs_f64(),
            end_s: None,
            kind: EventKind::UserPool,
            message: format!(
                "{late} installs started more than {} ms late: the user pool ({users}) or the client ran short",
                config.late_tolerance_ms
            ),
        });
    }
    if dropped > 0 {
        events.push(Event {
            at_s: run_time.as_secs_f64(),
            end_s: None,
            kind: EventKind::Dropped,
            message: format!(
                "{dropped} scheduled installs were never started: every user was busy"
            ),
        });
    }
    events.extend(nemesis_log.events.iter().cloned());
    if let Some(first) = first_writes_after_faults(&events, &ledger) {
        events.extend(first);
    }
    events.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));

    let blob_caches = node_metrics::read_all(&client, &endpoints.nodes).await;
    for cache in &blob_caches {
        eprintln!(
            "harness: {} blob cache: {} hits, {} misses (hit ratio {}), {:.1} MB in {} files",
            cache.node,
            cache.hits,
            cache.misses,
            cache
                .hit_ratio
                .map(|r| format!("{:.1} %", r * 100.0))
                .unwrap_or_else(|| "-".into()),
            cache.bytes as f64 / 1e6,
            cache.files
        );
    }
    if !ha_checks.is_empty() {
        ha_checks.push(ha_checklist(infra, "ha-checklist-at-end").await);
    }
    let mut checkers = check(
        plan,
        infra,
        &metrics,
        &events,
        &ledger,
        &nemesis_log,
        &observed,
    )
    .await;
    checkers.extend(ha_checks);
    let mut record = RunRecord {
        meta: RunMeta {
            scenario: plan.name.clone(),
            started_at,
            duration_s: run_time.as_secs_f64(),
            config: serde_json::json!({
                "model": model.name(),
                "description": model.description(),
                "users": users,
                "corpus": config.corpus,
                "corpus_stats": corpus_stats,
                "corpus_seeding": seeding.describe(),
                "blob_cache": blob_caches,
                "arrival": config.arrival,
                "late_tolerance_ms": config.late_tolerance_ms,
                "generators": plan.generators.children.max(1),
                "slice": plan.generators.slice,
                "corpus_source": plan.generators.corpus,
                "machine_cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
                "thresholds": plan.thresholds.thresholds.iter().map(|t| t.expr.clone()).collect::<Vec<_>>(),
                "uploaded": { "python_files": uploaded.python_files, "r_files": uploaded.r_files, "bytes": uploaded.bytes },
                "served_packages": { "python": corpus.python().len(), "r": corpus.r().len() },
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
        checkers,
        workloads: Vec::new(),
        verdict: Verdict::Fail,
    };
    record.judge(&plan.thresholds);
    Ok(RunOutcome {
        record,
        ledger,
        files: Vec::new(),
    })
}

/// The read load: goose in this process, or child generators each executing a slice.
enum Load {
    InProcess(tokio::task::JoinHandle<Result<(), scenarios::ScenarioError>>),
    Children(tokio::task::JoinHandle<Result<Vec<RunRecord>, HarnessError>>),
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

/// The corpus the load installs, as the plan says: generated and published through the
/// upload API, generated and already served, or discovered from what the target serves.
async fn load_corpus(
    plan: &RunPlan,
    infra: &dyn Infra,
    client: &reqwest::Client,
    endpoints: &crate::infra::Endpoints,
    target: &InstallTarget,
) -> Result<(Arc<Corpus>, Seeding), HarnessError> {
    let config = &plan.reads;
    let began = Instant::now();
    let found_by = |how, corpus| {
        let seeding = Seeding {
            uploaded: daily_installs::UploadStats::default(),
            how,
            cache_entry: None,
            seed_seconds: 0.0,
            restore_seconds: None,
            save_seconds: None,
            ready_seconds: began.elapsed().as_secs_f64(),
        };
        (Arc::new(corpus), seeding)
    };
    match plan.generators.corpus {
        CorpusSource::Discover => {
            let (corpus, found) =
                daily_installs::discover_corpus(client, target, &config.corpus).await?;
            eprintln!(
                "harness: read-only: {} of {} Python projects (with a wheel) and {} of {} R packages served by {}",
                found.python_taken,
                found.python_listed,
                found.r_taken,
                found.r_listed,
                endpoints.base_url
            );
            Ok(found_by("discovered", corpus))
        }
        CorpusSource::Served => {
            let corpus = Corpus::generate(&config.corpus)?;
            wait_for_publication(client, endpoints, &corpus).await?;
            Ok(found_by("served", corpus))
        }
        CorpusSource::Publish => {
            let corpus = Arc::new(Corpus::generate(&config.corpus)?);
            let seeding = seed(infra, client, endpoints, &corpus, &corpus.stats()).await?;
            Ok((corpus, seeding))
        }
    }
}

/// The checkers the plan asks for, over what the run recorded and the final reads.
pub(crate) async fn check(
    plan: &RunPlan,
    infra: &dyn Infra,
    metrics: &reports::Metrics,
    events: &[Event],
    ledger: &[writes::LedgerEntry],
    nemesis_log: &nemesis::NemesisLog,
    observed: &observer::Observed,
) -> Vec<reports::record::CheckerResult> {
    let endpoints = infra.endpoints();
    let client = match http_client(Duration::from_secs(20)) {
        Ok(client) => client,
        Err(why) => {
            // The builds checker is the git-builders run's own (see below).
            let kinds: Vec<CheckerKind> = (plan.checkers.iter().copied())
                .filter(|k| *k != CheckerKind::Builds)
                .collect();
            return checkers::not_checked(
                &kinds,
                &format!("the HTTP client for the final reads could not be built: {why}"),
            );
        }
    };
    let mut results = Vec::new();
    for kind in &plan.checkers {
        let result = match kind {
            // Judged by the git-builders run, which holds the commit ledger and the builds.
            CheckerKind::Builds => continue,
            CheckerKind::LostWrites => {
                let tag = plan.writes.as_ref().map_or("", |w| w.tag.as_str());
                ground_truth::check_lost_writes(infra, &client, ledger, tag, plan.settle, events)
                    .await
            }
            CheckerKind::Availability => {
                checkers::availability::check(metrics, events, ledger, plan.availability)
            }
            CheckerKind::ClusterStatus => {
                let mut finals = Vec::new();
                for (name, url) in &endpoints.nodes {
                    finals.push(observer::status(&client, name, url).await);
                }
                checkers::cluster::check(
                    &nemesis_log.errors,
                    nemesis_log.completed,
                    plan.nemesis.faults.len(),
                    &observed.status_changes,
                    &finals,
                )
            }
        };
        eprintln!(
            "harness: checker {}: {} — {}",
            result.name,
            result.validity.as_str(),
            result.summary
        );
        results.push(result);
    }
    results
}

/// The HA checklist (`harness check`'s rules) as one checker: the worst rule decides, every
/// rule is evidence.
pub async fn ha_checklist(infra: &dyn Infra, name: &str) -> reports::record::CheckerResult {
    use reports::record::{CheckerResult, Validity};
    let options = crate::checklist::ChecklistOptions::default();
    let rules = match crate::checklist::gather(infra, &options).await {
        Ok(facts) => crate::checklist::evaluate(&facts, &options),
        Err(e) => {
            return CheckerResult {
                name: name.into(),
                validity: Validity::Unknown,
                summary: format!("the checklist's facts could not be gathered: {e}"),
                evidence: serde_json::Value::Null,
            };
        }
    };
    let named = |validity: Validity| {
        rules
            .iter()
            .filter(|r| r.validity == validity)
            .map(|r| r.name.clone())
            .collect::<Vec<_>>()
    };
    let (failed, unknown) = (named(Validity::Invalid), named(Validity::Unknown));
    let (validity, summary) = if !failed.is_empty() {
        (
            Validity::Invalid,
            format!("rules failed: {}", failed.join(", ")),
        )
    } else if !unknown.is_empty() {
        (
            Validity::Unknown,
            format!("rules undecided: {}", unknown.join(", ")),
        )
    } else {
        let not_applicable = named(Validity::NotApplicable);
        let held = rules.len() - not_applicable.len();
        let summary = if not_applicable.is_empty() {
            format!("all {held} HA rules hold")
        } else {
            format!(
                "all {held} applicable HA rules hold; not applicable: {}",
                not_applicable.join(", ")
            )
        };
        (Validity::Valid, summary)
    };
    let result = CheckerResult {
        name: name.into(),
        validity,
        summary,
        evidence: serde_json::to_value(&rules).unwrap_or_default(),
    };
    eprintln!(
        "harness: checker {}: {} — {}",
        result.name,
        result.validity.as_str(),
        result.summary
    );
    result
}

/// A `first-write-ok` moment after each fault's start: the first upload invoked after it that
/// was acknowledged.
fn first_writes_after_faults(
    events: &[Event],
    ledger: &[writes::LedgerEntry],
) -> Option<Vec<Event>> {
    if ledger.is_empty() {
        return None;
    }
    Some(
        events
            .iter()
            .filter(|e| e.kind == EventKind::Fault)
            .filter_map(|fault| {
                let first = checkers::availability::first_write_after(ledger, fault.at_s)?;
                Some(Event {
                    at_s: first.completed_s,
                    end_s: None,
                    kind: EventKind::FirstWriteOk,
                    message: format!(
                        "first upload acknowledged {:.1} s after the fault began ({})",
                        first.completed_s - fault.at_s,
                        first.file_name
                    ),
                })
            })
            .collect(),
    )
}

/// The HTTP client the load, the observer and the reads go through; when it cannot be built
/// nothing can be measured, so the run is undecided (exit 5), not an error nor a pass.
fn run_client(timeout: Duration) -> Result<reqwest::Client, HarnessError> {
    http_client(timeout).map_err(|why| {
        HarnessError::Undecided(format!("the HTTP client could not be built: {why}"))
    })
}

/// An HTTP client with `timeout` per request.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| e.to_string())
}

/// About 120 buckets a run (so the report's time charts stay readable), never under a second.
pub(crate) fn bucket_width(run_time: Duration) -> Duration {
    let seconds = (run_time.as_secs_f64() / 120.0).ceil().max(1.0);
    Duration::from_secs_f64(seconds)
}

async fn upload(
    client: &reqwest::Client,
    endpoints: &crate::infra::Endpoints,
    corpus: &Corpus,
) -> Result<daily_installs::UploadStats, HarnessError> {
    let tokens = daily_installs::UploadTokens {
        python: &endpoints.pypi_token,
        r: &endpoints.cran_token,
    };
    Ok(daily_installs::upload_corpus(
        client,
        &endpoints.base_url,
        tokens,
        &endpoints.pypi_source,
        &endpoints.cran_source,
        corpus,
    )
    .await?)
}

/// How the corpus reached the cluster.
struct Seeding {
    uploaded: daily_installs::UploadStats,
    /// `uploaded` (this run), `restored` (from the corpus cache), `served` (already there: a
    /// generator of several), `discovered` (read-only target mode).
    how: &'static str,
    /// The cache entry restored from or saved to.
    cache_entry: Option<std::path::PathBuf>,
    /// Upload time (this run's or, when restored, the seeding run's).
    seed_seconds: f64,
    restore_seconds: Option<f64>,
    save_seconds: Option<f64>,
    /// From the start of the run to the corpus served by every node.
    ready_seconds: f64,
}

impl Seeding {
    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "how": self.how,
            "cache_entry": self.cache_entry,
            "seed_seconds": self.seed_seconds,
            "restore_seconds": self.restore_seconds,
            "save_seconds": self.save_seconds,
            "ready_seconds": self.ready_seconds,
        })
    }
}

/// Puts the corpus into the cluster: restored already (the provider did it from the corpus
/// cache), or uploaded now and then saved into the cache; either way, served by every node
/// before it returns.
async fn seed(
    infra: &dyn Infra,
    client: &reqwest::Client,
    endpoints: &crate::infra::Endpoints,
    corpus: &Corpus,
    stats: &scenarios::corpus::CorpusStats,
) -> Result<Seeding, HarnessError> {
    let began = Instant::now();
    if let Some(restored) = infra.restored_corpus() {
        let m = &restored.manifest;
        eprintln!(
            "harness: corpus restored from the cache in {:.1} s ({} files, {:.1} MB; seeding it took {:.1} s)",
            restored.restore_seconds,
            m.uploaded_python_files + m.uploaded_r_files,
            m.uploaded_bytes as f64 / 1e6,
            m.seed_seconds
        );
        wait_for_publication(client, endpoints, corpus).await?;
        return Ok(Seeding {
            uploaded: daily_installs::UploadStats {
                python_files: m.uploaded_python_files,
                r_files: m.uploaded_r_files,
                bytes: m.uploaded_bytes,
                elapsed: Duration::ZERO,
            },
            how: "restored",
            cache_entry: Some(restored.entry.clone()),
            seed_seconds: m.seed_seconds,
            restore_seconds: Some(restored.restore_seconds),
            save_seconds: None,
            ready_seconds: began.elapsed().as_secs_f64(),
        });
    }
    eprintln!(
        "harness: publishing the corpus ({} packages, {} files, {:.1} MB drawn) through {}",
        stats.python_packages + stats.r_packages,
        stats.files(),
        stats.bytes as f64 / 1e6,
        endpoints.base_url
    );
    let uploaded = upload(client, endpoints, corpus).await?;
    eprintln!(
        "harness: published {} Python and {} R files ({:.1} MB) in {:.1} s",
        uploaded.python_files,
        uploaded.r_files,
        uploaded.bytes as f64 / 1e6,
        uploaded.elapsed.as_secs_f64()
    );
    // Every node must see the last upload before the first install is due.
    wait_for_publication(client, endpoints, corpus).await?;
    let ready_seconds = began.elapsed().as_secs_f64();
    let manifest = crate::corpus_cache::Manifest {
        key: crate::corpus_cache::CacheKey::new(corpus.config(), 0, ""),
        created_at: chrono::Utc::now(),
        seed_seconds: uploaded.elapsed.as_secs_f64(),
        save_seconds: 0.0,
        stats: stats.clone(),
        uploaded_python_files: uploaded.python_files,
        uploaded_r_files: uploaded.r_files,
        uploaded_bytes: uploaded.bytes,
        s3_access_key: String::new(),
        s3_secret_key: String::new(),
        s3_version: String::new(),
    };
    // Blocking (a dump, file copies, a restarted object store waited for with blocking HTTP):
    // nothing else runs yet, the load starts after it. On a thread of its own, outside the
    // runtime, where blocking clients may run.
    let saved =
        crate::infra::off_runtime("saving the seeded corpus", || infra.save_corpus(manifest))?;
    let save_seconds = saved
        .as_ref()
        .map(|_| began.elapsed().as_secs_f64() - ready_seconds);
    if let (Some(entry), Some(seconds)) = (&saved, save_seconds) {
        eprintln!(
            "harness: corpus saved to the cache in {seconds:.1} s: {}",
            entry.display()
        );
    }
    Ok(Seeding {
        seed_seconds: uploaded.elapsed.as_secs_f64(),
        uploaded,
        how: "uploaded",
        cache_entry: saved,
        restore_seconds: None,
        save_seconds,
        ready_seconds,
    })
}

/// Waits until every node lists the last Python package and the CRAN index holds the last R one.
async fn wait_for_publication(
    client: &reqwest::Client,
    endpoints: &crate::infra::Endpoints,
    corpus: &Corpus,
) -> Result<(), HarnessError> {
    let urls: Vec<String> = if endpoints.nodes.is_empty() {
        vec![endpoints.base_url.clone()]
    } else {
        endpoints.nodes.iter().map(|(_, url)| url.clone()).collect()
    };
    let checks: Vec<(String, Option<String>)> = urls
        .iter()
        .flat_map(|url| {
            let mut checks = Vec::new();
            if let Some(last) = corpus.python().last() {
                checks.push((
                    format!(
                        "{url}/{}/latest/simple/{}/",
                        endpoints.pypi_repo,
                        scenarios::corpus::pep503_normalize(&last.name)
                    ),
                    None,
                ));
            }
            if let Some(last) = corpus.r().last() {
                checks.push((
                    format!("{url}/{}/latest/src/contrib/PACKAGES", endpoints.cran_repo),
                    Some(format!("Package: {}\n", last.name)),
                ));
            }
            checks
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    for (url, needle) in checks {
        loop {
            let ok = match client.get(&url).send().await {
                Ok(r) if r.status().is_success() => match &needle {
                    None => true,
                    Some(n) => r
                        .text()
                        .await
                        .map(|t| t.contains(n.as_str()))
                        .unwrap_or(false),
                },
                _ => false,
            };
            if ok {
                break;
            }
            if Instant::now() > deadline {
                return Err(HarnessError::Target(format!(
                    "{url} did not show the published corpus within 30 s"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}
