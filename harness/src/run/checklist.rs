//! The HA checklist inside a run: [`ha_checklist`], the rules as one checker before and after
//! a run's load (and the gate's steps), and [`check`], the checklist alone (`harness check`:
//! no load, every rule a checker of its own, the facts kept beside the record).

use std::time::Instant;

use reports::RunRecord;
use reports::record::{CheckerResult, RunMeta, Validity};
use serde_json::json;

use crate::checklist::{self, ChecklistOptions, Facts};
use crate::error::HarnessError;
use crate::infra::Infra;
use crate::plan::CheckPlan;

use super::record::{Measured, judged};

/// The run record's scenario name for the checklist alone.
pub const NAME: &str = "check";

/// Gathers the facts, judges every rule and returns the run record (no load, the rules as its
/// checkers) with the facts it was judged on.
pub async fn check(
    infra: &dyn Infra,
    plan: &CheckPlan,
) -> Result<(RunRecord, Facts), HarnessError> {
    let started_at = chrono::Utc::now();
    let started = Instant::now();
    let facts = checklist::gather(infra, &plan.options).await?;
    let checkers = checklist::evaluate(&facts, &plan.options);
    let meta = RunMeta {
        scenario: NAME.into(),
        started_at,
        duration_s: started.elapsed().as_secs_f64(),
        config: json!({
            "description": "the HA checklist, verified from outside the nodes",
            "rules": checklist::RULES,
            "checklist": plan.options,
            "infra": plan.infra,
        }),
        infra: infra.info(),
    };
    let record = judged(meta, Measured::nothing(), checkers, &Default::default());
    Ok((record, facts))
}

/// The HA checklist (`harness check`'s rules) as one checker: the worst rule decides, every
/// rule is evidence.
pub async fn ha_checklist(infra: &dyn Infra, name: &str) -> CheckerResult {
    let options = ChecklistOptions::default();
    let rules = match checklist::gather(infra, &options).await {
        Ok(facts) => checklist::evaluate(&facts, &options),
        Err(e) => {
            return CheckerResult {
                name: name.into(),
                validity: Validity::Unknown,
                summary: format!("the checklist's facts could not be gathered: {e}"),
                evidence: serde_json::Value::Null,
            };
        }
    };
    let named = |validity: Validity| {
        rules
            .iter()
            .filter(|r| r.validity == validity)
            .map(|r| r.name.clone())
            .collect::<Vec<_>>()
    };
    let (failed, unknown) = (named(Validity::Invalid), named(Validity::Unknown));
    let (validity, summary) = if !failed.is_empty() {
        (
            Validity::Invalid,
            format!("rules failed: {}", failed.join(", ")),
        )
    } else if !unknown.is_empty() {
        (
            Validity::Unknown,
            format!("rules undecided: {}", unknown.join(", ")),
        )
    } else {
        let not_applicable = named(Validity::NotApplicable);
        let held = rules.len() - not_applicable.len();
        let summary = if not_applicable.is_empty() {
            format!("all {held} HA rules hold")
        } else {
            format!(
                "all {held} applicable HA rules hold; not applicable: {}",
                not_applicable.join(", ")
            )
        };
        (Validity::Valid, summary)
    };
    let result = CheckerResult {
        name: name.into(),
        validity,
        summary,
        evidence: serde_json::to_value(&rules).unwrap_or_default(),
    };
    eprintln!(
        "harness: checker {}: {} — {}",
        result.name,
        result.validity.as_str(),
        result.summary
    );
    result
}
