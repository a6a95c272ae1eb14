//! Pass/fail thresholds in the style of goose and k6 (`p99<50ms`, `error_rate<0.1%`,
//! `rate_ratio>0.95`, `pypi_simple:p99<20ms`), judged over [`Metrics`].

mod parse;
#[cfg(test)]
mod tests;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use parse::DEFAULT_KIND;

use crate::ReportError;
use crate::metrics::Metrics;

/// What a threshold measures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ThresholdMetric {
    /// Whole-run latency at a quantile in `(0, 1]`, in ms; `1.0` is the maximum.
    Latency {
        /// The quantile, e.g. `0.99` for p99.
        quantile: f64,
    },
    /// Failed / finished operations, as a fraction.
    ErrorRate,
    /// Achieved / target rate: successful / scheduled operations.
    RateRatio,
    /// Achieved rate: successful operations per second of run.
    Rate,
    /// A named whole-run counter ([`Metrics::counters`]), e.g. `lost==0`, `duplicates==0`:
    /// the threshold's `kind` is the counter's name.
    Counter,
}

/// How the observed value is compared with the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
}

impl Comparison {
    fn holds(self, observed: f64, limit: f64) -> bool {
        match self {
            Comparison::Lt => observed < limit,
            Comparison::Le => observed <= limit,
            Comparison::Gt => observed > limit,
            Comparison::Ge => observed >= limit,
            Comparison::Eq => observed == limit,
        }
    }
}

/// One parsed threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    /// The expression as written (trimmed).
    pub expr: String,
    /// The request kind it judges (`install` unless the expression names one).
    pub kind: String,
    /// What it measures.
    pub metric: ThresholdMetric,
    /// The comparison.
    pub op: Comparison,
    /// The limit in the metric's base unit: ms for latency, a fraction for error and rate
    /// ratios, operations per second for rates.
    pub limit: f64,
}

/// A threshold judged over a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThresholdResult {
    /// The expression as written.
    pub expr: String,
    /// The observed value in the metric's base unit, `None` when the run has no data for it.
    pub observed: Option<f64>,
    /// The observed value for people, e.g. `42.1 ms`, `0.050%`, `no data`.
    pub observed_text: String,
    /// Whether the threshold held. A threshold without data fails …
    pub passed: bool,
    /// … except where the set judges outside fault windows (a drill): there a threshold with
    /// no data is undecided, and makes the verdict unknown, not failed: no verdict without
    /// evidence, either way.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub undecided: bool,
}

impl ThresholdResult {
    /// The one-character mark of a terminal line: ✓ held, ✗ failed, ? undecided (no data).
    pub fn mark(&self) -> &'static str {
        match (self.undecided, self.passed) {
            (true, _) => "?",
            (false, true) => "✓",
            (false, false) => "✗",
        }
    }
}

impl Threshold {
    /// Judges this threshold over `metrics` of a run lasting `duration_s` seconds.
    pub fn evaluate(&self, metrics: &Metrics, duration_s: f64) -> ThresholdResult {
        if self.metric == ThresholdMetric::Counter {
            let observed = metrics.counters.get(&self.kind).copied();
            return ThresholdResult {
                expr: self.expr.clone(),
                observed,
                observed_text: match observed {
                    Some(v) => crate::figures::trim_float(v),
                    None => format!("no `{}` counted", self.kind),
                },
                passed: observed.is_some_and(|v| self.op.holds(v, self.limit)),
                undecided: false,
            };
        }
        let kind = metrics.kinds.get(&self.kind);
        let observed = kind.and_then(|k| match self.metric {
            ThresholdMetric::Latency { quantile } => k.latency_ms(quantile),
            ThresholdMetric::ErrorRate => {
                let finished = k.finished();
                (finished > 0).then(|| k.err() as f64 / finished as f64)
            }
            ThresholdMetric::RateRatio => {
                let scheduled = k.scheduled();
                (scheduled > 0).then(|| k.ok() as f64 / scheduled as f64)
            }
            ThresholdMetric::Rate => (duration_s > 0.0).then(|| k.ok() as f64 / duration_s),
            ThresholdMetric::Counter => None,
        });
        let observed_text = match observed {
            None if kind.is_none() => format!("no `{}` requests", self.kind),
            None => "no data".to_owned(),
            Some(v) => match self.metric {
                ThresholdMetric::Latency { .. } => format!("{v:.2} ms"),
                ThresholdMetric::ErrorRate => format!("{:.3}%", v * 100.0),
                ThresholdMetric::RateRatio => format!("{v:.3}"),
                ThresholdMetric::Rate => format!("{v:.2}/s"),
                ThresholdMetric::Counter => crate::figures::trim_float(v),
            },
        };
        ThresholdResult {
            expr: self.expr.clone(),
            observed,
            observed_text,
            passed: observed.is_some_and(|v| self.op.holds(v, self.limit)),
            undecided: false,
        }
    }
}

/// The thresholds of a run or a CI gate.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ThresholdSet {
    /// The thresholds, in the order written.
    pub thresholds: Vec<Threshold>,
    /// Judge on the operations scheduled outside every fault window, each widened by this
    /// many seconds after its heal (a drill: latency inside a fault is the drill's subject,
    /// failures there are the `availability` checker's); `None` judges the whole run.
    pub outside_faults_grace_s: Option<f64>,
}

#[derive(Deserialize)]
struct ThresholdFile {
    thresholds: Vec<String>,
}

impl ThresholdSet {
    /// Parses every expression; on failure the error lists *all* bad ones.
    pub fn parse_all<S: AsRef<str>>(
        exprs: impl IntoIterator<Item = S>,
    ) -> Result<ThresholdSet, Vec<ReportError>> {
        let mut thresholds = Vec::new();
        let mut errors = Vec::new();
        for expr in exprs {
            match Threshold::parse(expr.as_ref()) {
                Ok(t) => thresholds.push(t),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(ThresholdSet {
                thresholds,
                outside_faults_grace_s: None,
            })
        } else {
            Err(errors)
        }
    }

    /// Parses TOML text of the form `thresholds = ["p99<50ms", "error_rate<0.1%"]`; other keys
    /// are ignored so the list can live in a larger config file. `origin` names the source in
    /// error messages.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<ThresholdSet, ReportError> {
        let file_error = |errors: Vec<String>| ReportError::InvalidThresholdFile {
            path: origin.to_owned(),
            errors,
        };
        let file: ThresholdFile = toml::from_str(text).map_err(|e| {
            file_error(vec![format!(
                "expected `thresholds = [\"p99<50ms\", ...]`: {}",
                e.message()
            )])
        })?;
        Self::parse_all(&file.thresholds)
            .map_err(|errors| file_error(errors.iter().map(ToString::to_string).collect()))
    }

    /// Reads a thresholds TOML file (see [`from_toml_str`](Self::from_toml_str)).
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<ThresholdSet, ReportError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ReportError::io("read", path, e))?;
        Self::from_toml_str(&text, path)
    }

    /// Judges every threshold, in order, over the whole run.
    pub fn evaluate(&self, metrics: &Metrics, duration_s: f64) -> Vec<ThresholdResult> {
        self.thresholds
            .iter()
            .map(|t| t.evaluate(metrics, duration_s))
            .collect()
    }

    /// Judges every threshold, in order, over the run or, with
    /// [`outside_faults_grace_s`](Self::outside_faults_grace_s), over what was scheduled
    /// outside the fault windows `faults` (start, heal) plus the grace; each observed text
    /// then says so, and a threshold with no data there is undecided. Counters (`lost==0`)
    /// are whole-run numbers and stay whole-run.
    pub fn evaluate_with_faults(
        &self,
        metrics: &Metrics,
        duration_s: f64,
        faults: &[(f64, f64)],
    ) -> Vec<ThresholdResult> {
        let Some(grace_s) = self.outside_faults_grace_s else {
            return self.evaluate(metrics, duration_s);
        };
        let windows: Vec<(f64, f64)> = faults
            .iter()
            .map(|&(from, healed)| (from, healed + grace_s))
            .collect();
        let outside = metrics.outside_windows(&windows);
        let excluded_s: f64 = windows.iter().map(|(from, to)| to - from).sum();
        let judged_s = (duration_s - excluded_s).max(0.0);
        let note = if windows.is_empty() {
            String::new()
        } else {
            format!(
                " (outside {} fault window(s) + {grace_s} s grace)",
                windows.len()
            )
        };
        self.thresholds
            .iter()
            .map(|t| {
                if t.metric == ThresholdMetric::Counter {
                    return t.evaluate(metrics, duration_s);
                }
                let mut result = t.evaluate(&outside, judged_s);
                result.observed_text.push_str(&note);
                result.undecided = result.observed.is_none();
                result
            })
            .collect()
    }
}
