//! The harness's one integration test binary: a module per area, against real PostgreSQL,
//! Garage, HAProxy, pkgnode and the docker engine.

mod check;
mod check_conformance;
mod corpus_cache;
mod drill;
mod gate;
mod generators;
mod git_builders;
mod infra_docker;
mod infra_local;
mod mutations;
mod proofs;
mod reference;
mod scenario;
mod support;
mod target;
mod version_hook;
