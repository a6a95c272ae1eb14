//! The run directory on disk: write a [`RunRecord`] and read it back losslessly.
//!
//! Layout of a run directory:
//!
//! | file | content |
//! |---|---|
//! | `record.json` | everything but the histograms: meta, per-bucket counts and error counts, events, samples, node request counts, threshold results, verdict |
//! | `histograms/<kind>.hdr` | the kind's whole-run latency histogram (µs), HdrHistogram V2 + deflate |
//! | `histograms/<kind>.buckets` | one line per time bucket: base64 of that bucket's V2 + deflate histogram |
//! | `summary.json` | the [`Summary`] a CI gate reads |
//! | `events.jsonl` | one event per line, for `jq` and log tools |
//! | `report.html` | the self-contained report |
//!
//! `<kind>` is [`hdr::file_stem`] of the kind name. Every file is written to a temporary name and
//! renamed into place.

pub mod hdr;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ReportError;
use crate::metrics::{BucketMetrics, KindMetrics, Metrics};
use crate::record::{
    CheckerResult, Event, GaugeSample, NodeRequestRate, ResourceSample, RunMeta, RunRecord,
    Verdict, WorkloadSection,
};
use crate::summary::Summary;
use crate::thresholds::ThresholdResult;

/// Version of the run directory layout, stored in `record.json`.
pub const FORMAT_VERSION: u32 = 1;
const HISTOGRAM_DIR: &str = "histograms";

#[derive(Serialize, Deserialize)]
struct RecordFile {
    format_version: u32,
    meta: RunMeta,
    metrics: MetricsFile,
    events: Vec<Event>,
    samples: Vec<ResourceSample>,
    #[serde(default)]
    node_request_rates: Vec<NodeRequestRate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    gauges: Vec<GaugeSample>,
    node_requests: BTreeMap<String, u64>,
    thresholds: Vec<ThresholdResult>,
    #[serde(default)]
    checkers: Vec<CheckerResult>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    workloads: Vec<WorkloadSection>,
    verdict: Verdict,
}

#[derive(Serialize, Deserialize)]
struct MetricsFile {
    bucket_width: Duration,
    bucket_count: usize,
    kinds: BTreeMap<String, KindFile>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    counters: BTreeMap<String, f64>,
}

#[derive(Serialize, Deserialize)]
struct KindFile {
    /// Paths relative to the run directory.
    histogram: String,
    bucket_histograms: String,
    buckets: Vec<BucketCounts>,
}

#[derive(Serialize, Deserialize)]
struct BucketCounts {
    scheduled: u64,
    ok: u64,
    err: u64,
    late: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    errors: BTreeMap<String, u64>,
}

/// Writes `record` into `dir` (created if missing): histograms, `record.json`, `summary.json`,
/// `events.jsonl` and `report.html`.
pub fn write_run_dir(dir: impl AsRef<Path>, record: &RunRecord) -> Result<(), ReportError> {
    let dir = dir.as_ref();
    let hist_dir = dir.join(HISTOGRAM_DIR);
    std::fs::create_dir_all(&hist_dir).map_err(|e| ReportError::io("create", &hist_dir, e))?;

    let mut kinds = BTreeMap::new();
    for (name, kind) in &record.metrics.kinds {
        let stem = hdr::file_stem(name);
        let histogram = format!("{HISTOGRAM_DIR}/{stem}.hdr");
        let bucket_histograms = format!("{HISTOGRAM_DIR}/{stem}.buckets");
        hdr::write_atomic(&dir.join(&histogram), &hdr::encode(&kind.latency_us))?;
        let lines = hdr::encode_buckets(kind.buckets.iter().map(|b| &b.latency_us));
        hdr::write_atomic(&dir.join(&bucket_histograms), &lines)?;
        let buckets = kind
            .buckets
            .iter()
            .map(|b| BucketCounts {
                scheduled: b.scheduled,
                ok: b.ok,
                err: b.err,
                late: b.late,
                errors: b.errors.clone(),
            })
            .collect();
        kinds.insert(
            name.clone(),
            KindFile {
                histogram,
                bucket_histograms,
                buckets,
            },
        );
    }

    let file = RecordFile {
        format_version: FORMAT_VERSION,
        meta: record.meta.clone(),
        metrics: MetricsFile {
            bucket_width: record.metrics.bucket_width,
            bucket_count: record.metrics.bucket_count,
            kinds,
            counters: record.metrics.counters.clone(),
        },
        events: record.events.clone(),
        samples: record.samples.clone(),
        node_request_rates: record.node_request_rates.clone(),
        gauges: record.gauges.clone(),
        node_requests: record.node_requests.clone(),
        thresholds: record.thresholds.clone(),
        checkers: record.checkers.clone(),
        workloads: record.workloads.clone(),
        verdict: record.verdict,
    };
    write_json(&dir.join("record.json"), &file)?;
    write_json(&dir.join("summary.json"), &Summary::from_record(record))?;

    let mut events = Vec::new();
    for event in &record.events {
        serde_json::to_writer(&mut events, event).map_err(|e| ReportError::Json {
            path: dir.join("events.jsonl"),
            source: e,
        })?;
        events.push(b'\n');
    }
    hdr::write_atomic(&dir.join("events.jsonl"), &events)?;

    let html = crate::html::render(record)?;
    hdr::write_atomic(&dir.join("report.html"), html.as_bytes())
}

/// Reads a run directory written by [`write_run_dir`] back into the identical [`RunRecord`].
pub fn read_run_dir(dir: impl AsRef<Path>) -> Result<RunRecord, ReportError> {
    let dir = dir.as_ref();
    let record_path = dir.join("record.json");
    let text = std::fs::read_to_string(&record_path)
        .map_err(|e| ReportError::io("read", &record_path, e))?;
    let file: RecordFile = serde_json::from_str(&text).map_err(|e| ReportError::Json {
        path: record_path.clone(),
        source: e,
    })?;
    if file.format_version != FORMAT_VERSION {
        return Err(ReportError::UnsupportedFormat {
            path: record_path,
            found: file.format_version,
            expected: FORMAT_VERSION,
        });
    }

    let bucket_count = file.metrics.bucket_count;
    let mut kinds = BTreeMap::new();
    for (name, kind) in file.metrics.kinds {
        let hdr_path = dir.join(&kind.histogram);
        let bytes = std::fs::read(&hdr_path).map_err(|e| ReportError::io("read", &hdr_path, e))?;
        let latency_us = hdr::decode(&bytes, &hdr_path)?;

        let buckets_path = dir.join(&kind.bucket_histograms);
        let lines = std::fs::read_to_string(&buckets_path)
            .map_err(|e| ReportError::io("read", &buckets_path, e))?;
        if kind.buckets.len() != bucket_count {
            return Err(ReportError::Histogram {
                path: record_path,
                reason: format!(
                    "kind `{name}` has {} buckets, expected {bucket_count}",
                    kind.buckets.len()
                ),
            });
        }
        let histograms = hdr::decode_buckets(&lines, bucket_count, &buckets_path)?;
        let buckets = kind
            .buckets
            .into_iter()
            .zip(histograms)
            .map(|(c, latency_us)| BucketMetrics {
                latency_us,
                scheduled: c.scheduled,
                ok: c.ok,
                err: c.err,
                late: c.late,
                errors: c.errors,
            })
            .collect();
        kinds.insert(
            name,
            KindMetrics {
                latency_us,
                buckets,
            },
        );
    }

    Ok(RunRecord {
        meta: file.meta,
        metrics: Metrics {
            bucket_width: file.metrics.bucket_width,
            bucket_count,
            kinds,
            counters: file.metrics.counters,
        },
        events: file.events,
        samples: file.samples,
        node_request_rates: file.node_request_rates,
        gauges: file.gauges,
        node_requests: file.node_requests,
        thresholds: file.thresholds,
        checkers: file.checkers,
        workloads: file.workloads,
        verdict: file.verdict,
    })
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), ReportError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| ReportError::Json {
        path: path.to_owned(),
        source: e,
    })?;
    bytes.push(b'\n');
    hdr::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests;
