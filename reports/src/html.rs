//! The self-contained HTML report: an askama template (`templates/report.html`) over the run
//! record, with the charts inlined as SVG. No scripts, no external assets.

use askama::Template;

use crate::ReportError;
use crate::charts::{self, ChartSet};
use crate::record::{InfraInfo, RunRecord, Verdict};
use crate::summary::{KindSummary, LatencySummary, OVERALL, Summary};
use crate::thresholds::ThresholdResult;

/// One row of the per-request-kind table, formatted for display.
struct KindRow {
    kind: String,
    scheduled: u64,
    count: u64,
    rps: String,
    p50: String,
    p90: String,
    p99: String,
    p999: String,
    max: String,
    errors: u64,
    error_pct: String,
    late: u64,
}

impl KindRow {
    fn new(kind: &str, counts: &KindSummary, latency: &LatencySummary) -> Self {
        KindRow {
            kind: kind.to_owned(),
            scheduled: counts.scheduled,
            count: counts.count,
            rps: format!("{:.2}", counts.rps),
            p50: ms(latency.p50),
            p90: ms(latency.p90),
            p99: ms(latency.p99),
            p999: ms(latency.p999),
            max: ms(latency.max),
            errors: counts.errors,
            error_pct: format!("{:.2}%", counts.error_rate * 100.0),
            late: counts.late,
        }
    }
}

/// An event formatted for the events table.
struct EventRow {
    at: String,
    end: String,
    duration: String,
    kind: String,
    message: String,
    window: bool,
}

/// A checker's result formatted for display.
struct CheckerRow {
    name: String,
    validity: &'static str,
    summary: String,
    evidence: String,
    /// The tests whose planted fault shows this checker able to fail (`proofs`).
    proven_by: &'static [&'static str],
}

/// The git-builders section: headline numbers and charts.
struct GitSection {
    stats: Vec<Stat>,
    charts: charts::GitCharts,
}

/// The git-builders section of `record`, when it is a git-builders run.
fn git_section(record: &RunRecord) -> Result<Option<GitSection>, ReportError> {
    let Some(charts) = charts::git_charts(record)? else {
        return Ok(None);
    };
    let counters = &record.metrics.counters;
    let count = |name: &str| counters.get(name).copied();
    let number = |name: &str| {
        count(name)
            .map(crate::figures::trim_float)
            .unwrap_or_else(|| "–".into())
    };
    let latency =
        |kind: &str, q: f64| ms_unit(record.metrics.kinds.get(kind).and_then(|k| k.latency_ms(q)));
    let commit = crate::kinds::COMMIT_KIND;
    let mut stats = vec![
        stat("commits pushed", number("commits"), false),
        stat("good commits", number("good_commits"), false),
        stat("broken commits", number("broken_commits"), false),
        stat("builds succeeded", number("builds_succeeded"), false),
        stat("builds failed", number("builds_failed"), false),
        stat(
            "duplicates",
            number("duplicates"),
            count("duplicates").unwrap_or(0.0) > 0.0,
        ),
        stat("lost", number("lost"), count("lost").unwrap_or(0.0) > 0.0),
        stat("commit → published p50", latency(commit, 0.5), false),
        stat("commit → published p95", latency(commit, 0.95), false),
        stat("commit → published p99", latency(commit, 0.99), false),
        stat("commit → published max", latency(commit, 1.0), false),
        stat(
            "build time p50",
            latency(crate::kinds::BUILD_KIND, 0.5),
            false,
        ),
        stat(
            "build time p95",
            latency(crate::kinds::BUILD_KIND, 0.95),
            false,
        ),
    ];
    if let Some(makespan) = count("makespan_s") {
        stats.push(stat("makespan", format_seconds(makespan), false));
    }
    Ok(Some(GitSection { stats, charts }))
}

/// "The load generator used 12.3 CPU-s for 45,678 requests: 269 µs a request; resident
/// memory 120 MiB at the start, 150 MiB at the end, 155 MiB at most."
fn generator_line(cost: &crate::generator::GeneratorCost) -> String {
    let mib = |bytes: u64| format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0));
    let who = match cost.processes.len() {
        1 => "The load generator".to_string(),
        n => format!("The {n} load generators"),
    };
    let per_request = cost.cpu_us_per_request.map_or_else(
        || "no request finished".to_string(),
        |us| format!("{us:.0} µs a request"),
    );
    let memory: Vec<String> = cost
        .processes
        .iter()
        .map(|(name, p)| {
            let whose = if cost.processes.len() == 1 {
                String::new()
            } else {
                format!("{name}: ")
            };
            format!(
                "{whose}{} at the start, {} at the end, {} at most",
                mib(p.rss_first_bytes),
                mib(p.rss_last_bytes),
                mib(p.rss_peak_bytes)
            )
        })
        .collect();
    format!(
        "{who} used {:.1} CPU-s for {} requests: {per_request}; resident memory {}.",
        cost.cpu_s,
        cost.requests,
        memory.join("; ")
    )
}

/// "CPU over the run: haproxy 24.3 s (40 % of a core), node-1 12.6 s (21 %), …", largest
/// first; `None` without samples.
fn cpu_split_line(
    processes: &std::collections::BTreeMap<String, crate::generator::ProcessCost>,
    duration_s: f64,
) -> Option<String> {
    if processes.is_empty() || duration_s <= 0.0 {
        return None;
    }
    let mut by_cpu: Vec<_> = processes.iter().collect();
    by_cpu.sort_by(|a, b| b.1.cpu_s.total_cmp(&a.1.cpu_s).then(a.0.cmp(b.0)));
    let total: f64 = by_cpu.iter().map(|(_, p)| p.cpu_s).sum();
    let parts: Vec<String> = by_cpu
        .iter()
        .map(|(name, p)| {
            format!(
                "{name} {:.1} s ({:.0} % of a core)",
                p.cpu_s,
                p.cpu_s / duration_s * 100.0
            )
        })
        .collect();
    Some(format!(
        "CPU over the run, {total:.1} CPU-s in all: {}.",
        parts.join(", ")
    ))
}

/// One workload in the page's workloads table.
struct WorkloadRow {
    name: String,
    /// The id of its section on the page.
    anchor: String,
    /// `pass`, `fail` or `unknown`.
    verdict: &'static str,
    description: String,
    /// Its headline figures in one line.
    figures: String,
}

/// Each workload of `record` with its verdict and headline figures.
fn workload_rows(record: &RunRecord) -> Vec<WorkloadRow> {
    record
        .workloads
        .iter()
        .map(|w| WorkloadRow {
            name: w.name.clone(),
            anchor: w.name.clone(),
            verdict: record.workload_verdict(w).as_str(),
            description: w.description.clone(),
            figures: w
                .figures
                .iter()
                .filter_map(|(name, value)| figure_text(name, *value))
                .collect::<Vec<_>>()
                .join(" · "),
        })
        .collect()
}

/// A figure for people, named by its key's unit suffix (`_ms`, `_s`, `_per_s`); counts as they
/// are. The few figures the sections already show at length are left out here.
fn figure_text(name: &str, value: f64) -> Option<String> {
    let label = |suffix: &str| name.strip_suffix(suffix).unwrap_or(name).replace('_', " ");
    let text = if name.ends_with("_per_s") {
        format!("{} {value:.2}/s", label("_per_s"))
    } else if name.ends_with("_ms") {
        format!("{} {}", label("_ms"), ms_unit(Some(value)))
    } else if name.ends_with("_s") {
        format!("{} {}", label("_s"), format_seconds(value))
    } else {
        format!("{} {}", label(""), crate::figures::trim_float(value))
    };
    Some(text.replace("commit to published", "commit → published"))
}

/// "The database primary used 12.3 CPU-s: 8 % of one core, 4.1 % of this machine's 2 cores;
/// the reference deployment's database stays within 10–20 %." and whether it is above that.
fn database_cpu_line(db: &crate::generator::DatabaseCpu, duration_s: f64) -> (String, bool) {
    let (low, high) = db.reference_share;
    let machine = match (db.machine_share, db.machine_cores) {
        (Some(share), Some(cores)) => format!(
            ", {:.1} % of this machine's {} cores",
            share * 100.0,
            crate::figures::trim_float(cores)
        ),
        _ => String::new(),
    };
    let standby = db
        .standby_cpu_s
        .map(|s| format!(" (the standby, replaying it: {s:.1} CPU-s)"))
        .unwrap_or_default();
    let line = format!(
        "Database CPU: the primary used {:.1} CPU-s over {}: {:.1} % of one core{machine}{standby}.          The reference deployment's database serves 1M installs a day and 100 Git builders          within {:.0}–{:.0} % CPU.",
        db.cpu_s,
        format_seconds(duration_s),
        db.core_share * 100.0,
        low * 100.0,
        high * 100.0,
    );
    let above = db.machine_share.unwrap_or(db.core_share) > high;
    (line, above)
}

/// The upload writer's section: the ledger's counts and latencies, from its figures.
fn uploads_stats(record: &RunRecord) -> Option<Vec<Stat>> {
    let section = record.workloads.iter().find(|w| w.name == "uploads")?;
    let figure = |name: &str| section.figures.get(name).copied();
    let count = |name: &str| {
        figure(name)
            .map(crate::figures::trim_float)
            .unwrap_or_else(|| "–".into())
    };
    Some(vec![
        stat("uploads invoked", count("uploads_invoked"), false),
        stat("acknowledged", count("uploads_acknowledged"), false),
        stat(
            "failed",
            count("uploads_failed"),
            figure("uploads_failed").unwrap_or(0.0) > 0.0,
        ),
        stat("unknown outcome", count("uploads_unknown"), false),
        stat("upload p50", ms_unit(figure("upload_p50_ms")), false),
        stat("upload p99", ms_unit(figure("upload_p99_ms")), false),
    ])
}

/// A headline number.
struct Stat {
    label: &'static str,
    value: String,
    bad: bool,
}

#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage<'a> {
    scenario: &'a str,
    verdict: Verdict,
    started_at: String,
    duration: String,
    thresholds: &'a [ThresholdResult],
    thresholds_passed: usize,
    stats: Vec<Stat>,
    primary_kind: String,
    kinds: Vec<KindRow>,
    errors: Vec<(String, u64)>,
    events: Vec<EventRow>,
    checkers: Vec<CheckerRow>,
    warnings: Vec<String>,
    /// The load generators' CPU per request and memory, in one line.
    generator_cost: Option<String>,
    cpu_split: Option<String>,
    node_requests: Vec<(String, u64, String)>,
    infra: &'a InfraInfo,
    /// The corpus the run used, in one line (runs compare only on the same corpus).
    corpus: Option<String>,
    /// Each node's blob cache at the end: (node, hit ratio, held).
    blob_caches: Vec<(String, String, String)>,
    config_json: String,
    charts: ChartSet,
    git: Option<GitSection>,
    /// The workloads the run composed, each with its verdict (empty for older records).
    workloads: Vec<WorkloadRow>,
    /// Whether the install figures have a section: the run had the read load (or predates
    /// recorded workloads).
    installs: bool,
    uploads: Option<Vec<Stat>>,
    /// The database's CPU beside the reference's figure, and whether it is above it.
    database_cpu: Option<(String, bool)>,
    generator: String,
}

/// Renders the complete report page of `record`.
pub fn render(record: &RunRecord) -> Result<String, ReportError> {
    let summary = Summary::from_record(record);
    let charts = charts::render_all(record)?;
    let duration_s = record.meta.duration_s;

    let mut kinds: Vec<KindRow> = summary
        .requests
        .iter()
        .map(|(kind, counts)| {
            let latency = summary.latency_ms.get(kind).cloned().unwrap_or_default();
            KindRow::new(kind, counts, &latency)
        })
        .collect();
    if kinds.len() > 1 {
        let total = summary
            .requests
            .values()
            .fold(KindSummary::default(), |mut t, k| {
                t.scheduled += k.scheduled;
                t.count += k.count;
                t.ok += k.ok;
                t.errors += k.errors;
                t.late += k.late;
                t
            });
        let total = KindSummary {
            rps: if duration_s > 0.0 {
                total.count as f64 / duration_s
            } else {
                0.0
            },
            error_rate: if total.count == 0 {
                0.0
            } else {
                total.errors as f64 / total.count as f64
            },
            ..total
        };
        let latency = summary.latency_ms.get(OVERALL).cloned().unwrap_or_default();
        kinds.push(KindRow::new("all kinds", &total, &latency));
    }

    let overall_p99 = summary.latency_ms.get(OVERALL).and_then(|l| l.p99);
    let total_errors: u64 = summary.errors.values().sum();
    let installs = &summary.installs;
    let stats = vec![
        stat("installs scheduled", installs.attempted.to_string(), false),
        stat("installs succeeded", installs.succeeded.to_string(), false),
        stat(
            "installs failed",
            installs.failed.to_string(),
            installs.failed > 0,
        ),
        stat(
            "installs never started",
            installs.never_started.to_string(),
            installs.never_started > 0,
        ),
        stat(
            "installs late",
            installs.late.to_string(),
            installs.late > 0,
        ),
        stat(
            "target rate",
            format!("{:.2}/s", summary.rate.target_per_s),
            false,
        ),
        stat(
            "achieved rate",
            format!("{:.2}/s", summary.rate.achieved_per_s),
            summary.rate.achieved_per_s < 0.95 * summary.rate.target_per_s,
        ),
        stat("p99, all kinds", ms_unit(overall_p99), false),
        stat(
            "errors, all kinds",
            total_errors.to_string(),
            total_errors > 0,
        ),
    ];

    let node_total: u64 = record.node_requests.values().sum();
    let node_requests = record
        .node_requests
        .iter()
        .map(|(node, n)| {
            let share = if node_total == 0 {
                0.0
            } else {
                *n as f64 * 100.0 / node_total as f64
            };
            (node.clone(), *n, format!("{share:.1}%"))
        })
        .collect();

    let events = record
        .events
        .iter()
        .map(|e| EventRow {
            at: format_seconds(e.at_s),
            end: e.end_s.map(format_seconds).unwrap_or_default(),
            duration: e
                .end_s
                .map(|end| format_seconds(end - e.at_s))
                .unwrap_or_default(),
            kind: e.kind.as_str().to_owned(),
            message: e.message.clone(),
            window: e.end_s.is_some(),
        })
        .collect();

    let page = ReportPage {
        scenario: &record.meta.scenario,
        verdict: record.verdict,
        started_at: record
            .meta
            .started_at
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        duration: format_seconds(duration_s),
        thresholds: &record.thresholds,
        thresholds_passed: record.thresholds.iter().filter(|t| t.passed).count(),
        stats,
        primary_kind: charts::primary_kind(&record.metrics)
            .unwrap_or(crate::kinds::INSTALL_KIND)
            .to_owned(),
        kinds,
        errors: summary.errors.into_iter().collect(),
        events,
        warnings: summary.warnings.clone(),
        generator_cost: summary.generator.as_ref().map(generator_line),
        cpu_split: cpu_split_line(&summary.processes, summary.duration_s).map(|line| {
            match &summary.cluster_cpu {
                Some(c) => format!(
                    "{line} The cluster (nodes, balancer, databases, S3) used {:.1} CPU-s: {:.2} ms an install{}.",
                    c.cpu_s,
                    c.ms_per_install,
                    c.us_per_request
                        .map(|us| format!(", {us:.0} µs a request"))
                        .unwrap_or_default()
                ),
                None => line,
            }
        }),
        checkers: record
            .checkers
            .iter()
            .map(|c| CheckerRow {
                name: c.name.clone(),
                validity: c.validity.as_str(),
                summary: c.summary.clone(),
                evidence: serde_json::to_string_pretty(&c.evidence)
                    .unwrap_or_else(|_| c.evidence.to_string()),
                proven_by: crate::proofs::proven_by(&c.name),
            })
            .collect(),
        node_requests,
        infra: &record.meta.infra,
        corpus: corpus_line(&record.meta.config),
        blob_caches: blob_cache_rows(&record.meta.config),
        config_json: serde_json::to_string_pretty(&record.meta.config)
            .unwrap_or_else(|_| record.meta.config.to_string()),
        charts,
        git: git_section(record)?,
        workloads: workload_rows(record),
        installs: record.workloads.is_empty() || record.workloads.iter().any(|w| w.name == "installs"),
        uploads: uploads_stats(record),
        database_cpu: summary
            .database_cpu
            .as_ref()
            .map(|db| database_cpu_line(db, duration_s)),
        generator: format!("reports {}", env!("CARGO_PKG_VERSION")),
    };
    Ok(page.render()?)
}

/// "36,000 packages (…)" from the run config's `corpus_stats` and `corpus_seeding`.
fn corpus_line(config: &serde_json::Value) -> Option<String> {
    let s = config.get("corpus_stats")?;
    let n = |k: &str| s.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    let f = |k: &str| s.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
    let mut line = format!(
        concat!(
            "{} Python packages ({} versions, {} files; {} with compiled wheels) and {} R ",
            "packages ({} versions, {} files); {:.1} MB drawn; sizes log-normal, median {} B, ",
            "σ {:.2}, at most {} B"
        ),
        n("python_packages"),
        n("python_versions"),
        n("python_files"),
        n("python_packages_with_compiled_wheels"),
        n("r_packages"),
        n("r_versions"),
        n("r_files"),
        n("bytes") as f64 / 1e6,
        n("size_median_bytes"),
        f("size_sigma"),
        n("size_max_bytes"),
    );
    if let Some(seeding) = config.get("corpus_seeding") {
        let how = seeding.get("how").and_then(|v| v.as_str()).unwrap_or("?");
        let secs = |k: &str| seeding.get(k).and_then(serde_json::Value::as_f64);
        match (how, secs("restore_seconds"), secs("seed_seconds")) {
            ("restored", Some(restore), Some(seed)) => line.push_str(&format!(
                "; restored from the corpus cache in {restore:.1} s (seeding took {seed:.1} s)"
            )),
            (_, _, Some(seed)) => line.push_str(&format!("; uploaded in {seed:.1} s")),
            _ => {}
        }
    }
    Some(line)
}

/// (node, hit ratio, bytes and files held) from the run config's `blob_cache`.
fn blob_cache_rows(config: &serde_json::Value) -> Vec<(String, String, String)> {
    let Some(caches) = config.get("blob_cache").and_then(|v| v.as_array()) else {
        return Vec::new();
    };
    caches
        .iter()
        .map(|c| {
            let n = |k: &str| c.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
            let ratio = c
                .get("hit_ratio")
                .and_then(serde_json::Value::as_f64)
                .map(|r| format!("{:.1} % of {} lookups", r * 100.0, n("hits") + n("misses")))
                .unwrap_or_else(|| "no lookups".into());
            let held = format!(
                "{:.1} MB in {} files (capacity {:.0} MB)",
                n("bytes") as f64 / 1e6,
                n("files"),
                n("capacity_bytes") as f64 / 1e6
            );
            let node = c.get("node").and_then(|v| v.as_str()).unwrap_or("?");
            (node.to_string(), ratio, held)
        })
        .collect()
}

fn stat(label: &'static str, value: String, bad: bool) -> Stat {
    Stat { label, value, bad }
}

fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
        None => "–".to_owned(),
    }
}

fn ms_unit(v: Option<f64>) -> String {
    match v {
        Some(_) => format!("{} ms", ms(v)),
        None => "–".to_owned(),
    }
}

/// `42.5 s`, `3 m 20 s`, `1 h 02 m`.
fn format_seconds(s: f64) -> String {
    if s < 60.0 {
        return format!("{} s", crate::figures::trim_float(s));
    }
    let total = s.round() as u64;
    let (h, m, sec) = (total / 3600, total / 60 % 60, total % 60);
    if h > 0 {
        format!("{h} h {m:02} m")
    } else {
        format!("{m} m {sec:02} s")
    }
}

#[cfg(test)]
mod tests;
