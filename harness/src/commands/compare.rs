//! `harness compare A B`: two run records side by side. Writes `compare.html` (spectra
//! overlaid, per-kind deltas, both verdicts and thresholds) and `compare.json`, and prints
//! the deltas table. The exit code is 0 once the comparison is written: it reports, the
//! gate judges.

use std::path::{Path, PathBuf};

use reports::compare::{Comparison, page};

use crate::cli::CompareArgs;
use crate::error::{HarnessError, exit};

/// Reads both records, writes the comparison and prints it.
pub fn run(args: &CompareArgs) -> Result<u8, HarnessError> {
    let a = reports::store::read_run_dir(&args.a)?;
    let b = reports::store::read_run_dir(&args.b)?;
    let (label_a, label_b) = (label(&args.a), label(&args.b));
    let comparison = Comparison::of((&label_a, &a), (&label_b, &b), args.max_change);
    let out = args.out.clone().unwrap_or_else(|| {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        PathBuf::from("reports/runs").join(format!("{stamp}-compare"))
    });
    std::fs::create_dir_all(&out)?;
    let html = page::render(&comparison, &a, &b)?;
    reports::store::hdr::write_atomic(&out.join("compare.html"), html.as_bytes())?;
    let json = serde_json::to_vec_pretty(&comparison)
        .map_err(|e| HarnessError::Internal(e.to_string()))?;
    reports::store::hdr::write_atomic(&out.join("compare.json"), &json)?;

    println!(
        "A {label_a}: {}   B {label_b}: {}",
        a.verdict.as_str().to_uppercase(),
        b.verdict.as_str().to_uppercase()
    );
    println!(
        "{:<16} {:>10} {:>10} {:>9}  B is",
        "kind", "A p99 ms", "B p99 ms", "change"
    );
    let ms = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
    for k in &comparison.kinds {
        println!(
            "{:<16} {:>10} {:>10} {:>9}  {}",
            k.kind,
            ms(k.a.p99),
            ms(k.b.p99),
            k.p99_change
                .map(|c| format!("{:+.1}%", c * 100.0))
                .unwrap_or_else(|| "-".into()),
            k.judgement.as_str()
        );
    }
    println!("comparison: {}", out.join("compare.html").display());
    Ok(exit::PASS)
}

/// The run directory's name, as the user sees it.
fn label(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}
