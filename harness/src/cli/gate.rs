//! `harness gate`'s arguments: the search's bounds, the SLO, the baseline.

use std::path::PathBuf;

use clap::Args;

use super::load::{CorpusArgs, InfraChoice, parse_fraction};
use super::scenario::ScenarioName;

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
