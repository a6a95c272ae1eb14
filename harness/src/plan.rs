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
    /// A Git server and the Git sources (the git-builders workload; local provider only).
    pub git_server: bool,
    /// The corpus cache directory: restore the seeded corpus from it, or save it there after
    /// seeding. `None`: upload every run.
    pub corpus_cache: Option<PathBuf>,
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
    pub thresholds: ThresholdSet,
    /// Run the HA checklist before and after (not against a `--target`, whose balancer the
    /// harness cannot read; `harness check --target` covers it).
    pub ha_checklist: bool,
    /// No progress bar.
    pub quiet: bool,
}

impl RunPlan {
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
        })
    }
}
