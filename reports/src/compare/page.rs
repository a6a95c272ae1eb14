//! The comparison page (`compare.html`): an askama template (`templates/compare.html`) over a
//! [`Comparison`], with both runs' spectra overlaid as inline SVG.

use askama::Template;

use super::{Comparison, Judgement};
use crate::ReportError;
use crate::charts::spectra_overlaid;
use crate::record::RunRecord;

struct Row {
    kind: String,
    a: Vec<String>,
    b: Vec<String>,
    errors: String,
    change: String,
    judgement: &'static str,
    bad: bool,
}

#[derive(Template)]
#[template(path = "compare.html")]
struct ComparePage<'a> {
    c: &'a Comparison,
    chart: String,
    rows: Vec<Row>,
    max_change: String,
    generator: String,
}

fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
        None => "–".into(),
    }
}

/// Renders the comparison of `a` and `b` (the records `comparison` was made from).
pub fn render(
    comparison: &Comparison,
    a: &RunRecord,
    b: &RunRecord,
) -> Result<String, ReportError> {
    let chart = spectra_overlaid(&a.metrics, &b.metrics, "A", "B")?;
    let rows = comparison
        .kinds
        .iter()
        .map(|k| {
            let four = |l: &crate::summary::LatencySummary| {
                vec![ms(l.p50), ms(l.p90), ms(l.p99), ms(l.p999)]
            };
            Row {
                kind: k.kind.clone(),
                a: four(&k.a),
                b: four(&k.b),
                errors: format!(
                    "{:.2}% → {:.2}%",
                    k.a_error_rate * 100.0,
                    k.b_error_rate * 100.0
                ),
                change: k
                    .p99_change
                    .map(|c| format!("{:+.1}%", c * 100.0))
                    .unwrap_or_else(|| "–".into()),
                judgement: k.judgement.as_str(),
                bad: k.judgement == Judgement::Worse,
            }
        })
        .collect();
    let page = ComparePage {
        c: comparison,
        chart,
        rows,
        max_change: format!("{:.0}%", comparison.max_change * 100.0),
        generator: format!("reports {}", env!("CARGO_PKG_VERSION")),
    };
    Ok(page.render()?)
}
