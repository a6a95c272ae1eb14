//! `pkgnode`: a package-repository server node in the mould of Posit Package Manager. It serves
//! CRAN-style and PyPI-style repositories, accepts uploads, builds packages from Git repositories, keeps metadata in PostgreSQL or SQLite
//! and package files in a directory or an S3 bucket.

pub mod auth;
pub mod blob_cache;
pub mod blobs;
pub mod builders;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod downloads;
pub mod formats;
pub mod head;
pub mod http;
pub mod ingest;
pub mod locks;
pub mod received;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod views;
