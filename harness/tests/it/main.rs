mod infra_local;
mod scenario;
