//! Two run records side by side (`harness compare A B`): per-kind latency and error deltas,
//! each judged better / same / worse against an allowed change, both runs' verdicts and
//! thresholds, and their latency spectra overlaid ([`page::render`]).

pub mod page;

use serde::Serialize;

use crate::record::{RunRecord, Verdict};
use crate::summary::{InstallCounts, LatencySummary, OVERALL, RateSummary, Summary};
use crate::thresholds::ThresholdResult;

/// One run as the comparison shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Side {
    /// What the user called it (the run directory).
    pub label: String,
    pub scenario: String,
    pub started_at: String,
    pub verdict: Verdict,
    pub provider: String,
    pub installs: InstallCounts,
    pub rate: RateSummary,
    pub thresholds: Vec<ThresholdResult>,
}

/// How B's figure for one kind compares with A's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Judgement {
    /// B is faster beyond the allowed change (and fails no more often).
    Better,
    /// Within the allowed change.
    Same,
    /// B is slower beyond the allowed change, or fails more often.
    Worse,
    /// Only one run has this kind.
    Missing,
}

impl Judgement {
    /// `better`, `same`, `worse` or `missing`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Better => "better",
            Self::Same => "same",
            Self::Worse => "worse",
            Self::Missing => "missing",
        }
    }
}

/// One request kind (or `overall`) in both runs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KindDelta {
    pub kind: String,
    pub a: LatencySummary,
    pub b: LatencySummary,
    pub a_error_rate: f64,
    pub b_error_rate: f64,
    /// (B − A) / A of p99.
    pub p99_change: Option<f64>,
    pub judgement: Judgement,
}

/// The whole comparison.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    pub a: Side,
    pub b: Side,
    /// The p99 change a kind may show before it counts as better or worse (0.1 = 10 %).
    pub max_change: f64,
    pub kinds: Vec<KindDelta>,
}

impl Comparison {
    /// Compares `b` against `a`.
    pub fn of(a: (&str, &RunRecord), b: (&str, &RunRecord), max_change: f64) -> Comparison {
        let (sa, sb) = (Summary::from_record(a.1), Summary::from_record(b.1));
        let mut kinds: Vec<&String> = sa.latency_ms.keys().chain(sb.latency_ms.keys()).collect();
        // `overall` first, then the kinds by name.
        kinds.sort_by(|x, y| (*x != OVERALL, *x).cmp(&(*y != OVERALL, *y)));
        kinds.dedup();
        let kinds = kinds
            .into_iter()
            .map(|kind| {
                let la = sa.latency_ms.get(kind);
                let lb = sb.latency_ms.get(kind);
                let error_rate = |s: &Summary| {
                    if kind == OVERALL {
                        let (n, e) = s
                            .requests
                            .values()
                            .fold((0, 0), |(n, e), k| (n + k.count, e + k.errors));
                        if n == 0 { 0.0 } else { e as f64 / n as f64 }
                    } else {
                        s.requests.get(kind).map(|k| k.error_rate).unwrap_or(0.0)
                    }
                };
                let (ea, eb) = (error_rate(&sa), error_rate(&sb));
                let p99_change = match (la.and_then(|l| l.p99), lb.and_then(|l| l.p99)) {
                    (Some(x), Some(y)) if x > 0.0 => Some((y - x) / x),
                    _ => None,
                };
                let judgement = match (la, lb, p99_change) {
                    (None, _, _) | (_, None, _) => Judgement::Missing,
                    _ if eb > ea => Judgement::Worse,
                    (_, _, Some(c)) if c > max_change => Judgement::Worse,
                    (_, _, Some(c)) if c < -max_change && eb <= ea => Judgement::Better,
                    _ => Judgement::Same,
                };
                KindDelta {
                    kind: kind.clone(),
                    a: la.cloned().unwrap_or_default(),
                    b: lb.cloned().unwrap_or_default(),
                    a_error_rate: ea,
                    b_error_rate: eb,
                    p99_change,
                    judgement,
                }
            })
            .collect();
        Comparison {
            a: side(a.0, a.1, &sa),
            b: side(b.0, b.1, &sb),
            max_change,
            kinds,
        }
    }

    /// The kinds B does worse on.
    pub fn worse(&self) -> Vec<&KindDelta> {
        self.kinds
            .iter()
            .filter(|k| k.judgement == Judgement::Worse)
            .collect()
    }
}

fn side(label: &str, record: &RunRecord, summary: &Summary) -> Side {
    Side {
        label: label.to_owned(),
        scenario: record.meta.scenario.clone(),
        started_at: record
            .meta
            .started_at
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        verdict: record.verdict,
        provider: record.meta.infra.provider.clone(),
        installs: summary.installs.clone(),
        rate: summary.rate.clone(),
        thresholds: record.thresholds.clone(),
    }
}

#[cfg(test)]
mod tests;
