//! Rate charts over time: arrival rate (target vs achieved), throughput and errors.

use std::collections::BTreeMap;

use super::{PALETTE, Series, TimeChart, draw_time_chart, headroom};
use crate::ReportError;
use crate::figures::trim_float;
use crate::metrics::{BucketMetrics, Metrics};
use crate::record::Event;

/// Bucket midpoints and a per-second rate computed from each bucket of `kind`.
pub(crate) fn per_bucket(
    metrics: &Metrics,
    kind: &str,
    value: impl Fn(&BucketMetrics) -> u64,
) -> Vec<(f64, f64)> {
    let width = metrics.bucket_width_s();
    metrics
        .kinds
        .get(kind)
        .map(|k| {
            k.buckets
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    (
                        metrics.bucket_start_s(i) + width / 2.0,
                        value(b) as f64 / width,
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn max_y(series: &[Series]) -> f64 {
    series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max)
}

fn linear_chart(name: &'static str, spec: TimeChart<'_>) -> Result<String, ReportError> {
    let y_hi = headroom(max_y(&spec.series), 1.0);
    draw_time_chart(name, &spec, 0f64..y_hi, (0.0, y_hi))
}

fn per_second_label(v: &f64) -> String {
    trim_float(*v)
}

/// Target arrival rate (scheduled/s) against achieved rate (ok/s) and late starts/s of `kind`.
pub fn arrival_rate(
    metrics: &Metrics,
    kind: &str,
    events: &[Event],
    end_s: f64,
) -> Result<String, ReportError> {
    let title = format!("Arrival rate: {kind} target vs achieved");
    let series = vec![
        Series {
            name: "target (scheduled/s)".into(),
            color: PALETTE[7],
            points: per_bucket(metrics, kind, |b| b.scheduled),
        },
        Series {
            name: "achieved (ok/s)".into(),
            color: PALETTE[0],
            points: per_bucket(metrics, kind, |b| b.ok),
        },
        Series {
            name: "late starts/s".into(),
            color: PALETTE[1],
            points: per_bucket(metrics, kind, |b| b.late),
        },
    ];
    linear_chart(
        "arrival_rate",
        TimeChart {
            title: &title,
            y_desc: "operations / s",
            end_s,
            events,
            series,
            y_format: &per_second_label,
        },
    )
}

/// Finished requests per second (ok + errors) for each kind and in total.
pub fn throughput(metrics: &Metrics, events: &[Event], end_s: f64) -> Result<String, ReportError> {
    let mut series: Vec<Series> = metrics
        .kinds
        .keys()
        .enumerate()
        .map(|(i, kind)| Series {
            name: kind.clone(),
            color: PALETTE[(i + 1) % PALETTE.len()],
            points: per_bucket(metrics, kind, |b| b.ok + b.err),
        })
        .collect();
    if series.len() > 1 {
        let mut total = series[0].points.clone();
        for s in &series[1..] {
            for (t, p) in total.iter_mut().zip(&s.points) {
                t.1 += p.1;
            }
        }
        series.insert(
            0,
            Series {
                name: "all kinds".into(),
                color: PALETTE[0],
                points: total,
            },
        );
    }
    linear_chart(
        "throughput",
        TimeChart {
            title: "Throughput: finished requests per second",
            y_desc: "requests / s",
            end_s,
            events,
            series,
            y_format: &per_second_label,
        },
    )
}

/// Errors per second by error kind (`http_503`, `timeout`, …), over all request kinds.
pub fn errors_over_time(
    metrics: &Metrics,
    events: &[Event],
    end_s: f64,
) -> Result<String, ReportError> {
    let width = metrics.bucket_width_s();
    let mut by_error: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for kind in metrics.kinds.values() {
        for bucket in &kind.buckets {
            for name in bucket.errors.keys() {
                by_error.entry(name).or_insert_with(|| {
                    (0..metrics.bucket_count)
                        .map(|i| (metrics.bucket_start_s(i) + width / 2.0, 0.0))
                        .collect()
                });
            }
        }
    }
    for kind in metrics.kinds.values() {
        for (i, bucket) in kind.buckets.iter().enumerate() {
            for (name, n) in &bucket.errors {
                if let Some(point) = by_error.get_mut(name.as_str()).and_then(|p| p.get_mut(i)) {
                    point.1 += *n as f64 / width;
                }
            }
        }
    }
    let series = by_error
        .into_iter()
        .enumerate()
        .map(|(i, (name, points))| Series {
            name: name.to_owned(),
            color: PALETTE[(i + 3) % PALETTE.len()],
            points,
        })
        .collect();
    linear_chart(
        "errors_over_time",
        TimeChart {
            title: "Errors per second by error kind",
            y_desc: "errors / s",
            end_s,
            events,
            series,
            y_format: &per_second_label,
        },
    )
}
