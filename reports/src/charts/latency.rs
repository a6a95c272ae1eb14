//! Latency charts: percentiles per time bucket, and the whole-run percentile spectrum on a
//! "number of nines" axis (as HdrHistogram's plotter draws it).

use hdrhistogram::Histogram;
use plotters::prelude::*;

use super::{FONT, PALETTE, Series, TimeChart, draw_time_chart, format_ms, render};
use crate::ReportError;
use crate::metrics::{Metrics, quantile_ms};
use crate::record::Event;
use crate::summary::OVERALL;

/// The smallest latency a log axis shows, in ms (1 µs).
const FLOOR_MS: f64 = 0.001;
/// The spectrum's x axis never goes past six nines.
pub(super) const MAX_NINES: f64 = 6.0;

pub(super) fn log_bounds(series: &[Series]) -> (f64, f64) {
    let values = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (lo, hi) = values.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if hi <= 0.0 {
        return (1.0, 1000.0);
    }
    // Whole decades, so the axis labels land on 1, 10, 100 …
    let lo = 10f64.powf(lo.max(FLOOR_MS).log10().floor());
    let hi = 10f64.powf((hi * 1.05).log10().ceil());
    (lo, hi.max(lo * 10.0))
}

/// p50, p90, p99 and p99.9 of `kind` per time bucket (by scheduled time), on a log axis.
pub fn latency_over_time(
    metrics: &Metrics,
    kind: &str,
    events: &[Event],
    end_s: f64,
) -> Result<String, ReportError> {
    let width = metrics.bucket_width_s();
    // Highest first: with few samples per bucket p99 and p99.9 coincide, and the lower line
    // drawn on top keeps both visible (the legend then also reads top to bottom).
    let quantiles = [(0.999, "p99.9"), (0.99, "p99"), (0.9, "p90"), (0.5, "p50")];
    let series: Vec<Series> = quantiles
        .iter()
        .enumerate()
        .map(|(i, (q, name))| Series {
            name: (*name).to_owned(),
            color: PALETTE[3 - i],
            points: metrics
                .kinds
                .get(kind)
                .map(|k| {
                    k.buckets
                        .iter()
                        .enumerate()
                        .filter_map(|(b, bucket)| {
                            quantile_ms(&bucket.latency_us, *q).map(|ms| {
                                (metrics.bucket_start_s(b) + width / 2.0, ms.max(FLOOR_MS))
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    let (lo, hi) = log_bounds(&series);
    let title = format!("Latency over time: {kind} (from scheduled time)");
    let label = |v: &f64| format_ms(*v);
    let spec = TimeChart {
        title: &title,
        y_desc: "latency",
        end_s,
        events,
        series,
        y_format: &label,
    };
    draw_time_chart("latency_over_time", &spec, (lo..hi).log_scale(), (lo, hi))
}

/// `q` as "number of nines": 0.9 → 1, 0.99 → 2, 0.999 → 3.
pub fn nines(q: f64) -> f64 {
    -(1.0 - q).max(1e-12).log10()
}

/// A nines-axis position as a percentile label: 0 → `0%`, 1 → `90%`, 3 → `99.9%`.
pub fn nines_label(x: f64) -> String {
    let percent = 100.0 * (1.0 - 10f64.powf(-x));
    let decimals = if x <= 2.0 {
        0
    } else {
        (x.ceil() as usize).saturating_sub(2)
    };
    format!("{percent:.decimals$}%")
}

pub(super) fn spectrum_points(h: &Histogram<u64>, max_x: f64) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    // The deepest percentile the sample count supports: 1000 samples resolve p99.9.
    let reach = (h.len() as f64).log10().min(max_x);
    let steps = 240;
    let mut points: Vec<(f64, f64)> = (0..=steps)
        .map(|i| reach * i as f64 / steps as f64)
        .map(|x| {
            let q = 1.0 - 10f64.powf(-x);
            (x, quantile_ms(h, q).unwrap_or(0.0).max(FLOOR_MS))
        })
        .collect();
    // End the line at the maximum.
    points.push((reach, quantile_ms(h, 1.0).unwrap_or(0.0).max(FLOOR_MS)));
    points
}

/// Whole-run latency by percentile for every kind and all kinds together. The x axis is the
/// number of nines (`-log10(1 - q)`), so the tail gets as much room as the median.
pub fn latency_spectrum(metrics: &Metrics) -> Result<String, ReportError> {
    let overall = metrics.overall_latency();
    let reach = if overall.is_empty() {
        3.0
    } else {
        (overall.len() as f64).log10().ceil().clamp(1.0, MAX_NINES)
    };
    let mut series = vec![Series {
        name: OVERALL.to_owned(),
        color: PALETTE[0],
        points: spectrum_points(&overall, reach),
    }];
    for (i, (name, kind)) in metrics.kinds.iter().enumerate() {
        series.push(Series {
            name: name.clone(),
            color: PALETTE[(i + 1) % PALETTE.len()],
            points: spectrum_points(&kind.latency_us, reach),
        });
    }
    let (lo, hi) = log_bounds(&series);
    render("latency_spectrum", |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("Latency by percentile (whole run)", (FONT, 20))
            .margin(12)
            .margin_right(32)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..reach, (lo..hi).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency")
            .x_labels(reach as usize + 1)
            .x_label_formatter(&|x| nines_label(*x))
            .y_label_formatter(&|v| format_ms(*v))
            .light_line_style(RGBColor(235, 235, 235))
            .label_style((FONT, 13))
            .draw()?;
        for s in &series {
            let color = s.color;
            let style = if s.name == OVERALL {
                color.stroke_width(3)
            } else {
                color.stroke_width(2)
            };
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), style))?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], color.stroke_width(3))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .label_font((FONT, 13))
            .draw()?;
        Ok(())
    })
}
