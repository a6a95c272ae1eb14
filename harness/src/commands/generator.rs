//! `harness generator SPEC` (internal): one child load generator of `harness scenario
//! --generators N`. It executes its slice of the schedule against the coordinator's cluster
//! from the shared start, and writes its own run record where the spec says.

use std::path::Path;

use reports::ThresholdSet;

use crate::checkers::availability::AvailabilityLimits;
use crate::error::HarnessError;
use crate::infra::{Endpoints, target::Target};
use crate::nemesis::NemesisPlan;
use crate::plan::{GeneratorPlan, InfraKind, InfraPlan, RunPlan, WorkloadPlan};
use crate::run::generators::GeneratorSpec;

/// Runs the slice the spec names; the exit code is the slice's own verdict (the coordinator
/// judges the merge).
pub async fn run(spec_path: &Path) -> Result<u8, HarnessError> {
    let bytes = std::fs::read(spec_path)?;
    let spec: GeneratorSpec = serde_json::from_slice(&bytes).map_err(|e| {
        HarnessError::Config(vec![format!(
            "{}: not a generator spec: {e}",
            spec_path.display()
        )])
    })?;
    let thresholds = ThresholdSet::parse_all(&spec.thresholds)
        .map_err(|errors| HarnessError::Config(errors.iter().map(ToString::to_string).collect()))?;
    let plan = RunPlan {
        name: spec.name,
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
        workloads: vec![WorkloadPlan::Installs(spec.reads)],
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
    let endpoints = Endpoints {
        base_url: spec.base_url,
        nodes: Vec::new(),
        pypi_repo: spec.pypi_repo,
        cran_repo: spec.cran_repo,
        pypi_source: String::new(),
        cran_source: String::new(),
        pypi_token: String::new(),
        cran_token: String::new(),
    };
    super::scenario::execute(
        &plan,
        Box::new(Target::new(endpoints, Vec::new())),
        Some(spec.out),
    )
    .await
}
