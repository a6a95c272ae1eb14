//! Threshold parsing and evaluation tests.

use std::time::{Duration, Instant};

use super::*;
use crate::metrics::{Outcome, Recorder};
use crate::record::Verdict;

fn parse_err(expr: &str) -> String {
    Threshold::parse(expr).unwrap_err().to_string()
}

#[test]
fn parses_latency_percentiles_and_units() {
    let t = Threshold::parse("p99<50ms").unwrap();
    assert_eq!(t.kind, "install");
    assert_eq!(t.metric, ThresholdMetric::Latency { quantile: 0.99 });
    assert_eq!(t.op, Comparison::Lt);
    assert_eq!(t.limit, 50.0);

    let cases = [
        ("p50<1s", 0.5, 1000.0),
        ("p90 < 250us", 0.9, 0.25),
        ("p95<=2ms", 0.95, 2.0),
        ("p999<1.5s", 0.999, 1500.0),
        ("p99.9<100ms", 0.999, 100.0),
        ("p9999<3s", 0.9999, 3000.0),
        ("max<10s", 1.0, 10000.0),
    ];
    for (expr, quantile, limit_ms) in cases {
        let t = Threshold::parse(expr).unwrap();
        match t.metric {
            ThresholdMetric::Latency { quantile: q } => {
                assert!((q - quantile).abs() < 1e-12, "{expr}: {q}")
            }
            other => panic!("{expr}: {other:?}"),
        }
        assert!((t.limit - limit_ms).abs() < 1e-9, "{expr}: {}", t.limit);
    }
}

#[test]
fn parses_rates_and_kind_prefix() {
    let t = Threshold::parse("error_rate<0.1%").unwrap();
    assert_eq!(t.metric, ThresholdMetric::ErrorRate);
    assert!((t.limit - 0.001).abs() < 1e-12);
    assert_eq!(Threshold::parse("error_rate<0.001").unwrap().limit, 0.001);

    let t = Threshold::parse("rate_ratio>0.95").unwrap();
    assert_eq!(
        (t.metric, t.op, t.limit),
        (ThresholdMetric::RateRatio, Comparison::Gt, 0.95)
    );

    let t = Threshold::parse("pypi_simple:p99<20ms").unwrap();
    assert_eq!(t.kind, "pypi_simple");
    assert_eq!(t.expr, "pypi_simple:p99<20ms");

    let t = Threshold::parse("git_build:rps>=1.5/s").unwrap();
    assert_eq!(
        (t.kind.as_str(), t.metric, t.op),
        ("git_build", ThresholdMetric::Rate, Comparison::Ge)
    );
}

#[test]
fn parse_errors_say_what_to_fix() {
    assert!(parse_err("p99 50ms").contains("missing comparison"));
    assert!(parse_err("p99<50").contains("needs a unit"));
    assert!(parse_err("p99<50min").contains("unknown latency unit `min`"));
    assert!(parse_err("p42x<5ms").contains("unknown metric `p42x`"));
    assert!(parse_err("latency<5ms").contains("unknown metric `latency`"));
    assert!(parse_err("p0<5ms").contains("out of range"));
    assert!(parse_err("p101<5ms").contains("unknown metric"));
    assert!(parse_err("error_rate<5").contains("more than 1"));
    assert!(parse_err("error_rate<").contains("missing value"));
    assert!(parse_err(":p99<5ms").contains("empty request kind"));
    assert!(parse_err("").contains("empty expression"));
    assert!(parse_err("p99<<5ms").contains("more than one comparison"));
    assert!(parse_err("p99<abc").contains("does not start with a number"));
    // The message quotes the expression.
    assert!(parse_err("p99<50").starts_with("invalid threshold `p99<50`"));
}

#[test]
fn toml_file_lists_every_bad_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gate.toml");
    std::fs::write(&path, "thresholds = [\"p99<50ms\", \"error_rate<0.1%\"]\n").unwrap();
    let set = ThresholdSet::from_toml_file(&path).unwrap();
    assert_eq!(set.thresholds.len(), 2);

    std::fs::write(
        &path,
        "thresholds = [\"p99<50\", \"p99<5ms\", \"bogus>1\"]\n",
    )
    .unwrap();
    let err = ThresholdSet::from_toml_file(&path).unwrap_err().to_string();
    assert!(err.contains("2 invalid threshold(s)"), "{err}");
    assert!(err.contains("p99<50") && err.contains("bogus>1"), "{err}");

    std::fs::write(&path, "thresholds = \"p99<5ms\"\n").unwrap();
    let err = ThresholdSet::from_toml_file(&path).unwrap_err().to_string();
    assert!(err.contains("expected `thresholds = ["), "{err}");

    let err = ThresholdSet::from_toml_file(dir.path().join("missing.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("cannot read"), "{err}");
}

/// 1000 installs at 1..=1000 ms, 10 of them failed, 1000 more scheduled than finished.
fn metrics() -> crate::metrics::Metrics {
    let start = Instant::now();
    let rec = Recorder::new(start, Duration::from_secs(1));
    for ms in 1..=1000u64 {
        rec.scheduled("install", start);
        rec.scheduled("install", start);
        let outcome = if ms % 100 == 0 {
            Outcome::Error("http_503".into())
        } else {
            Outcome::Ok
        };
        rec.record("install", start, start + Duration::from_millis(ms), outcome);
    }
    rec.finish()
}

#[test]
fn evaluates_against_observed_values() {
    let m = metrics();
    let eval = |expr: &str| Threshold::parse(expr).unwrap().evaluate(&m, 100.0);

    let r = eval("p99<50ms");
    assert!(!r.passed);
    assert!((r.observed.unwrap() - 990.0).abs() < 1.0, "{r:?}");
    assert_eq!(r.observed_text, format!("{:.2} ms", r.observed.unwrap()));
    assert!(eval("p99<1s").passed);
    assert!(eval("p50<=501ms").passed);
    assert!(!eval("max<999ms").passed);

    let r = eval("error_rate<1.1%");
    assert!(r.passed, "{r:?}");
    assert_eq!(r.observed, Some(0.01));
    assert_eq!(r.observed_text, "1.000%");
    assert!(!eval("error_rate<0.1%").passed);

    let r = eval("rate_ratio>0.95");
    assert!(!r.passed);
    assert_eq!(r.observed, Some(0.495));
    assert!(eval("rate_ratio>=0.495").passed);

    let r = eval("rps>9/s");
    assert_eq!(r.observed, Some(9.9));
    assert!(r.passed);

    let r = eval("pypi_simple:p99<20ms");
    assert!(!r.passed, "a threshold without data must fail");
    assert_eq!(r.observed, None);
    assert_eq!(r.observed_text, "no `pypi_simple` requests");
}

#[test]
fn verdict_passes_only_when_all_pass() {
    let m = metrics();
    let pass = ThresholdSet::parse_all(["p99<1s", "error_rate<2%"]).unwrap();
    assert_eq!(
        Verdict::from_results(&pass.evaluate(&m, 100.0)),
        Verdict::Pass
    );
    let fail = ThresholdSet::parse_all(["p99<1s", "error_rate<0.5%"]).unwrap();
    assert_eq!(
        Verdict::from_results(&fail.evaluate(&m, 100.0)),
        Verdict::Fail
    );
    assert_eq!(Verdict::from_results(&[]), Verdict::Pass);
    let errors = ThresholdSet::parse_all(["p99<1", "x<1", "p50<1ms"]).unwrap_err();
    assert_eq!(errors.len(), 2);
}

#[test]
fn counters_are_judged_with_double_equals() {
    let t = Threshold::parse("lost==0").unwrap();
    assert_eq!(
        (t.kind.as_str(), t.metric, t.op, t.limit),
        ("lost", ThresholdMetric::Counter, Comparison::Eq, 0.0)
    );
    assert!(parse_err("lost=0").contains("use =="));
    assert!(parse_err("lost<1").contains("unknown metric `lost`"));
    let mut m = metrics();
    let eval = |m: &crate::metrics::Metrics, expr: &str| {
        Threshold::parse(expr).unwrap().evaluate(m, 100.0)
    };
    // Not counted at all: no data, and no data fails.
    let r = eval(&m, "lost==0");
    assert!(!r.passed && r.observed.is_none(), "{r:?}");
    m.counters.insert("lost".into(), 0.0);
    m.counters.insert("duplicates".into(), 2.0);
    assert!(eval(&m, "lost==0").passed);
    let r = eval(&m, "duplicates==0");
    assert!(!r.passed);
    assert_eq!(r.observed_text, "2");
    // `==` on a request metric still works as a comparison.
    assert!(!eval(&m, "install:error_rate==0").passed);
}

/// 60 s of one install a second at 5 ms; `slow` seconds take 900 ms, `failed` seconds fail.
fn drill_metrics(slow: &[u64], failed: &[u64]) -> Metrics {
    let start = Instant::now();
    let recorder = Recorder::new(start, Duration::from_secs(1));
    for s in 0..60u64 {
        let due = start + Duration::from_secs(s);
        recorder.scheduled("install", due);
        let took = if slow.contains(&s) { 900 } else { 5 };
        let outcome = if failed.contains(&s) {
            Outcome::Error("http_503".into())
        } else {
            Outcome::Ok
        };
        recorder.record("install", due, due + Duration::from_millis(took), outcome);
    }
    recorder.finish()
}

fn drill_set() -> ThresholdSet {
    let mut set =
        ThresholdSet::parse_all(["error_rate<=0", "rate_ratio>=0.99", "p99<50ms"]).unwrap();
    set.outside_faults_grace_s = Some(5.0);
    set
}

#[test]
fn a_drill_judges_its_thresholds_outside_the_fault_windows_plus_grace() {
    // Failures and slow installs inside the fault (20–30 s) and its grace (to 35 s) are the
    // drill's subject: the thresholds hold, and say over what they were judged.
    let metrics = drill_metrics(&[21, 25, 33], &[22, 34]);
    let results = drill_set().evaluate_with_faults(&metrics, 60.0, &[(20.0, 30.0)]);
    for r in &results {
        assert!(r.passed, "{r:?}");
        assert!(
            r.observed_text
                .contains("outside 1 fault window(s) + 5 s grace"),
            "{r:?}"
        );
    }
    // Judged over the whole run, the same history fails all three.
    let whole = ThresholdSet::parse_all(["error_rate<=0", "rate_ratio>=0.99", "p99<50ms"])
        .unwrap()
        .evaluate_with_faults(&metrics, 60.0, &[(20.0, 30.0)]);
    assert!(whole.iter().all(|r| !r.passed), "{whole:?}");
}

#[test]
fn a_failure_or_a_slow_second_outside_the_faults_fails_a_drill() {
    // One failed install at 40 s, after the grace: error rate and rate ratio fail.
    let results =
        drill_set().evaluate_with_faults(&drill_metrics(&[], &[40]), 60.0, &[(20.0, 30.0)]);
    assert!(!results[0].passed, "{results:?}");
    assert!(!results[1].passed, "{results:?}");
    assert!(results[2].passed, "{results:?}");
    // Slow installs long before the fault: p99 fails (as the drill should have).
    let slow: Vec<u64> = (0..5).collect();
    let results =
        drill_set().evaluate_with_faults(&drill_metrics(&slow, &[]), 60.0, &[(20.0, 30.0)]);
    assert!(results[0].passed && results[1].passed, "{results:?}");
    assert!(!results[2].passed, "{results:?}");
}

#[test]
fn a_drill_without_load_is_undecided_not_passed_nor_failed() {
    let empty = Recorder::new(Instant::now(), Duration::from_secs(1)).finish();
    let results = drill_set().evaluate_with_faults(&empty, 60.0, &[(20.0, 30.0)]);
    assert!(
        results.iter().all(|r| !r.passed && r.undecided),
        "{results:?}"
    );
    assert_eq!(Verdict::from_results(&results), Verdict::Unknown);
    // A failure with data still fails beside an undecided one.
    let mut mixed = results.clone();
    mixed.extend(drill_set().evaluate_with_faults(&drill_metrics(&[], &[40]), 60.0, &[]));
    assert_eq!(Verdict::from_results(&mixed), Verdict::Fail);
    // Outside a drill, no data fails as it always did.
    let whole = ThresholdSet::parse_all(["p99<50ms"])
        .unwrap()
        .evaluate(&empty, 60.0);
    assert!(!whole[0].passed && !whole[0].undecided);
    assert_eq!(Verdict::from_results(&whole), Verdict::Fail);
}
