//! The typed plan of one run, built once from the command line in `commands/` and handed to
//! [`crate::run::run`]: the workloads (any of the daily-installs read load, the upload writer
//! and the git builders, run together), the nemesis schedule, the checkers, the thresholds,
//! and what the infrastructure must offer. A plain scenario is a plan with the no-op nemesis
//! and no checkers; a drill adds a writer, faults and checkers; `scenario reference` is all
//! three workloads at once.
//!
//! **Architecture Invariant:** nothing below `commands/` sees clap types; everything a run
//! needs is here.

use std::path::PathBuf;
use std::time::Duration;

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
    /// With `--infra auto`, docker whenever an engine answers, Git builders included (nodes
    /// from the builders image), instead of running them locally: `scenario reference`, whose
    /// claim is about the containers' cluster.
    pub auto_prefers_docker: bool,
    /// The corpus cache directory: restore the seeded corpus from it, or save it there after
    /// seeding. `None`: upload every run.
    pub corpus_cache: Option<PathBuf>,
    /// Where the nodes keep package files (S3 unless `harness check --storage dir`).
    pub package_storage: crate::infra::PackageStorage,
}

/// What `harness check` does: the cluster to check and the checklist's options (no load).
#[derive(Clone, Debug)]
pub struct CheckPlan {
    pub infra: InfraPlan,
    pub options: crate::checklist::ChecklistOptions,
}

/// One run, fully described.
#[derive(Clone, Debug)]
pub struct RunPlan {
    /// `daily-installs`, `drill-kill-node`, … (the run record's scenario).
    pub name: String,
    pub infra: InfraPlan,
    /// What loads the cluster, each on its own schedule from one start: at most one of each
    /// kind, in the order their sections appear.
    pub workloads: Vec<WorkloadPlan>,
    pub nemesis: NemesisPlan,
    /// Every checker asked for: each workload runs those about it (`builds` the git
    /// builders', `lost-writes` the writer's, `availability` the reads'), the run the others.
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

/// One workload of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadPlan {
    /// The daily-installs read load (`installs`).
    Installs(DailyInstallsConfig),
    /// The open-model upload writer and its ledger (`uploads`).
    Uploads(WriterConfig),
    /// Git builders: commits pushed, built by the nodes, waited for by clients.
    GitBuilders(GitBuildersConfig),
}

impl WorkloadPlan {
    /// Its name in the run record: `installs`, `uploads` or `git-builders`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Installs(_) => "installs",
            Self::Uploads(_) => "uploads",
            Self::GitBuilders(_) => "git-builders",
        }
    }

    /// How long its load runs from the run's start (the git builders' grace included).
    pub fn run_time(&self) -> Duration {
        match self {
            Self::Installs(reads) => reads.arrival.wall_duration(),
            Self::Uploads(writes) => writes.duration,
            Self::GitBuilders(git) => git.duration + git.grace,
        }
    }

    /// Every problem with its configuration.
    fn validate(&self) -> Vec<String> {
        let problems = match self {
            Self::Installs(reads) => reads.validate().err(),
            Self::Uploads(writes) => writes.validate().err().map(|e| vec![e.to_string()]),
            Self::GitBuilders(git) => git.validate().err().map(|e| vec![e.to_string()]),
        };
        problems.unwrap_or_default()
    }
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
    /// The read load, if the run installs.
    pub fn installs(&self) -> Option<&DailyInstallsConfig> {
        self.workloads.iter().find_map(|w| match w {
            WorkloadPlan::Installs(reads) => Some(reads),
            _ => None,
        })
    }

    /// The upload writer, if the run writes.
    pub fn uploads(&self) -> Option<&WriterConfig> {
        self.workloads.iter().find_map(|w| match w {
            WorkloadPlan::Uploads(writes) => Some(writes),
            _ => None,
        })
    }

    /// The git builders, if the run has them.
    pub fn git_builders(&self) -> Option<&GitBuildersConfig> {
        self.workloads.iter().find_map(|w| match w {
            WorkloadPlan::GitBuilders(git) => Some(git),
            _ => None,
        })
    }

    /// How long the load runs: its longest workload's run.
    pub fn run_time(&self) -> Duration {
        (self.workloads.iter().map(WorkloadPlan::run_time))
            .max()
            .unwrap_or_default()
    }

    /// The corpus this run installs from, if it installs any (the git builders publish their
    /// own packages, so a run without the reads neither restores nor seeds a corpus).
    pub fn installs_corpus(&self) -> Option<&scenarios::corpus::CorpusConfig> {
        self.installs().map(|reads| &reads.corpus)
    }

    /// Every problem with the plan, not only the first (every workload's and the nemesis's
    /// together).
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.workloads.is_empty() {
            problems.push("a run needs at least one workload".into());
        }
        for (i, workload) in self.workloads.iter().enumerate() {
            problems.extend(workload.validate());
            if self.workloads[..i]
                .iter()
                .any(|w| w.name() == workload.name())
            {
                problems.push(format!("the {} workload is planned twice", workload.name()));
            }
        }
        if self.git_builders().is_some() && !self.infra.git_server {
            problems.push("the git builders need a cluster with a Git server".into());
        }
        problems.extend(self.nemesis.validate(self.infra.nodes, self.run_time()));
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
            && (self.uploads().is_some() || !self.nemesis.faults.is_empty())
        {
            problems.push("--generators runs plain scenarios; drills run one generator".into());
        }
        if (self.generators.children > 1 || self.generators.slice.is_some())
            && self
                .workloads
                .iter()
                .any(|w| !matches!(w, WorkloadPlan::Installs(_)))
        {
            problems.push(
                "--generators and --slice split the read load alone; the uploads and the git \
                 builders run in one process"
                    .into(),
            );
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
            "workloads": self.workloads.iter().map(WorkloadPlan::name).collect::<Vec<_>>(),
            "writes": self.uploads(),
            "git_builders": self.git_builders(),
            "nemesis": self.nemesis,
            "checkers": self.checkers,
            "availability_limits": self.availability,
            "settle_s": self.settle.as_secs_f64(),
            "generators": self.generators,
        })
    }
}
