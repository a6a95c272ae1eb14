//! `harness generator SPEC` (internal): one child load generator of `harness scenario
//! --generators N`. It executes its slice of the schedule against the coordinator's cluster
//! from the shared start, and writes its own run record where the spec says.

use std::path::Path;

use crate::error::HarnessError;
use crate::infra::{Endpoints, target::Target};
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
    let plan = super::plan::generator(&spec)?;
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
    crate::lifecycle::execute(
        &plan,
        Box::new(Target::new(endpoints, Vec::new())),
        Some(spec.out),
    )
    .await
}
