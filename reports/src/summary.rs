//! The JSON summary (`summary.json`): the few numbers a CI gate or a person reads first.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::generator::{
    DatabaseCpu, GeneratorCost, ProcessCost, database_cpu, generator_cost, process_costs,
};
use crate::kinds::INSTALL_KIND;
use crate::metrics::{KindMetrics, quantile_ms};
use crate::record::{CheckerResult, Event, EventKind, InfraInfo, RunRecord, Verdict};
use crate::thresholds::ThresholdResult;

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
    /// The cluster's CPU (nodes, balancer, database servers, S3) per successful install and
    /// per request; `null` without cluster samples or installs.
    #[serde(default)]
    pub cluster_cpu: Option<crate::generator::ClusterCpu>,
    /// Fault windows and the moments of each drill (injected, detected, promoted, first write
    /// ok, node online, healed), in time order.
    pub timeline: Vec<Event>,
    /// Each workload of the run with its own verdict, thresholds, checkers and headline
    /// figures (install p99, commit → published p95, uploads acknowledged); empty for records
    /// from before workloads were recorded.
    #[serde(default)]
    pub workloads: Vec<WorkloadSummary>,
    /// The database server's CPU beside the reference deployment's 10–20 %; `null` when it was
    /// not sampled.
    #[serde(default)]
    pub database_cpu: Option<DatabaseCpu>,
}

/// One workload's part of the summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkloadSummary {
    /// `installs`, `uploads` or `git-builders`.
    pub name: String,
    /// What it ran.
    pub description: String,
    /// Its thresholds and checkers combined (fail > unknown > pass).
    pub verdict: Verdict,
    /// The thresholds naming its kinds or counters.
    pub thresholds: Vec<ThresholdResult>,
    /// Its checkers' conclusions (the evidence is in `checkers`).
    pub checkers: Vec<WorkloadChecker>,
    /// Its headline figures, named with their units.
    pub figures: BTreeMap<String, f64>,
}

/// A checker's conclusion as a workload lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkloadChecker {
    pub name: String,
    pub validity: crate::record::Validity,
    pub summary: String,
}

impl WorkloadSummary {
    /// Every workload of `record`, judged by its own thresholds and checkers.
    pub fn of(record: &RunRecord) -> Vec<WorkloadSummary> {
        record
            .workloads
            .iter()
            .map(|section| WorkloadSummary {
                name: section.name.clone(),
                description: section.description.clone(),
                verdict: record.workload_verdict(section),
                thresholds: record
                    .workload_thresholds(section)
                    .into_iter()
                    .cloned()
                    .collect(),
                checkers: record
                    .workload_checkers(section)
                    .into_iter()
                    .map(|c| WorkloadChecker {
                        name: c.name.clone(),
                        validity: c.validity,
                        summary: c.summary.clone(),
                    })
                    .collect(),
                figures: section.figures.clone(),
            })
            .collect()
    }
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

/// Late starts are the cluster's when the users were kept busy by its answers: at the run's
/// rate and mean install latency, Little's law puts at least this share of the user pool in
/// flight on average, so bursts found every user waiting on a response.
const POOL_BUSY_SHARE: f64 = 0.5;

/// What says the generator, not the cluster, set the pace: installs never started, many late
/// starts, or its CPU near the machine's capacity (`meta.config.machine_cores`). Late starts
/// are put on the cluster instead when the generator's CPU was sampled and not saturated and
/// its users were busy waiting on the cluster's answers (see [`POOL_BUSY_SHARE`]).
fn generator_warnings(record: &RunRecord, installs: &InstallCounts) -> Vec<String> {
    let mut warnings = Vec::new();
    if installs.never_started > 0 {
        warnings.push(format!(
            "{} of {} scheduled installs never started: the load generator ran out of users, so \
             the cluster was offered less than the target rate",
            installs.never_started, installs.attempted
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
    let mut cpu_warnings = Vec::new();
    for (name, cpu) in &generators {
        if cores <= 0.0 || cpu.is_empty() {
            continue;
        }
        let mean = cpu.iter().sum::<f64>() / cpu.len() as f64;
        if mean >= SATURATED_CPU_SHARE * cores * 100.0 {
            let who = if *name == crate::generator::GENERATOR_PROCESS {
                "the load generator".to_string()
            } else {
                format!("the load generator {name}")
            };
            cpu_warnings.push(format!(
                "{who} used {mean:.0}% CPU on average of {:.0}% available: it \
                 measured itself before the cluster",
                cores * 100.0
            ));
        }
    }
    if installs.attempted > 0 && installs.late as f64 > 0.01 * installs.attempted as f64 {
        let cpu_known_fine = cores > 0.0 && !generators.is_empty() && cpu_warnings.is_empty();
        let text = match pool_kept_busy(record) {
            Some(busy) if cpu_known_fine => format!(
                "{} of {} installs started late because the cluster answered slowly, not \
                 because of the generator: its CPU was not saturated, and at a mean install \
                 time of {:.0} ms its {} users averaged {:.0} installs in flight ({:.0}% of the \
                 pool), so bursts found every user waiting on the cluster",
                installs.late,
                installs.attempted,
                busy.mean_latency_ms,
                busy.users,
                busy.in_flight,
                busy.in_flight / busy.users as f64 * 100.0
            ),
            _ => format!(
                "{} of {} installs started late: the generator could not keep the schedule",
                installs.late, installs.attempted
            ),
        };
        warnings.push(text);
    }
    warnings.extend(cpu_warnings);
    warnings
}

/// How busy the user pool was kept by the cluster's answers.
struct PoolBusy {
    users: u64,
    mean_latency_ms: f64,
    in_flight: f64,
}

/// The pool's average occupancy by Little's law (rate × mean install latency) when it is at
/// least [`POOL_BUSY_SHARE`] of the users (`meta.config.users`); `None` otherwise or when
/// the record does not say how many users ran.
fn pool_kept_busy(record: &RunRecord) -> Option<PoolBusy> {
    let users = record.meta.config["users"].as_u64().filter(|u| *u > 0)?;
    let install = record.metrics.kinds.get(INSTALL_KIND)?;
    if install.latency_us.is_empty() || record.meta.duration_s <= 0.0 {
        return None;
    }
    let mean_latency_ms = install.latency_us.mean() / 1000.0;
    let rate_per_s = install.scheduled() as f64 / record.meta.duration_s;
    let in_flight = rate_per_s * mean_latency_ms / 1000.0;
    (in_flight >= POOL_BUSY_SHARE * users as f64).then_some(PoolBusy {
        users,
        mean_latency_ms,
        in_flight,
    })
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
        let cluster_cpu = crate::generator::cluster_cpu(record, installs.succeeded);
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
            cluster_cpu,
            timeline: record
                .events
                .iter()
                .filter(|e| !matches!(e.kind, EventKind::Note))
                .cloned()
                .collect(),
            workloads: WorkloadSummary::of(record),
            database_cpu: database_cpu(record),
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

    /// 100 installs over 10 s, 20 of them late, each taking `took_ms`; `users` goose users,
    /// the generator at `cpu_pct`.
    fn late_run(took_ms: u64, users: u64, cpu_pct: Option<f64>) -> RunRecord {
        let start = std::time::Instant::now();
        let recorder = crate::Recorder::new(start, std::time::Duration::from_secs(1));
        for i in 0..100u64 {
            let due = start + std::time::Duration::from_millis(i * 100);
            recorder.scheduled(INSTALL_KIND, due);
            if i % 5 == 0 {
                recorder.late(INSTALL_KIND, due);
            }
            let done = due + std::time::Duration::from_millis(took_ms);
            recorder.record(INSTALL_KIND, due, done, crate::Outcome::Ok);
        }
        let mut record = crate::sample::sample_record();
        record.metrics = recorder.finish();
        record.meta.duration_s = 10.0;
        record.meta.config = serde_json::json!({ "machine_cores": 2, "users": users });
        record.samples = cpu_pct
            .map(|cpu| crate::record::ResourceSample {
                at_s: 1.0,
                process: "load-generator".into(),
                cpu_pct: cpu,
                rss_bytes: 0,
            })
            .into_iter()
            .collect();
        record
    }

    fn late_warning(record: &RunRecord) -> String {
        Summary::from_record(record)
            .warnings
            .into_iter()
            .find(|w| w.contains("started late"))
            .expect("a late-start warning")
    }

    #[test]
    fn late_starts_are_put_on_a_slow_cluster_when_the_generator_was_not_the_limit() {
        // 10 installs/s at 2 s each: 20 in flight of 30 users, generator CPU at 8 %.
        let text = late_warning(&late_run(2_000, 30, Some(8.0)));
        assert!(
            text.contains("because the cluster answered slowly"),
            "{text}"
        );
        assert!(!text.contains("generator could not keep"), "{text}");
    }

    #[test]
    fn late_starts_stay_the_generators_when_it_was_the_limit_or_unmeasured() {
        // Fast answers (5 ms: 0.05 in flight of 30 users): the users were idle, so the
        // generator itself fell behind.
        let fast = late_warning(&late_run(5, 30, Some(8.0)));
        assert!(
            fast.contains("the generator could not keep the schedule"),
            "{fast}"
        );
        // Slow answers, but the generator's CPU was saturated: the generator.
        let saturated = late_warning(&late_run(2_000, 30, Some(190.0)));
        assert!(
            saturated.contains("the generator could not keep the schedule"),
            "{saturated}"
        );
        // Slow answers, the generator's CPU never sampled: nothing says it was not the limit.
        let unsampled = late_warning(&late_run(2_000, 30, None));
        assert!(
            unsampled.contains("the generator could not keep the schedule"),
            "{unsampled}"
        );
    }
}
