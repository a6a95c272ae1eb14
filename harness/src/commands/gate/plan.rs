//! The gate's arguments as a [`GatePlan`]: the search, the SLO every step holds, the settings
//! a baseline is compared by, the baseline records (read before anything starts, and refused
//! when measured with other settings), and each step's scenario plan at its rate.

use std::path::Path;

use reports::gate::{GateRecord, GateSettings};

use crate::cli::{GateArgs, ScenarioArgs};
use crate::error::HarnessError;
use crate::gate::SearchConfig;
use crate::plan::{CorpusSource, InfraPlan, RunPlan};
use crate::run::DEFAULT_THRESHOLDS;

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
    pub(super) step: ScenarioArgs,
    /// The baseline records (path, record), read before anything starts.
    pub baseline: Vec<(String, GateRecord)>,
    /// Compare with a baseline whose settings differ (`--baseline-any-settings`).
    pub baseline_any_settings: bool,
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
pub(super) fn baseline_refusal(plan: &GatePlan) -> Option<Vec<String>> {
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
pub(super) fn step_plan(
    step: &ScenarioArgs,
    per_day: f64,
    published: bool,
) -> Result<RunPlan, HarnessError> {
    let mut args = step.clone();
    args.load.installs_per_day = per_day;
    let mut plan = crate::commands::plan::scenario(&args)?;
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
