//! `harness drill NAME`: a run with an upload writer, the drill's faults and every checker.

use crate::cli::DrillArgs;
use crate::error::HarnessError;

/// Runs the drill end to end and returns the exit code.
pub async fn run(args: DrillArgs) -> Result<u8, HarnessError> {
    let plan = super::plan::drill(&args)?;
    let infra =
        super::scenario::start_infra_with_corpus(&plan.infra, plan.installs_corpus()).await?;
    super::scenario::execute(&plan, infra, args.load.out.clone()).await
}
