//! The JSON summary (`summary.json`): the few numbers a CI gate or a person reads first.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::generator::{GeneratorCost, ProcessCost, generator_cost, process_costs};
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
    /// Why the figures may describe the load generator rather than the cluster (it ran out of
    /// users or CPU); empty when nothing suggests so.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The load generators' CPU time per request and resident memory; `null` when they were
    /// not sampled.
    #[serde(default)]
    pub generator: Option<GeneratorCost>,
    /// Every sampled process's CPU seconds and resident memory (the cluster's parts and the
    /// generators): where the machine's CPU went, beside the rate it held.
    #[serde(default)]
    pub processes: BTreeMap<String, ProcessCost>,
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
    /// Installs scheduled within the run that never started (every user was busy): neither
    /// succeeded nor failed, so the cluster never saw them.
    #[serde(default)]
    pub never_started: u64,
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

/// A load generator busier than this share of the machine's cores is saturated.
const SATURATED_CPU_SHARE: f64 = 0.85;

/// What says the generator, not the cluster, set the pace: installs never started, many late
/// starts, or its CPU near the machine's capacity (`meta.config.machine_cores`).
fn generator_warnings(record: &RunRecord, installs: &InstallCounts) -> Vec<String> {
    let mut warnings = Vec::new();
    if installs.never_started > 0 {
        warnings.push(format!(
            "{} of {} scheduled installs never started: the load generator ran out of users, so \
             the cluster was offered less than the target rate",
            installs.never_started, installs.attempted
        ));
    }
    if installs.attempted > 0 && installs.late as f64 > 0.01 * installs.attempted as f64 {
        warnings.push(format!(
            "{} of {} installs started late: the generator could not keep the schedule",
            installs.late, installs.attempted
        ));
    }
    let cores = record.meta.config["machine_cores"].as_f64().unwrap_or(0.0);
    // One generator, or each of several (`load-generator-0`, …), judged on its own samples.
    let mut generators: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    for s in &record.samples {
        if s.process.starts_with(crate::generator::GENERATOR_PROCESS) {
            generators
                .entry(s.process.as_str())
                .or_default()
                .push(s.cpu_pct);
        }
    }
    for (name, cpu) in generators {
        if cores <= 0.0 || cpu.is_empty() {
            continue;
        }
        let mean = cpu.iter().sum::<f64>() / cpu.len() as f64;
        if mean >= SATURATED_CPU_SHARE * cores * 100.0 {
            let who = if name == crate::generator::GENERATOR_PROCESS {
                "the load generator".to_string()
            } else {
                format!("the load generator {name}")
            };
            warnings.push(format!(
                "{who} used {mean:.0}% CPU on average of {:.0}% available: it \
                 measured itself before the cluster",
                cores * 100.0
            ));
        }
    }
    warnings
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
                never_started: k.scheduled().saturating_sub(k.ok() + k.err()),
            })
            .unwrap_or_default();
        let warnings = generator_warnings(record, &installs);
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
            warnings,
            generator: generator_cost(record),
            processes: process_costs(record),
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

    #[test]
    fn a_saturated_generator_is_called_out_and_a_healthy_one_is_not() {
        let start = std::time::Instant::now();
        let recorder = crate::Recorder::new(start, std::time::Duration::from_secs(1));
        for s in 0..100u64 {
            let due = start + std::time::Duration::from_millis(s * 100);
            recorder.scheduled(INSTALL_KIND, due);
            if s < 90 {
                let done = due + std::time::Duration::from_millis(5);
                recorder.record(INSTALL_KIND, due, done, crate::Outcome::Ok);
            } else {
                // Never taken by a user: scheduled and late, no outcome.
                recorder.late(INSTALL_KIND, due);
            }
        }
        let mut record = crate::sample::sample_record();
        record.metrics = recorder.finish();
        record.meta.config = serde_json::json!({ "machine_cores": 2 });
        record.samples = vec![crate::record::ResourceSample {
            at_s: 1.0,
            process: "load-generator".into(),
            cpu_pct: 190.0,
            rss_bytes: 0,
        }];
        let summary = Summary::from_record(&record);
        assert_eq!(summary.installs.never_started, 10);
        assert_eq!(summary.warnings.len(), 3, "{:?}", summary.warnings);
        assert!(summary.warnings[0].contains("10 of 100 scheduled installs never started"));
        assert!(summary.warnings[2].contains("190% CPU"));

        let mut healthy = record.clone();
        healthy.metrics = {
            let recorder = crate::Recorder::new(start, std::time::Duration::from_secs(1));
            recorder.scheduled(INSTALL_KIND, start);
            recorder.record(INSTALL_KIND, start, start, crate::Outcome::Ok);
            recorder.finish()
        };
        healthy.samples[0].cpu_pct = 40.0;
        assert!(Summary::from_record(&healthy).warnings.is_empty());
    }
}
