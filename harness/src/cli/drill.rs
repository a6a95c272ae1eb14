//! `harness drill NAME`'s arguments: the drill, its node, replication and workloads.

use clap::{Args, ValueEnum};

use super::load::{GitBuilderArgs, LoadArgs};

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
