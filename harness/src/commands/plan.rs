//! Command-line arguments → [`RunPlan`]: the one place clap types become a plan. Everything
//! below `commands/` takes the plan.

use std::time::Duration;

use rand::seq::SliceRandom;
use rand::{SeedableRng, rngs::StdRng};
use reports::ThresholdSet;
use scenarios::arrival::{ArrivalPlan, DiurnalCurve};
use scenarios::corpus::{CorpusConfig, CorpusPreset};
use scenarios::load_model::DailyInstallsConfig;
use scenarios::writes::WriterConfig;

use crate::checkers::CheckerKind;
use crate::checkers::availability::AvailabilityLimits;
use crate::cli::{
    CorpusChoice, DrillArgs, DrillName, GitBuilderArgs, InfraChoice, LoadArgs, Replay, Replication,
    ScenarioArgs, ScenarioName, Workload,
};
use crate::error::HarnessError;
use crate::nemesis::{FailoverPolicy, Fault, NemesisPlan, ScheduledFault};
use crate::plan::{
    CorpusSource, GeneratorPlan, InfraKind, InfraPlan, RunPlan, Slice, WorkloadPlan,
};
use crate::run::DEFAULT_THRESHOLDS;

/// Node settings for drills: check-ins every second, "Missed check-in" after three, so a
/// paused node is seen within seconds (production defaults are 5 and 10 minutes).
pub const DRILL_NODE_CONFIG: &str =
    "[cluster]\nheartbeat = \"1s\"\nmissed_check_in_after = \"3s\"\n";

/// What `scenario git-builders` must hold by default: every good commit seen published, none
/// lost, none published twice.
pub const GIT_BUILDERS_THRESHOLDS: &[&str] = &[
    "commit_to_published:error_rate<=0",
    "lost==0",
    "duplicates==0",
];

/// Uploads per second of `scenario reference`'s writer (and a drill's) by default.
pub const DEFAULT_WRITES_PER_S: f64 = 2.0;

/// The plan of `harness scenario NAME`: the read load, the git builders, or (`reference`) both
/// with the upload writer; no nemesis, no checkers but the workloads' own (`builds`,
/// `lost-writes`).
pub fn scenario(args: &ScenarioArgs) -> Result<RunPlan, HarnessError> {
    if args.writes_per_s.is_some() && args.name != ScenarioName::Reference {
        return Err(HarnessError::Config(vec![format!(
            "--writes-per-s sets the upload writer of scenario reference; scenario {} has none",
            args.name.as_str()
        )]));
    }
    match args.name {
        ScenarioName::DailyInstalls => {}
        ScenarioName::GitBuilders => return git_builders(args),
        ScenarioName::Reference => return reference(args),
    }
    let generators = generators(args)?;
    let plan = RunPlan {
        name: args.name.as_str().into(),
        infra: infra(&args.load, true, String::new()),
        workloads: vec![WorkloadPlan::Installs(reads(
            &args.load,
            args.load.duration.into(),
        ))],
        nemesis: NemesisPlan::none(),
        checkers: Vec::new(),
        availability: AvailabilityLimits::default(),
        settle: crate::plan::DEFAULT_SETTLE,
        thresholds: ThresholdSet::default(),
        ha_checklist: true,
        quiet: args.load.quiet,
        generators,
    };
    checked(plan, thresholds(&args.load, DEFAULT_THRESHOLDS))
}

/// Which generators run the load and where the corpus comes from.
fn generators(args: &ScenarioArgs) -> Result<GeneratorPlan, HarnessError> {
    let mut problems = Vec::new();
    let slice = args.slice.as_deref().and_then(|text| {
        let parsed = text
            .split_once('/')
            .and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
        if parsed.is_none() {
            problems.push(format!(
                "--slice {text}: write INDEX/COUNT, e.g. 0/3 (the index counts from 0)"
            ));
        }
        parsed.map(|(index, count)| Slice { index, count })
    });
    let start_at = args.start_at.as_deref().and_then(|text| {
        let parsed = chrono::DateTime::parse_from_rfc3339(text).ok();
        if parsed.is_none() {
            problems.push(format!(
                "--start-at {text}: write an RFC 3339 time, e.g. 2026-11-28T10:00:00Z"
            ));
        }
        parsed.map(|t| t.with_timezone(&chrono::Utc))
    });
    if args.generators == 0 {
        problems.push("--generators must be at least 1".into());
    }
    if !problems.is_empty() {
        return Err(HarnessError::Config(problems));
    }
    Ok(GeneratorPlan {
        children: if args.generators > 1 {
            args.generators
        } else {
            0
        },
        slice,
        start_at,
        corpus: if args.read_only {
            CorpusSource::Discover
        } else if args.no_publish {
            CorpusSource::Served
        } else {
            CorpusSource::Publish
        },
        records_dir: None,
    })
}

/// The plan of `harness drill NAME`: the read load, an upload writer, the drill's faults and
/// every checker. The run lasts at least until the last fault is healed plus 10 s.
pub fn drill(args: &DrillArgs) -> Result<RunPlan, HarnessError> {
    let nodes = args.load.nodes;
    let node = match args.node {
        Some(0) => return Err(HarnessError::Config(vec!["--node counts from 1".into()])),
        Some(n) => n - 1,
        None => nodes.saturating_sub(1),
    };
    let hold: Duration = args.hold.into();
    let gap: Duration = args.gap.into();
    let at: Duration = args.at.into();
    let hold_standby = args
        .hold_standby
        .map(|d| Duration::from(d).as_secs().max(1));
    if hold_standby.is_some() && args.name != DrillName::KillPrimaryDb {
        return Err(HarnessError::Config(vec![
            "--hold-standby applies only to kill-primary-db".into(),
        ]));
    }
    let faults: Vec<Fault> = match args.name {
        DrillName::Random => {
            let mut rng = StdRng::seed_from_u64(args.load.seed);
            (0..args.faults)
                .map(|_| {
                    let choices = random_choices(nodes);
                    choices
                        .choose(&mut rng)
                        .cloned()
                        .unwrap_or(Fault::KillStandby)
                })
                .collect()
        }
        name => vec![fault(name, node, hold_standby); args.repeat.max(1)],
    };
    let step = hold + gap + Duration::from_secs(hold_standby.unwrap_or(0));
    let scheduled: Vec<ScheduledFault> = faults
        .into_iter()
        .enumerate()
        .map(|(i, fault)| ScheduledFault {
            fault,
            at: at + step * i as u32,
            hold,
        })
        .collect();
    let needed = scheduled
        .last()
        .map(|f| f.at + f.hold + Duration::from_secs(10 + hold_standby.unwrap_or(0)))
        .unwrap_or_default();
    let duration = Duration::from(args.load.duration).max(needed);
    if duration > Duration::from(args.load.duration) {
        eprintln!(
            "harness: the run lasts {:?} so that the last fault is healed 10 s before it ends",
            duration
        );
    }
    let chosen = DrillWorkloads::of(&args.workload);
    let git = chosen
        .git_builders
        .then(|| git_config(&args.git, &args.load, duration));
    // Beside the builders, the reads and the writer run as long as they do: through the grace
    // in which the last commits are built.
    let run_time = duration + git.as_ref().map_or(Duration::ZERO, |g| g.grace);
    let mut workloads = Vec::new();
    if chosen.installs {
        workloads.push(WorkloadPlan::Installs(reads(&args.load, run_time)));
    }
    if chosen.uploads {
        workloads.push(WorkloadPlan::Uploads(WriterConfig {
            writes_per_s: args.writes_per_s,
            duration: run_time,
            tag: writer_tag(),
            seed: args.load.seed,
            ..WriterConfig::default()
        }));
    }
    let mut checkers = Vec::new();
    if chosen.uploads {
        checkers.push(CheckerKind::LostWrites);
    }
    if chosen.installs {
        checkers.push(CheckerKind::Availability);
    }
    let mut node_config = DRILL_NODE_CONFIG.to_string();
    if let Some(git) = git {
        workloads.push(WorkloadPlan::GitBuilders(git));
        checkers.push(CheckerKind::Builds);
        node_config.push_str(&format!(
            "{}lease_duration = \"{}\"\n",
            git_node_config(&args.git),
            humantime::format_duration(args.lease_duration.into())
        ));
    }
    checkers.push(CheckerKind::ClusterStatus);
    let plan = RunPlan {
        name: format!("drill-{}{}", drill_name(args.name), chosen.suffix()),
        infra: InfraPlan {
            git_server: chosen.git_builders,
            ..infra(
                &args.load,
                args.replication == Replication::Sync,
                node_config,
            )
        },
        workloads,
        nemesis: NemesisPlan {
            faults: scheduled,
            failover: FailoverPolicy {
                check_interval: args.failover_check_interval.into(),
                misses: args.failover_misses,
            },
            recovery_timeout: args.recovery_timeout.into(),
        },
        checkers,
        availability: if chosen.installs {
            AvailabilityLimits {
                max_failed_installs: args.max_failed_installs,
                max_write_gap_s: Some(Duration::from(args.max_write_gap).as_secs_f64()),
                min_installs_per_window: args.min_installs_per_window,
            }
        } else {
            AvailabilityLimits::default()
        },
        settle: args.settle.into(),
        thresholds: ThresholdSet::default(),
        ha_checklist: true,
        quiet: args.load.quiet,
        generators: GeneratorPlan::default(),
    };
    let mut defaults = Vec::new();
    if chosen.installs {
        defaults.push(Defaults::INSTALLS);
    }
    if chosen.git_builders {
        defaults.push(Defaults::GIT_BUILDERS);
    }
    // Latency and failures during a fault are the drill's subject (the `availability`
    // checker's); outside the faults plus a grace the cluster must hold the scenario's own
    // thresholds: no failed install, the rate held, every kind's p99. The builders' are
    // judged over the whole run, as they always were (their counters are whole-run anyway).
    let thresholds = thresholds_of(&args.load, &defaults).map(|mut set| {
        if chosen.installs {
            set.outside_faults_grace_s = Some(crate::checkers::availability::GRACE_S);
        }
        set
    });
    checked(plan, thresholds)
}

/// Which workloads a drill's `--workload` list asks for. The reads come with the upload
/// writer, as every drill's always have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DrillWorkloads {
    installs: bool,
    uploads: bool,
    git_builders: bool,
}

impl DrillWorkloads {
    fn of(list: &[Workload]) -> Self {
        let has = |w: Workload| list.contains(&w) || list.contains(&Workload::Reference);
        DrillWorkloads {
            installs: has(Workload::Installs),
            uploads: has(Workload::Installs) || has(Workload::Uploads),
            git_builders: has(Workload::GitBuilders),
        }
    }

    /// The run name's suffix: none for the reads and the writer (every drill's load so
    /// far), else the workloads' names.
    fn suffix(self) -> String {
        if !self.git_builders {
            return if self.installs {
                String::new()
            } else {
                "-uploads".into()
            };
        }
        let mut names = Vec::new();
        if self.installs {
            names.push("installs");
        } else if self.uploads {
            names.push("uploads");
        }
        names.push("git-builders");
        format!("-{}", names.join("-"))
    }
}

/// A writer's tag: unique to this run, so drills repeated against one cluster never collide.
fn writer_tag() -> String {
    format!(
        "d{}{}",
        chrono::Utc::now().format("%H%M%S"),
        std::process::id() % 10_000
    )
}

/// The plan of `harness scenario reference`: the reference claim as one run. The reads at
/// `--installs-per-day`, `--builders` git builders on their open schedule plus a burst, and
/// the upload writer, on one cluster, for `--duration` plus the builders' `--grace` (the reads
/// and the writer go on while the last commits are built); each workload judged by its own
/// thresholds and checker (`builds`, `lost-writes`), all together.
fn reference(args: &ScenarioArgs) -> Result<RunPlan, HarnessError> {
    if args.target.is_some() {
        return Err(HarnessError::Config(vec![
            "scenario reference runs git builders, which need a Git server the nodes can \
             reach: it runs on a cluster the harness starts, not against --target"
                .into(),
        ]));
    }
    let generators = generators(args)?;
    let duration: Duration = args.load.duration.into();
    let git = scenarios::git_builders::GitBuildersConfig {
        burst: true,
        ..git_config(&args.git, &args.load, duration)
    };
    let run_time = duration + git.grace;
    let plan = RunPlan {
        name: args.name.as_str().into(),
        infra: InfraPlan {
            git_server: true,
            auto_prefers_docker: true,
            ..infra(&args.load, true, git_node_config(&args.git))
        },
        workloads: vec![
            WorkloadPlan::Installs(reads(&args.load, run_time)),
            WorkloadPlan::Uploads(WriterConfig {
                writes_per_s: args.writes_per_s.unwrap_or(DEFAULT_WRITES_PER_S),
                duration: run_time,
                tag: writer_tag(),
                seed: args.load.seed,
                ..WriterConfig::default()
            }),
            WorkloadPlan::GitBuilders(git),
        ],
        nemesis: NemesisPlan::none(),
        checkers: vec![CheckerKind::LostWrites, CheckerKind::Builds],
        availability: AvailabilityLimits::default(),
        settle: crate::plan::DEFAULT_SETTLE,
        thresholds: ThresholdSet::default(),
        ha_checklist: true,
        quiet: args.load.quiet,
        generators,
    };
    checked(
        plan,
        thresholds_of(&args.load, &[Defaults::INSTALLS, Defaults::GIT_BUILDERS]),
    )
}

/// The plan of `harness scenario git-builders`: the builders' commits, watchers and the builds
/// checker on a cluster with a Git server whose nodes poll every `--git-poll-interval`.
fn git_builders(args: &ScenarioArgs) -> Result<RunPlan, HarnessError> {
    if args.target.is_some() {
        return Err(HarnessError::Config(vec![
            "git-builders needs a Git server the nodes can reach: it runs on a cluster the \
             harness starts, not against --target"
                .into(),
        ]));
    }
    let duration: Duration = args.load.duration.into();
    let config = git_config(&args.git, &args.load, duration);
    let plan = RunPlan {
        name: args.name.as_str().into(),
        infra: InfraPlan {
            git_server: true,
            ..infra(&args.load, true, git_node_config(&args.git))
        },
        workloads: vec![WorkloadPlan::GitBuilders(config)],
        nemesis: NemesisPlan::none(),
        checkers: vec![CheckerKind::Builds],
        availability: AvailabilityLimits::default(),
        settle: crate::plan::DEFAULT_SETTLE,
        thresholds: ThresholdSet::default(),
        ha_checklist: true,
        quiet: args.load.quiet,
        generators: GeneratorPlan::default(),
    };
    checked(plan, thresholds(&args.load, GIT_BUILDERS_THRESHOLDS))
}

/// The workload the git-builders flags describe; names are unique to this run.
fn git_config(
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

/// The fault of drill `name` against `node`.
fn fault(name: DrillName, node: usize, hold_standby_s: Option<u64>) -> Fault {
    match name {
        DrillName::KillNode => Fault::KillNode { node },
        DrillName::StopNode => Fault::StopNode { node },
        DrillName::PauseNode => Fault::PauseNode { node },
        DrillName::PartitionNode => Fault::PartitionNode { node },
        DrillName::PartitionNodeDb => Fault::PartitionNodeDb { node },
        DrillName::KillPrimaryDb => Fault::KillPrimaryDb { hold_standby_s },
        DrillName::KillStandby | DrillName::Random => Fault::KillStandby,
    }
}

/// What `random` draws from: every drill fault on every node, except network cuts (which need
/// root and iptables on the local provider).
fn random_choices(nodes: usize) -> Vec<Fault> {
    let mut choices = Vec::new();
    for node in 0..nodes {
        choices.push(Fault::KillNode { node });
        choices.push(Fault::StopNode { node });
        choices.push(Fault::PauseNode { node });
    }
    choices.push(Fault::KillPrimaryDb {
        hold_standby_s: None,
    });
    choices.push(Fault::KillStandby);
    choices
}

fn drill_name(name: DrillName) -> &'static str {
    match name {
        DrillName::KillNode => "kill-node",
        DrillName::StopNode => "stop-node",
        DrillName::PauseNode => "pause-node",
        DrillName::PartitionNode => "partition-node",
        DrillName::PartitionNodeDb => "partition-node-db",
        DrillName::KillPrimaryDb => "kill-primary-db",
        DrillName::KillStandby => "kill-standby",
        DrillName::Random => "random",
    }
}

/// The plan with its thresholds, or every problem of both (not only the first).
fn checked(
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

fn infra(load: &LoadArgs, synchronous: bool, node_config_extra: String) -> InfraPlan {
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
fn reads(args: &LoadArgs, duration: Duration) -> DailyInstallsConfig {
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
struct Defaults {
    thresholds: &'static [&'static str],
    kinds: &'static [&'static str],
    counters: &'static [&'static str],
}

impl Defaults {
    const INSTALLS: Defaults = Defaults {
        thresholds: DEFAULT_THRESHOLDS,
        kinds: scenarios::daily_installs::KINDS,
        counters: &[],
    };
    const GIT_BUILDERS: Defaults = Defaults {
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
fn thresholds_of(args: &LoadArgs, workloads: &[Defaults]) -> Result<ThresholdSet, HarnessError> {
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
fn thresholds(args: &LoadArgs, defaults: &[&str]) -> Result<ThresholdSet, HarnessError> {
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

#[cfg(test)]
mod tests;
