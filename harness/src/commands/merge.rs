//! `harness merge DIR… --out DIR`: the run records of several load generators of one run
//! (slices of one schedule, with one `--start-at`) merged losslessly into one record, whose
//! thresholds are judged over the merge.

use reports::ThresholdSet;

use crate::cli::MergeArgs;
use crate::error::{HarnessError, exit};
use crate::lifecycle;

/// Merges, judges, writes the merged run directory and returns the verdict's exit code.
pub fn run(args: &MergeArgs) -> Result<u8, HarnessError> {
    let records = args
        .dirs
        .iter()
        .map(|dir| {
            reports::store::read_run_dir(dir).map_err(|e| {
                HarnessError::Config(vec![format!("{}: not a run directory: {e}", dir.display())])
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut merged = crate::run::generators::merge(&records)?
        .ok_or_else(|| HarnessError::Config(vec!["no run directory to merge".into()]))?;
    // The thresholds asked for, else those the first record was judged with.
    let exprs: Vec<String> = if args.thresholds.is_empty() {
        records[0]
            .thresholds
            .iter()
            .map(|t| t.expr.clone())
            .collect()
    } else {
        args.thresholds.clone()
    };
    let thresholds = ThresholdSet::parse_all(&exprs)
        .map_err(|errors| HarnessError::Config(errors.iter().map(ToString::to_string).collect()))?;
    if let Some(config) = merged.meta.config.as_object_mut() {
        config.insert("generators".into(), records.len().into());
        config.insert(
            "merged_from".into(),
            args.dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .into(),
        );
    }
    merged.judge(&thresholds);
    lifecycle::write_and_print(&args.out, &merged)?;
    Ok(exit::of(merged.verdict))
}
