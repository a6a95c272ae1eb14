//! Every chart of a run's page, rendered together ([`render_all`]), and the kind the rate and
//! latency charts are about.

use super::latency::{latency_over_time, latency_spectrum};
use super::resources::{cpu_over_time, node_rates_over_time, node_share, rss_over_time};
use super::time::{arrival_rate, errors_over_time, throughput};
use super::time_axis_end;
use crate::ReportError;
use crate::kinds::{COMMIT_KIND, INSTALL_KIND};
use crate::metrics::Metrics;
use crate::record::RunRecord;

/// Every chart of a run's report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChartSet {
    /// Target vs achieved arrival rate of the primary kind.
    pub arrival_rate: String,
    /// Finished requests per second by kind.
    pub throughput: String,
    /// p50/p90/p99/p99.9 per time bucket of the primary kind.
    pub latency_over_time: String,
    /// Latency by percentile ("number of nines" axis), one line per kind.
    pub latency_spectrum: String,
    /// Errors per second by error kind.
    pub errors_over_time: String,
    /// Requests per node; `None` when no node counts were recorded.
    pub node_share: Option<String>,
    /// Requests per second per node over time; `None` when none were recorded.
    pub node_rates: Option<String>,
    /// CPU % per process; `None` without resource samples.
    pub cpu: Option<String>,
    /// RSS per process; `None` without resource samples.
    pub rss: Option<String>,
}

/// The kind the rate and latency-over-time charts are about: `install` when present, otherwise
/// the kind with the most scheduled operations.
pub fn primary_kind(metrics: &Metrics) -> Option<&str> {
    if metrics.kinds.contains_key(INSTALL_KIND) {
        return Some(INSTALL_KIND);
    }
    // A git-builders run is about commit → published.
    if let Some((name, _)) = metrics.kinds.get_key_value(COMMIT_KIND) {
        return Some(name.as_str());
    }
    metrics
        .kinds
        .iter()
        .max_by_key(|(_, k)| k.scheduled().max(k.finished()))
        .map(|(name, _)| name.as_str())
}

/// Renders every chart of `record`.
pub fn render_all(record: &RunRecord) -> Result<ChartSet, ReportError> {
    let metrics = &record.metrics;
    let kind = primary_kind(metrics).unwrap_or(INSTALL_KIND);
    let end_s = time_axis_end(metrics, &record.events, record.meta.duration_s);
    let has_samples = !record.samples.is_empty();
    Ok(ChartSet {
        arrival_rate: arrival_rate(metrics, kind, &record.events, end_s)?,
        throughput: throughput(metrics, &record.events, end_s)?,
        latency_over_time: latency_over_time(metrics, kind, &record.events, end_s)?,
        latency_spectrum: latency_spectrum(metrics)?,
        errors_over_time: errors_over_time(metrics, &record.events, end_s)?,
        node_share: (!record.node_requests.is_empty())
            .then(|| node_share(&record.node_requests))
            .transpose()?,
        node_rates: (!record.node_request_rates.is_empty())
            .then(|| node_rates_over_time(&record.node_request_rates, &record.events, end_s))
            .transpose()?,
        cpu: has_samples
            .then(|| cpu_over_time(&record.samples, &record.events, end_s))
            .transpose()?,
        rss: has_samples
            .then(|| rss_over_time(&record.samples, &record.events, end_s))
            .transpose()?,
    })
}
