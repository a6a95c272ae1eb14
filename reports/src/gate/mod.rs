//! The capacity gate's record (`gate.json`): every step the search ran (rate, SLO verdict,
//! per-kind latency, CPU per process), the capacity found, the component saturated at the
//! lowest failing rate, the latency windows at the reference rate, the HA checklist, and the
//! comparison with a baseline gate record. The page ([`page::render`]) is drawn from this
//! alone, so a gate record read back renders the same page.

pub mod chart;
pub mod page;

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ReportError;
use crate::generator::ClusterCpu;
use crate::record::{CheckerResult, InfraInfo, Verdict};
use crate::summary::{InstallCounts, LatencySummary, OVERALL};

/// The `gate.json` format this build writes and reads.
pub const GATE_FORMAT_VERSION: u32 = 1;

/// One gate run: the search, its steps, the capacity and the decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateRecord {
    /// [`GATE_FORMAT_VERSION`] when written.
    pub format_version: u32,
    /// The scenario each step runs, e.g. `daily-installs`.
    pub scenario: String,
    /// When the gate started.
    pub started_at: DateTime<Utc>,
    /// Seconds from the first step to the end of the last.
    pub duration_s: f64,
    /// The infrastructure every step ran on (one cluster for the whole gate).
    pub infra: InfraInfo,
    /// How the search was asked to run.
    pub settings: GateSettings,
    /// Every step in the order it ran.
    pub steps: Vec<GateStep>,
    /// The highest rate that held the SLO twice in a row.
    pub capacity: Capacity,
    /// The busiest component at the lowest failing rate (the step just above the knee).
    pub saturation: Option<Saturation>,
    /// Per-kind latency of every step at the reference rate (the repeated windows the baseline
    /// comparison reads).
    pub reference: ReferenceLatency,
    /// The HA checklist before the first step and after the last.
    pub checklist: Vec<CheckerResult>,
    /// The comparison with the baseline, when one was given.
    pub baseline: Option<BaselineComparison>,
    /// Pass: capacity found at or above `--min`, cluster valid, no regression.
    pub verdict: Verdict,
    /// Why the verdict is what it is, one sentence each.
    pub reasons: Vec<String>,
}

/// The gate's settings as given (or defaulted), and the machine and cluster it ran on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GateSettings {
    /// The thresholds a step must hold (goose-style expressions).
    pub slo: Vec<String>,
    /// Lower bound of the search, installs per day.
    pub min_per_day: f64,
    /// Upper bound of the search, installs per day.
    pub max_per_day: f64,
    /// The search stops when the failing rate is within this fraction above the passing one.
    pub resolution: f64,
    /// Measured length of each step, seconds.
    pub step_duration_s: f64,
    /// Passes in a row a rate needs before it counts as held.
    pub confirmations: u32,
    /// The rate whose latency is compared with the baseline's, installs per day.
    pub reference_per_day: f64,
    /// Largest capacity drop or latency rise accepted against the baseline (0.1 = 10 %).
    pub max_regression: f64,
    /// The corpus every step installs from (preset, packages, sizes, seed).
    #[serde(default)]
    pub corpus: String,
    /// Package server nodes behind the balancer.
    #[serde(default)]
    pub nodes: usize,
    /// The infrastructure provider the steps ran on (`local`, `docker`, `target`).
    #[serde(default)]
    pub provider: String,
    /// The machine's CPU model (`/proc/cpuinfo`'s `model name`).
    #[serde(default)]
    pub cpu_model: String,
    /// The machine's cores as the harness saw them.
    #[serde(default)]
    pub cores: usize,
    /// Seconds of load run before the first step and not judged (warms the nodes' views and
    /// caches, PostgreSQL's buffers and the page cache).
    #[serde(default)]
    pub warm_up_s: f64,
    /// How far the cluster's CPU per install at the reference rate may rise above the
    /// baseline's before it is a regression (a fraction).
    #[serde(default = "default_max_cost_regression")]
    pub max_cost_regression: f64,
}

/// The default of [`GateSettings::max_cost_regression`], also what an older `gate.json` that
/// did not record it is read with.
pub const DEFAULT_MAX_COST_REGRESSION: f64 = 0.25;

fn default_max_cost_regression() -> f64 {
    DEFAULT_MAX_COST_REGRESSION
}

impl GateSettings {
    /// The settings a gate's figures depend on, as (name, value) rows: what must match
    /// between a gate and its baseline. An SLO is compared as a set of expressions.
    pub fn comparable(&self) -> Vec<(&'static str, String)> {
        let mut slo = self.slo.clone();
        slo.sort();
        let missing = |v: &str| {
            if v.is_empty() {
                "not recorded".to_string()
            } else {
                v.to_string()
            }
        };
        let count = |n: usize| {
            if n == 0 {
                "not recorded".to_string()
            } else {
                n.to_string()
            }
        };
        vec![
            ("corpus", missing(&self.corpus)),
            ("SLO", slo.join(", ")),
            ("step duration", format!("{} s", self.step_duration_s)),
            ("nodes", count(self.nodes)),
            ("provider", missing(&self.provider)),
            ("CPU model", missing(&self.cpu_model)),
            ("cores", count(self.cores)),
        ]
    }

    /// Every comparable setting in which `baseline` differs from these, one sentence each;
    /// empty when the two gates measured the same thing. A setting the baseline did not
    /// record (an older `gate.json`) differs: nothing shows it was the same.
    pub fn differences(&self, baseline: &GateSettings) -> Vec<String> {
        self.comparable()
            .into_iter()
            .zip(baseline.comparable())
            .filter(|((_, mine), (_, theirs))| mine != theirs)
            .map(|((name, mine), (_, theirs))| {
                format!("{name}: this gate {mine}, the baseline {theirs}")
            })
            .collect()
    }
}

/// Why a step ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepPurpose {
    /// The lower bound (`--min`).
    Lower,
    /// The upper bound (`--max`).
    Upper,
    /// A bisection probe.
    Probe,
    /// A repeat of a rate that passed once.
    Confirm,
    /// A window at the reference rate for the baseline comparison.
    Reference,
}

impl StepPurpose {
    /// The serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lower => "lower",
            Self::Upper => "upper",
            Self::Probe => "probe",
            Self::Confirm => "confirm",
            Self::Reference => "reference",
        }
    }
}

/// One run of the scenario at one rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateStep {
    /// 1-based, in the order the steps ran.
    pub index: usize,
    /// Offered installs per day.
    pub per_day: f64,
    /// Why it ran.
    pub purpose: StepPurpose,
    /// Installs scheduled per second.
    pub offered_per_s: f64,
    /// Installs that succeeded per second.
    pub achieved_per_s: f64,
    /// Every SLO threshold held.
    pub passed: bool,
    /// The thresholds that failed, with what was observed (`p99<50ms: 71.2 ms`).
    pub failed_slo: Vec<String>,
    /// Install counts.
    pub installs: InstallCounts,
    /// Latency percentiles per kind and `overall`, ms.
    pub latency_ms: BTreeMap<String, LatencySummary>,
    /// Mean CPU per monitored process over the step, percent of one core.
    pub cpu_mean_pct: BTreeMap<String, f64>,
    /// What the cluster's processes (every sampled process but the load generators) spent
    /// per successful install and per request; `None` when nothing was sampled or installed.
    #[serde(default)]
    pub cluster_cpu: Option<ClusterCpu>,
    /// Signs that the load generator, not the cluster, set the pace.
    pub warnings: Vec<String>,
    /// The step's run directory, relative to the gate's directory.
    pub run_dir: String,
}

impl GateStep {
    /// The overall p99 in ms, if anything finished.
    pub fn overall_p99_ms(&self) -> Option<f64> {
        self.latency_ms.get(OVERALL).and_then(|l| l.p99)
    }
}

/// Where the capacity lies relative to the search bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CapacityBound {
    /// Between `--min` and `--max`: the last held rate and the first failed one bracket it.
    Between,
    /// `--max` held: the capacity is at least that.
    AtLeastMax,
    /// `--min` did not hold: the capacity is below the search range.
    BelowMin,
}

/// The capacity the search found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    /// The highest rate that held the SLO on every try (confirmed), installs per day; `None`
    /// when even `--min` failed.
    pub per_day: Option<f64>,
    /// The lowest rate that failed, installs per day.
    pub lowest_failed_per_day: Option<f64>,
    /// Where that lies against the bounds.
    pub bound: CapacityBound,
}

/// The busiest component at a failing step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Saturation {
    /// The step it was read from.
    pub step_index: usize,
    /// That step's rate.
    pub per_day: f64,
    /// The process with the highest mean CPU, e.g. `node-1`, `postgresql`, `load-generator`.
    pub process: String,
    /// Its mean CPU, percent of one core.
    pub cpu_pct: f64,
    /// How the decision was made.
    pub note: String,
}

/// Per-kind latency windows at the reference rate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReferenceLatency {
    /// The reference rate, installs per day.
    pub per_day: f64,
    /// One map (kind → percentiles) per step run at that rate.
    pub windows: Vec<BTreeMap<String, LatencySummary>>,
    /// The cluster's CPU milliseconds per install in each window that has the figure.
    #[serde(default)]
    pub cpu_ms_per_install: Vec<f64>,
}

impl ReferenceLatency {
    /// The p99 of `kind` in each window that has one.
    pub fn p99s(&self, kind: &str) -> Vec<f64> {
        self.windows
            .iter()
            .filter_map(|w| w.get(kind).and_then(|l| l.p99))
            .collect()
    }
}

/// The comparison with a baseline and the rule that decided it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaselineComparison {
    /// The gate records the baseline was read from.
    pub sources: Vec<String>,
    /// The baseline's capacity (median over its records), installs per day.
    pub capacity_per_day: Option<f64>,
    /// (current − baseline) / baseline; negative is a drop.
    pub capacity_change: Option<f64>,
    /// Per-kind p99 at the reference rate, baseline windows against current ones.
    pub latency: Vec<LatencyShift>,
    /// The cluster's CPU per install at the reference rate, baseline against current.
    #[serde(default)]
    pub cpu_cost: Option<CostShift>,
    /// A regression beyond `--max-regression` was found.
    pub regressed: bool,
    /// The rule, in words.
    pub rule: String,
    /// What the numbers showed, one sentence each.
    pub findings: Vec<String>,
    /// The baseline's steps, for its curve beside the current one.
    pub steps: Vec<GateStep>,
    /// The settings of the (first) baseline record, shown beside this gate's.
    #[serde(default)]
    pub settings: Option<GateSettings>,
    /// How the baseline's settings differ from this gate's; non-empty only when
    /// `--baseline-any-settings` accepted such a baseline.
    #[serde(default)]
    pub settings_differences: Vec<String>,
}

/// The cluster's CPU milliseconds per install at the reference rate, baseline against current.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CostShift {
    /// The baseline's figure in each of its reference windows.
    pub baseline_ms: Vec<f64>,
    /// The current figure in each reference window.
    pub current_ms: Vec<f64>,
    /// (median current − median baseline) / median baseline; positive is dearer.
    pub change: Option<f64>,
    /// The change exceeds `--max-cost-regression`: a regression.
    pub regressed: bool,
}

/// One kind's p99 at the reference rate, baseline against current.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyShift {
    /// Request kind, or `overall`.
    pub kind: String,
    /// The baseline's p99 in each of its windows, ms.
    pub baseline_p99_ms: Vec<f64>,
    /// The current p99 in each window, ms.
    pub current_p99_ms: Vec<f64>,
    /// (median current − median baseline) / median baseline.
    pub change: Option<f64>,
    /// Every current window is slower than every baseline window by more than the allowed
    /// regression: the shift is beyond the windows' own noise.
    pub beyond_noise: bool,
}

impl GateRecord {
    /// Reads a `gate.json`.
    pub fn read(path: &Path) -> Result<GateRecord, ReportError> {
        let text = std::fs::read_to_string(path).map_err(|e| ReportError::io("read", path, e))?;
        let record: GateRecord =
            serde_json::from_str(&text).map_err(|source| ReportError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        if record.format_version != GATE_FORMAT_VERSION {
            return Err(ReportError::UnsupportedFormat {
                path: path.to_path_buf(),
                found: record.format_version,
                expected: GATE_FORMAT_VERSION,
            });
        }
        Ok(record)
    }

    /// Writes `gate.json` and `gate.html` into `dir` (each under a temporary name, then
    /// renamed).
    pub fn write(&self, dir: &Path) -> Result<(), ReportError> {
        std::fs::create_dir_all(dir).map_err(|e| ReportError::io("create", dir, e))?;
        let json_path = dir.join("gate.json");
        let json = serde_json::to_vec_pretty(self).map_err(|source| ReportError::Json {
            path: json_path.clone(),
            source,
        })?;
        crate::store::hdr::write_atomic(&json_path, &json)?;
        let html = page::render(self)?;
        crate::store::hdr::write_atomic(&dir.join("gate.html"), html.as_bytes())
    }
}

#[cfg(test)]
pub(crate) mod tests;
