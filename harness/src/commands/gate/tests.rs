//! The gate's plan from its arguments: the SLO, refused settings and baselines.

use super::plan::{baseline_refusal, plan, slo, step_plan};
use super::verdict::judge;
use crate::cli::GateArgs;
use crate::error::HarnessError;
use crate::gate::Search;
use crate::run::DEFAULT_THRESHOLDS;
use clap::Parser;
use reports::Verdict;
use reports::gate::{
    CapacityBound, GATE_FORMAT_VERSION, GateRecord, GateSettings, ReferenceLatency,
};

fn args(extra: &[&str]) -> Result<GateArgs, clap::Error> {
    let mut argv = vec!["harness", "gate"];
    argv.extend_from_slice(extra);
    match crate::cli::Cli::try_parse_from(argv)?.command {
        crate::cli::Command::Gate(args) => Ok(*args),
        _ => unreachable!("gate parses as gate"),
    }
}

#[test]
fn the_default_slo_is_the_issues_and_bad_settings_are_refused_together() {
    let defaults = plan(&args(&[]).unwrap()).unwrap();
    assert_eq!(defaults.settings.slo, DEFAULT_THRESHOLDS);
    assert_eq!(defaults.settings.warm_up_s, 20.0);
    assert_eq!(defaults.settings.max_regression, 0.25);
    assert_eq!(defaults.settings.max_cost_regression, 0.25);
    assert_eq!(defaults.search.confirmations, 2);

    let bad = args(&["--min", "5000000", "--max", "1000000", "--slo", "p99<<1"]).unwrap();
    let Err(HarnessError::Config(problems)) = plan(&bad) else {
        panic!("bad settings accepted");
    };
    assert!(problems.iter().any(|p| p.contains("--max")), "{problems:?}");
    assert!(
        problems.iter().any(|p| p.contains("p99<<1")),
        "{problems:?}"
    );

    let missing = args(&["--baseline", "/nonexistent/gate.json"]).unwrap();
    let Err(HarnessError::Config(problems)) = plan(&missing) else {
        panic!("a missing baseline accepted");
    };
    assert!(
        problems[0].contains("/nonexistent/gate.json"),
        "{problems:?}"
    );
    assert!(args(&["--max-regression", "ten"]).is_err());
}

#[test]
fn the_error_rate_and_rate_ratio_always_apply_and_slo_adds_to_them() {
    let given = plan(&args(&["--slo", "p99<100ms"]).unwrap()).unwrap();
    assert_eq!(
        given.settings.slo,
        [
            "install:error_rate<=0",
            "install:rate_ratio>=0.99",
            "p99<100ms"
        ]
    );
    // The step's thresholds are the same list: a step at a rate the generator did not
    // achieve fails, whatever --slo says.
    let step = step_plan(&given.step, 1e6, false).unwrap();
    let exprs: Vec<&str> = step
        .thresholds
        .thresholds
        .iter()
        .map(|t| t.expr.as_str())
        .collect();
    assert_eq!(exprs, given.settings.slo);
    // Written again, they are not doubled.
    assert_eq!(slo(&["install:rate_ratio >= 0.99".into()]).len(), 2);
}

/// A baseline gate.json in a temp dir with these settings.
fn baseline_with(settings: GateSettings) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let record = GateRecord {
        format_version: GATE_FORMAT_VERSION,
        scenario: "daily-installs".into(),
        started_at: chrono::Utc::now(),
        duration_s: 1.0,
        infra: reports::record::InfraInfo::default(),
        settings,
        steps: Vec::new(),
        capacity: reports::gate::Capacity {
            per_day: Some(1e6),
            lowest_failed_per_day: None,
            bound: CapacityBound::Between,
        },
        saturation: None,
        reference: ReferenceLatency::default(),
        checklist: Vec::new(),
        baseline: None,
        verdict: Verdict::Pass,
        reasons: Vec::new(),
    };
    std::fs::write(
        dir.path().join("gate.json"),
        serde_json::to_vec(&record).unwrap(),
    )
    .unwrap();
    let path = dir.path().join("gate.json").display().to_string();
    (dir, path)
}

#[test]
fn a_baseline_from_other_settings_is_refused_unless_asked_for() {
    // `gate --infra local --corpus small` with `extra`.
    let local_small = |extra: &[&str]| {
        let mut argv = vec!["--infra", "local", "--corpus", "small"];
        argv.extend_from_slice(extra);
        plan(&args(&argv).unwrap())
    };
    let ours = local_small(&[]).unwrap();
    // The same settings: accepted.
    let (_same_dir, same) = baseline_with(ours.settings.clone());
    assert!(local_small(&["--baseline", &same]).is_ok());
    // Another corpus and core count: refused with exit 2, naming both.
    let (_other_dir, other) = baseline_with(GateSettings {
        corpus: "realistic, seed 1".into(),
        cores: ours.settings.cores + 6,
        ..ours.settings.clone()
    });
    let Err(error) = local_small(&["--baseline", &other]) else {
        panic!("a baseline from another corpus was accepted");
    };
    assert_eq!(error.exit_code(), crate::error::exit::USAGE);
    let text = error.to_string();
    assert!(
        text.contains("corpus: this gate small, seed 1, the baseline realistic"),
        "{text}"
    );
    assert!(text.contains("cores: this gate"), "{text}");
    // --baseline-any-settings compares anyway, and the gate record says how they differ.
    let anyway = local_small(&["--baseline", &other, "--baseline-any-settings"]).unwrap();
    let record = judge(
        &anyway,
        chrono::Utc::now(),
        1.0,
        reports::record::InfraInfo::default(),
        &Search::new(anyway.search),
        Vec::new(),
        Vec::new(),
    );
    let b = record.baseline.expect("compared with the baseline");
    assert_eq!(
        b.settings_differences.len(),
        2,
        "{:?}",
        b.settings_differences
    );
    assert_eq!(record.settings.corpus, "small, seed 1");
    // An `auto` provider is compared once the cluster has started, not before.
    let (_auto_dir, docker) = baseline_with(GateSettings {
        provider: "docker".into(),
        ..plan(&args(&["--corpus", "small"]).unwrap())
            .unwrap()
            .settings
    });
    assert!(plan(&args(&["--corpus", "small", "--baseline", &docker]).unwrap()).is_ok());
    let mut started = plan(&args(&["--corpus", "small", "--baseline", &docker]).unwrap()).unwrap();
    started.settings.provider = "local".into();
    let problems = baseline_refusal(&started).expect("docker baseline, local gate");
    assert!(
        problems[0].contains("provider: this gate local, the baseline docker"),
        "{problems:?}"
    );
}
