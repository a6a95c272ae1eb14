//! The parts every plan builds alike from its arguments: the infrastructure, the read load,
//! the git builders' workload and node settings, the writer's tag, the thresholds (each
//! workload's defaults where none of the given ones judges it) and the final check of a plan.

use std::time::Duration;

use reports::ThresholdSet;
use scenarios::arrival::{ArrivalPlan, DiurnalCurve};
use scenarios::corpus::{CorpusConfig, CorpusPreset};
use scenarios::load_model::DailyInstallsConfig;

use crate::cli::{CorpusChoice, GitBuilderArgs, InfraChoice, LoadArgs, Replay};
use crate::error::HarnessError;
use crate::plan::{InfraKind, InfraPlan, RunPlan};
use crate::run::DEFAULT_THRESHOLDS;

/// What `scenario git-builders` must hold by default: every good commit seen published, none
/// lost, none published twice.
pub const GIT_BUILDERS_THRESHOLDS: &[&str] = &[
    "commit_to_published:error_rate<=0",
    "lost==0",
    "duplicates==0",
];

/// Uploads per second of `scenario reference`'s writer (and a drill's) by default.
pub const DEFAULT_WRITES_PER_S: f64 = 2.0;

/// A writer's tag: unique to this run, so drills repeated against one cluster never collide.
pub(super) fn writer_tag() -> String {
    format!(
        "d{}{}",
        chrono::Utc::now().format("%H%M%S"),
        std::process::id() % 10_000
    )
}

/// The workload the git-builders flags describe; names are unique to this run.
pub(super) fn git_config(
    git: &GitBuilderArgs,
    load: &LoadArgs,
    duration: Duration,
) -> scenarios::git_builders::GitBuildersConfig {
    scenarios::git_builders::GitBuildersConfig {
        builders: git.builders,
        duration,
        commits_per_builder_per_hour: git.commits_per_builder_per_hour,
        burst: git.burst,
        bad_commit_share: git.bad_commit_share,
        tags_share: git.tags_share,
        python_share: git.python_share,
        grace: git.grace.into(),
        watch_interval: git.watch_interval.into(),
        tag: format!(
            "g{}{}",
            chrono::Utc::now().format("%H%M%S"),
            std::process::id() % 1000
        ),
        seed: load.seed,
        ..Default::default()
    }
}

/// The nodes' `[git]` settings for a git-builders run.
pub fn git_node_config(git: &GitBuilderArgs) -> String {
    format!(
        "[git]\npoll_interval = \"{}\"\nbuild_concurrency = {}\n",
        humantime::format_duration(git.git_poll_interval.into()),
        git.build_concurrency
    )
}

/// The plan with its thresholds, or every problem of both (not only the first).
pub(super) fn checked(
    mut plan: RunPlan,
    thresholds: Result<ThresholdSet, HarnessError>,
) -> Result<RunPlan, HarnessError> {
    let mut problems = Vec::new();
    match thresholds {
        Ok(thresholds) => plan.thresholds = thresholds,
        Err(HarnessError::Config(errors)) => problems.extend(errors),
        Err(other) => return Err(other),
    }
    problems.extend(plan.validate());
    if problems.is_empty() {
        Ok(plan)
    } else {
        Err(HarnessError::Config(problems))
    }
}

pub(super) fn infra(load: &LoadArgs, synchronous: bool, node_config_extra: String) -> InfraPlan {
    InfraPlan {
        kind: match load.infra {
            InfraChoice::Auto => InfraKind::Auto,
            InfraChoice::Local => InfraKind::Local,
            InfraChoice::Docker => InfraKind::Docker,
        },
        nodes: load.nodes,
        synchronous_replication: synchronous,
        node_config_extra,
        keep_work_dir: load.keep_work_dir.clone(),
        git_server: false,
        auto_prefers_docker: false,
        corpus_cache: corpus_cache(load),
        package_storage: crate::infra::PackageStorage::S3,
    }
}

/// The corpus cache directory: `--corpus-cache DIR`, else the default one for the realistic
/// corpus (small corpora seed in seconds), never with `--no-corpus-cache`.
fn corpus_cache(load: &LoadArgs) -> Option<std::path::PathBuf> {
    let corpus = &load.corpus;
    match (&corpus.corpus_cache, corpus.no_corpus_cache, corpus.preset) {
        (_, true, _) => None,
        (Some(dir), false, _) => Some(dir.clone()),
        (None, false, CorpusChoice::Realistic) => Some(crate::corpus_cache::default_dir()),
        (None, false, CorpusChoice::Small) => None,
    }
}

/// The daily-installs read load the flags describe, lasting `duration`.
pub(super) fn reads(args: &LoadArgs, duration: Duration) -> DailyInstallsConfig {
    let mut arrival = match args.replay {
        Replay::PeakHour => ArrivalPlan::peak_hour(args.installs_per_day, duration),
        Replay::WholeDay => {
            let mut plan = ArrivalPlan::whole_day(args.installs_per_day, duration);
            plan.window_start_hour = args.window_start_hour;
            plan.window_hours = args.window_hours;
            plan.compression = args
                .compression
                .unwrap_or(args.window_hours * 3600.0 / duration.as_secs_f64());
            plan
        }
    };
    arrival.curve = DiurnalCurve {
        peak_to_mean: args.peak_to_mean,
        ..arrival.curve
    };
    arrival.seed = args.seed;
    let corpus = &args.corpus;
    let preset = match corpus.preset {
        CorpusChoice::Small => CorpusPreset::Small,
        CorpusChoice::Realistic => CorpusPreset::Realistic,
    };
    let base = preset.config();
    DailyInstallsConfig {
        corpus: CorpusConfig {
            packages: corpus.packages.unwrap_or(base.packages),
            r_share: corpus.r_share.unwrap_or(base.r_share),
            // An explicit R share sets both shares, as it always did.
            install_r_share: corpus.r_share.or(base.install_r_share),
            size_median_bytes: corpus.size_median_bytes.unwrap_or(base.size_median_bytes),
            size_max_bytes: corpus.size_max_bytes.unwrap_or(base.size_max_bytes),
            seed: args.seed,
            ..base
        },
        arrival,
        users: args.users,
        ..DailyInstallsConfig::default()
    }
}

/// A workload's default thresholds and the kinds and counters that make a threshold its own.
#[derive(Clone, Copy)]
pub(super) struct Defaults {
    thresholds: &'static [&'static str],
    kinds: &'static [&'static str],
    counters: &'static [&'static str],
}

impl Defaults {
    pub(super) const INSTALLS: Defaults = Defaults {
        thresholds: DEFAULT_THRESHOLDS,
        kinds: scenarios::daily_installs::KINDS,
        counters: &[],
    };
    pub(super) const GIT_BUILDERS: Defaults = Defaults {
        thresholds: GIT_BUILDERS_THRESHOLDS,
        kinds: scenarios::git_builders::KINDS,
        counters: crate::run::workloads::git_builders::COUNTERS,
    };

    fn owns(&self, threshold: &reports::Threshold) -> bool {
        (self.kinds.iter().chain(self.counters)).any(|k| *k == threshold.kind)
    }
}

/// The thresholds of a run of several workloads: the flags' and the file's, and the defaults
/// of every workload none of them judges (so `--threshold 'p99<200ms'` loosens the reads and
/// keeps the builders' `lost==0`). With one workload: the given ones, else its defaults.
pub(super) fn thresholds_of(
    args: &LoadArgs,
    workloads: &[Defaults],
) -> Result<ThresholdSet, HarnessError> {
    let all: Vec<&str> = workloads
        .iter()
        .flat_map(|d| d.thresholds)
        .copied()
        .collect();
    let mut set = thresholds(args, &all)?;
    if set.thresholds.is_empty() || workloads.len() < 2 {
        return Ok(set);
    }
    let given = !(args.thresholds.is_empty() && args.thresholds_file.is_none());
    if given {
        for workload in workloads {
            if !set.thresholds.iter().any(|t| workload.owns(t)) {
                let defaults = ThresholdSet::parse_all(workload.thresholds).map_err(|errors| {
                    HarnessError::Internal(format!("default thresholds: {errors:?}"))
                })?;
                set.thresholds.extend(defaults.thresholds);
            }
        }
    }
    Ok(set)
}

/// Thresholds from the flags and the file; `defaults` when neither gives any.
pub(super) fn thresholds(args: &LoadArgs, defaults: &[&str]) -> Result<ThresholdSet, HarnessError> {
    let mut set = ThresholdSet::default();
    if let Some(path) = &args.thresholds_file {
        set = ThresholdSet::from_toml_file(path)
            .map_err(|e| HarnessError::Config(vec![e.to_string()]))?;
    }
    let flags = ThresholdSet::parse_all(&args.thresholds)
        .map_err(|errors| HarnessError::Config(errors.iter().map(ToString::to_string).collect()))?;
    set.thresholds.extend(flags.thresholds);
    if set.thresholds.is_empty() {
        set = ThresholdSet::parse_all(defaults)
            .map_err(|errors| HarnessError::Internal(format!("default thresholds: {errors:?}")))?;
    }
    Ok(set)
}
