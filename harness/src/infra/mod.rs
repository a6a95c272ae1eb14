//! Infrastructure providers behind one trait: `docker` (containers through testcontainers),
//! `local` (child processes on loopback addresses) and `target` (an existing deployment).
//! Scenarios, checks and drills see only [`Infra`] and [`Endpoints`]; they never know which
//! provider runs them.
//!
//! **Invariant:** every provider cleans up on drop as well as on [`Infra::teardown`], so a failed
//! or interrupted run leaves no process, container or temp dir behind.

pub(crate) mod bootstrap;
pub mod docker;
pub(crate) mod haproxy_config;
pub mod local;
pub mod node_command;
mod pkgnode_bin;
pub(crate) mod probe;
pub mod target;

use std::time::Duration;

pub use node_command::NodeCommand;

/// Where the nodes keep package files. The docker provider runs S3 only; a target deployment
/// keeps them where it does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PackageStorage {
    /// One bucket on the S3 server (Garage).
    #[default]
    S3,
    /// One directory that every node's `storage.dir` names (local: `{work_dir}/packages`;
    /// across machines, an NFS mount); no S3 server runs.
    SharedDirectory,
    /// `storage.dir` left unset: each node keeps its files in its own `{data_dir}/packages`.
    /// Every config is identical and nothing is shared: the misconfiguration the checklist's
    /// `shared-storage` and `lock-correctness` must catch (tests only). No S3 server runs.
    NodeDirectories,
}

/// Where the scenario sends its traffic and what it needs to publish the corpus.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// The load balancer (or the single entry point of a target deployment).
    pub base_url: String,
    /// Each node's own URL, for checks and per-node metrics: (node name, URL).
    pub nodes: Vec<(String, String)>,
    pub pypi_repo: String,
    pub cran_repo: String,
    pub pypi_source: String,
    pub cran_source: String,
    /// `sources:write` tokens for the two sources.
    pub pypi_token: String,
    pub cran_token: String,
}

impl Endpoints {
    /// Where an upload writer sends its packages: the balancer, the two sources and their
    /// tokens.
    pub fn write_target(&self) -> scenarios::writes::WriteTarget {
        scenarios::writes::WriteTarget {
            base_url: self.base_url.clone(),
            pypi_source: self.pypi_source.clone(),
            cran_source: self.cran_source.clone(),
            pypi_token: self.pypi_token.clone(),
            cran_token: self.cran_token.clone(),
        }
    }
}

/// What the git-builders workload needs of a cluster: the Git server's remote and the two
/// Git sources (`git` for R, `git-python` for Python) with their `sources:write` tokens.
#[derive(Debug, Clone)]
pub struct GitEndpoints {
    pub remote: scenarios::git_builders::GitRemote,
    pub r_source: String,
    pub python_source: String,
    pub r_token: String,
    pub python_token: String,
}

/// A process (or container) whose CPU and memory the run samples.
#[derive(Debug, Clone)]
pub struct Monitored {
    /// "node-1", "postgresql", "postgresql-standby", "haproxy", "s3".
    pub name: String,
    pub pid: u32,
}

/// Something the drills can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Member {
    /// Node by index (0-based).
    Node(usize),
    DatabasePrimary,
    DatabaseStandby,
    LoadBalancer,
    ObjectStore,
}

/// What a drill does to a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Kill,
    Stop,
    Start,
    Pause,
    Unpause,
    Disconnect,
    Reconnect,
    /// Cut only the member's traffic to the database: it still answers its clients.
    /// [`Control::Reconnect`] heals it.
    DisconnectFromDatabase,
    /// Promote the standby to primary and repoint the database endpoint the nodes use to it
    /// (only [`Member::DatabaseStandby`], only where the provider runs one).
    Promote,
    /// Make the server in the standby role (after a promotion: the former primary) a fresh
    /// synchronous standby of the primary again, from a new base backup; returns once it
    /// streams as the synchronous standby (only [`Member::DatabaseStandby`]).
    Rejoin,
}

/// The result of a scoped thread's work; a panic there is `what` failing.
pub(crate) fn joined<T>(
    handle: std::thread::ScopedJoinHandle<'_, Result<T, InfraError>>,
    what: &str,
) -> Result<T, InfraError> {
    handle.join().unwrap_or_else(|_| {
        Err(InfraError::Failed {
            what: what.into(),
            detail: "its thread panicked".into(),
        })
    })
}

/// Runs blocking work on a thread of its own, outside any async runtime: blocking clients
/// (testcontainers' sync handles, `reqwest::blocking`) panic on a runtime's thread.
pub(crate) fn off_runtime<T: Send>(
    what: &str,
    work: impl FnOnce() -> Result<T, InfraError> + Send,
) -> Result<T, InfraError> {
    std::thread::scope(|scope| joined(scope.spawn(work), what))
}

/// Errors from bringing infrastructure up, acting on it, or tearing it down.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error("{what} is not installed or not runnable: {detail}")]
    Missing { what: String, detail: String },
    #[error("{what} failed: {detail}")]
    Failed { what: String, detail: String },
    #[error("{what} did not become ready within {timeout:?}: {detail}")]
    NotReady {
        what: String,
        timeout: Duration,
        detail: String,
    },
    #[error("the {provider} provider cannot {action:?} {member:?}")]
    Unsupported {
        provider: String,
        action: Control,
        member: Member,
    },
    #[error("the {provider} provider cannot {action:?} {member:?} on this machine: {reason}")]
    Unavailable {
        provider: String,
        action: Control,
        member: Member,
        reason: String,
    },
    #[error("interrupted")]
    Interrupted,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A corpus the cluster came up with, restored from the corpus cache.
#[derive(Debug, Clone)]
pub struct RestoredCorpus {
    /// The cache entry.
    pub entry: std::path::PathBuf,
    pub manifest: crate::corpus_cache::Manifest,
    /// Wall time of the restore (database and object store).
    pub restore_seconds: f64,
}

/// A running cluster (or a handle on an existing one).
pub trait Infra: Send + Sync {
    /// Provider name and what it runs, for the report.
    fn info(&self) -> reports::record::InfraInfo;
    fn endpoints(&self) -> &Endpoints;
    /// Processes to sample for CPU and memory (empty for a target deployment).
    fn monitored(&self) -> Vec<Monitored>;
    /// Acts on a member: kill, stop, start, pause… Providers refuse what they cannot do.
    fn control(&self, member: &Member, action: Control) -> Result<(), InfraError>;
    /// Whether `member` answers now: a database server accepts a connection and a query within
    /// about a second. What a failover controller's health check asks.
    fn probe(&self, member: &Member) -> Result<bool, InfraError> {
        Err(InfraError::Unsupported {
            provider: self.info().provider,
            action: Control::Start,
            member: member.clone(),
        })
    }

    /// The ground truth of what was written: `sql` (one `SELECT`) on the `pkgnode` database of
    /// the current primary, read directly (not through the nodes), as `psql -tA` prints it:
    /// one line per row, columns joined by `|`. `None` where this provider cannot read the
    /// database (an existing deployment given no database URL).
    fn query_primary(&self, _sql: &str) -> Option<Result<String, InfraError>> {
        None
    }

    /// The load balancer's view of the nodes: (server name, `UP`/`DOWN`/`MAINT`…), read from
    /// its stats. `None` when this provider cannot read it (an existing deployment).
    fn balancer_states(&self) -> Option<Result<Vec<(String, String)>, InfraError>> {
        None
    }

    /// `pkgnode ARGS` as node `index` (0-based) runs it: with that node's configuration, on
    /// that node's filesystem (local: the node's binary and config file; docker: `docker exec`
    /// in the node's container). What the checklist runs on the nodes (`locktester`,
    /// `offline`, `online`). `None` where the provider cannot run a command on a node (an
    /// existing deployment).
    fn node_command(
        &self,
        _index: usize,
        _args: &[&str],
    ) -> Option<Result<NodeCommand, InfraError>> {
        None
    }

    /// The Git server and Git sources, when this cluster was started with them.
    fn git(&self) -> Option<&GitEndpoints> {
        None
    }

    /// Creates the empty repository `name` on the Git server.
    fn create_git_repository(&self, name: &str) -> Result<(), InfraError> {
        Err(InfraError::Failed {
            what: format!("git repository {name}"),
            detail: format!("the {} provider runs no Git server", self.info().provider),
        })
    }

    /// The corpus this cluster was started with, when it was restored from the corpus cache
    /// (the run then uploads nothing). `None`: the cluster is empty.
    fn restored_corpus(&self) -> Option<&RestoredCorpus> {
        None
    }

    /// Saves the seeded state into the corpus cache this cluster was started with (the
    /// provider fills in the object store's key); returns the entry, or `None` when this
    /// provider or run keeps no cache.
    fn save_corpus(
        &self,
        _manifest: crate::corpus_cache::Manifest,
    ) -> Result<Option<std::path::PathBuf>, InfraError> {
        Ok(None)
    }

    /// Stops everything this provider started and removes its files. Idempotent.
    fn teardown(&mut self) -> Result<(), InfraError>;
}
