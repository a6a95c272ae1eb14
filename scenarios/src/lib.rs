//! goose scenarios and their workload models for the pkgnode load harness: the package
//! corpus, popularity, the diurnal arrival curve and the install scenario. No infrastructure:
//! these modules know a base URL and nothing of how the cluster behind it was started.
//!
//! **Architecture Invariant:** `scenarios` depends on neither `node`, sqlx nor object_store;
//! it talks to a server only over HTTP, as pip, R and twine do.

pub mod arrival;
pub mod corpus;
pub mod cran_packages;
pub mod daily_installs;
pub mod error;
pub mod git_builders;
pub mod load_model;
pub mod writes;

pub use error::ScenarioError;
