//! A child generator's spec (`harness generator SPEC`, written by `scenario --generators N`)
//! as a plan: the reads alone, its slice of the schedule from the shared start, no nemesis,
//! no checkers, against the coordinator's cluster.

use reports::ThresholdSet;

use crate::checkers::availability::AvailabilityLimits;
use crate::error::HarnessError;
use crate::nemesis::NemesisPlan;
use crate::plan::{GeneratorPlan, InfraKind, InfraPlan, RunPlan, WorkloadPlan};
use crate::run::generators::GeneratorSpec;

/// The plan of one child generator; every problem with the spec at once.
pub fn generator(spec: &GeneratorSpec) -> Result<RunPlan, HarnessError> {
    let thresholds = ThresholdSet::parse_all(&spec.thresholds)
        .map_err(|errors| HarnessError::Config(errors.iter().map(ToString::to_string).collect()))?;
    let plan = RunPlan {
        name: spec.name.clone(),
        // Unused: the cluster is the coordinator's, reached as a target.
        infra: InfraPlan {
            kind: InfraKind::Local,
            nodes: 1,
            synchronous_replication: true,
            node_config_extra: String::new(),
            keep_work_dir: None,
            corpus_cache: None,
            git_server: false,
            auto_prefers_docker: false,
            package_storage: crate::infra::PackageStorage::S3,
        },
        workloads: vec![WorkloadPlan::Installs(spec.reads.clone())],
        nemesis: NemesisPlan::none(),
        checkers: Vec::new(),
        availability: AvailabilityLimits::default(),
        settle: crate::plan::DEFAULT_SETTLE,
        thresholds,
        ha_checklist: false,
        quiet: true,
        generators: GeneratorPlan {
            children: 0,
            slice: Some(spec.slice),
            start_at: Some(spec.start_at),
            corpus: spec.corpus,
            records_dir: None,
        },
    };
    let problems = plan.validate();
    if !problems.is_empty() {
        return Err(HarnessError::Config(problems));
    }
    Ok(plan)
}
