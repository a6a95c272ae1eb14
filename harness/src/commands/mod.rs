//! One module per subcommand; each returns the process exit code. `plan` turns arguments into
//! the typed [`crate::plan::RunPlan`] the run takes.

pub mod check;
pub mod drill;
pub mod generator;
pub mod merge;
pub mod plan;
pub mod report;
pub mod scenario;
