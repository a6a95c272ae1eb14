//! `harness gate`: the nightly capacity gate. Starts one cluster, then runs the scenario at
//! the rates the search asks for — each step a [`RunPlan`] through [`run::run`], its run
//! directory kept under `steps/` — until the capacity is bracketed; adds windows at the
//! reference rate, runs the HA checklist before and after, compares with the baseline, and
//! writes `gate.json` and `gate.html`. Before the first step a warm-up (`--warm-up`) runs
//! the scenario unjudged. Exit code 0 pass, 1 below `--min` / a regression / an invalid
//! cluster, 2 a baseline measured with other settings (unless `--baseline-any-settings`),
//! 3 infrastructure, 5 unknown.

use std::path::{Path, PathBuf};
use std::time::Instant;

use reports::Verdict;
use reports::figures::format_per_day;
use reports::gate::{
    BaselineComparison, CapacityBound, GATE_FORMAT_VERSION, GateRecord, GateSettings, GateStep,
    ReferenceLatency, StepPurpose,
};
use reports::record::{CheckerResult, Validity};
use reports::summary::Summary;

use crate::cli::{GateArgs, ScenarioArgs};
use crate::error::{HarnessError, exit};
use crate::gate::{Search, SearchConfig, baseline, saturation};
use crate::infra::Infra;
use crate::plan::{CorpusSource, InfraPlan, RunPlan};
use crate::run::{self, DEFAULT_THRESHOLDS};

/// What every step must hold whatever `--slo` adds: no failed install, and the rate offered
/// achieved (a step cannot "hold" a rate the generator never reached).
pub const ALWAYS_SLO: &[&str] = &["install:error_rate<=0", "install:rate_ratio>=0.99"];

/// What the gate does, built once from its arguments.
#[derive(Clone, Debug)]
pub struct GatePlan {
    pub infra: InfraPlan,
    pub settings: GateSettings,
    pub search: SearchConfig,
    /// The arguments of one step's scenario; the rate is set per step.
    step: ScenarioArgs,
    /// The baseline records (path, record), read before anything starts.
    pub baseline: Vec<(String, GateRecord)>,
    /// Compare with a baseline whose settings differ (`--baseline-any-settings`).
    pub baseline_any_settings: bool,
}

/// Runs the gate end to end and returns the exit code.
pub async fn run(args: GateArgs) -> Result<u8, HarnessError> {
    let plan = plan(&args)?;
    let out = args.out.clone().unwrap_or_else(|| {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        PathBuf::from("reports/runs").join(format!("{stamp}-gate"))
    });
    let started_at = chrono::Utc::now();
    let began = Instant::now();
    let corpus = step_plan(&plan.step, plan.search.min_per_day, false)?
        .installs_corpus()
        .cloned();
    let mut infra = super::scenario::start_infra_with_corpus(&plan.infra, corpus.as_ref()).await?;
    let mut plan = plan;
    // `--infra auto` names its provider only once started: its baseline check is here.
    plan.settings.provider = infra.info().provider;
    let refused = baseline_refusal(&plan);
    let outcome = match refused {
        Some(problems) => Err(HarnessError::Config(problems)),
        None => tokio::select! {
            result = steps(&plan, infra.as_ref(), &out) => result,
            _ = tokio::signal::ctrl_c() => Err(HarnessError::Interrupted),
        },
    };
    let info = infra.info();
    let torn_down = tokio::task::spawn_blocking(move || infra.teardown())
        .await
        .map_err(|e| HarnessError::Internal(e.to_string()))?;
    let (search, steps, checklist) = outcome?;
    torn_down?;

    let record = judge(
        &plan,
        started_at,
        began.elapsed().as_secs_f64(),
        info,
        &search,
        steps,
        checklist,
    );
    record.write(&out)?;
    print(&record, &out);
    Ok(match record.verdict {
        Verdict::Pass => exit::PASS,
        Verdict::Fail => exit::THRESHOLD_FAILED,
        Verdict::Unknown => exit::UNKNOWN,
    })
}

/// The arguments as a plan; every problem at once. Reads the baseline, so a missing or
/// unreadable one is refused before a cluster starts.
pub fn plan(args: &GateArgs) -> Result<GatePlan, HarnessError> {
    let mut problems = Vec::new();
    let search = SearchConfig {
        min_per_day: args.min,
        max_per_day: args.max,
        resolution: args.resolution,
        confirmations: 2,
        max_steps: args.max_steps,
    };
    problems.extend(search.validate());
    if !(args.reference_rate.is_finite() && args.reference_rate > 0.0) {
        problems.push("--reference-rate must be a positive rate".into());
    }
    let step_duration: std::time::Duration = args.step_duration.into();
    if step_duration.as_secs_f64() < 1.0 {
        problems.push("--step-duration must be at least 1s".into());
    }
    if args.scenario == crate::cli::ScenarioName::Reference {
        problems.push(
            "the gate searches the read load's capacity: --scenario reference runs the git \
             builders and the upload writer beside it; use daily-installs"
                .into(),
        );
    }
    let slo = slo(&args.slo);
    let step = step_args(args, &slo)?;
    // The step plan at both bounds: bad SLO expressions and impossible loads show here.
    let mut infra = None;
    for rate in [args.min, args.max] {
        match step_plan(&step, rate, false) {
            Ok(p) => infra = Some(p.infra),
            Err(HarnessError::Config(errors)) => problems.extend(errors),
            Err(other) => return Err(other),
        }
    }
    let mut seen = std::collections::HashSet::new();
    problems.retain(|p| seen.insert(p.clone()));
    let baseline = match &args.baseline {
        Some(path) => match read_baseline(path) {
            Ok(records) => records,
            Err(error) => {
                problems.push(error);
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    let Some(infra) = infra.filter(|_| problems.is_empty()) else {
        return Err(HarnessError::Config(problems));
    };
    let plan = GatePlan {
        settings: GateSettings {
            slo,
            min_per_day: args.min,
            max_per_day: args.max,
            resolution: args.resolution,
            step_duration_s: step_duration.as_secs_f64(),
            confirmations: search.confirmations,
            reference_per_day: args.reference_rate,
            max_regression: args.max_regression,
            max_cost_regression: args.max_cost_regression,
            corpus: corpus_setting(args),
            nodes: args.nodes,
            // Known before the start only when named; `auto` is settled once started.
            provider: match infra.kind {
                crate::plan::InfraKind::Local => "local".into(),
                crate::plan::InfraKind::Docker => "docker".into(),
                crate::plan::InfraKind::Auto => String::new(),
            },
            cpu_model: cpu_model(),
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            warm_up_s: std::time::Duration::from(args.warm_up).as_secs_f64(),
        },
        infra,
        search,
        step,
        baseline,
        baseline_any_settings: args.baseline_any_settings,
    };
    // Refused before a cluster starts: every setting but an `auto` provider is known now.
    match baseline_refusal(&plan) {
        Some(problems) => Err(HarnessError::Config(problems)),
        None => Ok(plan),
    }
}

/// The SLO every step holds: [`ALWAYS_SLO`], then `--slo`'s expressions (or, without any, the
/// scenario's per-kind p99s), each once.
pub fn slo(extra: &[String]) -> Vec<String> {
    let added: Vec<String> = if extra.is_empty() {
        DEFAULT_THRESHOLDS.iter().map(|s| s.to_string()).collect()
    } else {
        extra.to_vec()
    };
    let mut slo: Vec<String> = ALWAYS_SLO.iter().map(|s| s.to_string()).collect();
    for expr in added {
        if !slo
            .iter()
            .any(|s| s.replace(' ', "") == expr.replace(' ', ""))
        {
            slo.push(expr);
        }
    }
    slo
}

/// The corpus as the gate record names it: the preset with whatever the flags changed.
fn corpus_setting(args: &GateArgs) -> String {
    use clap::ValueEnum;
    let corpus = &args.corpus;
    let mut text = corpus
        .preset
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default();
    if let Some(share) = corpus.r_share {
        text.push_str(&format!(", R share {share}"));
    }
    if let Some(packages) = corpus.packages {
        text.push_str(&format!(", {packages} packages"));
    }
    if let Some(bytes) = corpus.size_median_bytes {
        text.push_str(&format!(", median file {bytes} B"));
    }
    if let Some(bytes) = corpus.size_max_bytes {
        text.push_str(&format!(", files up to {bytes} B"));
    }
    text.push_str(&format!(", seed {}", args.seed));
    text
}

/// The machine's CPU model, from `/proc/cpuinfo` (`unknown` where it says none).
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|rest| rest.split_once(':'))
                .map(|(_, model)| model.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Why the baseline cannot be compared with this gate: every record whose settings differ,
/// with the differences; `None` when they match or `--baseline-any-settings` was given. A
/// provider still unknown (`--infra auto` before its start) is not compared yet.
fn baseline_refusal(plan: &GatePlan) -> Option<Vec<String>> {
    if plan.baseline_any_settings {
        return None;
    }
    let problems: Vec<String> = plan
        .baseline
        .iter()
        .filter_map(|(path, record)| {
            let mut theirs = record.settings.clone();
            if plan.settings.provider.is_empty() {
                theirs.provider.clear();
            }
            let differences = plan.settings.differences(&theirs);
            (!differences.is_empty()).then(|| {
                format!(
                    "--baseline {path} was measured with other settings ({}): its figures \
                     say nothing about this gate's; give a baseline from the same settings, \
                     or --baseline-any-settings to compare anyway",
                    differences.join("; ")
                )
            })
        })
        .collect();
    (!problems.is_empty()).then_some(problems)
}

/// The scenario arguments of every step (the rate is set per step), parsed as `harness
/// scenario` would parse them so that every other option keeps its scenario default.
fn step_args(args: &GateArgs, slo: &[String]) -> Result<ScenarioArgs, HarnessError> {
    use clap::{Parser, ValueEnum};
    let name = |v: Option<clap::builder::PossibleValue>| {
        v.map(|v| v.get_name().to_owned()).unwrap_or_default()
    };
    let mut argv: Vec<String> = vec![
        "harness".into(),
        "scenario".into(),
        name(args.scenario.to_possible_value()),
        "--infra".into(),
        name(args.infra.to_possible_value()),
        "--nodes".into(),
        args.nodes.to_string(),
        "--duration".into(),
        args.step_duration.to_string(),
        "--installs-per-day".into(),
        args.min.to_string(),
        "--corpus".into(),
        name(args.corpus.preset.to_possible_value()),
        "--seed".into(),
        args.seed.to_string(),
    ];
    let corpus = &args.corpus;
    if let Some(share) = corpus.r_share {
        argv.push(format!("--r-share={share}"));
    }
    if let Some(packages) = corpus.packages {
        argv.push(format!("--packages={packages}"));
    }
    if let Some(bytes) = corpus.size_median_bytes {
        argv.push(format!("--size-median-bytes={bytes}"));
    }
    if let Some(bytes) = corpus.size_max_bytes {
        argv.push(format!("--size-max-bytes={bytes}"));
    }
    if let Some(dir) = &corpus.corpus_cache {
        argv.push(format!("--corpus-cache={}", dir.display()));
    }
    if corpus.no_corpus_cache {
        argv.push("--no-corpus-cache".into());
    }
    for threshold in slo {
        argv.push(format!("--threshold={threshold}"));
    }
    if let Some(dir) = &args.keep_work_dir {
        argv.push(format!("--keep-work-dir={}", dir.display()));
    }
    if args.quiet {
        argv.push("--quiet".into());
    }
    match crate::cli::Cli::try_parse_from(argv) {
        Ok(crate::cli::Cli {
            command: crate::cli::Command::Scenario(step),
        }) => Ok(*step),
        Ok(_) => Err(HarnessError::Internal(
            "a step parsed as another command".into(),
        )),
        Err(e) => Err(HarnessError::Config(vec![e.to_string()])),
    }
}

/// One step's plan: the scenario at `per_day`, without the per-run HA checklist (the gate
/// runs it once before the first step and once after the last). The first step publishes the
/// corpus (or finds it restored from the cache); later ones find it `published` already.
fn step_plan(step: &ScenarioArgs, per_day: f64, published: bool) -> Result<RunPlan, HarnessError> {
    let mut args = step.clone();
    args.load.installs_per_day = per_day;
    let mut plan = super::plan::scenario(&args)?;
    plan.name = format!("gate-{}", plan.name);
    plan.ha_checklist = false;
    if published {
        plan.generators.corpus = CorpusSource::Served;
    }
    Ok(plan)
}

/// `path` itself, or every `gate.json` under the directory `path` (any depth).
fn read_baseline(path: &Path) -> Result<Vec<(String, GateRecord)>, String> {
    let mut files = Vec::new();
    if path.is_dir() {
        let mut dirs = vec![path.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            let entries = std::fs::read_dir(&dir)
                .map_err(|e| format!("--baseline {}: {e}", dir.display()))?;
            for entry in entries.flatten() {
                let p = entry.path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.file_name().is_some_and(|n| n == "gate.json") {
                    files.push(p);
                }
            }
        }
        if files.is_empty() {
            return Err(format!(
                "--baseline {}: no gate.json under this directory",
                path.display()
            ));
        }
    } else {
        files.push(path.to_path_buf());
    }
    files.sort();
    files
        .into_iter()
        .map(|f| {
            GateRecord::read(&f)
                .map(|r| (f.display().to_string(), r))
                .map_err(|e| format!("--baseline: {e}"))
        })
        .collect()
}

/// Runs the search's steps, then the reference windows, with the HA checklist before and
/// after; returns the search, the steps and the checklist results.
async fn steps(
    plan: &GatePlan,
    infra: &dyn Infra,
    out: &Path,
) -> Result<(Search, Vec<GateStep>, Vec<CheckerResult>), HarnessError> {
    let mut checklist = vec![run::ha_checklist(infra, "ha-checklist-at-start").await];
    let warmed = plan.settings.warm_up_s > 0.0;
    if warmed {
        warm_up(plan, infra, out).await?;
    }
    let mut search = Search::new(plan.search);
    let mut steps = Vec::new();
    while let Some(probe) = search.next() {
        let step = one_step(
            plan,
            infra,
            out,
            steps.len() + 1,
            probe.per_day,
            probe.purpose,
            warmed,
        )
        .await?;
        search.record(step.passed);
        steps.push(step);
    }
    let reference = plan.settings.reference_per_day;
    let confirmations = plan.search.confirmations as usize;
    while steps.iter().filter(|s| s.per_day == reference).count() < confirmations {
        let step = one_step(
            plan,
            infra,
            out,
            steps.len() + 1,
            reference,
            StepPurpose::Reference,
            warmed,
        )
        .await?;
        steps.push(step);
    }
    checklist.push(run::ha_checklist(infra, "ha-checklist-at-end").await);
    Ok((search, steps, checklist))
}

/// The warm-up: the scenario at the reference rate for `--warm-up`, publishing the corpus (or
/// finding it restored), its run directory kept as `warm-up/` and its verdict not judged:
/// the first load after publishing meets cold views, caches and buffers, and one cold step
/// must not decide a gate.
async fn warm_up(plan: &GatePlan, infra: &dyn Infra, out: &Path) -> Result<(), HarnessError> {
    let mut args = plan.step.clone();
    args.load.duration = std::time::Duration::from_secs_f64(plan.settings.warm_up_s).into();
    let run_plan = step_plan(&args, plan.settings.reference_per_day, false)?;
    eprintln!(
        "harness: gate warm-up: {} installs/day for {:.0} s, not judged",
        format_per_day(plan.settings.reference_per_day),
        plan.settings.warm_up_s
    );
    let record = run::run(&run_plan, infra).await?.record;
    reports::store::write_run_dir(out.join("warm-up"), &record)?;
    Ok(())
}

/// Runs the scenario once at `per_day`, keeps its run directory under `steps/`, and
/// summarizes it. The corpus is published by the warm-up, else by the first step.
async fn one_step(
    plan: &GatePlan,
    infra: &dyn Infra,
    out: &Path,
    index: usize,
    per_day: f64,
    purpose: StepPurpose,
    warmed: bool,
) -> Result<GateStep, HarnessError> {
    let run_plan = step_plan(&plan.step, per_day, warmed || index > 1)?;
    eprintln!(
        "harness: gate step {index} ({}): {} installs/day for {:.0} s",
        purpose.as_str(),
        format_per_day(per_day),
        plan.settings.step_duration_s
    );
    let outcome = run::run(&run_plan, infra).await?;
    let record = outcome.record;
    let run_dir = format!("steps/{index:02}-{}", per_day.round() as u64);
    reports::store::write_run_dir(out.join(&run_dir), &record)?;
    let summary = Summary::from_record(&record);
    let failed_slo: Vec<String> = record
        .thresholds
        .iter()
        .filter(|t| !t.passed)
        .map(|t| format!("{}: {}", t.expr, t.observed_text))
        .collect();
    let step = GateStep {
        index,
        per_day,
        purpose,
        offered_per_s: summary.rate.target_per_s,
        achieved_per_s: summary.rate.achieved_per_s,
        passed: record.verdict == Verdict::Pass,
        failed_slo,
        installs: summary.installs.clone(),
        latency_ms: summary.latency_ms.clone(),
        cpu_mean_pct: saturation::cpu_means(&record.samples),
        cluster_cpu: summary.cluster_cpu.clone(),
        warnings: summary.warnings.clone(),
        run_dir,
    };
    eprintln!(
        "harness: gate step {index}: {} — p99 {} ms, achieved {:.2}/s of {:.2}/s{}",
        if step.passed { "held" } else { "FAILED" },
        step.overall_p99_ms()
            .map(|v| format!("{v:.1}"))
            .unwrap_or_else(|| "-".into()),
        step.achieved_per_s,
        step.offered_per_s,
        if step.failed_slo.is_empty() {
            String::new()
        } else {
            format!(" ({})", step.failed_slo.join("; "))
        }
    );
    Ok(step)
}

/// The gate record with its verdict and the reasons for it.
fn judge(
    plan: &GatePlan,
    started_at: chrono::DateTime<chrono::Utc>,
    duration_s: f64,
    infra: reports::record::InfraInfo,
    search: &Search,
    steps: Vec<GateStep>,
    checklist: Vec<CheckerResult>,
) -> GateRecord {
    let capacity = search.capacity();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let saturation = saturation::step_above_knee(&steps)
        .and_then(|s| saturation::saturated(&s.cpu_mean_pct, s.index, s.per_day, cores));
    let at_reference: Vec<&GateStep> = steps
        .iter()
        .filter(|s| s.per_day == plan.settings.reference_per_day)
        .collect();
    let reference = ReferenceLatency {
        per_day: plan.settings.reference_per_day,
        windows: at_reference.iter().map(|s| s.latency_ms.clone()).collect(),
        cpu_ms_per_install: at_reference
            .iter()
            .filter_map(|s| s.cluster_cpu.as_ref().map(|c| c.ms_per_install))
            .collect(),
    };
    let baseline: Option<BaselineComparison> = (!plan.baseline.is_empty()).then(|| {
        baseline::compare(
            capacity.per_day,
            capacity.bound,
            &reference,
            &plan.baseline,
            plan.settings.max_regression,
            plan.settings.max_cost_regression,
        )
    });
    let baseline = baseline.map(|mut b| {
        b.settings_differences = b
            .settings
            .as_ref()
            .map(|theirs| plan.settings.differences(theirs))
            .unwrap_or_default();
        b
    });

    let mut verdict = Verdict::Pass;
    let mut reasons = Vec::new();
    match capacity.bound {
        CapacityBound::BelowMin => {
            verdict = Verdict::Fail;
            reasons.push(format!(
                "the SLO failed at the lower bound {}: the cluster does not sustain it",
                format_per_day(plan.settings.min_per_day)
            ));
        }
        CapacityBound::AtLeastMax => reasons.push(format!(
            "the upper bound {} held twice: the capacity is at least that (raise --max to find it)",
            format_per_day(plan.settings.max_per_day)
        )),
        CapacityBound::Between => reasons.push(format!(
            "{} held the SLO twice in a row; {} failed it",
            capacity.per_day.map(format_per_day).unwrap_or_default(),
            capacity
                .lowest_failed_per_day
                .map(format_per_day)
                .unwrap_or_default()
        )),
    }
    if search.out_of_steps() {
        reasons.push(format!(
            "the search stopped at --max-steps {} before the bracket closed to {:.0}%",
            plan.search.max_steps,
            plan.settings.resolution * 100.0
        ));
    }
    for c in &checklist {
        match c.validity {
            Validity::Valid | Validity::NotApplicable => {}
            Validity::Invalid => {
                verdict = verdict.and(Verdict::Fail);
                reasons.push(format!(
                    "{}: {} (an invalid HA cluster cannot pass)",
                    c.name, c.summary
                ));
            }
            Validity::Unknown => {
                verdict = verdict.and(Verdict::Unknown);
                reasons.push(format!("{}: {}", c.name, c.summary));
            }
        }
    }
    if let Some(b) = &baseline {
        if b.regressed {
            verdict = verdict.and(Verdict::Fail);
            reasons.push("regression against the baseline:".into());
        } else {
            reasons.push("no regression against the baseline:".into());
        }
        if let Some(last) = reasons.last_mut() {
            last.push(' ');
            last.push_str(&b.findings.join("; "));
        }
    }
    GateRecord {
        format_version: GATE_FORMAT_VERSION,
        scenario: plan.step.name.as_str().into(),
        started_at,
        duration_s,
        infra,
        settings: plan.settings.clone(),
        steps,
        capacity,
        saturation,
        reference,
        checklist,
        baseline,
        verdict,
        reasons,
    }
}

fn print(record: &GateRecord, out: &Path) {
    println!("capacity: {}", reports::gate::page::capacity_phrase(record));
    for s in &record.steps {
        println!(
            "  {:>2} {:<9} {:>9}  {}  p99 {:>8} ms{}",
            s.index,
            s.purpose.as_str(),
            format_per_day(s.per_day),
            if s.passed { "✓ held  " } else { "✗ failed" },
            s.overall_p99_ms()
                .map(|v| format!("{v:.1}"))
                .unwrap_or_else(|| "-".into()),
            if s.failed_slo.is_empty() {
                String::new()
            } else {
                format!("  {}", s.failed_slo.join("; "))
            }
        );
    }
    if let Some(s) = &record.saturation {
        println!(
            "saturated at step {}: {} ({:.0}% CPU); {}",
            s.step_index, s.process, s.cpu_pct, s.note
        );
    }
    for reason in &record.reasons {
        println!("  {reason}");
    }
    println!("verdict: {}", record.verdict.as_str().to_uppercase());
    println!("gate: {}", out.join("gate.html").display());
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

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
        let mut started =
            plan(&args(&["--corpus", "small", "--baseline", &docker]).unwrap()).unwrap();
        started.settings.provider = "local".into();
        let problems = baseline_refusal(&started).expect("docker baseline, local gate");
        assert!(
            problems[0].contains("provider: this gate local, the baseline docker"),
            "{problems:?}"
        );
    }
}
