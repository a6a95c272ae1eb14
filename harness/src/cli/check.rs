//! `harness check`'s arguments: the cluster to check (or `--target`) and the rules' limits.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::load::InfraChoice;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StorageChoice {
    /// One bucket on the S3 server (Garage).
    S3,
    /// One directory every node names in `storage.dir` (local provider).
    Dir,
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    #[arg(long, value_enum, default_value = "auto", conflicts_with = "target")]
    pub infra: InfraChoice,
    /// pkgnode processes behind the load balancer.
    #[arg(long, default_value_t = 2, conflicts_with = "target")]
    pub nodes: usize,
    /// Run directory; default reports/runs/<timestamp>-check/.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Keep the cluster's work directory (logs, configs) after the check.
    #[arg(long)]
    pub keep_work_dir: Option<PathBuf>,
    /// How long a package uploaded through the balancer may take to be served by every node.
    #[arg(long, default_value = "10s")]
    pub shared_storage_within: humantime::Duration,
    /// Largest clock offset from the database's clock a node may have.
    #[arg(long, default_value = "1s")]
    pub max_clock_offset: humantime::Duration,
    /// Where the nodes keep package files: an S3 bucket, or one shared directory (local
    /// provider; `lock-correctness` then runs `pkgnode locktester` on two nodes).
    #[arg(long, value_enum, default_value = "s3", conflicts_with = "target")]
    pub storage: StorageChoice,
    /// Check an existing deployment through this balancer URL instead of starting one.
    #[arg(long)]
    pub target: Option<String>,
    /// With --target: one node's own URL (repeat for every node).
    #[arg(long = "node", requires = "target")]
    pub node_urls: Vec<String>,
    /// With --target: a sources:write token for --pypi-source (the shared-storage upload).
    #[arg(long, requires = "target")]
    pub token: Option<String>,
    /// With --target: the PyPI repository the probe upload is read back from.
    #[arg(long, default_value = "pypi", requires = "target")]
    pub pypi_repo: String,
    /// With --target: the local Python source the probe upload goes to.
    #[arg(long, default_value = "pypi-local", requires = "target")]
    pub pypi_source: String,
}
