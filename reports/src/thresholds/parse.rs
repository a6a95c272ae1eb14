//! Parsing of threshold expressions: `[kind:]metric op value[unit]`.

use super::{Comparison, Threshold, ThresholdMetric};
use crate::ReportError;

/// The request kind a threshold applies to when the expression names none.
pub const DEFAULT_KIND: &str = crate::kinds::INSTALL_KIND;

const METRICS_HELP: &str = "expected a metric p50, p90, p95, p99, p999 (or p99.9), max, \
                            error_rate, rate_ratio or rps, optionally prefixed by a request kind \
                            as in `pypi_simple:p99<20ms`, or a counter such as `lost==0`";

impl Threshold {
    /// Parses `[kind:]metric op value[unit]`, e.g. `p99<50ms`, `install:p99.9<=2s`,
    /// `error_rate<0.1%`, `rate_ratio>0.95`, `git_build:rps>=1.5`.
    pub fn parse(expr: &str) -> Result<Threshold, ReportError> {
        parse(expr)
    }
}

fn parse(expr: &str) -> Result<Threshold, ReportError> {
    let fail = |reason: String| ReportError::InvalidThreshold {
        expr: expr.to_owned(),
        reason,
    };
    let text: String = expr.chars().filter(|c| !c.is_whitespace()).collect();
    if text.is_empty() {
        return Err(fail(format!("empty expression; {METRICS_HELP}")));
    }
    let op_at = text
        .find(['<', '>', '='])
        .ok_or_else(|| fail("missing comparison: use <, <=, >, >= or ==".to_owned()))?;
    let (lhs, rest) = text.split_at(op_at);
    let (op, value) = if let Some(v) = rest.strip_prefix("==") {
        (Comparison::Eq, v)
    } else if rest.starts_with('=') {
        return Err(fail("`=` alone is no comparison: use ==".to_owned()));
    } else if let Some(v) = rest.strip_prefix("<=") {
        (Comparison::Le, v)
    } else if let Some(v) = rest.strip_prefix(">=") {
        (Comparison::Ge, v)
    } else if let Some(v) = rest.strip_prefix('<') {
        (Comparison::Lt, v)
    } else {
        (Comparison::Gt, &rest[1..])
    };
    if value.contains(['<', '>', '=']) {
        return Err(fail("more than one comparison".to_owned()));
    }

    let (kind, metric_name) = match lhs.split_once(':') {
        Some(("", metric)) => {
            return Err(fail(format!(
                "empty request kind before `:{metric}`; write e.g. `install:{metric}`"
            )));
        }
        Some((kind, metric)) => (kind.to_owned(), metric),
        None => (DEFAULT_KIND.to_owned(), lhs),
    };
    // A bare name that is no metric, compared with `==`, is a counter: `lost==0`.
    let counter = op == Comparison::Eq && !lhs.contains(':') && is_counter_name(lhs);
    let (kind, metric) = if counter {
        (lhs.to_owned(), ThresholdMetric::Counter)
    } else {
        (kind, parse_metric(metric_name).map_err(&fail)?)
    };
    if value.is_empty() {
        return Err(fail(format!(
            "missing value after the comparison; e.g. `{lhs}<...`"
        )));
    }
    let limit = match metric {
        ThresholdMetric::Latency { .. } => parse_duration_ms(value),
        ThresholdMetric::ErrorRate | ThresholdMetric::RateRatio => parse_fraction(value),
        ThresholdMetric::Rate => parse_per_second(value),
        ThresholdMetric::Counter => value
            .parse::<f64>()
            .map_err(|_| format!("`{value}` is not a number")),
    }
    .map_err(&fail)?;
    Ok(Threshold {
        expr: expr.trim().to_owned(),
        kind,
        metric,
        op,
        limit,
    })
}

/// A counter's name: lowercase letters, digits and `_`, starting with a letter, and no metric's
/// name (`max`, `rps`, `p99`…).
fn is_counter_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && parse_metric(name).is_err()
}

fn parse_metric(name: &str) -> Result<ThresholdMetric, String> {
    match name {
        "" => return Err(format!("missing metric; {METRICS_HELP}")),
        "max" => return Ok(ThresholdMetric::Latency { quantile: 1.0 }),
        "error_rate" => return Ok(ThresholdMetric::ErrorRate),
        "rate_ratio" => return Ok(ThresholdMetric::RateRatio),
        "rps" | "rate" => return Ok(ThresholdMetric::Rate),
        _ => {}
    }
    let Some(digits) = name.strip_prefix('p') else {
        return Err(format!("unknown metric `{name}`; {METRICS_HELP}"));
    };
    let percent =
        percentile_of(digits).ok_or_else(|| format!("unknown metric `{name}`; {METRICS_HELP}"))?;
    if !(percent > 0.0 && percent <= 100.0) {
        return Err(format!(
            "percentile `{name}` is out of range: it must lie in (0, 100]"
        ));
    }
    Ok(ThresholdMetric::Latency {
        quantile: percent / 100.0,
    })
}

/// `50` → 50, `99.9` → 99.9, and the usual shorthand `999` → 99.9, `9999` → 99.99.
fn percentile_of(digits: &str) -> Option<f64> {
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    if digits.contains('.') {
        return digits.parse().ok();
    }
    let whole: f64 = digits.parse().ok()?;
    if whole <= 100.0 {
        Some(whole)
    } else if let Some(fraction) = digits.strip_prefix("99") {
        format!("99.{fraction}").parse().ok()
    } else {
        None
    }
}

fn split_number(value: &str) -> Result<(f64, &str), String> {
    let end = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(end);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{value}` does not start with a number"))?;
    Ok((number, unit))
}

fn parse_duration_ms(value: &str) -> Result<f64, String> {
    let (number, unit) = split_number(value)?;
    let factor = match unit {
        "ms" => 1.0,
        "s" => 1000.0,
        "us" | "µs" => 0.001,
        "" => {
            return Err(format!(
                "latency `{value}` needs a unit: ms, s or us (e.g. `{value}ms`)"
            ));
        }
        other => return Err(format!("unknown latency unit `{other}`: use ms, s or us")),
    };
    Ok(number * factor)
}

fn parse_fraction(value: &str) -> Result<f64, String> {
    let (number, unit) = split_number(value)?;
    match unit {
        "%" => Ok(number / 100.0),
        "" if number <= 1.0 => Ok(number),
        "" => Err(format!(
            "`{value}` is more than 1: write a fraction (0.001) or a percentage (0.1%)"
        )),
        other => Err(format!(
            "unknown unit `{other}`: write a fraction (0.001) or a percentage (0.1%)"
        )),
    }
}

fn parse_per_second(value: &str) -> Result<f64, String> {
    let (number, unit) = split_number(value)?;
    match unit {
        "" | "/s" => Ok(number),
        "/min" => Ok(number / 60.0),
        other => Err(format!("unknown rate unit `{other}`: use /s or /min")),
    }
}
