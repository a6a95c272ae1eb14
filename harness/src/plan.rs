//! The typed plan of one run, built once from the command line in `commands/` and handed to
//! [`crate::run::run`]: the workloads (the daily-installs read load, an optional upload
//! writer, or the git builders), the nemesis schedule, the checkers, the thresholds, and what the infrastructure
//! must offer. A plain scenario is a plan with the no-op nemesis and no checkers; a drill adds
//! a writer, faults and checkers.
//!
//! **Architecture Invariant:** nothing below `commands/` sees clap types; everything a run
//! needs is here.

use std::path::PathBuf;

use reports::ThresholdSet;
use scenarios::git_builders::GitBuildersConfig;
use scenarios::load_model::DailyInstallsConfig;
use scenarios::writes::WriterConfig;
use serde::Serialize;

use crate::checkers::CheckerKind;
use crate::checkers::availability::AvailabilityLimits;
use crate::nemesis::NemesisPlan;

/// How long the final reads wait for the nodes to agree with the database by default.
pub const DEFAULT_SETTLE: std::time::Duration = std::time::Duration::from_secs(10);

/// Which provider runs the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InfraKind {
    /// docker when an engine answers, else local.
    Auto,
    Local,
    Docker,
}

/// What the cluster must be.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InfraPlan {
    pub kind: InfraKind,
    pub nodes: usize,
    /// Commits wait for the standby.
    pub synchronous_replication: bool,
    /// TOML merged into every node's config (short check-in intervals for drills).
    pub node_config_extra: String,
    /// Keep the cluster's work directory here after the run.
    pub keep_work_dir: Option<PathBuf>,
    /// A Git server and the Git sources (the git-builders workload; on docker, nodes from the
    /// builders image: `infra::docker::DockerOptions::git_builders`).
    pub git_server: bool,
    /// The corpus cache directory: restore the seeded corpus from it, or save it there after
    /// seeding. `None`: upload every run.
    pub corpus_cache: Option<PathBuf>,
    /// Where the nodes keep package files (S3 unless `harness check --storage dir`).
    pub package_storage: crate::infra::PackageStorage,
}

/// One run, fully described.
#[derive(Clone, Debug)]
pub struct RunPlan {
    /// `daily-installs`, `drill-kill-node`, … (the run record's scenario).
    pub name: String,
    pub infra: InfraPlan,
    /// The read load.
    pub reads: DailyInstallsConfig,
    /// The upload writer, if the run writes.
    pub writes: Option<WriterConfig>,
    /// The git builders workload; when set, it runs *instead of* the read load.
    pub git_builders: Option<GitBuildersConfig>,
    pub nemesis: NemesisPlan,
    pub checkers: Vec<CheckerKind>,
    pub availability: AvailabilityLimits,
    /// How long the final reads wait for every node to agree with the database before an
    /// entry a node still does not serve counts as stale (`--settle`).
    pub settle: std::time::Duration,
    pub thresholds: ThresholdSet,
    /// Run the HA checklist before and after (not against a `--target`, whose balancer the
    /// harness cannot read; `harness check --target` covers it).
    pub ha_checklist: bool,
    /// No progress bar.
    pub quiet: bool,
    /// Which load-generator processes execute the read load, and where the corpus comes from.
    pub generators: GeneratorPlan,
}

/// Where the installed corpus comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CorpusSource {
    /// Generate it and upload it before the load.
    #[default]
    Publish,
    /// Generate it; the target already serves it (published by another generator or run).
    Served,
    /// Read it from what the target serves (`PACKAGES`, the PyPI simple pages): no uploads.
    Discover,
}

/// One slice of a schedule shared by `count` generators: this process takes the arrivals
/// `index`, `index + count`, … of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Slice {
    pub index: usize,
    pub count: usize,
}

/// How the read load is spread over load-generator processes.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GeneratorPlan {
    /// Child generator processes, each executing one slice; 0 or 1: this process generates.
    pub children: usize,
    /// This process executes only this slice of the schedule.
    pub slice: Option<Slice>,
    /// When bucket 0 and the schedule start, the same instant for every generator of a run
    /// (so their time buckets align); `None`: a second after the load is ready.
    pub start_at: Option<chrono::DateTime<chrono::Utc>>,
    pub corpus: CorpusSource,
    /// Where the children write their run records (one directory each).
    pub records_dir: Option<PathBuf>,
}

impl RunPlan {
    /// The corpus this run installs from, if it installs any (a git-builders run publishes
    /// its builders' packages instead, so it neither restores nor seeds a corpus).
    pub fn installs_corpus(&self) -> Option<&scenarios::corpus::CorpusConfig> {
        self.git_builders.is_none().then_some(&self.reads.corpus)
    }

    /// Every problem with the plan, not only the first (the load model's, the writer's and
    /// the nemesis's together).
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = self.reads.validate() {
            problems.extend(e);
        }
        if let Some(writes) = &self.writes
            && let Err(e) = writes.validate()
        {
            problems.push(e.to_string());
        }
        if let Some(git) = &self.git_builders {
            if let Err(e) = git.validate() {
                problems.push(e.to_string());
            }
            if !self.infra.git_server {
                problems.push("the git builders need a cluster with a Git server".into());
            }
        }
        problems.extend(
            self.nemesis
                .validate(self.infra.nodes, self.reads.arrival.wall_duration()),
        );
        if self.infra.nodes == 0 {
            problems.push("a cluster needs at least one node".into());
        }
        if let Some(slice) = self.generators.slice
            && (slice.count == 0 || slice.index >= slice.count)
        {
            problems.push(format!(
                "--slice {}/{}: the index counts from 0 and must be below the count",
                slice.index, slice.count
            ));
        }
        if self.generators.children > 1
            && (self.writes.is_some() || !self.nemesis.faults.is_empty())
        {
            problems.push("--generators runs plain scenarios; drills run one generator".into());
        }
        if self.generators.children > 1 && self.generators.slice.is_some() {
            problems.push("--generators and --slice exclude each other".into());
        }
        problems
    }

    /// The plan as shown in the report (everything but the thresholds, which have their own
    /// section).
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "infra": self.infra,
            "writes": self.writes,
            "git_builders": self.git_builders,
            "nemesis": self.nemesis,
            "checkers": self.checkers,
            "availability_limits": self.availability,
            "settle_s": self.settle.as_secs_f64(),
            "generators": self.generators,
        })
    }
}
