//! The `scenarios` integration tests, one binary with one module per area.

mod architecture;
mod clients;
mod daily_installs;
mod fake_server;
mod module_graph;
