//! `harness gate`: the nightly capacity gate. Starts one cluster, then runs the scenario at
//! the rates the search asks for — each step a [`RunPlan`](crate::plan::RunPlan) through
//! [`run::run`](crate::run::run), its run directory kept under `steps/` — until the capacity
//! is bracketed; adds windows at the reference rate, runs the HA checklist before and after,
//! compares with the baseline, and writes `gate.json` and `gate.html`. Before the first step
//! a warm-up (`--warm-up`) runs the scenario unjudged. Exit code 0 pass, 1 below `--min` / a regression / an invalid
//! cluster, 2 a baseline measured with other settings (unless `--baseline-any-settings`),
//! 3 infrastructure, 5 unknown. `plan.rs` turns the arguments into a [`GatePlan`], `steps.rs`
//! runs the steps on the cluster the [`lifecycle`](crate::lifecycle) started, `verdict.rs`
//! judges the gate record.

mod plan;
mod steps;
mod verdict;

use std::path::Path;
use std::time::Instant;

use reports::figures::format_per_day;
use reports::gate::GateRecord;

use crate::cli::GateArgs;
use crate::error::{HarnessError, exit};
use crate::lifecycle::{self, default_out_dir};

pub use plan::{ALWAYS_SLO, GatePlan, plan, slo};

/// Runs the gate end to end and returns the exit code.
pub async fn run(args: GateArgs) -> Result<u8, HarnessError> {
    let mut plan = plan(&args)?;
    let out = args.out.clone().unwrap_or_else(|| default_out_dir("gate"));
    let started_at = chrono::Utc::now();
    let began = Instant::now();
    let corpus = plan::step_plan(&plan.step, plan.search.min_per_day, false)?
        .installs_corpus()
        .cloned();
    let infra = lifecycle::start_infra_with_corpus(&plan.infra, corpus.as_ref()).await?;
    // `--infra auto` names its provider only once started: its baseline check is here.
    plan.settings.provider = infra.info().provider;
    let plan = &plan;
    let ((search, steps, checklist), info) = lifecycle::on_cluster(infra, async |infra| {
        if let Some(problems) = plan::baseline_refusal(plan) {
            return Err(HarnessError::Config(problems));
        }
        let done = steps::steps(plan, infra, &out).await?;
        Ok((done, infra.info()))
    })
    .await?;

    let record = verdict::judge(
        plan,
        started_at,
        began.elapsed().as_secs_f64(),
        info,
        &search,
        steps,
        checklist,
    );
    record.write(&out)?;
    print(&record, &out);
    Ok(exit::of(record.verdict))
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
mod tests;
