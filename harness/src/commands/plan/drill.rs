//! `harness drill NAME` as a plan: the read load, the upload writer (and the git builders
//! when `--workload` asks), the drill's faults and every checker.

use std::time::Duration;

use rand::seq::SliceRandom;
use rand::{SeedableRng, rngs::StdRng};
use reports::ThresholdSet;
use scenarios::writes::WriterConfig;

use crate::checkers::CheckerKind;
use crate::checkers::availability::AvailabilityLimits;
use crate::cli::{DrillArgs, DrillName, Replication, Workload};
use crate::error::HarnessError;
use crate::nemesis::{FailoverPolicy, Fault, NemesisPlan, ScheduledFault};
use crate::plan::{GeneratorPlan, InfraPlan, RunPlan, WorkloadPlan};

use super::parts::{
    Defaults, checked, git_config, git_node_config, infra, reads, thresholds_of, writer_tag,
};

/// Node settings for drills: check-ins every second, "Missed check-in" after three, so a
/// paused node is seen within seconds (production defaults are 5 and 10 minutes).
pub const DRILL_NODE_CONFIG: &str =
    "[cluster]\nheartbeat = \"1s\"\nmissed_check_in_after = \"3s\"\n";

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
