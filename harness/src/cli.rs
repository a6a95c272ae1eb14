//! The command line users type: `harness scenario NAME`, `harness drill NAME`,
//! `harness check`, `harness gate`, `harness compare A B`, `harness report DIR`. Only `commands/` reads these types: it turns them into a
//! [`crate::plan::RunPlan`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "harness",
    version,
    about = "Load-testing and conformance harness for pkgnode clusters"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a load scenario against a cluster and write its run record and report.
    Scenario(Box<ScenarioArgs>),
    /// Run a failover drill: the read load and an upload writer while a fault is injected and
    /// healed, then check that no acknowledged upload was lost.
    Drill(Box<DrillArgs>),
    /// Verify the HA checklist on a cluster: same version, key and config on every node,
    /// PostgreSQL, shared storage, synchronized clocks, membership, a closed status endpoint,
    /// the balancer's health checks. Exit code 0 all pass, 1 a rule failed, 5 unknown.
    Check(Box<CheckArgs>),
    /// Find the highest install rate the cluster sustains within the SLO (bisection with
    /// confirmation), compare it with a baseline gate record, write gate.json and gate.html.
    /// Exit code 0 pass, 1 below --min or a regression, 3 infrastructure, 5 unknown.
    Gate(Box<GateArgs>),
    /// Put two run records side by side: spectra overlaid, per-kind deltas, verdicts.
    Compare(CompareArgs),
    /// Re-render report.html (and summary.json) from a run record directory; with --threshold
    /// or --thresholds, judge it again by those (exit code 1 when one fails).
    Report {
        /// A run directory written by `harness scenario`.
        dir: PathBuf,
        /// A threshold to judge the record by instead of its own; repeatable.
        #[arg(long = "threshold")]
        thresholds: Vec<String>,
        /// A TOML file with `thresholds = [...]`.
        #[arg(long = "thresholds")]
        thresholds_file: Option<PathBuf>,
    },
    /// List or clear the corpus cache (seeded clusters saved for later runs).
    CorpusCache {
        #[arg(value_enum)]
        action: CorpusCacheAction,
        /// The cache directory; default $PKGCLUSTER_CORPUS_CACHE, else
        /// $XDG_CACHE_HOME/pkgcluster/corpus, else ~/.cache/pkgcluster/corpus.
        #[arg(long = "corpus-cache")]
        dir: Option<PathBuf>,
    },
    /// Merge the run records of several load generators of one run (e.g. the slices of a
    /// Kubernetes Indexed Job) into one record, judged over the merge. Exit code as a scenario's.
    Merge(MergeArgs),
    /// One child load generator of `harness scenario --generators N` (internal).
    #[command(hide = true)]
    Generator {
        /// The generator's JSON spec, written by the coordinating harness.
        spec: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CorpusCacheAction {
    /// One line per entry: key, corpus, files, bytes, seeding time.
    List,
    /// Remove every entry.
    Clear,
}

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

#[derive(Debug, Clone, Args)]
pub struct GateArgs {
    #[arg(long, value_enum, default_value = "auto")]
    pub infra: InfraChoice,
    /// pkgnode processes behind the load balancer.
    #[arg(long, default_value_t = 2)]
    pub nodes: usize,
    /// The scenario each step runs.
    #[arg(long, value_enum, default_value = "daily-installs")]
    pub scenario: ScenarioName,
    /// A threshold every step must hold besides `install:error_rate<=0` and
    /// `install:rate_ratio>=0.99`, which always apply, e.g. 'p99<100ms'; repeatable. Default:
    /// every kind's p99 < 50 ms.
    #[arg(long = "slo")]
    pub slo: Vec<String>,
    /// Load run at the reference rate before the first step and not judged (the first load
    /// after publishing is cold); 0s for none.
    #[arg(long, default_value = "20s")]
    pub warm_up: humantime::Duration,
    /// Lower bound of the search, installs per day.
    #[arg(long, default_value_t = 1_000_000.0)]
    pub min: f64,
    /// Upper bound of the search, installs per day.
    #[arg(long, default_value_t = 8_000_000.0)]
    pub max: f64,
    /// Measured length of each step.
    #[arg(long, default_value = "60s")]
    pub step_duration: humantime::Duration,
    /// Stop when the lowest failed rate is within this much above the highest held one.
    #[arg(long, default_value = "10%", value_parser = parse_fraction)]
    pub resolution: f64,
    /// At most this many steps.
    #[arg(long, default_value_t = 20)]
    pub max_steps: usize,
    /// The rate whose per-kind latency is compared with the baseline's, installs per day.
    #[arg(long, default_value_t = 1_000_000.0)]
    pub reference_rate: f64,
    /// A previous gate.json, or a directory of them (every gate.json under it). A baseline
    /// measured with other settings (corpus, SLO, step duration, nodes, provider, CPU model,
    /// cores) is refused (exit 2).
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Compare with the baseline even though its settings differ (the page says how).
    #[arg(long, requires = "baseline")]
    pub baseline_any_settings: bool,
    /// Largest capacity drop or latency rise accepted against the baseline. The default is
    /// set from five A/A gates of one build (README, "The gate's own noise"): capacities of one
    /// build spread 28% (the bisection's steps are ~7% apart), so 10% failed 4 of 20
    /// comparisons of an unchanged build with one earlier record; 25% failed none.
    #[arg(long, default_value = "25%", value_parser = parse_fraction)]
    pub max_regression: f64,
    /// Largest rise of the cluster's CPU per install at the reference rate accepted against
    /// the baseline (median of the reference windows on each side). Default from the same A/A
    /// gates: 19% spread; 15% failed 2 of 20 comparisons, 25% none.
    #[arg(long, default_value = "25%", value_parser = parse_fraction)]
    pub max_cost_regression: f64,
    /// The corpus every step installs from, published (or restored from the corpus cache)
    /// once, before the first step.
    #[command(flatten)]
    pub corpus: CorpusArgs,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Gate directory; default reports/runs/<timestamp>-gate/.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Keep the cluster's work directory (logs, configs) after the gate.
    #[arg(long)]
    pub keep_work_dir: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The first run directory (the reference).
    pub a: PathBuf,
    /// The second run directory (judged against A).
    pub b: PathBuf,
    /// A p99 change within this much is the same; beyond it, better or worse.
    #[arg(long, default_value = "10%", value_parser = parse_fraction)]
    pub max_change: f64,
    /// Where compare.html and compare.json go; default reports/runs/<timestamp>-compare/.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// Run directories of the generators, each written by `harness scenario --slice I/N`.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Where the merged run directory goes.
    #[arg(long)]
    pub out: PathBuf,
    /// Judge these thresholds instead of those the records were judged with; repeatable.
    #[arg(long = "threshold")]
    pub thresholds: Vec<String>,
}

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
pub enum StorageChoice {
    /// One bucket on the S3 server (Garage).
    S3,
    /// One directory every node names in `storage.dir` (local provider).
    Dir,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DrillName {
    /// SIGKILL a node, restart it after --for.
    KillNode,
    /// Stop a node politely (it drains), start it after --for.
    StopNode,
    /// SIGSTOP a node for --for, then SIGCONT.
    PauseNode,
    /// Cut a node off the network for --for (local: needs root and iptables).
    PartitionNode,
    /// Cut a node off the database only for --for; it still answers clients (local only).
    PartitionNodeDb,
    /// SIGKILL the primary database; the failover controller promotes the standby; the former
    /// primary rejoins as the standby after --for.
    KillPrimaryDb,
    /// SIGKILL the synchronous standby (commits stall), start it after --for.
    KillStandby,
    /// --faults N faults drawn with --seed from the drills above, one at a time.
    Random,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Replication {
    /// Commits wait for the standby: a killed primary loses no acknowledged commit.
    Sync,
    /// Commits do not wait: a killed primary can lose acknowledged commits (negative control).
    Async,
}

/// What a drill runs while its faults are injected (`--workload`, a list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Workload {
    /// The daily-installs read load, with the upload writer beside it as every drill has had.
    #[value(alias = "daily-installs")]
    Installs,
    /// The upload writer alone (beside the git builders, say).
    Uploads,
    /// The git builders (commits, builds, clients waiting): builds held by a faulted node must
    /// finish elsewhere, exactly once.
    GitBuilders,
    /// The reference run's workloads together (`scenario reference`): installs, the upload
    /// writer and the git builders.
    Reference,
}

#[derive(Debug, Clone, Args)]
pub struct DrillArgs {
    pub name: DrillName,
    #[command(flatten)]
    pub load: LoadArgs,
    /// The workloads the faults hit, run together: e.g. `installs,git-builders`.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "installs")]
    pub workload: Vec<Workload>,
    #[command(flatten, next_help_heading = "git-builders (--workload git-builders)")]
    pub git: GitBuilderArgs,
    /// With --workload git-builders: the nodes' `[git] lease_duration` (a killed node's builds
    /// go back to the queue once their lease expires).
    #[arg(long, default_value = "6s")]
    pub lease_duration: humantime::Duration,
    /// When the (first) fault is injected, after the load starts.
    #[arg(long, default_value = "30s")]
    pub at: humantime::Duration,
    /// How long each fault lasts before it is healed.
    #[arg(long = "for", default_value = "20s")]
    pub hold: humantime::Duration,
    /// Inject the drill's fault this many times, one after another.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// With `random`: how many faults.
    #[arg(long, default_value_t = 5)]
    pub faults: usize,
    /// Pause between one fault's heal and the next fault.
    #[arg(long, default_value = "5s")]
    pub gap: humantime::Duration,
    /// Uploads of new package versions per second through the balancer during the drill.
    #[arg(long, default_value_t = 2.0)]
    pub writes_per_s: f64,
    /// Which node the node faults target (1-based); by default the last.
    #[arg(long)]
    pub node: Option<usize>,
    /// Database replication the cluster runs with.
    #[arg(long, value_enum, default_value = "sync")]
    pub replication: Replication,
    /// With kill-primary-db: stop the standby this long before the kill while writes go on.
    #[arg(long)]
    pub hold_standby: Option<humantime::Duration>,
    /// The failover controller's health check interval.
    #[arg(long, default_value = "1s")]
    pub failover_check_interval: humantime::Duration,
    /// Missed health checks in a row before the standby is promoted.
    #[arg(long, default_value_t = 3)]
    pub failover_misses: u32,
    /// Failed installs allowed inside the fault windows.
    #[arg(long, default_value_t = 0)]
    pub max_failed_installs: u64,
    /// Installs that must be scheduled inside each fault window for `availability` to judge
    /// it; below this the checker says unknown (exit 5).
    #[arg(long, default_value_t = crate::checkers::availability::DEFAULT_MIN_INSTALLS_PER_WINDOW)]
    pub min_installs_per_window: u64,
    /// Longest time from a fault to the first acknowledged upload.
    #[arg(long, default_value = "10s")]
    pub max_write_gap: humantime::Duration,
    /// How long the cluster may take to recover after each heal.
    #[arg(long, default_value = "60s")]
    pub recovery_timeout: humantime::Duration,
    /// How long the final reads wait for every node to serve what the database holds (and
    /// nothing else) before such an upload counts as stale (or phantom).
    #[arg(long, default_value = "10s")]
    pub settle: humantime::Duration,
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
