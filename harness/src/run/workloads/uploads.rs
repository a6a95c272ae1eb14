//! The upload writer as a workload: new, unique wheels and R tarballs through the balancer on
//! an open schedule, each recorded in the ledger as ok, failed or unknown; after the run the
//! first acknowledged upload after each fault on the time line, and the `lost-writes` checker
//! (the database as the ground truth, every upload read back from every node). Its section:
//! the ledger's counts and the uploads' latency from their scheduled times.

use std::collections::BTreeMap;
use std::time::Duration;

use reports::record::{CheckerResult, Event, EventKind, WorkloadSection};
use scenarios::writes::{self, LedgerEntry, WriteOutcome, WriterConfig};

use super::{BoxFuture, Clock, History, RunContext, Workload, asked, out_of_order, quantile};
use crate::checkers::{self, CheckerKind};
use crate::error::HarnessError;
use crate::run::{ground_truth, run_client};

/// The checkers about the uploads.
const CHECKERS: &[CheckerKind] = &[CheckerKind::LostWrites];

/// The upload writer.
pub struct Uploads {
    config: WriterConfig,
    client: Option<reqwest::Client>,
    writer: Option<tokio::task::JoinHandle<Result<Vec<LedgerEntry>, scenarios::ScenarioError>>>,
    /// Every upload invoked, once stopped.
    ledger: Vec<LedgerEntry>,
}

impl Uploads {
    pub fn new(config: WriterConfig) -> Self {
        Uploads {
            config,
            client: None,
            writer: None,
            ledger: Vec::new(),
        }
    }
}

impl Workload for Uploads {
    fn name(&self) -> &'static str {
        "uploads"
    }

    fn run_time(&self) -> Duration {
        self.config.duration
    }

    fn prepare<'a>(
        &'a mut self,
        _ctx: &'a RunContext<'a>,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            self.client = Some(run_client(Duration::from_secs(120))?);
            Ok(())
        })
    }

    fn start(&mut self, ctx: &RunContext<'_>, clock: &Clock) -> Result<(), HarnessError> {
        let client = self
            .client
            .clone()
            .ok_or(out_of_order("uploads", "start"))?;
        let target = ctx.endpoints.write_target();
        let config = self.config.clone();
        let start = clock.start;
        eprintln!(
            "harness: upload writer: {} uploads/s for {:?}",
            config.writes_per_s, config.duration
        );
        self.writer = Some(tokio::spawn(async move {
            writes::run_writer(&client, &target, &config, start).await
        }));
        Ok(())
    }

    fn stop<'a>(&'a mut self, _clock: &'a Clock) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            let writer = self.writer.take().ok_or(out_of_order("uploads", "stop"))?;
            self.ledger = writer
                .await
                .map_err(|e| HarnessError::Internal(format!("writer task: {e}")))??;
            Ok(())
        })
    }

    fn finish<'a>(
        &'a mut self,
        _ctx: &'a RunContext<'a>,
        _clock: &'a Clock,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        // The reads back from the database and the nodes are the checker's (they settle).
        Box::pin(async { Ok(()) })
    }

    fn record(&mut self, _clock: &Clock, history: &mut History) -> Result<(), HarnessError> {
        history
            .events
            .extend(first_writes_after_faults(&history.events, &self.ledger));
        history.ledger = self.ledger.clone();
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
            let Ok(client) = client else {
                let why = client.err().unwrap_or_default();
                return checkers::not_checked(
                    &kinds,
                    &format!("the HTTP client for the final reads could not be built: {why}"),
                );
            };
            let lost_writes = ground_truth::check_lost_writes(
                ctx.infra,
                client,
                &self.ledger,
                &self.config.tag,
                ctx.plan.settle,
                &history.events,
            )
            .await;
            vec![lost_writes]
        })
    }

    fn section(&self, _history: &History) -> WorkloadSection {
        let count = |outcome: WriteOutcome| {
            self.ledger.iter().filter(|e| e.outcome == outcome).count() as f64
        };
        let mut figures = BTreeMap::from([
            ("uploads_invoked".to_string(), self.ledger.len() as f64),
            ("uploads_acknowledged".to_string(), count(WriteOutcome::Ok)),
            ("uploads_failed".to_string(), count(WriteOutcome::Failed)),
            ("uploads_unknown".to_string(), count(WriteOutcome::Unknown)),
        ]);
        // From the time each acknowledged upload was due (wrk2's rule, as for the installs).
        let mut latencies_ms: Vec<f64> = (self.ledger.iter())
            .filter(|e| e.outcome == WriteOutcome::Ok)
            .map(|e| (e.completed_s - e.scheduled_s).max(0.0) * 1000.0)
            .collect();
        for (name, q) in [("upload_p50_ms", 0.5), ("upload_p99_ms", 0.99)] {
            if let Some(ms) = quantile(&mut latencies_ms, q) {
                figures.insert(name.to_string(), ms);
            }
        }
        WorkloadSection {
            name: self.name().into(),
            description: format!(
                "{} uploads/s of new wheels and R tarballs through the balancer for {:.0} s",
                self.config.writes_per_s,
                self.config.duration.as_secs_f64()
            ),
            kinds: Vec::new(),
            counters: Vec::new(),
            checkers: CHECKERS.iter().map(|k| k.name().to_string()).collect(),
            figures,
        }
    }

    fn config(&self) -> serde_json::Value {
        // The writer's settings are in the plan (`plan.writes`).
        serde_json::json!({})
    }
}

/// A `first-write-ok` moment after each fault's start: the first upload invoked after it that
/// was acknowledged.
fn first_writes_after_faults(events: &[Event], ledger: &[LedgerEntry]) -> Vec<Event> {
    if ledger.is_empty() {
        return Vec::new();
    }
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
        .collect()
}
