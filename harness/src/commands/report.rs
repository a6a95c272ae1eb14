//! `harness report DIR`: re-render the HTML page and the summary from a run record.

use std::path::Path;

use crate::error::HarnessError;

/// Reads the record and writes `report.html` and `summary.json` again.
pub fn rerender(dir: &Path) -> Result<reports::RunRecord, HarnessError> {
    let record = reports::store::read_run_dir(dir)?;
    let html = reports::html::render(&record)?;
    write_atomic(&dir.join("report.html"), html.as_bytes())?;
    let summary = reports::summary::Summary::from_record(&record);
    let json =
        serde_json::to_vec_pretty(&summary).map_err(|e| HarnessError::Internal(e.to_string()))?;
    write_atomic(&dir.join("summary.json"), &json)?;
    Ok(record)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), HarnessError> {
    reports::store::hdr::write_atomic(path, bytes).map_err(HarnessError::from)
}
