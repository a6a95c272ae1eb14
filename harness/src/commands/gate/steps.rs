//! The gate's steps on its one cluster: the HA checklist before, the unjudged warm-up, the
//! search's steps (each a [`RunPlan`](crate::plan::RunPlan) through [`run::run`], its run
//! directory under `steps/`), the windows at the reference rate, the checklist after.

use std::path::Path;

use reports::Verdict;
use reports::figures::format_per_day;
use reports::gate::{GateStep, StepPurpose};
use reports::record::CheckerResult;
use reports::summary::Summary;

use crate::error::HarnessError;
use crate::gate::{Search, saturation};
use crate::infra::Infra;
use crate::run::{self, checklist};

use super::plan::{GatePlan, step_plan};

/// Runs the search's steps, then the reference windows, with the HA checklist before and
/// after; returns the search, the steps and the checklist results.
pub(super) async fn steps(
    plan: &GatePlan,
    infra: &dyn Infra,
    out: &Path,
) -> Result<(Search, Vec<GateStep>, Vec<CheckerResult>), HarnessError> {
    let mut checklist = vec![checklist::ha_checklist(infra, "ha-checklist-at-start").await];
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
    checklist.push(checklist::ha_checklist(infra, "ha-checklist-at-end").await);
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
