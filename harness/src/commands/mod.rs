//! One module per subcommand; each returns the process exit code. `plan` turns arguments into
//! the typed [`crate::plan::RunPlan`] the run takes; each command hands its plan to the
//! [`lifecycle`](crate::lifecycle) (start, run, teardown, write) and prints what is its own.

pub mod check;
pub mod compare;
pub mod corpus_cache;
pub mod drill;
pub mod gate;
pub mod generator;
pub mod merge;
pub mod plan;
pub mod report;
pub mod scenario;
