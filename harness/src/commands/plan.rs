//! Command-line arguments → [`RunPlan`](crate::plan::RunPlan): the one place arguments (a
//! command line, or a child generator's spec) become a run plan. Everything below `commands/`
//! takes the plan. `scenario.rs` and `drill.rs` are the two commands' plans, `generator.rs` a child generator's
//! (from its spec), `parts.rs` what they build alike.

mod drill;
mod generator;
mod parts;
mod scenario;

pub use drill::{DRILL_NODE_CONFIG, drill};
pub use generator::generator;
pub use parts::{DEFAULT_WRITES_PER_S, GIT_BUILDERS_THRESHOLDS, git_node_config};
pub use scenario::scenario;

#[cfg(test)]
mod tests;
