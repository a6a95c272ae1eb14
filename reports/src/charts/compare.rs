//! Two runs' latency spectra overlaid: each kind in its colour, run A faint and thin, run B
//! solid, on the "number of nines" axis of [`super::latency_spectrum`].

use plotters::prelude::*;

use super::latency::{MAX_NINES, log_bounds, spectrum_points};
use super::{FONT, PALETTE, Series, format_ms, nines_label, render};
use crate::ReportError;
use crate::metrics::Metrics;
use crate::summary::OVERALL;

/// Whole-run latency by percentile of `a` and `b`, for `overall` and every kind either has.
pub fn spectra_overlaid(
    a: &Metrics,
    b: &Metrics,
    a_label: &str,
    b_label: &str,
) -> Result<String, ReportError> {
    let (overall_a, overall_b) = (a.overall_latency(), b.overall_latency());
    let samples = overall_a.len().max(overall_b.len());
    let reach = if samples == 0 {
        3.0
    } else {
        (samples as f64).log10().ceil().clamp(1.0, MAX_NINES)
    };
    let mut kinds: Vec<&String> = a.kinds.keys().chain(b.kinds.keys()).collect();
    kinds.sort();
    kinds.dedup();
    let mut series = Vec::new();
    let mut push = |name: &str, i: usize, ha, hb| {
        let color = PALETTE[i % PALETTE.len()];
        series.push((
            Series {
                name: format!("{name} ({a_label})"),
                color,
                points: spectrum_points(ha, reach),
            },
            false,
        ));
        series.push((
            Series {
                name: format!("{name} ({b_label})"),
                color,
                points: spectrum_points(hb, reach),
            },
            true,
        ));
    };
    push(OVERALL, 0, &overall_a, &overall_b);
    let empty = crate::metrics::new_latency_histogram();
    for (i, kind) in kinds.iter().enumerate() {
        let ha = a.kinds.get(*kind).map(|k| &k.latency_us).unwrap_or(&empty);
        let hb = b.kinds.get(*kind).map(|k| &k.latency_us).unwrap_or(&empty);
        push(kind.as_str(), i + 1, ha, hb);
    }
    let plain: Vec<Series> = series
        .iter()
        .map(|(s, _)| Series {
            name: s.name.clone(),
            color: s.color,
            points: s.points.clone(),
        })
        .collect();
    let (lo, hi) = log_bounds(&plain);
    render("spectra_overlaid", |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("Latency by percentile: {a_label} (faint) against {b_label} (solid)"),
                (FONT, 20),
            )
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
        for (s, solid) in &series {
            let color = s.color;
            let style = if *solid {
                color.stroke_width(3)
            } else {
                color.mix(0.4).stroke_width(2)
            };
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), style))?
                .label(s.name.as_str())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], style));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .label_font((FONT, 12))
            .draw()?;
        Ok(())
    })
}
