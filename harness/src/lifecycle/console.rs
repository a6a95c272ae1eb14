//! The console printer of a run: the one-screen summary (installs, latency), the git builders'
//! two lines, one line per workload, every threshold and checker with its mark, the verdict
//! and where the report is. `scenario`, `drill` and `merge` print a run record this way.

use std::path::Path;

use reports::{RunRecord, Verdict};

/// Prints what the run record at `out` says and where its report is.
pub fn print_run(out: &Path, record: &RunRecord) {
    let summary = reports::summary::Summary::from_record(record);
    let git = git_builders_summary(record);
    let installs = record.workloads.iter().any(|w| w.name == "installs");
    if git.is_none() || installs {
        println!("{}", one_screen_summary(&summary));
    }
    if let Some(text) = git {
        println!("{text}");
    }
    if summary.workloads.len() > 1 {
        print_workloads(&summary);
    }
    for threshold in &record.thresholds {
        println!(
            "  {} {:<28} observed {}",
            threshold.mark(),
            threshold.expr,
            threshold.observed_text
        );
    }
    for checker in &record.checkers {
        println!(
            "  {} {:<28} {}",
            checker.validity.mark(),
            checker.name,
            checker.summary
        );
    }
    println!("verdict: {}", record.verdict.as_str().to_uppercase());
    println!("report: {}", out.join("report.html").display());
}

/// One line per workload with its verdict and headline figures, and the database's CPU beside
/// the reference's 10–20 % (a run of several workloads: the reference claim).
fn print_workloads(summary: &reports::summary::Summary) {
    for workload in &summary.workloads {
        let mark = match workload.verdict {
            Verdict::Pass => "✓",
            Verdict::Fail => "✗",
            Verdict::Unknown => "?",
        };
        let figures: Vec<String> = workload
            .figures
            .iter()
            .map(|(name, value)| match value.fract() == 0.0 {
                true => format!("{name} {value:.0}"),
                false => format!("{name} {value:.2}"),
            })
            .collect();
        println!(
            "  {mark} workload {:<13} {:<7} {}",
            workload.name,
            workload.verdict.as_str(),
            figures.join(", ")
        );
    }
    if let Some(db) = &summary.database_cpu {
        let (low, high) = db.reference_share;
        println!(
            "database CPU: {:.1} CPU-s, {:.1} % of one core{} (the reference: {:.0}–{:.0} %)",
            db.cpu_s,
            db.core_share * 100.0,
            db.machine_share
                .map(|share| format!(", {:.1} % of the machine", share * 100.0))
                .unwrap_or_default(),
            low * 100.0,
            high * 100.0
        );
    }
}

/// The git-builders run in two lines: commits, builds, duplicates, lost; commit → published.
fn git_builders_summary(record: &RunRecord) -> Option<String> {
    let counters = &record.metrics.counters;
    let n = |name: &str| counters.get(name).copied().unwrap_or(0.0);
    counters.get("commits")?;
    let latency = record
        .metrics
        .kinds
        .get(scenarios::git_builders::KIND_COMMIT_TO_PUBLISHED);
    let q = |q: f64| {
        latency
            .and_then(|k| k.latency_ms(q))
            .map(|ms| format!("{:.1}", ms / 1000.0))
            .unwrap_or_else(|| "-".into())
    };
    Some(format!(
        "commits: {} pushed ({} good, {} broken); builds (first commits included): {} succeeded, {} failed; duplicates {}, lost {}
         commit → published s: p50 {} p95 {} p99 {} max {}{}",
        n("commits"),
        n("good_commits"),
        n("broken_commits"),
        n("builds_succeeded"),
        n("builds_failed"),
        n("duplicates"),
        n("lost"),
        q(0.5),
        q(0.95),
        q(0.99),
        q(1.0),
        counters
            .get("makespan_s")
            .map(|s| format!("; makespan {s:.1} s"))
            .unwrap_or_default(),
    ))
}

fn one_screen_summary(summary: &reports::summary::Summary) -> String {
    let overall = summary.latency_ms.get("overall");
    let p = |f: fn(&reports::summary::LatencySummary) -> Option<f64>| {
        overall
            .and_then(f)
            .map(|v| format!("{v:.1}"))
            .unwrap_or_else(|| "-".into())
    };
    format!(
        "installs: {} attempted, {} succeeded, {} failed, {} never started, {} late; rate target {:.2}/s achieved {:.2}/s\n\
         request latency ms: p50 {} p90 {} p99 {} p99.9 {} max {}",
        summary.installs.attempted,
        summary.installs.succeeded,
        summary.installs.failed,
        summary.installs.never_started,
        summary.installs.late,
        summary.rate.target_per_s,
        summary.rate.achieved_per_s,
        p(|l| l.p50),
        p(|l| l.p90),
        p(|l| l.p99),
        p(|l| l.p999),
        p(|l| l.max),
    )
}
