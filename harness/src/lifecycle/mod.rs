//! One run lifecycle shared by `scenario`, `drill`, `check`, `gate` and the child
//! generators: the infrastructure chosen and started (`start.rs`, with the corpus cache) or
//! an existing deployment probed (`target.rs`), the work run on it and cut short by Ctrl-C,
//! the teardown whatever came of the work, the run directory written and printed
//! (`console.rs`), and the verdict as an exit code. The command files turn arguments into
//! plans and print what is theirs; everything between is here.

pub mod console;
pub mod start;
pub mod target;

use std::path::{Path, PathBuf};

use reports::RunRecord;

use crate::error::{HarnessError, exit};
use crate::infra::Infra;
use crate::plan::RunPlan;
use crate::run::{self, RunOutcome};

pub use start::{start_infra, start_infra_with_corpus};

/// Runs `work` on `infra` (cut short by Ctrl-C), then tears `infra` down whatever came of the
/// work; the work's error comes first, then the teardown's.
pub async fn on_cluster<T>(
    infra: Box<dyn Infra>,
    work: impl AsyncFnOnce(&dyn Infra) -> Result<T, HarnessError>,
) -> Result<T, HarnessError> {
    let outcome = tokio::select! {
        result = work(infra.as_ref()) => result,
        _ = tokio::signal::ctrl_c() => Err(HarnessError::Interrupted),
    };
    let mut infra = infra;
    let torn_down = tokio::task::spawn_blocking(move || infra.teardown())
        .await
        .map_err(|e| HarnessError::Internal(e.to_string()))?;
    let outcome = outcome?;
    torn_down?;
    Ok(outcome)
}

/// Runs `plan` on `infra`, tears it down, writes the run directory (default
/// `reports/runs/<timestamp>-<plan name>/`), prints it and returns the verdict's exit code.
pub async fn execute(
    plan: &RunPlan,
    infra: Box<dyn Infra>,
    out: Option<PathBuf>,
) -> Result<u8, HarnessError> {
    let out = out.unwrap_or_else(|| default_out_dir(&plan.name));
    let outcome = on_cluster(infra, async |infra| run::run(plan, infra).await).await?;
    write_outcome(&out, &outcome)?;
    console::print_run(&out, &outcome.record);
    Ok(exit::of(outcome.record.verdict))
}

/// The run directory of `outcome`: the record, `ledger.jsonl` (every upload the writer
/// invoked, one JSON object a line) when there was a writer, and the workloads' own files.
fn write_outcome(out: &Path, outcome: &RunOutcome) -> Result<(), HarnessError> {
    reports::store::write_run_dir(out, &outcome.record)?;
    if !outcome.ledger.is_empty() {
        let mut text = String::new();
        for entry in &outcome.ledger {
            text.push_str(
                &serde_json::to_string(entry).map_err(|e| HarnessError::Internal(e.to_string()))?,
            );
            text.push('\n');
        }
        std::fs::write(out.join("ledger.jsonl"), text)?;
    }
    for (name, content) in &outcome.files {
        std::fs::write(out.join(name), content)?;
    }
    Ok(())
}

/// Writes the run directory of `record` (a merge's) and prints it.
pub fn write_and_print(out: &Path, record: &RunRecord) -> Result<(), HarnessError> {
    reports::store::write_run_dir(out, record)?;
    console::print_run(out, record);
    Ok(())
}

/// `reports/runs/<timestamp>-<name>/`: where a run directory goes unless `--out` says.
pub fn default_out_dir(name: &str) -> PathBuf {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    PathBuf::from("reports/runs").join(format!("{stamp}-{name}"))
}
