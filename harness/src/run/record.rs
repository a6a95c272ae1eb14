//! The run record's one home in the harness: what a run measured (or, for the checklist
//! alone, nothing) and what judged it, assembled into a [`RunRecord`] and judged against the
//! thresholds. `run::run` and `harness check` both make their records here.

use std::time::Duration;

use reports::record::{CheckerResult, Event, ResourceSample, RunMeta, WorkloadSection};
use reports::{Metrics, RunRecord, ThresholdSet, Verdict};

use super::observer::Observed;

/// What a run measured: the recorder's metrics, the time line, the resource samples, what
/// the observer saw of the nodes, and each workload's section.
#[derive(Debug)]
pub struct Measured {
    pub metrics: Metrics,
    pub events: Vec<Event>,
    pub samples: Vec<ResourceSample>,
    pub observed: Observed,
    pub workloads: Vec<WorkloadSection>,
}

impl Measured {
    /// A run with no load (the checklist alone): empty one-second metrics, nothing observed.
    pub fn nothing() -> Self {
        Self {
            metrics: Metrics::new(Duration::from_secs(1)),
            events: Vec::new(),
            samples: Vec::new(),
            observed: Observed::default(),
            workloads: Vec::new(),
        }
    }
}

/// The run record of `meta` and `measured`, with the checkers' results, judged against
/// `thresholds` (the verdict: every threshold and checker, fail outranking unknown outranking
/// pass).
pub fn judged(
    meta: RunMeta,
    measured: Measured,
    checkers: Vec<CheckerResult>,
    thresholds: &ThresholdSet,
) -> RunRecord {
    let mut record = RunRecord {
        meta,
        metrics: measured.metrics,
        events: measured.events,
        samples: measured.samples,
        node_requests: measured.observed.served,
        node_request_rates: measured.observed.rates,
        gauges: measured.observed.gauges,
        thresholds: Vec::new(),
        checkers,
        workloads: measured.workloads,
        verdict: Verdict::Unknown,
    };
    record.judge(thresholds);
    record
}
