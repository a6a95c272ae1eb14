//! The cluster and file-lock commands: `list-nodes`, `node-status`, `delete-node`,
//! `reset-cluster`, `offline`, `online`, `locktester` and the hidden `lock-increment`.

use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use crate::cluster::admin::Admin;
use crate::config::Config;
use crate::locks::{FileLocks, LockKind, LockSettings, tester};

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// List the cluster's nodes: ID, Host, IPv4, Port, Version, Status, Last Seen.
    ListNodes,
    /// The cluster's online nodes with their load and in-flight requests, as JSON.
    NodeStatus,
    /// Remove a node from the cluster (an Online, reachable node only with --force).
    DeleteNode {
        id: i64,
        #[arg(long)]
        force: bool,
        /// Seconds a running node gets to leave on its own.
        #[arg(long, default_value = "30", value_parser = parse_seconds)]
        timeout: Duration,
    },
    /// Forget the cluster definition and every node (refused while a node is online, unless --force).
    ResetCluster {
        #[arg(long)]
        force: bool,
    },
    /// Drain a node (this one unless --node): 503 to the load balancer, in-flight requests finish.
    Offline(StateArgs),
    /// Bring a node (this one unless --node) back online.
    Online(StateArgs),
    /// Test which file lock types exclude across nodes in a shared directory.
    Locktester {
        #[arg(long)]
        dir: std::path::PathBuf,
    },
    /// Increment the counter in DIR/counter under the file lock, TIMES times (lock tests).
    #[command(hide = true)]
    LockIncrement(IncrementArgs),
}

#[derive(Debug, Args)]
pub struct StateArgs {
    /// The node's ID in `list-nodes` (default: the node whose data directory is configured).
    #[arg(long)]
    pub node: Option<i64>,
    /// Seconds to wait for the node to finish (or a duration such as "2m").
    #[arg(long, default_value = "30", value_parser = parse_seconds)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct IncrementArgs {
    #[arg(long)]
    pub dir: std::path::PathBuf,
    #[arg(long)]
    pub times: u64,
    /// Lock type (default: the configured one).
    #[arg(long = "type")]
    pub kind: Option<LockType>,
    /// With --type linkbased: symbolic instead of hard links.
    #[arg(long)]
    pub symlinks: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LockType {
    Linkbased,
    Advisory,
}

/// Seconds as a plain number, or a duration such as "500ms" or "2m".
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text).map_err(|e| format!("{text:?} is not a duration: {e}"))
}

pub async fn run(command: ClusterCommand, config: &Config) -> anyhow::Result<()> {
    match command {
        ClusterCommand::ListNodes => print!("{}", Admin::open(config).await?.list_nodes().await?),
        ClusterCommand::NodeStatus => {
            let status = Admin::open(config).await?.node_status().await?;
            println!("{}", serde_json::to_string_pretty(&status)?);
        }
        ClusterCommand::DeleteNode { id, force, timeout } => {
            let admin = Admin::open(config).await?;
            println!("{}", admin.delete_node(id, force, timeout).await?);
        }
        ClusterCommand::ResetCluster { force } => {
            println!("{}", Admin::open(config).await?.reset(force).await?);
        }
        ClusterCommand::Offline(args) => {
            let admin = Admin::open(config).await?;
            println!("{}", admin.offline(args.node, args.timeout).await?);
        }
        ClusterCommand::Online(args) => {
            let admin = Admin::open(config).await?;
            println!("{}", admin.online(args.node, args.timeout).await?);
        }
        ClusterCommand::Locktester { dir } => locktester(&dir, config).await?,
        ClusterCommand::LockIncrement(args) => {
            let mut settings = LockSettings::from_config(&config.locks);
            if let Some(kind) = args.kind {
                settings.kind = match kind {
                    LockType::Linkbased => LockKind::LinkBased {
                        symlinks: args.symlinks,
                    },
                    LockType::Advisory => LockKind::Advisory,
                };
            }
            let locks = FileLocks::new(settings);
            let dir = args.dir.clone();
            let last =
                tokio::task::spawn_blocking(move || tester::increment(&dir, &locks, args.times))
                    .await??;
            println!("{last}");
        }
    }
    Ok(())
}

async fn locktester(dir: &std::path::Path, config: &Config) -> anyhow::Result<()> {
    let settings = LockSettings::from_config(&config.locks);
    let mut report = |line: &str| {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    let outcome = tester::run(dir, settings, &mut report, crate::server::shutdown_signal()).await?;
    if let tester::Outcome::Concluded(conclusion) = outcome
        && !conclusion.supports(settings.kind)
    {
        anyhow::bail!(
            "the configured lock type, {}, does not exclude across nodes in {}",
            settings.kind.label(),
            dir.display()
        );
    }
    Ok(())
}
