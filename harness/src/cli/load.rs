//! What every run command shares on its command line: the load (`LoadArgs`), the corpus
//! (`CorpusArgs`, flattened into the run commands' and the gate's), the provider, the git
//! builders' flags.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CorpusChoice {
    /// 200 packages, one or two versions each, pure wheels: seeds in seconds.
    Small,
    /// CRAN's ~21,000 R packages and the whole PyPI list, several versions, compiled wheels for
    /// five CPython versions; seeded once and restored from the corpus cache afterwards.
    Realistic,
}

/// A fraction given as `10%` or `0.1`.
pub fn parse_fraction(text: &str) -> Result<f64, String> {
    let value = match text.trim().strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => text.trim().parse::<f64>(),
    }
    .map_err(|_| format!("`{text}` is not a fraction such as 10% or 0.1"))?;
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(format!("`{text}` must be a fraction of at least 0"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InfraChoice {
    /// docker when an engine answers and images exist or can be built, else local.
    Auto,
    /// PostgreSQL, Garage, pkgnode and HAProxy as child processes on loopback addresses.
    Local,
    /// Containers through testcontainers.
    Docker,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Replay {
    /// The peak hour's arrival rate, in real time, for --duration.
    PeakHour,
    /// The whole day compressed into --duration.
    WholeDay,
}

/// The corpus: a preset and the flags that override single parts of it, and the corpus cache.
#[derive(Debug, Clone, Args)]
pub struct CorpusArgs {
    /// The corpus shape; the flags below override single parts of it.
    #[arg(long = "corpus", value_enum, default_value = "realistic")]
    pub preset: CorpusChoice,
    /// Share of installs (and packages) that are R (small: 0.5; realistic: packages as on
    /// CRAN and the PyPI list, installs half and half).
    #[arg(long)]
    pub r_share: Option<f64>,
    /// Packages in the generated corpus (both ecosystems) (small: 200; realistic: ~36,000).
    #[arg(long)]
    pub packages: Option<usize>,
    /// Median package file size, bytes (small: 100000; realistic: 6400).
    #[arg(long)]
    pub size_median_bytes: Option<u64>,
    /// Largest package file, bytes (small: 20 MiB; realistic: 5 MiB).
    #[arg(long)]
    pub size_max_bytes: Option<u64>,
    /// The corpus cache directory (used for every corpus when given; by default only the
    /// realistic corpus is cached, under ~/.cache/pkgcluster/corpus).
    #[arg(long, conflicts_with = "no_corpus_cache")]
    pub corpus_cache: Option<PathBuf>,
    /// Seed the cluster by uploading, and save nothing.
    #[arg(long)]
    pub no_corpus_cache: bool,
}

/// What every run shares: the infrastructure, the read load, the thresholds, the output.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    #[arg(long, value_enum, default_value = "auto")]
    pub infra: InfraChoice,
    /// pkgnode processes behind the load balancer.
    #[arg(long, default_value_t = 2)]
    pub nodes: usize,
    /// Measured run time (the schedule's wall-clock length).
    #[arg(long, default_value = "90s")]
    pub duration: humantime::Duration,
    #[arg(long, default_value_t = 1_000_000.0)]
    pub installs_per_day: f64,
    #[arg(long, value_enum, default_value = "peak-hour")]
    pub replay: Replay,
    /// With --replay whole-day: simulated seconds per wall second (the run then lasts
    /// window-hours × 3600 / compression, and --duration is ignored).
    #[arg(long)]
    pub compression: Option<f64>,
    /// With --replay whole-day: the first simulated hour (UTC) of the replayed window.
    #[arg(long, default_value_t = 0.0)]
    pub window_start_hour: f64,
    /// With --replay whole-day: how many simulated hours to replay.
    #[arg(long, default_value_t = 24.0)]
    pub window_hours: f64,
    /// Peak-to-mean ratio of the diurnal arrival curve.
    #[arg(long, default_value_t = 2.5)]
    pub peak_to_mean: f64,
    #[command(flatten)]
    pub corpus: CorpusArgs,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// goose users; by default sized from the peak rate by Little's law.
    #[arg(long)]
    pub users: Option<usize>,
    /// A threshold such as 'p99<50ms', 'error_rate<0.1%', 'pypi_file:p99<100ms'; repeatable.
    #[arg(long = "threshold")]
    pub thresholds: Vec<String>,
    /// A TOML file with `thresholds = [...]`.
    #[arg(long = "thresholds")]
    pub thresholds_file: Option<PathBuf>,
    /// Run directory; default reports/runs/<timestamp>-<scenario>/.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Keep the cluster's work directory (logs, configs) after the run.
    #[arg(long)]
    pub keep_work_dir: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// The git-builders workload (`scenario git-builders`).
#[derive(Debug, Clone, Args)]
pub struct GitBuilderArgs {
    /// Git builders, each with its own repository and package (R or Python).
    #[arg(long, default_value_t = 100)]
    pub builders: usize,
    /// Mean commits per builder per hour (Poisson arrivals over --duration).
    #[arg(long, default_value_t = 12.0)]
    pub commits_per_builder_per_hour: f64,
    /// Push one commit to every builder within the first second as well.
    #[arg(long)]
    pub burst: bool,
    /// Share of commits broken on purpose (their builds must fail, and nothing else may).
    #[arg(long, default_value_t = 0.02)]
    pub bad_commit_share: f64,
    /// Share of builders triggered by tags instead of commits.
    #[arg(long, default_value_t = 0.2)]
    pub tags_share: f64,
    /// Share of builders that are Python (`git-python`); the rest are R (`git`).
    #[arg(long, default_value_t = 0.5)]
    pub python_share: f64,
    /// After the last push, how long a good commit may take to be published before it counts
    /// as lost.
    #[arg(long, default_value = "60s")]
    pub grace: humantime::Duration,
    /// How often a waiting client polls the index for its commit's version.
    #[arg(long, default_value = "500ms")]
    pub watch_interval: humantime::Duration,
    /// The nodes' `[git] poll_interval`: how often a builder's remote is checked.
    #[arg(long, default_value = "5s")]
    pub git_poll_interval: humantime::Duration,
    /// The nodes' `[git] build_concurrency`: builds at once per node.
    #[arg(long, default_value_t = 2)]
    pub build_concurrency: usize,
}
