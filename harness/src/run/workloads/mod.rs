//! The workloads a run composes: the daily-installs reads ([`installs`]), the upload writer
//! ([`uploads`]) and the git builders ([`git_builders`]). Each goes through the same phases of
//! [`crate::run::run`]'s one loop: prepared before the clock starts (not measured), started on
//! the one clock, stopped together once the nemesis is done, then its final reads, its part
//! of the shared [`History`], its checkers and its section of the record. A run is any list
//! of them, judged together: a plain scenario is one, a drill two, `scenario reference` three.
//!
//! **Architecture Invariant:** a workload sees the cluster only through [`Infra`] and
//! [`Endpoints`], like the rest of `run/`; what one workload's checker reads of another's (the
//! reads' availability through the writer's ledger) passes through the [`History`], never
//! from workload to workload.

pub mod git_builders;
pub mod installs;
pub mod uploads;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reports::Recorder;
use reports::metrics::Metrics;
use reports::record::{CheckerResult, Event, WorkloadSection};
use scenarios::writes::LedgerEntry;

use crate::error::HarnessError;
use crate::infra::{Endpoints, Infra, Monitored};
use crate::nemesis::NemesisLog;
use crate::plan::RunPlan;
use crate::run::observer::Observed;

/// A boxed future borrowing its workload: what keeps [`Workload`] usable as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// What every workload of a run sees.
pub struct RunContext<'a> {
    pub plan: &'a RunPlan,
    pub infra: &'a dyn Infra,
    pub endpoints: &'a Endpoints,
}

/// The run's one clock: every workload's schedule and bucket 0 start at `start`, and every
/// workload records into `recorder`.
pub struct Clock {
    /// `start` on the wall clock (the record's `started_at`).
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub start: Instant,
    /// The longest workload's run time: the record's duration.
    pub run_time: Duration,
    pub recorder: Arc<Recorder>,
}

/// What the run recorded, gathered once every workload has stopped: what the thresholds and
/// every checker read.
pub struct History {
    /// Every workload's request kinds and counters.
    pub metrics: Metrics,
    /// The nemesis's faults and moments, and every workload's notes, in time order once all
    /// are in.
    pub events: Vec<Event>,
    /// The upload writer's ledger; empty without one.
    pub ledger: Vec<LedgerEntry>,
    pub nemesis: NemesisLog,
    pub observed: Observed,
}

/// One workload, through the phases of a run. The loop calls every phase of every workload,
/// in list order, before the next phase: they start together, stop together and are judged
/// together.
pub trait Workload {
    /// Its name in the run record: `installs`, `uploads` or `git-builders`.
    fn name(&self) -> &'static str;

    /// How long its load runs from the clock's start.
    fn run_time(&self) -> Duration;

    /// Before the clock: what its load needs on the cluster (the corpus; the repositories,
    /// the builders and their first builds). Not measured.
    fn prepare<'a>(
        &'a mut self,
        ctx: &'a RunContext<'a>,
    ) -> BoxFuture<'a, Result<(), HarnessError>>;

    /// Starts its load on `clock` and returns at once.
    fn start(&mut self, ctx: &RunContext<'_>, clock: &Clock) -> Result<(), HarnessError>;

    /// Processes of its own to sample beside the cluster's (child load generators), known once
    /// started.
    fn monitored(&self) -> Vec<Monitored> {
        Vec::new()
    }

    /// Waits until its load has ended.
    fn stop<'a>(&'a mut self, clock: &'a Clock) -> BoxFuture<'a, Result<(), HarnessError>>;

    /// Its final reads once the load has ended and the samplers stopped: what it still owes
    /// the recorder (never-started installs, build times) and its checkers' inputs.
    fn finish<'a>(
        &'a mut self,
        ctx: &'a RunContext<'a>,
        clock: &'a Clock,
    ) -> BoxFuture<'a, Result<(), HarnessError>>;

    /// Adds what it recorded to the history: metrics recorded elsewhere, notes, counters, the
    /// ledger.
    fn record(&mut self, clock: &Clock, history: &mut History) -> Result<(), HarnessError>;

    /// Its checkers over the whole history. `client` is the final reads' HTTP client, or why
    /// it could not be built (then every checker that reads says unknown).
    fn check<'a>(
        &'a self,
        ctx: &'a RunContext<'a>,
        history: &'a History,
        client: Result<&'a reqwest::Client, &'a str>,
    ) -> BoxFuture<'a, Vec<CheckerResult>>;

    /// Its section of the record: what it ran, its kinds, counters, checkers and headline
    /// figures.
    fn section(&self, history: &History) -> WorkloadSection;

    /// Its part of the run configuration shown on the page (an object).
    fn config(&self) -> serde_json::Value;

    /// Files of its own for the run directory (name, content).
    fn files(&self) -> Result<Vec<(String, String)>, HarnessError> {
        Ok(Vec::new())
    }
}

/// A phase called before the phase it needs: a bug in the run loop, not in the cluster.
fn out_of_order(workload: &str, phase: &str) -> HarnessError {
    HarnessError::Internal(format!(
        "the {workload} workload's {phase} came out of order"
    ))
}

/// The checkers `plan` asks for of which `mine` are this workload's, in the plan's order.
fn asked(
    plan: &RunPlan,
    mine: &[crate::checkers::CheckerKind],
) -> Vec<crate::checkers::CheckerKind> {
    (plan.checkers.iter().copied())
        .filter(|k| mine.contains(k))
        .collect()
}

/// Latency quantile `q` of `kind` in ms, if it recorded any.
fn latency_ms(metrics: &Metrics, kind: &str, q: f64) -> Option<f64> {
    metrics.kinds.get(kind).and_then(|k| k.latency_ms(q))
}

/// `values` sorted, and the value at quantile `q` of them (nearest rank).
fn quantile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1])
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_quantile_is_the_nearest_rank() {
        let mut values = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(super::quantile(&mut values, 0.5), Some(3.0));
        assert_eq!(super::quantile(&mut values, 0.99), Some(5.0));
        assert_eq!(super::quantile(&mut values, 0.0), Some(1.0));
        assert_eq!(super::quantile(&mut [], 0.5), None);
    }
}
