//! The daily-installs read load as a workload: the corpus put in the cluster (published,
//! restored from the corpus cache, assumed served or discovered), then goose's users taking
//! installs from the shared open-model schedule (or child generators each executing a slice of
//! it, their records merged), a progress line, the installs never started counted as dropped,
//! and the `availability` checker over the history. Its section: install p50/p99, the rate
//! and the failures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reports::record::{CheckerResult, Event, EventKind, RunRecord, WorkloadSection};
use scenarios::arrival::Schedule;
use scenarios::corpus::Corpus;
use scenarios::daily_installs::{self, InstallContext, InstallTarget};
use scenarios::load_model::{DailyInstallsConfig, LoadModel};

use super::{BoxFuture, Clock, History, RunContext, Workload, asked, out_of_order};
use crate::checkers::{self, CheckerKind};
use crate::error::HarnessError;
use crate::infra::Monitored;
use crate::run::corpus::{self, Seeding};
use crate::run::{generators, node_metrics, progress, run_client};

/// The checkers about the reads.
const CHECKERS: &[CheckerKind] = &[CheckerKind::Availability];

/// The daily-installs reads.
pub struct Installs {
    config: DailyInstallsConfig,
    /// Set by `prepare`.
    ready: Option<Ready>,
    /// Set by `start`, taken by `stop`.
    running: Option<Running>,
    /// Set by `stop` and `finish`.
    done: Done,
}

/// The corpus in the cluster and what the load needs to start.
struct Ready {
    client: reqwest::Client,
    target: InstallTarget,
    corpus: Arc<Corpus>,
    seeding: Seeding,
}

/// The load under way.
struct Running {
    load: Load,
    began: Instant,
    stop_progress: tokio::sync::oneshot::Sender<()>,
    progress: tokio::task::JoinHandle<()>,
}

/// The read load: goose in this process, or child generators each executing a slice.
enum Load {
    InProcess(tokio::task::JoinHandle<Result<(), scenarios::ScenarioError>>),
    Children(tokio::task::JoinHandle<Result<Vec<RunRecord>, HarnessError>>),
}

/// What the load left.
#[derive(Default)]
struct Done {
    schedule: Option<Arc<Schedule>>,
    users: usize,
    children: Vec<Monitored>,
    /// The child generators' records, merged.
    merged: Option<RunRecord>,
    /// Installs due within the run that no user ever took.
    dropped: usize,
    blob_caches: Vec<node_metrics::BlobCacheFigures>,
}

impl Installs {
    pub fn new(config: DailyInstallsConfig) -> Self {
        Installs {
            config,
            ready: None,
            running: None,
            done: Done::default(),
        }
    }

    fn children(ctx: &RunContext<'_>) -> bool {
        ctx.plan.generators.children > 1
    }
}

impl Workload for Installs {
    fn name(&self) -> &'static str {
        "installs"
    }

    fn run_time(&self) -> Duration {
        self.config.arrival.wall_duration()
    }

    fn prepare<'a>(
        &'a mut self,
        ctx: &'a RunContext<'a>,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            LoadModel::DailyInstalls(self.config.clone()).check()?;
            let client = run_client(Duration::from_secs(120))?;
            let target = InstallTarget {
                base_url: ctx.endpoints.base_url.clone(),
                pypi_repo: ctx.endpoints.pypi_repo.clone(),
                cran_repo: ctx.endpoints.cran_repo.clone(),
            };
            let (corpus, seeding) = corpus::load_corpus(
                &self.config,
                ctx.plan.generators.corpus,
                ctx.infra,
                &client,
                ctx.endpoints,
                &target,
            )
            .await?;
            self.ready = Some(Ready {
                client,
                target,
                corpus,
                seeding,
            });
            Ok(())
        })
    }

    fn start(&mut self, ctx: &RunContext<'_>, clock: &Clock) -> Result<(), HarnessError> {
        let ready = self
            .ready
            .as_ref()
            .ok_or(out_of_order("installs", "start"))?;
        let plan = ctx.plan;
        let config = &self.config;
        let full_schedule = config.arrival.schedule(&ready.corpus);
        let schedule = Arc::new(match plan.generators.slice {
            Some(slice) => full_schedule.slice(slice.index, slice.count),
            None => full_schedule,
        });
        let run_time = self.run_time();
        let children = Self::children(ctx);
        let mut context = InstallContext::new(
            ready.target.clone(),
            ready.corpus.clone(),
            schedule.clone(),
            clock.recorder.clone(),
        );
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
        let generators = match (children, &plan.generators.records_dir) {
            (false, _) => None,
            (true, Some(dir)) => {
                eprintln!(
                    "harness: {} load generators, one slice of the schedule each, records in {}",
                    plan.generators.children,
                    dir.display()
                );
                Some(generators::spawn(
                    plan,
                    config,
                    ctx.endpoints,
                    clock.started_at,
                    dir,
                )?)
            }
            (true, None) => {
                return Err(HarnessError::Internal(
                    "--generators needs a directory for the generators' records".into(),
                ));
            }
        };
        if let Some(generators) = &generators {
            self.done.children = generators.monitored();
        }
        let (stop_progress, stop_rx) = tokio::sync::oneshot::channel();
        let progress = progress::spawn(
            clock.recorder.clone(),
            schedule.len() as u64,
            run_time,
            plan.quiet || children,
            stop_rx,
        );
        let load = match generators {
            None => Load::InProcess(tokio::spawn(async move {
                daily_installs::execute(Arc::new(context), users, run_time).await
            })),
            Some(generators) => {
                // The schedule, its drain, the children's start-up and their record writing.
                let timeout = run_time
                    + Duration::from_millis(config.drain_ms)
                    + (clock.started_at - chrono::Utc::now())
                        .to_std()
                        .unwrap_or_default()
                    + Duration::from_secs(120);
                Load::Children(tokio::spawn(generators.wait(timeout)))
            }
        };
        self.done.schedule = Some(schedule);
        self.done.users = users;
        self.running = Some(Running {
            load,
            began: Instant::now(),
            stop_progress,
            progress,
        });
        Ok(())
    }

    fn monitored(&self) -> Vec<Monitored> {
        self.done.children.clone()
    }

    fn stop<'a>(&'a mut self, _clock: &'a Clock) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            let running = self
                .running
                .take()
                .ok_or(out_of_order("installs", "stop"))?;
            let slices = match running.load {
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
            let ran_for = running.began.elapsed();
            let _ = running.stop_progress.send(());
            let _ = running.progress.await;
            // goose stops early only when interrupted (its own Ctrl-C handler).
            if slices.is_none() && ran_for + Duration::from_millis(500) < self.run_time() {
                return Err(HarnessError::Interrupted);
            }
            self.done.merged = match &slices {
                Some(records) => generators::merge(records)?,
                None => None,
            };
            self.done.children.clear();
            Ok(())
        })
    }

    fn finish<'a>(
        &'a mut self,
        ctx: &'a RunContext<'a>,
        clock: &'a Clock,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            let schedule = self
                .done
                .schedule
                .clone()
                .ok_or(out_of_order("installs", "finish"))?;
            // Arrivals due within the run that no user ever took: k6's dropped iterations.
            // They count as scheduled and late, so the achieved rate and `rate_ratio` show
            // the shortfall.
            let run_time = self.run_time();
            let in_process = !Self::children(ctx);
            while in_process && let Some(a) = schedule.next_before(run_time) {
                let due = clock.start + a.offset;
                clock.recorder.scheduled(daily_installs::KIND_INSTALL, due);
                clock.recorder.late(daily_installs::KIND_INSTALL, due);
                self.done.dropped += 1;
            }
            let client = &self
                .ready
                .as_ref()
                .ok_or(out_of_order("installs", "finish"))?
                .client;
            self.done.blob_caches = node_metrics::read_all(client, &ctx.endpoints.nodes).await;
            for cache in &self.done.blob_caches {
                eprintln!("harness: {}", cache.line());
            }
            Ok(())
        })
    }

    fn record(&mut self, _clock: &Clock, history: &mut History) -> Result<(), HarnessError> {
        let schedule = (self.done.schedule.as_ref()).ok_or(out_of_order("installs", "record"))?;
        let run_time_s = self.run_time().as_secs_f64();
        let users = self.done.users;
        match &self.done.merged {
            Some(merged) => {
                // Only the reads run with children: the coordinator's recorder holds nothing
                // of theirs.
                history.metrics.merge(&merged.metrics)?;
                // Each slice's own notes (users, late starts, dropped installs), named after it.
                history.events.extend(merged.events.iter().cloned());
            }
            None => {
                history.events.push(Event {
                    at_s: 0.0,
                    end_s: None,
                    kind: EventKind::Note,
                    message: format!("{users} goose users; {} installs scheduled", schedule.len()),
                });
                let late = (history.metrics.kinds.get(daily_installs::KIND_INSTALL))
                    .map(|k| k.late())
                    .unwrap_or(0);
                if late > 0 {
                    history.events.push(Event {
                        at_s: run_time_s,
                        end_s: None,
                        kind: EventKind::UserPool,
                        message: format!(
                            "{late} installs started more than {} ms late: the user pool ({users}) or the client ran short",
                            self.config.late_tolerance_ms
                        ),
                    });
                }
            }
        }
        if self.done.dropped > 0 {
            history.events.push(Event {
                at_s: run_time_s,
                end_s: None,
                kind: EventKind::Dropped,
                message: format!(
                    "{} scheduled installs were never started: every user was busy",
                    self.done.dropped
                ),
            });
        }
        Ok(())
    }

    fn check<'a>(
        &'a self,
        ctx: &'a RunContext<'a>,
        history: &'a History,
        client: Result<&'a reqwest::Client, &'a str>,
    ) -> BoxFuture<'a, Vec<CheckerResult>> {
        Box::pin(async move {
            let kinds = asked(ctx.plan, CHECKERS);
            if kinds.is_empty() {
                return Vec::new();
            }
            if let Err(why) = client {
                return checkers::not_checked(
                    &kinds,
                    &format!("the HTTP client for the final reads could not be built: {why}"),
                );
            }
            vec![checkers::availability::check(
                &history.metrics,
                &history.events,
                &history.ledger,
                ctx.plan.availability,
            )]
        })
    }

    fn section(&self, history: &History) -> WorkloadSection {
        let figures = generators::read_figures(&history.metrics, self.run_time().as_secs_f64());
        WorkloadSection {
            name: self.name().into(),
            description: self.config.description().replace('\n', " "),
            kinds: daily_installs::KINDS
                .iter()
                .map(|k| k.to_string())
                .collect(),
            counters: Vec::new(),
            checkers: CHECKERS.iter().map(|k| k.name().to_string()).collect(),
            figures,
        }
    }

    fn config(&self) -> serde_json::Value {
        let config = &self.config;
        let model = LoadModel::DailyInstalls(config.clone());
        let Some(ready) = &self.ready else {
            return serde_json::json!({ "model": model.name() });
        };
        let uploaded = &ready.seeding.uploaded;
        serde_json::json!({
            "model": model.name(),
            "description": model.description(),
            "users": self.done.users,
            "corpus": config.corpus,
            "corpus_stats": ready.corpus.stats(),
            "corpus_seeding": ready.seeding.describe(),
            "blob_cache": self.done.blob_caches,
            "arrival": config.arrival,
            "late_tolerance_ms": config.late_tolerance_ms,
            "uploaded": { "python_files": uploaded.python_files, "r_files": uploaded.r_files, "bytes": uploaded.bytes },
            "served_packages": { "python": ready.corpus.python().len(), "r": ready.corpus.r().len() },
        })
    }
}
