//! The `local` provider: PostgreSQL (primary and synchronous standby behind a database
//! endpoint), Garage (S3), the `pkgnode` nodes and HAProxy as child processes on loopback
//! addresses, each node on its own address (127.0.0.11, .12, …) and all nodes on one port, like
//! hosts of a real cluster.
//!
//! Here: the options, the [`LocalCluster`] and what it answers. [`bring_up`] starts the parts
//! in order, [`control`] acts on them (kill, stop, pause, cut, promote, rejoin), [`corpus`]
//! saves a seeded cluster into the corpus cache, [`teardown`] stops everything, and
//! [`layout`] says where each part keeps its files; one module per part below them.
//!
//! Roles, not processes: [`Member::DatabasePrimary`] is whichever server holds the primary role
//! now. After [`Control::Promote`] the promoted standby is the primary and the former primary
//! answers to [`Member::DatabaseStandby`] (it no longer replicates; rejoining it is a drill's
//! business).
//!
//! **Architecture Invariant:** nothing here daemonizes. Every process is a direct child, so its
//! pid is the one sampled and signalled, and it dies with the harness (see [`process`]).

mod bring_up;
mod control;
mod corpus;
mod db_endpoint;
mod garage;
pub mod git_daemon;
mod haproxy;
mod layout;
mod network;
mod nodes;
mod postgres;
mod process;
mod seed;
mod supervised;
mod teardown;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use reports::record::InfraInfo;

use self::db_endpoint::DbEndpoint;
use self::garage::Garage;
use self::haproxy::HaProxy;
use self::layout::{Context, WorkDir};
use self::network::Network;
use self::nodes::Node;
use self::postgres::Postgres;
use self::process::{PidBoard, Spawner};
use super::{Control, Endpoints, Infra, InfraError, Member, Monitored, RestoredCorpus};
use crate::corpus_cache::{CacheKey, CorpusCache, Manifest};

pub use self::bring_up::start;
pub use self::process::pid_exists;
pub use super::PackageStorage;
pub use super::pkgnode_bin::find_pkgnode_bin;

const PROVIDER: &str = "local";

/// What to start.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Number of `pkgnode` processes (at least 1).
    pub nodes: usize,
    /// The `pkgnode` binary; see [`find_pkgnode_bin`].
    pub pkgnode_bin: PathBuf,
    /// Where configs, data and logs go. `None`: a temp dir removed at teardown. A given dir is
    /// kept (with its logs) after teardown.
    pub work_dir: Option<PathBuf>,
    /// TOML merged into every node's config (tables merge key by key; these values win).
    pub node_config_extra: String,
    /// How long each component may take to become ready.
    pub ready_timeout: Duration,
    /// Why the local provider was chosen, for the report.
    pub reason: String,
    /// Commits wait for the standby (`synchronous_standby_names`). `false` runs asynchronous
    /// replication, which a killed primary can lose acknowledged commits under: the drills'
    /// negative control.
    pub synchronous: bool,
    /// Start a Git server (`git daemon`) and create the Git sources (`cran-git`, `pypi-git`)
    /// for the git-builders workload.
    pub git_builders: bool,
    /// The corpus cache and this run's key: a complete entry is restored before the nodes
    /// start; otherwise the run seeds and [`Infra::save_corpus`] saves into it (S3 storage
    /// only: with directory storage the cache is not used).
    pub corpus_cache: Option<(CorpusCache, CacheKey)>,
    /// Where the nodes keep package files.
    pub package_storage: PackageStorage,
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self {
            nodes: 2,
            pkgnode_bin: find_pkgnode_bin().unwrap_or_else(|_| PathBuf::from("pkgnode")),
            work_dir: None,
            node_config_extra: String::new(),
            ready_timeout: Duration::from_secs(60),
            reason: "local processes requested".into(),
            synchronous: true,
            git_builders: false,
            corpus_cache: None,
            package_storage: PackageStorage::S3,
        }
    }
}

/// Every process of the cluster, each in the slot of its role.
struct Parts {
    /// The server in the primary role (lock before `standby`).
    postgres: Mutex<Option<Postgres>>,
    /// The server in the standby role.
    standby: Mutex<Option<Postgres>>,
    db_endpoint: Mutex<Option<DbEndpoint>>,
    garage: Mutex<Option<Garage>>,
    nodes: Vec<Mutex<Node>>,
    /// How to run `pkgnode` as each node does ([`Infra::node_command`]).
    invocations: Vec<nodes::Invocation>,
    haproxy: Mutex<Option<HaProxy>>,
    /// The Git server and sources of the git-builders workload, when asked for.
    git: Option<(git_daemon::GitServer, super::GitEndpoints)>,
}

/// A running local cluster. Dropping it tears it down.
pub struct LocalCluster {
    endpoints: Endpoints,
    info: InfraInfo,
    parts: Parts,
    pids: PidBoard,
    /// Network cuts; `Err` says why this machine cannot make them.
    network: Result<Network, String>,
    /// Declared after every process holder: it is dropped last.
    spawner: Option<Spawner>,
    work_dir: WorkDir,
    ready_timeout: Duration,
    database_url: String,
    /// Whether commits wait for the standby (see [`LocalOptions::synchronous`]).
    synchronous: bool,
    /// `None` without S3 storage: an entry holds a Garage data directory.
    corpus_cache: Option<(CorpusCache, CacheKey)>,
    restored: Option<RestoredCorpus>,
    torn_down: bool,
}

impl LocalCluster {
    fn context(&self) -> Result<Context<'_>, InfraError> {
        Context::new(
            &self.spawner,
            &self.work_dir,
            self.ready_timeout,
            &self.pids,
            &self.network,
        )
    }

    /// The work dir (configs, data, logs).
    pub fn work_dir(&self) -> &Path {
        self.work_dir.path()
    }

    /// The database URL the nodes use: the endpoint that follows the primary role.
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// `psql -tA -c SQL` on the `pkgnode` database of a database member, directly (not through
    /// the endpoint); what it printed, trimmed.
    pub fn psql(&self, member: &Member, sql: &str) -> Result<String, InfraError> {
        let slot = match member {
            Member::DatabasePrimary => &self.parts.postgres,
            Member::DatabaseStandby => &self.parts.standby,
            _ => {
                return Err(InfraError::Failed {
                    what: format!("psql on {member:?}"),
                    detail: "not a database member".into(),
                });
            }
        };
        let context = self.context()?;
        let postgres = lock(slot);
        let postgres = postgres.as_ref().ok_or_else(poisoned)?;
        postgres
            .psql_on(&context, postgres::DATABASE, "psql", sql)
            .map(|out| out.trim().to_string())
    }

    /// The process that is `member` now: `node-1`, `postgresql`, `postgresql-standby`, `s3`,
    /// `haproxy`.
    pub fn process_name(&self, member: &Member) -> Option<String> {
        Some(match member {
            Member::Node(index) => lock(self.parts.nodes.get(*index)?).name.clone(),
            Member::DatabasePrimary => lock(&self.parts.postgres).as_ref()?.name.to_string(),
            Member::DatabaseStandby => lock(&self.parts.standby).as_ref()?.name.to_string(),
            Member::ObjectStore => "s3".into(),
            Member::LoadBalancer => haproxy::NAME.into(),
        })
    }

    /// The log file of a member.
    pub fn log_file(&self, member: &Member) -> Option<PathBuf> {
        let name = match member {
            Member::ObjectStore => garage::NAME.into(),
            _ => self.process_name(member)?,
        };
        Some(layout::log_file(self.work_dir(), &name))
    }

    /// The database server the endpoint routes new connections to (a process name).
    pub fn database_endpoint_target(&self) -> Result<String, InfraError> {
        lock(&self.parts.db_endpoint)
            .as_ref()
            .ok_or_else(poisoned)?
            .target()
    }

    /// Why members cannot be cut off the network here, if they cannot.
    pub fn network_cuts_unavailable(&self) -> Option<&str> {
        self.network.as_ref().err().map(String::as_str)
    }

    /// HAProxy's view of the nodes: (server name, `UP`/`DOWN`/`MAINT`…).
    pub fn balancer_states(&self) -> Result<Vec<(String, String)>, InfraError> {
        let socket = layout::socket(self.work_dir(), haproxy::NAME);
        haproxy::server_states(&socket).map_err(|detail| InfraError::Failed {
            what: "haproxy show stat".into(),
            detail,
        })
    }
}

fn no_such_member(member: &Member, nodes: usize) -> InfraError {
    InfraError::Failed {
        what: format!("{member:?}"),
        detail: format!("no such member (the cluster has {nodes} nodes, 0-based index)"),
    }
}

/// The slot's part without locking: `&mut` proves no one else holds it.
fn inner<T>(slot: &mut Mutex<Option<T>>) -> Option<&mut T> {
    slot.get_mut().unwrap_or_else(|p| p.into_inner()).as_mut()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn poisoned() -> InfraError {
    InfraError::Failed {
        what: "local cluster".into(),
        detail: "a startup thread panicked".into(),
    }
}

impl Infra for LocalCluster {
    fn query_primary(&self, sql: &str) -> Option<Result<String, InfraError>> {
        Some(self.psql(&Member::DatabasePrimary, sql))
    }

    fn balancer_states(&self) -> Option<Result<Vec<(String, String)>, InfraError>> {
        Some(LocalCluster::balancer_states(self))
    }

    fn info(&self) -> InfraInfo {
        self.info.clone()
    }

    fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    fn monitored(&self) -> Vec<Monitored> {
        let names = (1..=self.parts.nodes.len())
            .map(|i| format!("node-{i}"))
            .chain([
                postgres::PRIMARY.into(),
                postgres::STANDBY.into(),
                db_endpoint::NAME.into(),
                "s3".into(),
                haproxy::NAME.into(),
            ]);
        let mut monitored: Vec<Monitored> = names
            .filter_map(|name| {
                let pid = self.pids.get(&name)?;
                Some(Monitored { name, pid })
            })
            .collect();
        if let Some(pid) = self.parts.git.as_ref().and_then(|(server, _)| server.pid()) {
            monitored.push(Monitored {
                name: "git-daemon".into(),
                pid,
            });
        }
        monitored
    }

    fn git(&self) -> Option<&super::GitEndpoints> {
        self.parts.git.as_ref().map(|(_, endpoints)| endpoints)
    }

    fn node_command(
        &self,
        index: usize,
        args: &[&str],
    ) -> Option<Result<super::NodeCommand, InfraError>> {
        let member = Member::Node(index);
        let invocations = &self.parts.invocations;
        Some(
            invocations
                .get(index)
                .map(|invocation| invocation.command(args))
                .ok_or_else(|| no_such_member(&member, invocations.len())),
        )
    }

    fn create_git_repository(&self, name: &str) -> Result<(), InfraError> {
        match &self.parts.git {
            Some((server, _)) => server.create_repository(name),
            None => Err(InfraError::Failed {
                what: format!("git repository {name}"),
                detail: "this cluster was started without a Git server (git_builders: false)"
                    .into(),
            }),
        }
    }

    fn restored_corpus(&self) -> Option<&RestoredCorpus> {
        self.restored.as_ref()
    }

    /// Blocking. Garage is stopped while its directories are copied (a second or two; the load
    /// has not started), then started again.
    fn save_corpus(&self, manifest: Manifest) -> Result<Option<PathBuf>, InfraError> {
        self.save_corpus_entry(manifest)
    }

    /// Blocking: Stop waits up to 5 s, Start waits until the member is ready again.
    fn control(&self, member: &Member, action: Control) -> Result<(), InfraError> {
        self.control_member(member, action)
    }

    fn probe(&self, member: &Member) -> Result<bool, InfraError> {
        self.database_answers(member)
    }

    fn teardown(&mut self) -> Result<(), InfraError> {
        self.stop_and_remove()
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if let Err(error) = self.teardown() {
            tracing::error!(%error, "local cluster teardown");
        }
    }
}
