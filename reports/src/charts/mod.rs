//! SVG charts of a run, drawn with plotters' SVG backend into strings (text stays SVG `<text>`,
//! so no font files are needed).
//!
//! Time charts share one x axis (seconds since the run start) and shade fault windows
//! ([`Event::end_s`] set) in red; instant events are thin red lines.

mod compare;
mod git;
mod latency;
mod resources;
mod set;
mod time;

use std::error::Error;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

pub use compare::spectra_overlaid;
pub use git::{GitCharts, git_charts};
pub use latency::{latency_over_time, latency_spectrum, nines, nines_label};
pub use resources::{cpu_over_time, node_share, rss_over_time};
pub use set::{ChartSet, primary_kind, render_all};
pub use time::{arrival_rate, errors_over_time, throughput};

use crate::ReportError;
use crate::figures::trim_float;
use crate::metrics::Metrics;
use crate::record::Event;

/// Width of every chart in px (the page scales them down on narrow screens).
pub const WIDTH: u32 = 960;
/// Height of every chart in px.
pub const HEIGHT: u32 = 340;

/// A qualitative palette that stays readable for the common colour-vision deficiencies.
pub(crate) const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];
const FAULT: RGBColor = RGBColor(214, 39, 40);
pub(crate) const FONT: &str = "sans-serif";

pub(crate) type DrawResult<T> = Result<T, Box<dyn Error>>;

/// End of the shared time axis: the run, its buckets and its events all fit.
pub fn time_axis_end(metrics: &Metrics, events: &[Event], duration_s: f64) -> f64 {
    let buckets_end = metrics.bucket_count as f64 * metrics.bucket_width_s();
    events
        .iter()
        .map(|e| e.end_s.unwrap_or(e.at_s))
        .fold(duration_s.max(buckets_end), f64::max)
        .max(1.0)
}

/// One line on a chart.
pub(crate) struct Series {
    pub name: String,
    pub color: RGBColor,
    pub points: Vec<(f64, f64)>,
}

/// What a time chart shows.
pub(crate) struct TimeChart<'a> {
    pub title: &'a str,
    pub y_desc: &'a str,
    pub end_s: f64,
    pub events: &'a [Event],
    pub series: Vec<Series>,
    pub y_format: &'a dyn Fn(&f64) -> String,
}

/// Draws a line chart over time with fault windows shaded; `y_range` is linear or log, and
/// `(y_lo, y_hi)` are its bounds in data units (for the shading).
pub(crate) fn draw_time_chart<Y>(
    name: &'static str,
    spec: &TimeChart<'_>,
    y_range: Y,
    (y_lo, y_hi): (f64, f64),
) -> Result<String, ReportError>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    render(name, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(spec.title, (FONT, 20))
            .margin(12)
            .margin_right(32)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..spec.end_s, y_range)?;
        let end_s = spec.end_s;
        chart
            .configure_mesh()
            .x_desc("time since start")
            .y_desc(spec.y_desc)
            .x_label_formatter(&|s| format_time(*s, end_s))
            .y_label_formatter(spec.y_format)
            .light_line_style(RGBColor(235, 235, 235))
            .label_style((FONT, 13))
            .draw()?;
        let mut windows = spec.events.iter().filter(|e| e.end_s.is_some()).peekable();
        if windows.peek().is_some() {
            chart
                .draw_series(windows.map(|e| {
                    let end = e.end_s.unwrap_or(e.at_s);
                    Rectangle::new([(e.at_s, y_lo), (end, y_hi)], FAULT.mix(0.12).filled())
                }))?
                .label("fault window")
                .legend(|(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 18, y + 6)], FAULT.mix(0.25).filled())
                });
        }
        for e in spec
            .events
            .iter()
            .filter(|e| e.end_s.is_none() && e.at_s > 0.0)
        {
            chart.draw_series(LineSeries::new(
                [(e.at_s, y_lo), (e.at_s, y_hi)],
                FAULT.mix(0.6).stroke_width(1),
            ))?;
        }
        for s in &spec.series {
            let color = s.color;
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], color.stroke_width(3))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .label_font((FONT, 13))
            .draw()?;
        Ok(())
    })
}

/// Runs `draw` on a fresh SVG canvas and returns the SVG text.
pub(crate) fn render(
    name: &'static str,
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> DrawResult<()>,
) -> Result<String, ReportError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let result = root
            .fill(&WHITE)
            .map_err(Into::into)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(Into::into));
        result.map_err(|e| ReportError::Chart {
            chart: name,
            reason: e.to_string(),
        })?;
    }
    Ok(svg)
}

/// `95s` on short runs, `12:30` (minutes:seconds) on runs of two minutes or more, `1:02:03`
/// past an hour.
pub fn format_time(s: f64, axis_end_s: f64) -> String {
    if axis_end_s < 120.0 {
        return format!("{}s", trim_float(s));
    }
    let total = s.round().max(0.0) as u64;
    let (h, m, sec) = (total / 3600, total / 60 % 60, total % 60);
    if h > 0 {
        format!("{h}:{m:02}:{sec:02}")
    } else {
        format!("{m}:{sec:02}")
    }
}

/// A latency in ms for an axis label: `250µs`, `12ms`, `1.5s`.
pub fn format_ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{}µs", trim_float(ms * 1000.0))
    } else if ms < 1000.0 {
        format!("{}ms", trim_float(ms))
    } else {
        format!("{}s", trim_float(ms / 1000.0))
    }
}

/// A rounded-up axis maximum (at least `floor`) so lines do not touch the top edge.
pub(crate) fn headroom(max: f64, floor: f64) -> f64 {
    if max.is_finite() && max > 0.0 {
        (max * 1.15).max(floor)
    } else {
        floor
    }
}

#[cfg(test)]
mod tests;
