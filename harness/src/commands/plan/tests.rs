//! The plans the command line makes: thresholds, workloads, checkers and names.

use super::*;
use crate::checkers::CheckerKind;
use crate::error::HarnessError;
use crate::plan::{RunPlan, WorkloadPlan};
use crate::run::DEFAULT_THRESHOLDS;
use clap::Parser;
use std::time::Duration;

fn parsed(argv: &[&str]) -> crate::cli::Command {
    let argv = ["harness"].iter().chain(argv).copied();
    crate::cli::Cli::try_parse_from(argv)
        .expect("arguments parse")
        .command
}

#[test]
fn a_drill_holds_the_scenarios_thresholds_outside_its_faults_and_needs_installs_in_them() {
    let crate::cli::Command::Drill(args) = parsed(&["drill", "kill-node"]) else {
        panic!("not a drill");
    };
    let plan = drill(&args).unwrap();
    let exprs: Vec<&str> = plan
        .thresholds
        .thresholds
        .iter()
        .map(|t| t.expr.as_str())
        .collect();
    assert_eq!(exprs, DEFAULT_THRESHOLDS);
    assert_eq!(
        plan.thresholds.outside_faults_grace_s,
        Some(crate::checkers::availability::GRACE_S)
    );
    assert_eq!(plan.availability.min_installs_per_window, 20);

    let crate::cli::Command::Drill(args) = parsed(&[
        "drill",
        "kill-node",
        "--min-installs-per-window",
        "50",
        "--threshold",
        "p99<1s",
    ]) else {
        panic!("not a drill");
    };
    let plan = drill(&args).unwrap();
    assert_eq!(plan.availability.min_installs_per_window, 50);
    assert_eq!(plan.thresholds.thresholds.len(), 1);
    assert!(plan.thresholds.outside_faults_grace_s.is_some());

    // A plain scenario is judged over the whole run.
    let crate::cli::Command::Scenario(args) = parsed(&["scenario", "daily-installs"]) else {
        panic!("not a scenario");
    };
    assert_eq!(
        scenario(&args).unwrap().thresholds.outside_faults_grace_s,
        None
    );
}

fn names(plan: &RunPlan) -> Vec<&'static str> {
    plan.workloads.iter().map(WorkloadPlan::name).collect()
}

#[test]
fn the_reference_is_the_reads_the_writer_and_bursting_builders_on_one_cluster() {
    let crate::cli::Command::Scenario(args) = parsed(&["scenario", "reference"]) else {
        panic!("not a scenario");
    };
    let plan = scenario(&args).unwrap();
    assert_eq!(names(&plan), ["installs", "uploads", "git-builders"]);
    let git = plan.git_builders().unwrap();
    assert_eq!((git.builders, git.burst), (100, true));
    let reads = plan.installs().unwrap();
    assert_eq!(reads.arrival.installs_per_day, 1_000_000.0);
    // The reads and the writer go on through the builders' grace: one run time.
    assert_eq!(plan.run_time(), Duration::from_secs(90 + 60));
    assert_eq!(reads.arrival.wall_duration(), plan.run_time());
    assert_eq!(plan.uploads().unwrap().duration, plan.run_time());
    assert_eq!(plan.uploads().unwrap().writes_per_s, DEFAULT_WRITES_PER_S);
    assert!(plan.infra.git_server && plan.infra.auto_prefers_docker);
    assert_eq!(
        plan.checkers,
        [CheckerKind::LostWrites, CheckerKind::Builds]
    );
    let exprs: Vec<&str> = (plan.thresholds.thresholds.iter())
        .map(|t| t.expr.as_str())
        .collect();
    let expected: Vec<&str> = DEFAULT_THRESHOLDS
        .iter()
        .chain(GIT_BUILDERS_THRESHOLDS)
        .copied()
        .collect();
    assert_eq!(exprs, expected);

    // A threshold of the reads replaces theirs and keeps the builders' defaults.
    let crate::cli::Command::Scenario(args) = parsed(&[
        "scenario",
        "reference",
        "--threshold",
        "p99<200ms",
        "--writes-per-s",
        "5",
    ]) else {
        panic!("not a scenario");
    };
    let plan = scenario(&args).unwrap();
    let exprs: Vec<&str> = (plan.thresholds.thresholds.iter())
        .map(|t| t.expr.as_str())
        .collect();
    let mut expected = vec!["p99<200ms"];
    expected.extend(GIT_BUILDERS_THRESHOLDS);
    assert_eq!(exprs, expected);
    assert_eq!(plan.uploads().unwrap().writes_per_s, 5.0);

    // The writer's rate is the reference's alone; the reference needs a Git server.
    let crate::cli::Command::Scenario(args) =
        parsed(&["scenario", "daily-installs", "--writes-per-s", "5"])
    else {
        panic!("not a scenario");
    };
    assert!(matches!(scenario(&args), Err(HarnessError::Config(_))));
    let crate::cli::Command::Scenario(args) = parsed(&[
        "scenario",
        "reference",
        "--target",
        "http://127.0.0.1:4242",
        "--token",
        "t",
    ]) else {
        panic!("not a scenario");
    };
    assert!(matches!(scenario(&args), Err(HarnessError::Config(_))));
}

#[test]
fn a_drill_runs_the_list_of_workloads_it_is_given() {
    let drill_of = |extra: &[&str]| {
        let mut argv = vec!["drill", "kill-node"];
        argv.extend(extra);
        let crate::cli::Command::Drill(args) = parsed(&argv) else {
            panic!("not a drill");
        };
        drill(&args).unwrap()
    };
    // The default and the old spelling: the reads and the writer.
    for plan in [drill_of(&[]), drill_of(&["--workload", "daily-installs"])] {
        assert_eq!(names(&plan), ["installs", "uploads"]);
        assert_eq!(plan.name, "drill-kill-node");
        assert_eq!(
            plan.checkers,
            [
                CheckerKind::LostWrites,
                CheckerKind::Availability,
                CheckerKind::ClusterStatus
            ]
        );
        assert!(!plan.infra.git_server);
    }
    let plan = drill_of(&["--workload", "git-builders"]);
    assert_eq!(names(&plan), ["git-builders"]);
    assert_eq!(plan.name, "drill-kill-node-git-builders");
    assert_eq!(
        plan.checkers,
        [CheckerKind::Builds, CheckerKind::ClusterStatus]
    );
    assert_eq!(plan.thresholds.outside_faults_grace_s, None);

    let plan = drill_of(&["--workload", "installs,git-builders"]);
    assert_eq!(names(&plan), ["installs", "uploads", "git-builders"]);
    assert_eq!(plan.name, "drill-kill-node-installs-git-builders");
    assert!(plan.infra.git_server);
    assert!(plan.infra.node_config_extra.contains("lease_duration"));
    assert_eq!(
        plan.checkers,
        [
            CheckerKind::LostWrites,
            CheckerKind::Availability,
            CheckerKind::Builds,
            CheckerKind::ClusterStatus
        ]
    );
    // The reads hold theirs outside the faults, the builders keep theirs.
    assert!(plan.thresholds.outside_faults_grace_s.is_some());
    assert_eq!(
        plan.thresholds.thresholds.len(),
        DEFAULT_THRESHOLDS.len() + GIT_BUILDERS_THRESHOLDS.len()
    );
    assert_eq!(
        plan.installs().unwrap().arrival.wall_duration(),
        plan.run_time()
    );

    // `reference` names the three together, as `scenario reference` runs them.
    let reference = drill_of(&["--workload", "reference"]);
    assert_eq!(names(&reference), ["installs", "uploads", "git-builders"]);
    assert_eq!(reference.checkers, plan.checkers);
    assert!(reference.infra.git_server);

    let plan = drill_of(&["--workload", "git-builders,uploads"]);
    assert_eq!(names(&plan), ["uploads", "git-builders"]);
    assert_eq!(plan.name, "drill-kill-node-uploads-git-builders");
}
