//! `harness drill NAME`: a run with an upload writer, the drill's faults and every checker.

use crate::cli::DrillArgs;
use crate::error::HarnessError;
use crate::lifecycle;

/// Runs the drill end to end and returns the exit code.
pub async fn run(args: DrillArgs) -> Result<u8, HarnessError> {
    let plan = super::plan::drill(&args)?;
    let infra = lifecycle::start_infra_with_corpus(&plan.infra, plan.installs_corpus()).await?;
    lifecycle::execute(&plan, infra, args.load.out.clone()).await
}
