//! The gate's chart: latency against offered rate, one point per step (green held, red
//! failed), the p50 and p99 curves through them, the knee (the capacity) as a vertical line,
//! and the baseline's p99 curve in grey beside them.

use plotters::prelude::*;

use super::GateStep;
use crate::ReportError;
use crate::charts::{FONT, PALETTE, format_ms, render};
use crate::figures::format_per_day;
use crate::summary::OVERALL;

const HELD: RGBColor = RGBColor(26, 127, 55);
const FAILED: RGBColor = RGBColor(207, 34, 46);
const BASELINE: RGBColor = RGBColor(140, 140, 140);
const FLOOR_MS: f64 = 0.001;

/// The median of `quantile` (overall) over the steps at each rate, by rising rate.
fn curve(
    steps: &[GateStep],
    pick: fn(&crate::summary::LatencySummary) -> Option<f64>,
) -> Vec<(f64, f64)> {
    let mut rates: Vec<f64> = steps.iter().map(|s| s.per_day).collect();
    rates.sort_by(f64::total_cmp);
    rates.dedup();
    rates
        .into_iter()
        .filter_map(|rate| {
            let mut values: Vec<f64> = steps
                .iter()
                .filter(|s| s.per_day == rate)
                .filter_map(|s| s.latency_ms.get(OVERALL).and_then(pick))
                .collect();
            if values.is_empty() {
                return None;
            }
            values.sort_by(f64::total_cmp);
            Some((rate, values[values.len() / 2].max(FLOOR_MS)))
        })
        .collect()
}

/// Latency (all kinds together) against offered installs per day, both on log axes.
pub fn latency_vs_rate(
    steps: &[GateStep],
    capacity_per_day: Option<f64>,
    baseline: &[GateStep],
) -> Result<String, ReportError> {
    let p99 = curve(steps, |l| l.p99);
    let p50 = curve(steps, |l| l.p50);
    let base = curve(baseline, |l| l.p99);
    let rates = steps
        .iter()
        .chain(baseline)
        .map(|s| s.per_day)
        .filter(|r| *r > 0.0);
    let (x_lo, x_hi) = rates.fold((f64::MAX, 0.0f64), |(lo, hi), r| (lo.min(r), hi.max(r)));
    let (x_lo, x_hi) = if x_hi > 0.0 {
        (x_lo / 1.3, x_hi * 1.3)
    } else {
        (1e5, 1e7)
    };
    let values = p99.iter().chain(&p50).chain(&base).map(|p| p.1);
    let (y_lo, y_hi) = values.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (y_lo, y_hi) = if y_hi > 0.0 {
        (
            10f64.powf(y_lo.max(FLOOR_MS).log10().floor()),
            10f64.powf((y_hi * 1.05).log10().ceil()),
        )
    } else {
        (1.0, 1000.0)
    };
    let y_hi = y_hi.max(y_lo * 10.0);
    render("latency_vs_rate", |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("Latency against offered rate (every step)", (FONT, 20))
            .margin(12)
            .margin_right(32)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((x_lo..x_hi).log_scale(), (y_lo..y_hi).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("offered installs per day")
            .y_desc("latency, all kinds")
            .x_label_formatter(&|v| format_per_day(*v))
            .y_label_formatter(&|v| format_ms(*v))
            .light_line_style(RGBColor(235, 235, 235))
            .label_style((FONT, 13))
            .draw()?;
        if let Some(knee) = capacity_per_day {
            chart
                .draw_series(LineSeries::new(
                    [(knee, y_lo), (knee, y_hi)],
                    PALETTE[4].stroke_width(2),
                ))?
                .label(format!("capacity {}", format_per_day(knee)))
                .legend(|(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], PALETTE[4].stroke_width(3))
                });
        }
        if !base.is_empty() {
            chart
                .draw_series(LineSeries::new(
                    base.iter().copied(),
                    BASELINE.stroke_width(3),
                ))?
                .label("baseline p99")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BASELINE.stroke_width(3)));
        }
        chart
            .draw_series(LineSeries::new(
                p50.iter().copied(),
                PALETTE[0].stroke_width(2),
            ))?
            .label("p50")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], PALETTE[0].stroke_width(3)));
        chart
            .draw_series(LineSeries::new(
                p99.iter().copied(),
                PALETTE[1].stroke_width(2),
            ))?
            .label("p99")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], PALETTE[1].stroke_width(3)));
        chart.draw_series(steps.iter().filter_map(|s| {
            let p99 = s.overall_p99_ms()?.max(FLOOR_MS);
            let color = if s.passed { HELD } else { FAILED };
            Some(Circle::new((s.per_day, p99), 5, color.filled()))
        }))?;
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
