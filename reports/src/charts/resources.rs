//! Cluster charts: each node's share of requests, and CPU / memory of each process over time.

use std::collections::BTreeMap;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{FONT, PALETTE, Series, TimeChart, draw_time_chart, headroom, render};
use crate::ReportError;
use crate::figures::trim_float;
use crate::record::{Event, ResourceSample};

/// Requests served by each node as bars, each labelled with its share of the total.
pub fn node_share(node_requests: &BTreeMap<String, u64>) -> Result<String, ReportError> {
    shares("node_share", "Requests per node", "requests", node_requests)
}

/// Counts per name as bars, each labelled with its share of the total.
pub(crate) fn shares(
    name: &'static str,
    caption: &str,
    y_desc: &str,
    node_requests: &BTreeMap<String, u64>,
) -> Result<String, ReportError> {
    let nodes: Vec<(&str, u64)> = node_requests
        .iter()
        .map(|(n, c)| (n.as_str(), *c))
        .collect();
    let total: u64 = nodes.iter().map(|(_, c)| c).sum();
    let y_hi = headroom(nodes.iter().map(|(_, c)| *c).max().unwrap_or(0) as f64, 1.0);
    let n = nodes.len().max(1) as f64;
    render(name, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(caption, (FONT, 20))
            .margin(12)
            .margin_right(32)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..n, 0f64..y_hi)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(nodes.len() * 2 + 1)
            .x_label_formatter(&|x| {
                // Labels only at bar centres (i + 0.5).
                let i = x.floor() as usize;
                let centred = (x - x.floor() - 0.5).abs() < 1e-6;
                match nodes.get(i) {
                    Some((name, _)) if centred => (*name).to_owned(),
                    _ => String::new(),
                }
            })
            .y_desc(y_desc)
            .y_label_formatter(&|v| trim_float(*v))
            .light_line_style(RGBColor(235, 235, 235))
            .label_style((FONT, 13))
            .draw()?;
        chart.draw_series(nodes.iter().enumerate().map(|(i, (_, count))| {
            let x = i as f64;
            Rectangle::new(
                [(x + 0.2, 0.0), (x + 0.8, *count as f64)],
                PALETTE[i % PALETTE.len()].filled(),
            )
        }))?;
        chart.draw_series(nodes.iter().enumerate().map(|(i, (_, count))| {
            let share = if total == 0 {
                0.0
            } else {
                *count as f64 * 100.0 / total as f64
            };
            let style =
                TextStyle::from((FONT, 14).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
            Text::new(
                format!("{count} ({share:.1}%)"),
                (i as f64 + 0.5, *count as f64),
                style,
            )
        }))?;
        Ok(())
    })
}

fn per_process(samples: &[ResourceSample], value: impl Fn(&ResourceSample) -> f64) -> Vec<Series> {
    series_by_name(
        samples
            .iter()
            .map(|p| (p.process.as_str(), p.at_s, value(p))),
    )
}

/// One series per name from (name, seconds, value) points, each in time order.
pub(crate) fn series_by_name<'a>(points: impl Iterator<Item = (&'a str, f64, f64)>) -> Vec<Series> {
    let mut by_name: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for (name, at_s, value) in points {
        by_name.entry(name).or_default().push((at_s, value));
    }
    by_name
        .into_iter()
        .enumerate()
        .map(|(i, (name, mut points))| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series {
                name: name.to_owned(),
                color: PALETTE[i % PALETTE.len()],
                points,
            }
        })
        .collect()
}

pub(crate) fn chart(
    name: &'static str,
    title: &str,
    y_desc: &str,
    series: Vec<Series>,
    events: &[Event],
    end_s: f64,
    y_format: &dyn Fn(&f64) -> String,
) -> Result<String, ReportError> {
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let y_hi = headroom(max, 1.0);
    let spec = TimeChart {
        title,
        y_desc,
        end_s,
        events,
        series,
        y_format,
    };
    draw_time_chart(name, &spec, 0f64..y_hi, (0.0, y_hi))
}

/// Requests per second each node served over time.
pub fn node_rates_over_time(
    rates: &[crate::record::NodeRequestRate],
    events: &[Event],
    end_s: f64,
) -> Result<String, ReportError> {
    let series = series_by_name(rates.iter().map(|r| (r.node.as_str(), r.at_s, r.per_s)));
    chart(
        "node_rates_over_time",
        "Requests per node over time",
        "requests / s",
        series,
        events,
        end_s,
        &|v| trim_float(*v),
    )
}

/// CPU use per process in percent of one core.
pub fn cpu_over_time(
    samples: &[ResourceSample],
    events: &[Event],
    end_s: f64,
) -> Result<String, ReportError> {
    chart(
        "cpu_over_time",
        "CPU per process",
        "% of one core",
        per_process(samples, |s| s.cpu_pct),
        events,
        end_s,
        &|v| format!("{}%", trim_float(*v)),
    )
}

/// Resident memory per process in MiB.
pub fn rss_over_time(
    samples: &[ResourceSample],
    events: &[Event],
    end_s: f64,
) -> Result<String, ReportError> {
    chart(
        "rss_over_time",
        "Resident memory per process",
        "RSS (MiB)",
        per_process(samples, |s| s.rss_bytes as f64 / (1024.0 * 1024.0)),
        events,
        end_s,
        &|v| trim_float(*v),
    )
}
