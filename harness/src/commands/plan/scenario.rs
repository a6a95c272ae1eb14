//! `harness scenario NAME` as a plan: the read load (`daily-installs`), the git builders, or
//! `reference`: both with the upload writer.

use std::time::Duration;

use reports::ThresholdSet;
use scenarios::writes::WriterConfig;

use crate::checkers::CheckerKind;
use crate::checkers::availability::AvailabilityLimits;
use crate::cli::{ScenarioArgs, ScenarioName};
use crate::error::HarnessError;
use crate::nemesis::NemesisPlan;
use crate::plan::{CorpusSource, GeneratorPlan, InfraPlan, RunPlan, Slice, WorkloadPlan};
use crate::run::DEFAULT_THRESHOLDS;

use super::parts::{
    DEFAULT_WRITES_PER_S, Defaults, GIT_BUILDERS_THRESHOLDS, checked, git_config, git_node_config,
    infra, reads, thresholds, thresholds_of, writer_tag,
};

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
