//! The gate record and its verdict: the capacity the search bracketed, the saturated process,
//! the reference windows, the HA checklist and the baseline comparison, each with its reason.

use reports::Verdict;
use reports::figures::format_per_day;
use reports::gate::{
    BaselineComparison, CapacityBound, GATE_FORMAT_VERSION, GateRecord, GateStep, ReferenceLatency,
};
use reports::record::{CheckerResult, Validity};

use crate::gate::{Search, baseline, saturation};

use super::plan::GatePlan;

/// The gate record with its verdict and the reasons for it.
pub(super) fn judge(
    plan: &GatePlan,
    started_at: chrono::DateTime<chrono::Utc>,
    duration_s: f64,
    infra: reports::record::InfraInfo,
    search: &Search,
    steps: Vec<GateStep>,
    checklist: Vec<CheckerResult>,
) -> GateRecord {
    let capacity = search.capacity();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let saturation = saturation::step_above_knee(&steps)
        .and_then(|s| saturation::saturated(&s.cpu_mean_pct, s.index, s.per_day, cores));
    let at_reference: Vec<&GateStep> = steps
        .iter()
        .filter(|s| s.per_day == plan.settings.reference_per_day)
        .collect();
    let reference = ReferenceLatency {
        per_day: plan.settings.reference_per_day,
        windows: at_reference.iter().map(|s| s.latency_ms.clone()).collect(),
        cpu_ms_per_install: at_reference
            .iter()
            .filter_map(|s| s.cluster_cpu.as_ref().map(|c| c.ms_per_install))
            .collect(),
    };
    let baseline: Option<BaselineComparison> = (!plan.baseline.is_empty()).then(|| {
        baseline::compare(
            capacity.per_day,
            capacity.bound,
            &reference,
            &plan.baseline,
            plan.settings.max_regression,
            plan.settings.max_cost_regression,
        )
    });
    let baseline = baseline.map(|mut b| {
        b.settings_differences = b
            .settings
            .as_ref()
            .map(|theirs| plan.settings.differences(theirs))
            .unwrap_or_default();
        b
    });

    let mut verdict = Verdict::Pass;
    let mut reasons = Vec::new();
    match capacity.bound {
        CapacityBound::BelowMin => {
            verdict = Verdict::Fail;
            reasons.push(format!(
                "the SLO failed at the lower bound {}: the cluster does not sustain it",
                format_per_day(plan.settings.min_per_day)
            ));
        }
        CapacityBound::AtLeastMax => reasons.push(format!(
            "the upper bound {} held twice: the capacity is at least that (raise --max to find it)",
            format_per_day(plan.settings.max_per_day)
        )),
        CapacityBound::Between => reasons.push(format!(
            "{} held the SLO twice in a row; {} failed it",
            capacity.per_day.map(format_per_day).unwrap_or_default(),
            capacity
                .lowest_failed_per_day
                .map(format_per_day)
                .unwrap_or_default()
        )),
    }
    if search.out_of_steps() {
        reasons.push(format!(
            "the search stopped at --max-steps {} before the bracket closed to {:.0}%",
            plan.search.max_steps,
            plan.settings.resolution * 100.0
        ));
    }
    for c in &checklist {
        match c.validity {
            Validity::Valid | Validity::NotApplicable => {}
            Validity::Invalid => {
                verdict = verdict.and(Verdict::Fail);
                reasons.push(format!(
                    "{}: {} (an invalid HA cluster cannot pass)",
                    c.name, c.summary
                ));
            }
            Validity::Unknown => {
                verdict = verdict.and(Verdict::Unknown);
                reasons.push(format!("{}: {}", c.name, c.summary));
            }
        }
    }
    if let Some(b) = &baseline {
        if b.regressed {
            verdict = verdict.and(Verdict::Fail);
            reasons.push("regression against the baseline:".into());
        } else {
            reasons.push("no regression against the baseline:".into());
        }
        if let Some(last) = reasons.last_mut() {
            last.push(' ');
            last.push_str(&b.findings.join("; "));
        }
    }
    GateRecord {
        format_version: GATE_FORMAT_VERSION,
        scenario: plan.step.name.as_str().into(),
        started_at,
        duration_s,
        infra,
        settings: plan.settings.clone(),
        steps,
        capacity,
        saturation,
        reference,
        checklist,
        baseline,
        verdict,
        reasons,
    }
}
