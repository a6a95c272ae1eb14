//! `harness report DIR [--threshold …]`: re-render the HTML page and the summary from a run
//! record, judging it again by other thresholds when they are given; the exit code is the
//! (new) verdict's.

use std::path::Path;

use reports::ThresholdSet;

use crate::error::{HarnessError, exit};

/// Re-judges (when `thresholds` or `thresholds_file` give any), re-renders, prints the verdict
/// and returns its exit code.
pub fn run(
    dir: &Path,
    thresholds: &[String],
    thresholds_file: Option<&Path>,
) -> Result<u8, HarnessError> {
    let rejudge = rejudge_by(thresholds, thresholds_file)?;
    let mut record = reports::store::read_run_dir(dir)?;
    // A drill's thresholds are judged outside its fault windows plus the grace, as the drill
    // judged them: latency inside a fault is the drill's subject, failures there are the
    // availability checker's.
    let drill = record
        .events
        .iter()
        .any(|e| e.kind == reports::record::EventKind::Fault);
    let rejudge = rejudge.map(|mut set| {
        if drill {
            set.outside_faults_grace_s = Some(crate::checkers::availability::GRACE_S);
        }
        set
    });
    if let Some(set) = &rejudge {
        record.judge(set);
        // The page and the summary show the new judgement; record.json keeps the run's own.
        write_derived(dir, &record)?;
        for t in &record.thresholds {
            println!("  {} {:<28} observed {}", t.mark(), t.expr, t.observed_text);
        }
    } else {
        rerender(dir)?;
    }
    println!("report: {}", dir.join("report.html").display());
    println!("verdict: {}", record.verdict.as_str().to_uppercase());
    Ok(exit::of(record.verdict))
}

/// The thresholds to judge by, or `None` to keep the record's own judgement.
fn rejudge_by(
    thresholds: &[String],
    thresholds_file: Option<&Path>,
) -> Result<Option<ThresholdSet>, HarnessError> {
    let mut set = match thresholds_file {
        Some(path) => ThresholdSet::from_toml_file(path)
            .map_err(|e| HarnessError::Config(vec![e.to_string()]))?,
        None => ThresholdSet::default(),
    };
    let flags = ThresholdSet::parse_all(thresholds)
        .map_err(|errors| HarnessError::Config(errors.iter().map(ToString::to_string).collect()))?;
    set.thresholds.extend(flags.thresholds);
    Ok((!set.thresholds.is_empty() || thresholds_file.is_some()).then_some(set))
}

/// Reads the record and writes `report.html` and `summary.json` again.
pub fn rerender(dir: &Path) -> Result<reports::RunRecord, HarnessError> {
    let record = reports::store::read_run_dir(dir)?;
    write_derived(dir, &record)?;
    Ok(record)
}

/// `report.html` and `summary.json` of `record`.
fn write_derived(dir: &Path, record: &reports::RunRecord) -> Result<(), HarnessError> {
    let html = reports::html::render(record)?;
    write_atomic(&dir.join("report.html"), html.as_bytes())?;
    let summary = reports::summary::Summary::from_record(record);
    let json =
        serde_json::to_vec_pretty(&summary).map_err(|e| HarnessError::Internal(e.to_string()))?;
    write_atomic(&dir.join("summary.json"), &json)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), HarnessError> {
    reports::store::hdr::write_atomic(path, bytes).map_err(HarnessError::from)
}
