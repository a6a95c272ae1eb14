//! The gate record round-trips through `gate.json` and renders a page that shows the
//! capacity, the decision rule and the baseline's curve.

use std::collections::BTreeMap;

use chrono::TimeZone;

use super::*;

/// A step at `per_day` whose overall p99 is `p99_ms`.
pub(crate) fn step(index: usize, per_day: f64, passed: bool, p99_ms: f64) -> GateStep {
    let latency = LatencySummary {
        p50: Some(p99_ms / 4.0),
        p90: Some(p99_ms / 2.0),
        p99: Some(p99_ms),
        p999: Some(p99_ms * 1.5),
        max: Some(p99_ms * 2.0),
    };
    GateStep {
        index,
        per_day,
        purpose: StepPurpose::Probe,
        offered_per_s: per_day * 2.5 / 86_400.0,
        achieved_per_s: per_day * 2.5 / 86_400.0,
        passed,
        failed_slo: if passed {
            Vec::new()
        } else {
            vec!["pypi_file:p99<50ms: 80 ms".into()]
        },
        installs: InstallCounts::default(),
        latency_ms: BTreeMap::from([
            (OVERALL.to_string(), latency.clone()),
            ("pypi_file".to_string(), latency),
        ]),
        cpu_mean_pct: BTreeMap::from([("node-1".into(), 80.0), ("postgresql".into(), 20.0)]),
        cluster_cpu: Some(ClusterCpu {
            cpu_s: 20.0,
            ms_per_install: 4.0 + index as f64 / 10.0,
            us_per_request: Some(800.0),
        }),
        warnings: Vec::new(),
        run_dir: format!("steps/{index:02}"),
    }
}

pub(crate) fn sample_gate() -> GateRecord {
    let steps = vec![
        step(1, 250_000.0, true, 5.0),
        step(2, 250_000.0, true, 6.0),
        step(3, 8_000_000.0, false, 900.0),
        step(4, 1_414_000.0, true, 12.0),
        step(5, 1_414_000.0, true, 14.0),
        step(6, 3_363_000.0, false, 120.0),
    ];
    GateRecord {
        format_version: GATE_FORMAT_VERSION,
        scenario: "daily-installs".into(),
        started_at: Utc.with_ymd_and_hms(2026, 11, 28, 2, 0, 0).unwrap(),
        duration_s: 180.0,
        infra: InfraInfo {
            provider: "local".into(),
            ..InfraInfo::default()
        },
        settings: GateSettings {
            slo: vec!["install:error_rate<=0".into(), "pypi_file:p99<50ms".into()],
            min_per_day: 250_000.0,
            max_per_day: 8_000_000.0,
            resolution: 0.1,
            step_duration_s: 20.0,
            confirmations: 2,
            reference_per_day: 1_000_000.0,
            max_regression: 0.1,
            ..GateSettings::default()
        },
        reference: ReferenceLatency {
            per_day: 1_000_000.0,
            windows: vec![steps[3].latency_ms.clone(), steps[4].latency_ms.clone()],
            cpu_ms_per_install: vec![4.4, 4.5],
        },
        capacity: Capacity {
            per_day: Some(1_414_000.0),
            lowest_failed_per_day: Some(3_363_000.0),
            bound: CapacityBound::Between,
        },
        saturation: Some(Saturation {
            step_index: 3,
            per_day: 8_000_000.0,
            process: "node-1".into(),
            cpu_pct: 80.0,
            note: "the highest mean CPU of the monitored processes".into(),
        }),
        steps,
        checklist: Vec::new(),
        baseline: None,
        verdict: Verdict::Pass,
        reasons: vec!["capacity 1.41M/d holds the SLO".into()],
    }
}

#[test]
fn a_gate_record_round_trips_and_renders_its_capacity_and_baseline_curve() {
    let mut record = sample_gate();
    record.baseline = Some(BaselineComparison {
        sources: vec!["last/gate.json".into()],
        capacity_per_day: Some(2_828_000.0),
        capacity_change: Some(-0.5),
        latency: Vec::new(),
        cpu_cost: Some(CostShift {
            baseline_ms: vec![3.1, 3.2],
            current_ms: vec![4.4, 4.5],
            change: Some(0.4),
            regressed: true,
        }),
        regressed: true,
        rule: "fail when the capacity drops by more than 10%".into(),
        findings: vec!["capacity dropped 50.0%".into()],
        steps: vec![
            step(1, 2_828_000.0, true, 9.0),
            step(2, 5_000_000.0, false, 99.0),
        ],
        settings: Some(GateSettings {
            corpus: "realistic".into(),
            ..record.settings.clone()
        }),
        settings_differences: vec!["corpus: this gate small, the baseline realistic".into()],
    });
    let dir = tempfile::tempdir().unwrap();
    record.write(dir.path()).unwrap();
    let back = GateRecord::read(&dir.path().join("gate.json")).unwrap();
    assert_eq!(back, record);
    let page = std::fs::read_to_string(dir.path().join("gate.html")).unwrap();
    assert!(page.contains("1.41M/d (3.36M/d failed)"), "capacity phrase");
    // Both gates' settings, the differing one marked, and why the baseline was accepted.
    assert!(
        page.contains(
            r#"<td>corpus</td><td>not recorded</td><td><span class="no">realistic</span></td>"#
        ),
        "settings table"
    );
    assert!(
        page.contains("--baseline-any-settings"),
        "the accepted difference is stated"
    );
    assert!(page.contains("fail when the capacity drops by more than 10%"));
    // The cluster's CPU per install: per step, and against the baseline's, marked regressed.
    assert!(
        page.contains(r#"<td class="num">4.10</td>"#),
        "step 1's CPU per install"
    );
    assert!(
        page.contains(
            r#"<tr><td>cluster CPU ms/install</td><td>3.10, 3.20</td><td>4.40, 4.50</td>"#
        ),
        "cost row"
    );
    assert!(
        page.contains("baseline p99"),
        "the baseline's curve is in the chart"
    );
    assert!(page.contains("node-1 at 80% CPU"));
    assert!(page.contains("steps/03/report.html"));

    // Without a baseline there is no baseline curve, and the page says none was given.
    record.baseline = None;
    let page = page::render(&record).unwrap();
    assert!(!page.contains("baseline p99"));
    assert!(page.contains("No baseline was given"));
}

#[test]
fn a_gate_record_of_another_format_is_refused() {
    let mut record = sample_gate();
    record.format_version = 99;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gate.json");
    std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
    let error = GateRecord::read(&path).unwrap_err().to_string();
    assert!(error.contains("format 99"), "{error}");
}

#[test]
fn settings_that_differ_from_the_baseline_are_named_and_slo_order_is_not_a_difference() {
    let settings = GateSettings {
        slo: vec!["install:error_rate<=0".into(), "p99<50ms".into()],
        step_duration_s: 20.0,
        corpus: "small (200 packages, seed 1)".into(),
        nodes: 2,
        provider: "local".into(),
        cpu_model: "AMD EPYC 7B13".into(),
        cores: 2,
        ..GateSettings::default()
    };
    let mut same = settings.clone();
    same.slo.reverse();
    same.warm_up_s = 40.0; // not a setting the figures are compared on
    assert!(settings.differences(&same).is_empty());
    let other = GateSettings {
        corpus: "realistic".into(),
        provider: "docker".into(),
        cores: 8,
        step_duration_s: 60.0,
        slo: vec!["p99<100ms".into()],
        ..settings.clone()
    };
    let differences = settings.differences(&other);
    assert_eq!(differences.len(), 5, "{differences:?}");
    assert!(
        differences[0].starts_with("corpus: this gate small"),
        "{differences:?}"
    );
    assert!(
        differences
            .iter()
            .any(|d| d == "cores: this gate 2, the baseline 8")
    );
    // An older record that kept none of them differs in every one.
    let old = GateSettings {
        slo: settings.slo.clone(),
        step_duration_s: 20.0,
        ..GateSettings::default()
    };
    assert_eq!(
        settings.differences(&old).len(),
        5,
        "{:?}",
        settings.differences(&old)
    );
}
