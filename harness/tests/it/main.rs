//! The harness's one integration test binary: a module per area, against real PostgreSQL,
//! Garage, HAProxy, pkgnode and the docker engine.

mod check;
mod drill;
mod generators;
mod infra_docker;
mod infra_local;
mod scenario;
mod support;
mod target;
