//! The comparison with a baseline: one or more earlier gate records (a file, or every
//! `gate.json` under a directory). Two rules, both stated on the page with their numbers:
//!
//! - **capacity**: the current capacity may fall at most `max_regression` below the baseline's
//!   (the median over its records, so one noisy night does not set the bar);
//! - **latency**: at the reference rate, a kind's p99 regresses when *every* current window is
//!   slower than *every* baseline window by more than `max_regression` — a shift the repeated
//!   windows show is beyond their own spread — and at least two current windows exist.

use reports::figures::format_per_day;
use reports::gate::{
    BaselineComparison, CapacityBound, CostShift, GateRecord, LatencyShift, ReferenceLatency,
};
use reports::summary::OVERALL;

/// Windows a side needs before a latency shift can be called beyond noise.
pub const MIN_WINDOWS: usize = 2;

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

/// Compares the current capacity and reference windows with `baselines` (name, record).
pub fn compare(
    capacity_per_day: Option<f64>,
    bound: CapacityBound,
    reference: &ReferenceLatency,
    baselines: &[(String, GateRecord)],
    max_regression: f64,
    max_cost_regression: f64,
) -> BaselineComparison {
    let pct = |f: f64| format!("{:.1}%", f * 100.0);
    let rule = format!(
        "fail when the capacity is more than {mr} below the baseline's (median of {n} record(s)), \
         or when, at {rate}, every current p99 window of a kind is more than {mr} above every \
         baseline window (at least {MIN_WINDOWS} current windows), or when the cluster's CPU \
         per install at {rate} (median of the windows) is more than {cr} above the baseline's",
        mr = pct(max_regression),
        cr = pct(max_cost_regression),
        n = baselines.len(),
        rate = format_per_day(reference.per_day),
    );
    let mut findings = Vec::new();
    let mut regressed = false;

    let mut capacities: Vec<f64> = baselines
        .iter()
        .filter_map(|(_, r)| r.capacity.per_day)
        .collect();
    let baseline_capacity = median(&mut capacities);
    let capacity_change = match (capacity_per_day, baseline_capacity) {
        (Some(current), Some(base)) if base > 0.0 => Some((current - base) / base),
        _ => None,
    };
    match (capacity_per_day, baseline_capacity, capacity_change) {
        (_, None, _) => findings.push("the baseline holds no capacity figure".into()),
        (None, Some(base), _) => {
            regressed = true;
            findings.push(format!(
                "capacity: the lower bound failed, the baseline held {}: a regression",
                format_per_day(base)
            ));
        }
        (Some(current), Some(base), Some(change)) => {
            let beyond = change < -max_regression;
            regressed |= beyond;
            let mut sentence = format!(
                "capacity {} against the baseline's {} ({:+.1}%): {}",
                format_per_day(current),
                format_per_day(base),
                change * 100.0,
                if beyond {
                    format!("a drop beyond {}, a regression", pct(max_regression))
                } else {
                    format!("within {}", pct(max_regression))
                }
            );
            if bound == CapacityBound::AtLeastMax {
                sentence.push_str(
                    " (the current figure is the upper bound: the capacity may be higher)",
                );
            }
            findings.push(sentence);
        }
        _ => {}
    }

    // Latency windows: only baselines measured at the same reference rate.
    let same_rate: Vec<&GateRecord> = baselines
        .iter()
        .map(|(_, r)| r)
        .filter(|r| r.reference.per_day == reference.per_day)
        .collect();
    if same_rate.len() < baselines.len() {
        findings.push(format!(
            "{} baseline record(s) used another reference rate; their latency is not compared",
            baselines.len() - same_rate.len()
        ));
    }
    let mut kinds: Vec<String> = reference
        .windows
        .iter()
        .flat_map(|w| w.keys().cloned())
        .collect();
    kinds.sort_by_key(|k| (k != OVERALL, k.clone()));
    kinds.dedup();
    let mut latency = Vec::new();
    for kind in kinds {
        let mut current = reference.p99s(&kind);
        let mut base: Vec<f64> = same_rate
            .iter()
            .flat_map(|r| r.reference.p99s(&kind))
            .collect();
        if base.is_empty() {
            continue;
        }
        let (cur_min, base_max) = (
            current.iter().copied().fold(f64::MAX, f64::min),
            base.iter().copied().fold(0.0, f64::max),
        );
        let beyond_noise =
            current.len() >= MIN_WINDOWS && cur_min > base_max * (1.0 + max_regression);
        let change = match (median(&mut current.clone()), median(&mut base)) {
            (Some(c), Some(b)) if b > 0.0 => Some((c - b) / b),
            _ => None,
        };
        if beyond_noise {
            regressed = true;
            findings.push(format!(
                "{kind}: p99 at {} rose beyond noise: the fastest of {} current windows ({:.2} ms) \
                 is slower than the slowest of {} baseline windows ({:.2} ms) by more than {}",
                format_per_day(reference.per_day),
                current.len(),
                cur_min,
                base.len(),
                base_max,
                pct(max_regression)
            ));
        }
        current.sort_by(f64::total_cmp);
        latency.push(LatencyShift {
            kind,
            baseline_p99_ms: base,
            current_p99_ms: current,
            change,
            beyond_noise,
        });
    }
    if !latency.is_empty() && !latency.iter().any(|l| l.beyond_noise) {
        findings.push(format!(
            "no kind's p99 at {} shifted beyond the windows' noise",
            format_per_day(reference.per_day)
        ));
    }
    let cpu_cost = cost_shift(reference, &same_rate, max_cost_regression, &mut findings);
    regressed |= cpu_cost.as_ref().is_some_and(|c| c.regressed);
    let newest = baselines
        .iter()
        .map(|(_, r)| r)
        .max_by_key(|r| r.started_at);
    BaselineComparison {
        sources: baselines.iter().map(|(name, _)| name.clone()).collect(),
        capacity_per_day: baseline_capacity,
        capacity_change,
        latency,
        cpu_cost,
        regressed,
        rule,
        findings,
        steps: newest.map(|r| r.steps.clone()).unwrap_or_default(),
        settings: newest.map(|r| r.settings.clone()),
        settings_differences: Vec::new(),
    }
}

/// The cluster's CPU per install at the reference rate against the baseline records measured
/// at that rate: a regression when the current median is more than `max_cost_regression` above
/// the baseline's. `None` (and a finding saying so) when either side has no figure.
fn cost_shift(
    reference: &ReferenceLatency,
    same_rate: &[&GateRecord],
    max_cost_regression: f64,
    findings: &mut Vec<String>,
) -> Option<CostShift> {
    let mut current = reference.cpu_ms_per_install.clone();
    let mut base: Vec<f64> = same_rate
        .iter()
        .flat_map(|r| r.reference.cpu_ms_per_install.iter().copied())
        .collect();
    let (Some(now), Some(then)) = (median(&mut current), median(&mut base)) else {
        findings.push(
            "the cluster's CPU per install is not compared: a side has no reference window with \
             the figure"
                .into(),
        );
        return None;
    };
    let change = (then > 0.0).then(|| (now - then) / then);
    let regressed = change.is_some_and(|c| c > max_cost_regression);
    findings.push(format!(
        "cluster CPU per install at {}: {now:.2} ms against the baseline's {then:.2} ms ({}): {}",
        format_per_day(reference.per_day),
        change.map_or_else(|| "-".into(), |c| format!("{:+.1}%", c * 100.0)),
        if regressed {
            format!(
                "a rise beyond {:.1}%, a regression",
                max_cost_regression * 100.0
            )
        } else {
            format!("within {:.1}%", max_cost_regression * 100.0)
        }
    ));
    Some(CostShift {
        baseline_ms: base,
        current_ms: current,
        change,
        regressed,
    })
}

#[cfg(test)]
mod tests;
