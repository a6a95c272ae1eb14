//! The command line users type: `harness scenario NAME`, `harness drill NAME`,
//! `harness check`, `harness gate`, `harness compare A B`, `harness report DIR`. Only `commands/` reads these types: it turns them
//! into a [`crate::plan::RunPlan`]. One file per run command's arguments; `load.rs` is what
//! they share.

mod check;
mod drill;
mod gate;
mod load;
mod scenario;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use check::{CheckArgs, StorageChoice};
pub use drill::{DrillArgs, DrillName, Replication, Workload};
pub use gate::GateArgs;
pub use load::{
    CorpusArgs, CorpusChoice, GitBuilderArgs, InfraChoice, LoadArgs, Replay, parse_fraction,
};
pub use scenario::{ScenarioArgs, ScenarioName};

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
