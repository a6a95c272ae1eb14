//! The JSON summary (`summary.json`): the few numbers a CI gate or a person reads first.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::metrics::{KindMetrics, quantile_ms};
use crate::record::{CheckerResult, Event, EventKind, InfraInfo, RunRecord, Verdict};
use crate::thresholds::ThresholdResult;

/// The request kind whose counts make up [`Summary::installs`] and [`Summary::rate`].
pub const INSTALL_KIND: &str = "install";
/// The key of [`Summary::latency_ms`] that covers every kind together.
pub const OVERALL: &str = "overall";

/// The run summary, serialized as `summary.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// `"pass"`, `"fail"` or `"unknown"`.
    pub verdict: Verdict,
    /// Wall-clock start of the run.
    pub started_at: DateTime<Utc>,
    /// Length of the run in seconds.
    pub duration_s: f64,
    /// Counts of the `install` kind.
    pub installs: InstallCounts,
    /// Target and achieved install rate.
    pub rate: RateSummary,
    /// Latency percentiles in ms: `overall` (every kind together) and one entry per kind.
    pub latency_ms: BTreeMap<String, LatencySummary>,
    /// Counts and rates per request kind.
    pub requests: BTreeMap<String, KindSummary>,
    /// Error counts by error kind, over all request kinds.
    pub errors: BTreeMap<String, u64>,
    /// Requests served per node.
    pub node_requests: BTreeMap<String, u64>,
    /// Infrastructure: provider, why it was chosen, nodes with versions, component versions.
    pub infra: InfraInfo,
    /// Every threshold with its observed value.
    pub thresholds: Vec<ThresholdResult>,
    /// Every checker's conclusion with its evidence.
    pub checkers: Vec<CheckerResult>,
    /// Fault windows and the moments of each drill (injected, detected, promoted, first write
    /// ok, node online, healed), in time order.
    pub timeline: Vec<Event>,
}

/// Install counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InstallCounts {
    /// Installs scheduled (the target).
    pub attempted: u64,
    /// Installs that succeeded.
    pub succeeded: u64,
    /// Installs that failed.
    pub failed: u64,
    /// Installs that started later than their tolerance.
    pub late: u64,
}

/// Install arrival rate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RateSummary {
    /// Scheduled installs per second of run.
    pub target_per_s: f64,
    /// Successful installs per second of run.
    pub achieved_per_s: f64,
}

/// Latency percentiles in milliseconds; `null` when nothing finished.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// 99.9th percentile.
    pub p999: Option<f64>,
    /// Maximum.
    pub max: Option<f64>,
}

impl LatencySummary {
    /// Percentiles of a microsecond histogram.
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        LatencySummary {
            p50: quantile_ms(h, 0.5),
            p90: quantile_ms(h, 0.9),
            p99: quantile_ms(h, 0.99),
            p999: quantile_ms(h, 0.999),
            max: quantile_ms(h, 1.0),
        }
    }
}

/// Counts and rates of one request kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KindSummary {
    /// Operations scheduled.
    pub scheduled: u64,
    /// Operations finished (ok + errors).
    pub count: u64,
    /// Operations that succeeded.
    pub ok: u64,
    /// Operations that failed.
    pub errors: u64,
    /// Operations that started late.
    pub late: u64,
    /// Finished operations per second of run.
    pub rps: f64,
    /// Failed / finished, 0 when nothing finished.
    pub error_rate: f64,
}

impl KindSummary {
    /// Summarizes one kind over a run of `duration_s` seconds.
    pub fn from_kind(kind: &KindMetrics, duration_s: f64) -> Self {
        let (ok, errors) = (kind.ok(), kind.err());
        let count = ok + errors;
        KindSummary {
            scheduled: kind.scheduled(),
            count,
            ok,
            errors,
            late: kind.late(),
            rps: per_second(count, duration_s),
            error_rate: if count == 0 {
                0.0
            } else {
                errors as f64 / count as f64
            },
        }
    }
}

fn per_second(n: u64, duration_s: f64) -> f64 {
    if duration_s > 0.0 {
        n as f64 / duration_s
    } else {
        0.0
    }
}

impl Summary {
    /// Builds the summary of a run record. A kind literally named `overall` is shadowed in
    /// `latency_ms` by the all-kinds entry.
    pub fn from_record(record: &RunRecord) -> Summary {
        let metrics = &record.metrics;
        let duration_s = record.meta.duration_s;
        let install = metrics.kinds.get(INSTALL_KIND);
        let installs = install
            .map(|k| InstallCounts {
                attempted: k.scheduled(),
                succeeded: k.ok(),
                failed: k.err(),
                late: k.late(),
            })
            .unwrap_or_default();
        let rate = RateSummary {
            target_per_s: per_second(installs.attempted, duration_s),
            achieved_per_s: per_second(installs.succeeded, duration_s),
        };
        let mut latency_ms: BTreeMap<String, LatencySummary> = metrics
            .kinds
            .iter()
            .map(|(name, k)| (name.clone(), LatencySummary::from_histogram(&k.latency_us)))
            .collect();
        latency_ms.insert(
            OVERALL.to_owned(),
            LatencySummary::from_histogram(&metrics.overall_latency()),
        );
        let requests = metrics
            .kinds
            .iter()
            .map(|(name, k)| (name.clone(), KindSummary::from_kind(k, duration_s)))
            .collect();
        Summary {
            scenario: record.meta.scenario.clone(),
            verdict: record.verdict,
            started_at: record.meta.started_at,
            duration_s,
            installs,
            rate,
            latency_ms,
            requests,
            errors: metrics.errors(),
            node_requests: record.node_requests.clone(),
            infra: record.meta.infra.clone(),
            thresholds: record.thresholds.clone(),
            checkers: record.checkers.clone(),
            timeline: record
                .events
                .iter()
                .filter(|e| !matches!(e.kind, EventKind::Note))
                .cloned()
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_without_installs_summarizes_to_zeros_and_nulls() {
        let mut record = crate::sample::sample_record();
        record.metrics = crate::metrics::Metrics::new(std::time::Duration::from_secs(1));
        let summary = Summary::from_record(&record);
        assert_eq!(summary.installs, InstallCounts::default());
        assert_eq!(summary.rate.achieved_per_s, 0.0);
        assert_eq!(summary.latency_ms[OVERALL], LatencySummary::default());
        let json = serde_json::to_value(&summary).unwrap();
        assert!(json["latency_ms"]["overall"]["p99"].is_null());
        assert_eq!(json["verdict"], "fail");
    }
}
