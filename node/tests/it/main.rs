//! The node's integration tests: real pip, uv, twine and R against running `pkgnode` processes on
//! SQLite and PostgreSQL, local directories and Garage S3.

#[path = "../support/mod.rs"]
mod support;

mod bad_input;
mod clients;
mod protocol;
mod shared_storage;
