mod check;
mod drill;
mod infra_docker;
mod infra_local;
mod scenario;
mod support;
