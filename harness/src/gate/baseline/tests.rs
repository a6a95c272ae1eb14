//! The baseline rule against earlier gate records: regressions in capacity, latency and cost.

use std::collections::BTreeMap;

use reports::gate::{Capacity, GATE_FORMAT_VERSION, GateSettings};
use reports::record::{InfraInfo, Verdict};
use reports::summary::LatencySummary;

use super::*;

fn windows(p99s: &[f64]) -> ReferenceLatency {
    ReferenceLatency {
        per_day: 1e6,
        windows: p99s
            .iter()
            .map(|p| {
                BTreeMap::from([(
                    "pypi_file".to_string(),
                    LatencySummary {
                        p99: Some(*p),
                        ..LatencySummary::default()
                    },
                )])
            })
            .collect(),
        cpu_ms_per_install: Vec::new(),
    }
}

fn record(capacity: f64, p99s: &[f64]) -> GateRecord {
    GateRecord {
        format_version: GATE_FORMAT_VERSION,
        scenario: "daily-installs".into(),
        started_at: chrono::Utc::now(),
        duration_s: 1.0,
        infra: InfraInfo::default(),
        settings: GateSettings {
            slo: Vec::new(),
            min_per_day: 1e5,
            max_per_day: 1e7,
            resolution: 0.1,
            step_duration_s: 1.0,
            confirmations: 2,
            reference_per_day: 1e6,
            max_regression: 0.1,
            ..GateSettings::default()
        },
        steps: Vec::new(),
        capacity: Capacity {
            per_day: Some(capacity),
            lowest_failed_per_day: None,
            bound: CapacityBound::Between,
        },
        saturation: None,
        reference: windows(p99s),
        checklist: Vec::new(),
        baseline: None,
        verdict: Verdict::Pass,
        reasons: Vec::new(),
    }
}

#[test]
fn a_baseline_with_twice_the_capacity_is_a_regression_and_an_equal_one_is_not() {
    let current = windows(&[10.0, 11.0]);
    let b = vec![("b".to_string(), record(4e6, &[10.5, 10.0]))];
    let cmp = compare(Some(2e6), CapacityBound::Between, &current, &b, 0.1, 0.15);
    assert!(cmp.regressed, "{:?}", cmp.findings);
    assert_eq!(cmp.capacity_change, Some(-0.5));
    assert!(
        cmp.findings[0].contains("a regression"),
        "{:?}",
        cmp.findings
    );

    let b = vec![("b".to_string(), record(2.1e6, &[10.5, 10.0]))];
    let cmp = compare(Some(2e6), CapacityBound::Between, &current, &b, 0.1, 0.15);
    assert!(!cmp.regressed, "{:?}", cmp.findings);
    assert!(!cmp.latency[0].beyond_noise);
}

#[test]
fn a_latency_shift_counts_only_beyond_the_windows_spread() {
    let b = vec![("b".to_string(), record(2e6, &[10.0, 12.0]))];
    // Every current window is above 12 × 1.1 = 13.2 ms: beyond noise.
    let cmp = compare(
        Some(2e6),
        CapacityBound::Between,
        &windows(&[14.0, 15.0]),
        &b,
        0.1,
        0.15,
    );
    assert!(cmp.regressed && cmp.latency[0].beyond_noise, "{:?}", cmp);
    // One window inside the baseline's spread: not beyond noise, though the median rose.
    let cmp = compare(
        Some(2e6),
        CapacityBound::Between,
        &windows(&[11.0, 20.0]),
        &b,
        0.1,
        0.15,
    );
    assert!(!cmp.regressed, "{:?}", cmp.findings);
    assert!(cmp.latency[0].change.unwrap() > 0.1);
    // A single window cannot show a shift beyond noise.
    let cmp = compare(
        Some(2e6),
        CapacityBound::Between,
        &windows(&[30.0]),
        &b,
        0.1,
        0.15,
    );
    assert!(!cmp.regressed);
}

#[test]
fn the_baseline_capacity_is_the_median_of_its_records() {
    let b: Vec<(String, GateRecord)> = [1e6, 3e6, 2e6]
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("r{i}"), record(*c, &[10.0, 10.0])))
        .collect();
    let cmp = compare(
        Some(2e6),
        CapacityBound::Between,
        &windows(&[10.0, 10.0]),
        &b,
        0.1,
        0.15,
    );
    assert_eq!(cmp.capacity_per_day, Some(2e6));
    assert!(!cmp.regressed);
    let cmp = compare(
        None,
        CapacityBound::BelowMin,
        &windows(&[10.0, 10.0]),
        &b,
        0.1,
        0.15,
    );
    assert!(cmp.regressed);
}

#[test]
fn a_dearer_install_beyond_the_allowed_rise_is_a_regression() {
    let with_cost = |cost: &[f64]| ReferenceLatency {
        cpu_ms_per_install: cost.to_vec(),
        ..windows(&[10.0, 10.0])
    };
    let mut base = record(2e6, &[10.0, 10.0]);
    base.reference = with_cost(&[4.0, 4.2]);
    let b = vec![("b".to_string(), base)];
    let cmp = compare(
        Some(2e6),
        CapacityBound::Between,
        &with_cost(&[5.0, 5.1]),
        &b,
        0.1,
        0.15,
    );
    assert!(cmp.regressed, "{:?}", cmp.findings);
    let cost = cmp.cpu_cost.expect("compared");
    assert!(cost.regressed && cost.change.unwrap() > 0.15, "{cost:?}");
    let cmp = compare(
        Some(2e6),
        CapacityBound::Between,
        &with_cost(&[4.3, 4.4]),
        &b,
        0.1,
        0.15,
    );
    assert!(!cmp.regressed, "{:?}", cmp.findings);
    // No figure on one side: not compared, and said so.
    let cmp = compare(
        Some(2e6),
        CapacityBound::Between,
        &with_cost(&[]),
        &b,
        0.1,
        0.15,
    );
    assert!(cmp.cpu_cost.is_none() && !cmp.regressed);
    assert!(cmp.findings.iter().any(|f| f.contains("not compared")));
}
