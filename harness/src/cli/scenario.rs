//! `harness scenario NAME`'s arguments.

use clap::{Args, ValueEnum};

use super::load::{GitBuilderArgs, LoadArgs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScenarioName {
    /// A day's package installs (pip and R clients) under an open arrival model.
    DailyInstalls,
    /// Git builders: commits pushed to a real Git server on an open schedule, built by the
    /// nodes' leased queue, waited for by clients (commit → published).
    GitBuilders,
    /// The reference claim as one run: the installs at --installs-per-day, --builders Git
    /// builders with a burst, and the upload writer, together on one cluster.
    Reference,
}

impl ScenarioName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DailyInstalls => "daily-installs",
            Self::GitBuilders => "git-builders",
            Self::Reference => "reference",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ScenarioArgs {
    pub name: ScenarioName,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten, next_help_heading = "git-builders")]
    pub git: GitBuilderArgs,
    /// Scenario reference: uploads of new package versions per second through the balancer
    /// (default 2).
    #[arg(long, help_heading = "reference")]
    pub writes_per_s: Option<f64>,
    /// Drive an existing deployment at this URL instead of starting one.
    #[arg(long)]
    pub target: Option<String>,
    /// sources:write token for the target's Python source (and its R source unless --cran-token).
    #[arg(long, requires = "target")]
    pub token: Option<String>,
    /// sources:write token for the target's R source, when it differs.
    #[arg(long, requires = "target")]
    pub cran_token: Option<String>,
    #[arg(long, default_value = "pypi")]
    pub pypi_repo: String,
    #[arg(long, default_value = "cran")]
    pub cran_repo: String,
    #[arg(long, default_value = "pypi-local")]
    pub pypi_source: String,
    #[arg(long, default_value = "cran-local")]
    pub cran_source: String,
    /// Load-generator processes: N child processes of this harness, each executing a disjoint
    /// slice of the one schedule; their records are merged and judged as one.
    #[arg(long, default_value_t = 1, conflicts_with = "slice")]
    pub generators: usize,
    /// Execute only slice I of N of the schedule (0-based), e.g. a Kubernetes Indexed Job's
    /// `$(JOB_COMPLETION_INDEX)/N`; merge the slices' records with `harness merge`.
    #[arg(long, value_name = "I/N")]
    pub slice: Option<String>,
    /// When the schedule (and time bucket 0) starts, RFC 3339 (e.g. 2026-11-28T10:00:00Z):
    /// the same for every slice, so their time buckets align.
    #[arg(long)]
    pub start_at: Option<String>,
    /// With --target: the target already serves the corpus (uploaded by an earlier run or
    /// another slice with the same corpus flags); upload nothing.
    #[arg(long, requires = "target")]
    pub no_publish: bool,
    /// With --target: upload nothing; discover the corpus from what the target serves (the R
    /// `PACKAGES` index and the PyPI simple pages of --pypi-repo / --cran-repo).
    #[arg(long, requires = "target", conflicts_with = "no_publish")]
    pub read_only: bool,
    /// With --target: allow a host outside 127.0.0.0/8 (a real deployment).
    #[arg(long, requires = "target")]
    pub allow_remote_target: bool,
    /// With --target: one node's own URL (repeat for every node), for per-node shares and
    /// statuses from the nodes' own endpoints.
    #[arg(long = "node", requires = "target")]
    pub node_urls: Vec<String>,
}
