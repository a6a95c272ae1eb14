//! `harness gate` end to end on the local provider, one cluster for the whole file: a small
//! range with short steps finds a capacity between its bounds, a planted baseline with twice
//! the upper bound's capacity fails the gate with exit 1; then `harness compare` renders two
//! of its steps side by side and `harness report --threshold` re-judges one (exit 1 on a
//! threshold it fails, 0 on one it holds).

use std::path::Path;
use std::process::Command;

use reports::gate::{
    Capacity, CapacityBound, GATE_FORMAT_VERSION, GateRecord, GateSettings, ReferenceLatency,
};
use reports::record::{InfraInfo, Verdict};

use crate::support::{assert_nothing_left, harness_command};

const MIN: f64 = 50_000.0;
const MAX: f64 = 20_000_000.0;

/// A gate record whose capacity is twice the upper bound: whatever this machine finds is
/// less than half of it.
fn planted_baseline(path: &Path) {
    let record = GateRecord {
        format_version: GATE_FORMAT_VERSION,
        scenario: "daily-installs".into(),
        started_at: chrono::Utc::now() - chrono::Duration::days(1),
        duration_s: 60.0,
        infra: InfraInfo::default(),
        settings: GateSettings {
            slo: Vec::new(),
            min_per_day: MIN,
            max_per_day: 4.0 * MAX,
            resolution: 0.5,
            step_duration_s: 3.0,
            confirmations: 2,
            reference_per_day: MIN,
            max_regression: 0.1,
            ..GateSettings::default()
        },
        steps: Vec::new(),
        capacity: Capacity {
            per_day: Some(2.0 * MAX),
            lowest_failed_per_day: None,
            bound: CapacityBound::Between,
        },
        saturation: None,
        reference: ReferenceLatency {
            per_day: MIN,
            windows: Vec::new(),
            cpu_ms_per_install: Vec::new(),
        },
        checklist: Vec::new(),
        baseline: None,
        verdict: Verdict::Pass,
        reasons: Vec::new(),
    };
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec_pretty(&record).unwrap()).unwrap();
}

fn reports_always_slo() -> [&'static str; 2] {
    ["install:error_rate<=0", "install:rate_ratio>=0.99"]
}

/// A baseline measured with other settings is refused with exit 2 before anything starts,
/// naming each difference.
#[test]
fn a_baseline_from_other_settings_is_refused_with_exit_2() {
    let out_dir = tempfile::tempdir().unwrap();
    let baseline = out_dir.path().join("night-1/gate.json");
    planted_baseline(&baseline);
    let (code, text) = run(Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["gate", "--infra", "local", "--corpus", "small", "--quiet"])
        .arg("--baseline")
        .arg(&baseline)
        .arg("--out")
        .arg(out_dir.path().join("gate")));
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("was measured with other settings"), "{text}");
    assert!(
        text.contains("corpus: this gate small, seed 1, the baseline not recorded"),
        "{text}"
    );
    assert!(text.contains("--baseline-any-settings"), "{text}");
    assert!(!out_dir.path().join("gate").exists(), "nothing ran");
}

fn run(command: &mut Command) -> (Option<i32>, String) {
    let output = command.output().unwrap();
    let text = format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

#[test]
fn gate_finds_a_capacity_between_its_bounds_and_fails_on_a_baseline_with_twice_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("gate");
    // A directory of baselines: the gate reads every gate.json under it.
    let baselines = out_dir.path().join("baselines");
    planted_baseline(&baselines.join("night-1/gate.json"));
    let (min, max) = (MIN.to_string(), MAX.to_string());
    let (code, text) = run(harness_command(
        tmp.path(),
        &out,
        &[
            "gate",
            "--infra",
            "local",
            "--quiet",
            "--corpus",
            "small",
            "--packages",
            "24",
            "--size-max-bytes",
            "2000000",
            "--min",
            &min,
            "--max",
            &max,
            "--reference-rate",
            &min,
            "--step-duration",
            "3s",
            "--resolution",
            "90%",
            "--max-steps",
            "9",
            // Lenient on latency (a debug build on a shared machine), strict on failures.
            "--slo",
            "install:error_rate<=0",
            "--slo",
            "install:rate_ratio>=0.9",
            "--slo",
            "p99<2s",
        ],
    )
    .arg("--baseline")
    .arg(&baselines)
    // The planted baseline records none of the settings this gate runs with.
    .arg("--baseline-any-settings"));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("verdict: FAIL"), "{text}");

    let gate: GateRecord = GateRecord::read(&out.join("gate.json")).unwrap();
    let capacity = gate.capacity.per_day.expect("the lower bound holds");
    assert!((MIN..=MAX).contains(&capacity), "{capacity}: {text}");
    assert_ne!(gate.capacity.bound, CapacityBound::BelowMin);
    // Confirmation: every rate that counts as held ran and held at least twice.
    let held = gate
        .steps
        .iter()
        .filter(|s| s.per_day == capacity && s.passed);
    assert!(held.count() >= 2, "{:?}", gate.steps);
    assert!(gate.steps.len() <= 9 + 2, "{} steps", gate.steps.len());
    // The reference windows (at --min) are there for the next gate.
    assert!(gate.reference.windows.len() >= 2);
    // The gate record carries the settings its figures depend on, and the baseline's.
    assert_eq!(
        gate.settings.corpus,
        "small, 24 packages, files up to 2000000 B, seed 1"
    );
    assert_eq!(
        (gate.settings.nodes, gate.settings.provider.as_str()),
        (2, "local")
    );
    assert!(gate.settings.cores > 0 && !gate.settings.cpu_model.is_empty());
    assert_eq!(&gate.settings.slo[..2], reports_always_slo());
    assert!(
        out.join("warm-up/report.html").exists(),
        "the warm-up ran, unjudged"
    );
    // The regression was the baseline's doing, and the decision says so with its numbers.
    let baseline = gate.baseline.as_ref().expect("baseline compared");
    assert!(!baseline.settings_differences.is_empty(), "{baseline:?}");
    assert!(baseline.regressed);
    assert!(baseline.capacity_change.unwrap() <= -0.5, "{baseline:?}");
    assert!(
        gate.reasons
            .iter()
            .any(|r| r.contains("regression against the baseline")),
        "{:?}",
        gate.reasons
    );
    // The cluster was a valid HA cluster before and after.
    let checklist: Vec<(&str, &str)> = gate
        .checklist
        .iter()
        .map(|c| (c.name.as_str(), c.validity.as_str()))
        .collect();
    assert_eq!(
        checklist,
        [
            ("ha-checklist-at-start", "valid"),
            ("ha-checklist-at-end", "valid")
        ]
    );
    // A failing step names the component it saturated.
    if gate.steps.iter().any(|s| !s.passed) {
        let s = gate
            .saturation
            .as_ref()
            .expect("saturation at the first failing step");
        assert!(!s.process.is_empty());
    }
    for step in &gate.steps {
        assert!(out.join(&step.run_dir).join("report.html").exists());
    }
    let page = std::fs::read_to_string(out.join("gate.html")).unwrap();
    assert!(page.contains("Latency against offered rate"));
    assert!(page.contains("fail when the capacity is more than 25.0% below"));
    assert!(page.contains("CPU per install"));
    assert_nothing_left(tmp.path());

    // compare: the first two steps side by side.
    let a = out.join(&gate.steps[0].run_dir);
    let b = out.join(&gate.steps[1].run_dir);
    let compared = out_dir.path().join("compare");
    let (code, text) = run(Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("compare")
        .arg(&a)
        .arg(&b)
        .arg("--out")
        .arg(&compared));
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("install"), "{text}");
    let page = std::fs::read_to_string(compared.join("compare.html")).unwrap();
    assert!(page.contains("Two runs side by side") && page.contains("<svg"));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(compared.join("compare.json")).unwrap()).unwrap();
    assert_eq!(json["kinds"][0]["kind"], "overall");

    // report --threshold: re-judged by an impossible threshold it fails (exit 1), by a
    // trivial one it passes (exit 0).
    let (code, text) = run(Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("report")
        .arg(&a)
        .args(["--threshold", "p99<1us"]));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("verdict: FAIL"), "{text}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["verdict"], "fail");
    let (code, text) = run(Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("report")
        .arg(&a)
        .args(["--threshold", "rate_ratio>=0"]));
    assert_eq!(code, Some(0), "{text}");
}
