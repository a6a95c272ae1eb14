//! The gate page (`gate.html`): an askama template (`templates/gate.html`) over a
//! [`GateRecord`], with the latency-against-rate chart inlined as SVG.

use askama::Template;

use super::chart::latency_vs_rate;
use super::{CapacityBound, GateRecord};
use crate::ReportError;
use crate::figures::format_per_day;
use crate::record::{InfraInfo, Verdict};

struct Stat {
    label: &'static str,
    value: String,
    bad: bool,
}

struct StepRow {
    index: usize,
    purpose: &'static str,
    per_day: String,
    offered: String,
    achieved: String,
    failed: u64,
    p50: String,
    p99: String,
    passed: bool,
    failed_slo: String,
    cpu_per_install: String,
    busiest: String,
    run_dir: String,
}

struct ShiftRow {
    kind: String,
    baseline: String,
    current: String,
    change: String,
    beyond_noise: bool,
}

struct ChecklistRow {
    name: String,
    validity: &'static str,
    summary: String,
}

/// One comparable setting: this gate's value and the baseline's.
struct SettingRow {
    name: &'static str,
    current: String,
    baseline: Option<String>,
    differs: bool,
}

struct BaselineView {
    rule: String,
    findings: Vec<String>,
    latency: Vec<ShiftRow>,
    /// The cluster's CPU per install, as a row of the same table (`beyond_noise`: regressed).
    cpu_cost: Option<ShiftRow>,
    sources: Vec<String>,
}

#[derive(Template)]
#[template(path = "gate.html")]
struct GatePage<'a> {
    scenario: &'a str,
    verdict: Verdict,
    capacity: String,
    reasons: &'a [String],
    started_at: String,
    duration: String,
    infra: &'a InfraInfo,
    stats: Vec<Stat>,
    chart: String,
    min: String,
    max: String,
    confirmations: u32,
    resolution: String,
    step_duration: String,
    slo: &'a [String],
    warm_up: String,
    setting_rows: Vec<SettingRow>,
    settings_differences: &'a [String],
    saturation: Option<String>,
    steps: &'a [super::GateStep],
    step_rows: Vec<StepRow>,
    baseline: Option<BaselineView>,
    checklist: Vec<ChecklistRow>,
    generator: String,
}

/// The capacity as one phrase: `2.4M/d (3.1M/d failed)`, `at least 8M/d`, `below 250k/d`.
pub fn capacity_phrase(record: &GateRecord) -> String {
    let c = &record.capacity;
    match (c.bound, c.per_day) {
        (CapacityBound::BelowMin, _) | (_, None) => format!(
            "below {} (the lower bound failed)",
            format_per_day(record.settings.min_per_day)
        ),
        (CapacityBound::AtLeastMax, Some(r)) => {
            format!("at least {} (the upper bound held)", format_per_day(r))
        }
        (CapacityBound::Between, Some(r)) => match c.lowest_failed_per_day {
            Some(f) => format!("{} ({} failed)", format_per_day(r), format_per_day(f)),
            None => format_per_day(r),
        },
    }
}

fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
        None => "–".into(),
    }
}

fn percent(v: Option<f64>) -> String {
    v.map(|v| format!("{:+.1}%", v * 100.0))
        .unwrap_or_else(|| "–".into())
}

fn list_ms(values: &[f64]) -> String {
    if values.is_empty() {
        return "–".into();
    }
    values
        .iter()
        .map(|v| ms(Some(*v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Renders the gate page of `record`.
pub fn render(record: &GateRecord) -> Result<String, ReportError> {
    let baseline_steps = record
        .baseline
        .as_ref()
        .map(|b| b.steps.as_slice())
        .unwrap_or(&[]);
    let chart = latency_vs_rate(&record.steps, record.capacity.per_day, baseline_steps)?;
    let settings = &record.settings;
    let held = record.steps.iter().filter(|s| s.passed).count();
    let mut stats = vec![
        Stat {
            label: "capacity, installs/day",
            value: record
                .capacity
                .per_day
                .map(format_per_day)
                .unwrap_or_else(|| "–".into()),
            bad: record.capacity.per_day.is_none(),
        },
        Stat {
            label: "steps held / run",
            value: format!("{held} / {}", record.steps.len()),
            bad: false,
        },
    ];
    if let Some(b) = &record.baseline {
        stats.push(Stat {
            label: "baseline capacity",
            value: b
                .capacity_per_day
                .map(format_per_day)
                .unwrap_or_else(|| "–".into()),
            bad: false,
        });
        stats.push(Stat {
            label: "capacity change",
            value: percent(b.capacity_change),
            bad: b.regressed,
        });
    }
    let step_rows = record
        .steps
        .iter()
        .map(|s| StepRow {
            index: s.index,
            purpose: s.purpose.as_str(),
            per_day: format_per_day(s.per_day),
            offered: format!("{:.2}", s.offered_per_s),
            achieved: format!("{:.2}", s.achieved_per_s),
            failed: s.installs.failed,
            p50: ms(s
                .latency_ms
                .get(crate::summary::OVERALL)
                .and_then(|l| l.p50)),
            p99: ms(s.overall_p99_ms()),
            passed: s.passed,
            failed_slo: s.failed_slo.join("; "),
            cpu_per_install: s
                .cluster_cpu
                .as_ref()
                .map_or_else(|| "–".into(), |c| format!("{:.2}", c.ms_per_install)),
            busiest: s
                .cpu_mean_pct
                .iter()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(p, c)| format!("{p} {c:.0}%"))
                .unwrap_or_else(|| "–".into()),
            run_dir: s.run_dir.clone(),
        })
        .collect();
    let baseline = record.baseline.as_ref().map(|b| BaselineView {
        rule: b.rule.clone(),
        findings: b.findings.clone(),
        latency: b
            .latency
            .iter()
            .map(|l| ShiftRow {
                kind: l.kind.clone(),
                baseline: list_ms(&l.baseline_p99_ms),
                current: list_ms(&l.current_p99_ms),
                change: percent(l.change),
                beyond_noise: l.beyond_noise,
            })
            .collect(),
        cpu_cost: b.cpu_cost.as_ref().map(|c| ShiftRow {
            kind: "cluster CPU ms/install".into(),
            baseline: list_ms(&c.baseline_ms),
            current: list_ms(&c.current_ms),
            change: percent(c.change),
            beyond_noise: c.regressed,
        }),
        sources: b.sources.clone(),
    });
    let baseline_settings = record
        .baseline
        .as_ref()
        .and_then(|b| b.settings.as_ref())
        .map(|s| s.comparable());
    let setting_rows = settings
        .comparable()
        .into_iter()
        .enumerate()
        .map(|(i, (name, current))| {
            let baseline = baseline_settings
                .as_ref()
                .and_then(|rows| rows.get(i))
                .map(|(_, v)| v.clone());
            SettingRow {
                name,
                differs: baseline.as_ref().is_some_and(|b| *b != current),
                current,
                baseline,
            }
        })
        .collect();
    let page = GatePage {
        scenario: &record.scenario,
        verdict: record.verdict,
        capacity: capacity_phrase(record),
        reasons: &record.reasons,
        started_at: record
            .started_at
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        duration: format!("{:.0} s", record.duration_s),
        infra: &record.infra,
        stats,
        chart,
        min: format_per_day(settings.min_per_day),
        max: format_per_day(settings.max_per_day),
        confirmations: settings.confirmations,
        resolution: format!("{:.0}%", settings.resolution * 100.0),
        step_duration: format!("{:.0} s", settings.step_duration_s),
        slo: &settings.slo,
        warm_up: format!("{:.0} s", settings.warm_up_s),
        setting_rows,
        settings_differences: record
            .baseline
            .as_ref()
            .map(|b| b.settings_differences.as_slice())
            .unwrap_or(&[]),
        saturation: record.saturation.as_ref().map(|s| {
            format!(
                "{} at {:.0}% CPU (mean over step {} at {}); {}",
                s.process,
                s.cpu_pct,
                s.step_index,
                format_per_day(s.per_day),
                s.note
            )
        }),
        steps: &record.steps,
        step_rows,
        baseline,
        checklist: record
            .checklist
            .iter()
            .map(|c| ChecklistRow {
                name: c.name.clone(),
                validity: c.validity.as_str(),
                summary: c.summary.clone(),
            })
            .collect(),
        generator: format!("reports {}", env!("CARGO_PKG_VERSION")),
    };
    Ok(page.render()?)
}
