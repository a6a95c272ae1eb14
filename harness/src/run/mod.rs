//! One scenario run against any [`Infra`]: publish the corpus, drive goose from the shared
//! schedule, sample resources and node shares, and assemble the run record.
//!
//! **Architecture Invariant:** nothing here knows which provider runs the cluster; it sees only
//! [`Endpoints`] and [`Monitored`] processes.

pub mod node_share;
pub mod progress;
pub mod resources;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reports::record::{Event, RunMeta, RunRecord};
use reports::{Recorder, ThresholdSet, Verdict};
use scenarios::arrival::{ArrivalPlan, DiurnalCurve};
use scenarios::corpus::{Corpus, CorpusConfig};
use scenarios::daily_installs::{self, InstallContext, InstallTarget};
use scenarios::load_model::{DailyInstallsConfig, LoadModel};

use crate::cli::{Replay, ScenarioArgs};
use crate::error::HarnessError;
use crate::infra::Infra;

/// The daily-installs configuration the flags describe.
pub fn daily_installs_config(args: &ScenarioArgs) -> DailyInstallsConfig {
    let duration: Duration = args.duration.into();
    let mut arrival = match args.replay {
        Replay::PeakHour => ArrivalPlan::peak_hour(args.installs_per_day, duration),
        Replay::WholeDay => {
            let mut plan = ArrivalPlan::whole_day(args.installs_per_day, duration);
            plan.window_start_hour = args.window_start_hour;
            plan.window_hours = args.window_hours;
            plan.compression = args
                .compression
                .unwrap_or(args.window_hours * 3600.0 / duration.as_secs_f64());
            plan
        }
    };
    arrival.curve = DiurnalCurve {
        peak_to_mean: args.peak_to_mean,
        ..arrival.curve
    };
    arrival.seed = args.seed;
    DailyInstallsConfig {
        corpus: CorpusConfig {
            packages: args.packages,
            r_share: args.r_share,
            size_median_bytes: args.size_median_bytes,
            size_max_bytes: args.size_max_bytes,
            seed: args.seed,
            ..CorpusConfig::default()
        },
        arrival,
        users: args.users,
        ..DailyInstallsConfig::default()
    }
}

/// Thresholds from the flags and the file; the defaults when neither gives any.
pub fn thresholds(args: &ScenarioArgs) -> Result<ThresholdSet, HarnessError> {
    let mut set = ThresholdSet::default();
    if let Some(path) = &args.thresholds_file {
        set = ThresholdSet::from_toml_file(path)
            .map_err(|e| HarnessError::Config(vec![e.to_string()]))?;
    }
    let flags = ThresholdSet::parse_all(&args.thresholds)
        .map_err(|errors| HarnessError::Config(errors.iter().map(ToString::to_string).collect()))?;
    set.thresholds.extend(flags.thresholds);
    if set.thresholds.is_empty() {
        set = ThresholdSet::parse_all(DEFAULT_THRESHOLDS)
            .map_err(|errors| HarnessError::Internal(format!("default thresholds: {errors:?}")))?;
    }
    Ok(set)
}

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

/// Runs daily-installs against `infra` and returns the judged run record.
pub async fn daily_installs(
    args: &ScenarioArgs,
    config: &DailyInstallsConfig,
    thresholds: &ThresholdSet,
    infra: &dyn Infra,
) -> Result<RunRecord, HarnessError> {
    let model = LoadModel::DailyInstalls(config.clone());
    model.check()?;
    let endpoints = infra.endpoints().clone();
    let corpus = Arc::new(Corpus::generate(&config.corpus)?);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| HarnessError::Internal(e.to_string()))?;

    eprintln!(
        "harness: publishing the corpus ({} packages) through {}",
        config.corpus.packages, endpoints.base_url
    );
    let uploaded = upload(&client, &endpoints, &corpus).await?;
    eprintln!(
        "harness: published {} Python and {} R files ({:.1} MB) in {:.1} s",
        uploaded.python_files,
        uploaded.r_files,
        uploaded.bytes as f64 / 1e6,
        uploaded.elapsed.as_secs_f64()
    );
    // Every node must see the last upload before the first install is due.
    wait_for_publication(&client, &endpoints, &corpus).await?;

    let schedule = Arc::new(config.arrival.schedule(&corpus));
    let run_time = config.arrival.wall_duration();
    let bucket_width = bucket_width(run_time);
    // A second's lead so every goose user is running before the first install is due.
    let start = Instant::now() + Duration::from_secs(1);
    let started_at = chrono::Utc::now() + chrono::Duration::seconds(1);
    let recorder = Arc::new(Recorder::new(start, bucket_width));
    let target = InstallTarget {
        base_url: endpoints.base_url.clone(),
        pypi_repo: endpoints.pypi_repo.clone(),
        cran_repo: endpoints.cran_repo.clone(),
    };
    let mut context =
        InstallContext::new(target, corpus.clone(), schedule.clone(), recorder.clone());
    context.late_tolerance = config.late_tolerance();
    let users = config.users();
    eprintln!(
        "harness: {}",
        config.description().replace('\n', "\nharness: ")
    );

    let shares_before = node_share::snapshot(&client, &endpoints.nodes).await;
    // The load generator too: when it saturates, the report must say so.
    let mut monitored = infra.monitored();
    monitored.push(crate::infra::Monitored {
        name: "load-generator".into(),
        pid: std::process::id(),
    });
    let sampler = resources::Sampler::start(monitored, start, Duration::from_secs(1));
    let (stop_progress, stop_rx) = tokio::sync::oneshot::channel();
    let progress = progress::spawn(
        recorder.clone(),
        schedule.len() as u64,
        run_time,
        args.quiet,
        stop_rx,
    );
    let began = Instant::now();
    let attack = daily_installs::execute(Arc::new(context), users, run_time).await;
    let ran_for = began.elapsed();
    let _ = stop_progress.send(());
    let _ = progress.await;
    let samples = sampler.finish().await;
    let shares_after = node_share::snapshot(&client, &endpoints.nodes).await;
    attack?;
    // goose stops early only when interrupted (its own Ctrl-C handler).
    if ran_for + Duration::from_millis(500) < run_time {
        return Err(HarnessError::Interrupted);
    }

    // Arrivals due within the run that no user ever took: k6's dropped iterations. They count as
    // scheduled and late, so the achieved rate and `rate_ratio` show the shortfall.
    let dropped = schedule.arrivals()[schedule.handed_out()..]
        .iter()
        .filter(|a| a.offset < run_time)
        .inspect(|a| {
            recorder.scheduled(daily_installs::KIND_INSTALL, start + a.offset);
            recorder.late(daily_installs::KIND_INSTALL, start + a.offset);
        })
        .count();
    let metrics = recorder.finish();
    let mut events = vec![Event {
        at_s: 0.0,
        end_s: None,
        kind: "note".into(),
        message: format!("{users} goose users; {} installs scheduled", schedule.len()),
    }];
    let late = metrics
        .kinds
        .get(daily_installs::KIND_INSTALL)
        .map(|k| k.late())
        .unwrap_or(0);
    if late > 0 {
        events.push(Event {
            at_s: run_time.as_secs_f64(),
            end_s: None,
            kind: "user-pool".into(),
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
            kind: "dropped".into(),
            message: format!(
                "{dropped} scheduled installs were never started: every user was busy"
            ),
        });
    }
    let mut record = RunRecord {
        meta: RunMeta {
            scenario: args.name.as_str().into(),
            started_at,
            duration_s: run_time.as_secs_f64(),
            config: serde_json::json!({
                "model": model.name(),
                "description": model.description(),
                "users": users,
                "corpus": config.corpus,
                "arrival": config.arrival,
                "late_tolerance_ms": config.late_tolerance_ms,
                "thresholds": thresholds.thresholds.iter().map(|t| t.expr.clone()).collect::<Vec<_>>(),
                "uploaded": { "python_files": uploaded.python_files, "r_files": uploaded.r_files, "bytes": uploaded.bytes },
            }),
            infra: infra.info(),
        },
        metrics,
        events,
        samples,
        node_requests: node_share::difference(&shares_before, &shares_after),
        thresholds: Vec::new(),
        verdict: Verdict::Fail,
    };
    record.judge(thresholds);
    Ok(record)
}

/// About 120 buckets a run (so the report's time charts stay readable), never under a second.
fn bucket_width(run_time: Duration) -> Duration {
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
