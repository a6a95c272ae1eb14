//! The node's integration tests: real pip, uv, twine and R against running `pkgnode` processes on
//! SQLite and PostgreSQL, local directories and Garage S3; clusters of nodes on loopback
//! addresses; file locks across processes.

#[path = "../support/mod.rs"]
mod support;

mod bad_input;
mod blob_cache;
mod build_index;
mod client_requests;
mod clients;
mod cluster;
mod concurrent_uploads;
mod content_placement;
mod database_loss;
mod failover;
mod git_builders;
mod history_rollback;
mod hostile_requests;
mod large_uploads;
mod locks;
mod properties;
mod protocol;
mod read_your_writes;
mod shared_storage;
mod snapshots;
mod tokens;
mod views;
