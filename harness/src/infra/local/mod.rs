//! The `local` provider: PostgreSQL (primary and synchronous standby behind a database
//! endpoint), Garage (S3), the `pkgnode` nodes and HAProxy as child processes on loopback
//! addresses, each node on its own address (127.0.0.11, .12, …) and all nodes on one port, like
//! hosts of a real cluster.
//!
//! Work dir layout: `postgresql/`, `postgresql-standby/` (+ their `.log`), `db-endpoint.cfg` +
//! `.log` + `.sock`, `garage/` (+ `garage.log`), `pkgnode.key`, `node-N/` + `node-N.toml` +
//! `node-N.log`, `haproxy.cfg` + `haproxy.log` + `haproxy.sock`, and `commands/` with the output
//! of every setup command.
//!
//! Roles, not processes: [`Member::DatabasePrimary`] is whichever server holds the primary role
//! now. After [`Control::Promote`] the promoted standby is the primary and the former primary
//! answers to [`Member::DatabaseStandby`] (it no longer replicates; rejoining it is a drill's
//! business).
//!
//! **Architecture Invariant:** nothing here daemonizes. Every process is a direct child, so its
//! pid is the one sampled and signalled, and it dies with the harness (see [`process`]).

mod db_endpoint;
mod garage;
pub mod git_daemon;
mod haproxy;
mod network;
mod nodes;
mod postgres;
mod process;
mod seed;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use reports::record::{InfraInfo, NodeInfo};

use self::db_endpoint::DbEndpoint;
use self::garage::Garage;
use self::haproxy::HaProxy;
use self::network::Network;
use self::nodes::Node;
use self::postgres::Postgres;
use self::process::{Identity, PidBoard, STOP_GRACE, Spawner, Supervised};
use super::{Control, Endpoints, Infra, InfraError, Member, Monitored, RestoredCorpus, bootstrap};
use crate::corpus_cache::{CacheKey, CorpusCache, Manifest};

pub use self::process::pid_exists;
pub use super::PackageStorage;

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

/// Finds `pkgnode`: `$PKGNODE_BIN`, else next to the running executable (`target/debug/`), else
/// one level up (a test binary runs from `target/debug/deps/`).
pub fn find_pkgnode_bin() -> Result<PathBuf, InfraError> {
    if let Some(path) = std::env::var_os("PKGNODE_BIN") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            // Absolute: the nodes run from their own working directories.
            Ok(path.canonicalize()?)
        } else {
            Err(InfraError::Missing {
                what: "pkgnode".into(),
                detail: format!("PKGNODE_BIN={} is not a file", path.display()),
            })
        };
    }
    let exe = std::env::current_exe()?;
    let mut looked = Vec::new();
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join("pkgnode");
        if candidate.is_file() {
            return Ok(candidate);
        }
        looked.push(candidate.display().to_string());
    }
    Err(InfraError::Missing {
        what: "pkgnode".into(),
        detail: format!(
            "not found at {}: build it with `cargo build -p node` or set PKGNODE_BIN",
            looked.join(" or ")
        ),
    })
}

/// What the component modules need while starting or restarting something.
pub(crate) struct Context<'a> {
    spawner: &'a Spawner,
    work_dir: &'a Path,
    commands_dir: PathBuf,
    timeout: Duration,
    pids: PidBoard,
    network: Option<&'a Network>,
}

impl Context<'_> {
    /// The cgroup a process joins so that it can be cut off (none where cuts are unavailable).
    fn cgroup(&self, process: &str) -> Result<Option<PathBuf>, InfraError> {
        self.network.map(|n| n.cgroup(process)).transpose()
    }
}

enum WorkDir {
    /// Ours: removed at teardown.
    Temporary(Option<tempfile::TempDir>),
    /// The caller's: kept, logs and all.
    Kept(PathBuf),
}

impl WorkDir {
    fn path(&self) -> &Path {
        match self {
            Self::Temporary(Some(dir)) => dir.path(),
            Self::Temporary(None) => Path::new(""),
            Self::Kept(path) => path,
        }
    }
}

/// A running local cluster. Dropping it tears it down.
pub struct LocalCluster {
    endpoints: Endpoints,
    info: InfraInfo,
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
    corpus_cache: Option<(CorpusCache, CacheKey)>,
    restored: Option<RestoredCorpus>,
    torn_down: bool,
}

/// Starts the cluster and waits until the load balancer sees every node UP. Blocking: call it
/// from `spawn_blocking` in async code. On error, whatever was started is stopped again and the
/// error names the failing component and the end of its log.
pub fn start(options: LocalOptions) -> Result<LocalCluster, InfraError> {
    let began = Instant::now();
    if options.nodes == 0 {
        return Err(InfraError::Failed {
            what: "local cluster".into(),
            detail: "at least one node is needed".into(),
        });
    }
    // Every node needs its own loopback address.
    nodes::node_ip(options.nodes - 1)?;
    if !options.pkgnode_bin.is_file() {
        return Err(InfraError::Missing {
            what: "pkgnode".into(),
            detail: format!(
                "{} is not a file: build it with `cargo build -p node` or set PKGNODE_BIN",
                options.pkgnode_bin.display()
            ),
        });
    }
    let work_dir = match &options.work_dir {
        Some(path) => {
            std::fs::create_dir_all(path)?;
            WorkDir::Kept(path.clone())
        }
        None => {
            let dir = tempfile::Builder::new()
                .prefix("harness-local-")
                .tempdir()?;
            if Identity::running_as_root() {
                // PostgreSQL runs as `postgres` and must reach its dir inside ours.
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))?;
            }
            WorkDir::Temporary(Some(dir))
        }
    };
    let mut cluster = LocalCluster {
        endpoints: Endpoints {
            base_url: String::new(),
            nodes: Vec::new(),
            pypi_repo: nodes::PYPI_REPO.into(),
            cran_repo: nodes::CRAN_REPO.into(),
            pypi_source: nodes::PYPI_SOURCE.into(),
            cran_source: nodes::CRAN_SOURCE.into(),
            pypi_token: String::new(),
            cran_token: String::new(),
        },
        info: InfraInfo {
            provider: PROVIDER.into(),
            reason: options.reason.clone(),
            ..InfraInfo::default()
        },
        postgres: Mutex::new(None),
        standby: Mutex::new(None),
        db_endpoint: Mutex::new(None),
        garage: Mutex::new(None),
        nodes: Vec::new(),
        invocations: Vec::new(),
        haproxy: Mutex::new(None),
        git: None,
        pids: PidBoard::default(),
        network: Network::open(),
        spawner: Some(Spawner::new()?),
        work_dir,
        ready_timeout: options.ready_timeout,
        database_url: String::new(),
        synchronous: options.synchronous,
        corpus_cache: options.corpus_cache.clone(),
        restored: None,
        torn_down: false,
    };
    // On error `cluster` drops here, which stops whatever had started.
    cluster.bring_up(&options)?;
    tracing::info!(
        nodes = options.nodes,
        elapsed = ?began.elapsed(),
        base_url = %cluster.endpoints.base_url,
        work_dir = %cluster.work_dir().display(),
        "local cluster ready"
    );
    Ok(cluster)
}

impl LocalCluster {
    fn bring_up(&mut self, options: &LocalOptions) -> Result<(), InfraError> {
        // From the fields, not `self.context()`: the members are filled in while it lives.
        let context = make_context(
            &self.spawner,
            &self.work_dir,
            self.ready_timeout,
            &self.pids,
            &self.network,
        )?;
        std::fs::create_dir_all(&context.commands_dir)?;
        if let Err(reason) = &self.network {
            tracing::info!(%reason, "members cannot be cut off the network on this machine");
        }

        // A complete corpus cache entry of this run's key is restored into both stores.
        let s3 = options.package_storage == PackageStorage::S3;
        if !s3 {
            // The cache holds a Garage data directory: nothing to restore package files into.
            self.corpus_cache = None;
        }
        let restore = self
            .corpus_cache
            .as_ref()
            .and_then(|(cache, key)| cache.lookup(key));
        // Time spent restoring (the file copies, the database restore), not starting.
        let restore_micros = std::sync::atomic::AtomicU64::new(0);
        let add = |began: Instant| {
            restore_micros.fetch_add(
                began.elapsed().as_micros() as u64,
                std::sync::atomic::Ordering::Relaxed,
            )
        };
        let restore_ref = restore.as_ref().map(|(entry, m)| (entry.as_path(), m));
        // The database and the object store are independent: start them side by side. Each
        // part lands in its slot as soon as it runs, so that an error stops it again.
        let (postgres, standby, endpoint) = (&self.postgres, &self.standby, &self.db_endpoint);
        let (database, garage) = std::thread::scope(|scope| {
            let database = scope.spawn(|| -> Result<String, InfraError> {
                let mut primary_slot = lock(postgres);
                let primary = primary_slot.insert(Postgres::start(&context)?);
                let mut standby_slot = lock(standby);
                let replica = standby_slot.insert(Postgres::start_standby(&context, primary)?);
                if options.synchronous {
                    primary.require_standby(&context)?;
                }
                let servers = [(primary.name, primary.port), (replica.name, replica.port)];
                let started = DbEndpoint::start(&context, &servers)?;
                let url = lock(endpoint).insert(started).url(postgres::DATABASE);
                if let Some((entry, _)) = restore_ref {
                    let began = Instant::now();
                    seed::restore_database(&context, Path::new(postgres::BIN_DIR), &url, entry)?;
                    add(began);
                }
                Ok(url)
            });
            let garage = s3.then(|| scope.spawn(|| Garage::start(&context, restore_ref, &add)));
            (
                crate::infra::joined(database, "postgresql"),
                garage.map(|garage| crate::infra::joined(garage, "s3")),
            )
        });
        let garage = garage
            .transpose()
            .map(|g| g.map(|g| self.garage.get_mut().map(|slot| &*slot.insert(g))));
        let (database_url, garage) = match (database, garage) {
            (Ok(url), Ok(None)) => (url, None),
            (Ok(url), Ok(Some(Ok(garage)))) => (url, Some(garage)),
            (Err(error), _) | (_, Err(error)) => return Err(error),
            _ => return Err(poisoned()),
        };
        self.database_url = database_url;
        let mut components = std::collections::BTreeMap::new();
        let pg_version = inner(&mut self.postgres).map(|p| p.version.clone());
        components.insert("postgresql".to_string(), pg_version.unwrap_or_default());
        let shared_dir = context.work_dir.join("packages");
        let storage = match (garage, options.package_storage) {
            (Some(garage), _) => {
                components.insert("garage".to_string(), garage.version.clone());
                bootstrap::StorageWiring::S3 {
                    endpoint: &garage.endpoint,
                    access_key: &garage.access_key,
                    secret_key: &garage.secret_key,
                }
            }
            (None, PackageStorage::SharedDirectory) => {
                std::fs::create_dir_all(&shared_dir)?;
                bootstrap::StorageWiring::Directory(Some(&shared_dir))
            }
            (None, _) => bootstrap::StorageWiring::Directory(None),
        };

        let key_file = context.work_dir.join("pkgnode.key");
        nodes::write_key_file(&key_file)?;
        let shared = nodes::Shared {
            database_url: &self.database_url,
            storage,
            key_file: &key_file,
            extra: &options.node_config_extra,
        };
        let addresses = (0..options.nodes)
            .map(nodes::node_ip)
            .collect::<Result<Vec<_>, _>>()?;
        let port = crate::infra::probe::free_port_on(&addresses)?;
        let mut prepared = Vec::new();
        for index in 0..options.nodes {
            prepared.push(Node::prepare(
                &context,
                &options.pkgnode_bin,
                index,
                port,
                &shared,
            )?);
        }
        let tokens = nodes::create_layout(
            &context,
            &options.pkgnode_bin,
            &prepared[0].config,
            restore.is_some(),
        )?;
        if options.git_builders {
            let server =
                git_daemon::GitServer::start(Some(&context.work_dir.join("git")), context.timeout)?;
            components.insert("git".to_string(), server.version.clone());
            let (r_token, python_token) =
                nodes::create_git_layout(&context, &options.pkgnode_bin, &prepared[0].config)?;
            let endpoints = super::GitEndpoints {
                remote: server.remote(),
                r_source: crate::infra::bootstrap::GIT_R_SOURCE.into(),
                python_source: crate::infra::bootstrap::GIT_PYTHON_SOURCE.into(),
                r_token,
                python_token,
            };
            self.git = Some((server, endpoints));
        }
        if let Some((entry, manifest)) = restore {
            self.restored = Some(RestoredCorpus {
                entry,
                manifest,
                restore_seconds: restore_micros.into_inner() as f64 / 1e6,
            });
        }
        // Start them all, then wait: they come up in parallel.
        for node in prepared {
            self.invocations.push(node.invocation.clone());
            self.nodes.push(Mutex::new(node));
        }
        for node in &mut self.nodes {
            let node = node.get_mut().map_err(|_| poisoned())?;
            node.process.start(context.spawner)?;
        }
        for node in &mut self.nodes {
            let node = node.get_mut().map_err(|_| poisoned())?;
            node.wait_ready(context.timeout)?;
        }
        let mut members = Vec::new();
        for node in &mut self.nodes {
            let node = node.get_mut().map_err(|_| poisoned())?;
            members.push((node.name.clone(), node.address));
            self.endpoints.nodes.push((node.name.clone(), node.url()));
            self.info.nodes.push(NodeInfo {
                id: node.id.clone(),
                address: node.address.to_string(),
                version: node.version.clone(),
            });
        }

        let haproxy = HaProxy::start(&context, &members)?;
        components.insert("haproxy".to_string(), haproxy.version.clone());
        self.endpoints.base_url = haproxy.url();
        *self.haproxy.get_mut().map_err(|_| poisoned())? = Some(haproxy);
        self.endpoints.pypi_token = tokens.pypi;
        self.endpoints.cran_token = tokens.cran;
        self.info.components = components;
        Ok(())
    }

    fn context(&self) -> Result<Context<'_>, InfraError> {
        make_context(
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
            Member::DatabasePrimary => &self.postgres,
            Member::DatabaseStandby => &self.standby,
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
            Member::Node(index) => lock(self.nodes.get(*index)?).name.clone(),
            Member::DatabasePrimary => lock(&self.postgres).as_ref()?.name.to_string(),
            Member::DatabaseStandby => lock(&self.standby).as_ref()?.name.to_string(),
            Member::ObjectStore => "s3".into(),
            Member::LoadBalancer => "haproxy".into(),
        })
    }

    /// The log file of a member.
    pub fn log_file(&self, member: &Member) -> Option<PathBuf> {
        let name = match member {
            Member::ObjectStore => "garage".into(),
            _ => self.process_name(member)?,
        };
        Some(self.work_dir().join(format!("{name}.log")))
    }

    /// The database server the endpoint routes new connections to (a process name).
    pub fn database_endpoint_target(&self) -> Result<String, InfraError> {
        lock(&self.db_endpoint)
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
        let socket = self.work_dir().join("haproxy.sock");
        haproxy::server_states(&socket).map_err(|detail| InfraError::Failed {
            what: "haproxy show stat".into(),
            detail,
        })
    }

    fn unsupported(member: &Member, action: Control) -> InfraError {
        InfraError::Unsupported {
            provider: PROVIDER.into(),
            action,
            member: member.clone(),
        }
    }

    fn control_node(&self, index: usize, action: Control) -> Result<(), InfraError> {
        let member = Member::Node(index);
        let node = self
            .nodes
            .get(index)
            .ok_or_else(|| no_such_member(&member, self.nodes.len()))?;
        let mut node = lock(node);
        let context = self.context()?;
        match action {
            Control::Start => {
                node.process.start(context.spawner)?;
                node.wait_ready(context.timeout)
            }
            _ => signal_action(&mut node.process, action, Signal::SIGTERM)
                .unwrap_or_else(|| Err(Self::unsupported(&member, action))),
        }
    }

    /// Stops every process (HAProxy and nodes first, then the stores), each with a polite
    /// signal and at most [`STOP_GRACE`] before SIGKILL.
    fn stop_everything(&mut self) -> Vec<InfraError> {
        let mut errors = Vec::new();
        let mut front: Vec<(&mut Supervised, Signal)> = Vec::new();
        if let Some(haproxy) = inner(&mut self.haproxy) {
            front.push((&mut haproxy.process, Signal::SIGTERM));
        }
        for node in &mut self.nodes {
            let node = node.get_mut().unwrap_or_else(|p| p.into_inner());
            front.push((&mut node.process, Signal::SIGTERM));
        }
        errors.extend(stop_all(front));
        // The nodes are gone: nothing clones any more.
        if let Some((server, _)) = &mut self.git
            && let Err(error) = server.stop()
        {
            errors.push(error);
        }
        let mut back: Vec<(&mut Supervised, Signal)> = Vec::new();
        if let Some(garage) = inner(&mut self.garage) {
            back.push((&mut garage.process, Signal::SIGTERM));
        }
        if let Some(endpoint) = inner(&mut self.db_endpoint) {
            back.push((&mut endpoint.process, Signal::SIGTERM));
        }
        for slot in [&mut self.postgres, &mut self.standby] {
            if let Some(postgres) = inner(slot) {
                // SIGINT: PostgreSQL's fast shutdown.
                back.push((&mut postgres.process, Signal::SIGINT));
            }
        }
        errors.extend(stop_all(back));
        for slot in [&mut self.postgres, &mut self.standby] {
            if let Some(postgres) = inner(slot)
                && let Err(error) = postgres.remove_outside_dir()
            {
                errors.push(error);
            }
        }
        // Last: a cgroup goes only once its processes have.
        if let Ok(network) = &self.network
            && let Err(error) = network.remove()
        {
            errors.push(error);
        }
        errors
    }

    fn control_database(
        &self,
        slot: &Mutex<Option<Postgres>>,
        member: &Member,
        action: Control,
    ) -> Result<(), InfraError> {
        let context = self.context()?;
        let mut postgres = lock(slot);
        let postgres = postgres.as_mut().ok_or_else(poisoned)?;
        match action {
            Control::Start => {
                postgres.process.start(context.spawner)?;
                postgres.wait_ready(&context)
            }
            // SIGINT: PostgreSQL's fast shutdown.
            _ => signal_action(&mut postgres.process, action, Signal::SIGINT)
                .unwrap_or_else(|| Err(Self::unsupported(member, action))),
        }
    }

    /// Cuts a member off the network or lets it back on (see [`network`]).
    fn cut(&self, member: &Member, action: Control) -> Result<(), InfraError> {
        let network = self
            .network
            .as_ref()
            .map_err(|reason| InfraError::Unavailable {
                provider: PROVIDER.into(),
                action,
                member: member.clone(),
                reason: reason.clone(),
            })?;
        let process = self
            .process_name(member)
            .ok_or_else(|| no_such_member(member, self.nodes.len()))?;
        match action {
            Control::Disconnect => network.cut(&process),
            Control::DisconnectFromDatabase => {
                let port = lock(&self.db_endpoint)
                    .as_ref()
                    .ok_or_else(poisoned)?
                    .address
                    .port();
                network.cut_to_port(&process, port)
            }
            _ => network.reconnect(&process),
        }
    }

    /// Promotes the standby, repoints the database endpoint to it, and swaps the roles.
    fn promote(&self) -> Result<(), InfraError> {
        let context = self.context()?;
        let mut primary = lock(&self.postgres);
        let mut standby = lock(&self.standby);
        let candidate = standby.as_ref().ok_or_else(poisoned)?;
        candidate.promote(&context)?;
        lock(&self.db_endpoint)
            .as_ref()
            .ok_or_else(poisoned)?
            .repoint(candidate.name)?;
        tracing::info!(
            primary = candidate.name,
            "standby promoted; database endpoint repointed"
        );
        std::mem::swap(&mut *primary, &mut *standby);
        // The promoted server may carry `synchronous_standby_names` from an earlier rejoin:
        // until a standby rejoins it, it waits for no one (as a managed database does).
        primary
            .as_ref()
            .ok_or_else(poisoned)?
            .require_no_standby(&context)?;
        Ok(())
    }

    /// The server in the standby role becomes a fresh synchronous standby of the primary.
    fn rejoin(&self) -> Result<(), InfraError> {
        let context = self.context()?;
        let primary = lock(&self.postgres);
        let mut standby = lock(&self.standby);
        let primary = primary.as_ref().ok_or_else(poisoned)?;
        let standby = standby.as_mut().ok_or_else(poisoned)?;
        standby.rejoin_as_standby(&context, primary)?;
        if self.synchronous {
            primary.require_standby(&context)?;
        }
        tracing::info!(
            standby = standby.name,
            "former primary rejoined as the standby"
        );
        Ok(())
    }
}

/// Kill, Stop, Pause and Unpause, the same for every single-process member; `None` for actions
/// that are not signals.
fn signal_action(
    process: &mut Supervised,
    action: Control,
    stop_signal: Signal,
) -> Option<Result<(), InfraError>> {
    Some(match action {
        Control::Kill => process.kill(),
        Control::Stop => process.stop(stop_signal, STOP_GRACE),
        // The whole tree, so PostgreSQL's backends and WAL receiver freeze with the postmaster.
        Control::Pause => process.pause(),
        Control::Unpause => process.unpause(),
        Control::Start
        | Control::Disconnect
        | Control::Reconnect
        | Control::DisconnectFromDatabase
        | Control::Promote
        | Control::Rejoin => {
            return None;
        }
    })
}

/// Signals every process, then waits for all of them against one deadline.
fn stop_all(processes: Vec<(&mut Supervised, Signal)>) -> Vec<InfraError> {
    let mut errors = Vec::new();
    let mut processes: Vec<_> = processes
        .into_iter()
        .filter_map(|(process, signal)| {
            if !process.running() {
                return None;
            }
            if let Err(error) = process.signal(signal) {
                errors.push(error);
            }
            let _ = process.signal_group(Signal::SIGCONT);
            Some(process)
        })
        .collect();
    let deadline = Instant::now() + STOP_GRACE;
    for process in &mut processes {
        if !process.wait_exit(deadline.saturating_duration_since(Instant::now())) {
            tracing::warn!(process = process.name(), "did not stop in time; killing it");
            if let Err(error) = process.kill() {
                errors.push(error);
            }
        }
    }
    errors
}

fn make_context<'a>(
    spawner: &'a Option<Spawner>,
    work_dir: &'a WorkDir,
    timeout: Duration,
    pids: &PidBoard,
    network: &'a Result<Network, String>,
) -> Result<Context<'a>, InfraError> {
    let spawner = spawner.as_ref().ok_or_else(|| InfraError::Failed {
        what: "local cluster".into(),
        detail: "already torn down".into(),
    })?;
    Ok(Context {
        spawner,
        work_dir: work_dir.path(),
        commands_dir: work_dir.path().join("commands"),
        timeout,
        pids: pids.clone(),
        network: network.as_ref().ok(),
    })
}

fn no_such_member(member: &Member, nodes: usize) -> InfraError {
    InfraError::Failed {
        what: format!("{member:?}"),
        detail: format!("no such member (the cluster has {nodes} nodes, 0-based index)"),
    }
}

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
        let names = (1..=self.nodes.len()).map(|i| format!("node-{i}")).chain([
            postgres::PRIMARY.into(),
            postgres::STANDBY.into(),
            db_endpoint::NAME.into(),
            "s3".into(),
            "haproxy".into(),
        ]);
        let mut monitored: Vec<Monitored> = names
            .filter_map(|name| {
                let pid = self.pids.get(&name)?;
                Some(Monitored { name, pid })
            })
            .collect();
        if let Some(pid) = self.git.as_ref().and_then(|(server, _)| server.pid()) {
            monitored.push(Monitored {
                name: "git-daemon".into(),
                pid,
            });
        }
        monitored
    }

    fn git(&self) -> Option<&super::GitEndpoints> {
        self.git.as_ref().map(|(_, endpoints)| endpoints)
    }

    fn node_command(
        &self,
        index: usize,
        args: &[&str],
    ) -> Option<Result<super::NodeCommand, InfraError>> {
        let member = Member::Node(index);
        Some(
            self.invocations
                .get(index)
                .map(|invocation| invocation.command(args))
                .ok_or_else(|| no_such_member(&member, self.invocations.len())),
        )
    }

    fn create_git_repository(&self, name: &str) -> Result<(), InfraError> {
        match &self.git {
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
    fn save_corpus(&self, mut manifest: Manifest) -> Result<Option<PathBuf>, InfraError> {
        let Some((cache, key)) = &self.corpus_cache else {
            return Ok(None);
        };
        if self.restored.is_some() {
            return Ok(None);
        }
        let began = Instant::now();
        manifest.key = key.clone();
        let context = self.context()?;
        let staging = seed::staging(cache, &manifest)?;
        seed::dump_database(
            &context,
            Path::new(postgres::BIN_DIR),
            &self.database_url,
            &staging.join(seed::DB_DUMP),
        )?;
        self.control(&Member::ObjectStore, Control::Stop)?;
        let copied = {
            let garage = lock(&self.garage);
            let garage = garage.as_ref().ok_or_else(poisoned)?;
            manifest.s3_access_key = garage.access_key.clone();
            manifest.s3_secret_key = garage.secret_key.clone();
            manifest.s3_version = garage.version.clone();
            seed::save_object_store(&garage.dir, &staging)
        };
        // Started again whatever the copy did.
        self.control(&Member::ObjectStore, Control::Start)?;
        copied?;
        seed::commit(cache, &staging, &mut manifest, began).map(Some)
    }

    /// Blocking: Stop waits up to 5 s, Start waits until the member is ready again.
    fn control(&self, member: &Member, action: Control) -> Result<(), InfraError> {
        if self.torn_down {
            return Err(InfraError::Failed {
                what: "local cluster".into(),
                detail: "already torn down".into(),
            });
        }
        match (member, action) {
            (_, Control::Disconnect | Control::Reconnect | Control::DisconnectFromDatabase) => {
                self.cut(member, action)
            }
            (Member::DatabaseStandby, Control::Promote) => self.promote(),
            (Member::DatabaseStandby, Control::Rejoin) => self.rejoin(),
            (_, Control::Promote | Control::Rejoin) => Err(Self::unsupported(member, action)),
            (Member::Node(index), _) => self.control_node(*index, action),
            (Member::DatabasePrimary, _) => self.control_database(&self.postgres, member, action),
            (Member::DatabaseStandby, _) => self.control_database(&self.standby, member, action),
            (Member::ObjectStore, _) => {
                let context = self.context()?;
                let mut garage = lock(&self.garage);
                let garage = garage.as_mut().ok_or_else(poisoned)?;
                match action {
                    Control::Start => {
                        garage.process.start(context.spawner)?;
                        garage.wait_ready(&context)
                    }
                    _ => signal_action(&mut garage.process, action, Signal::SIGTERM)
                        .unwrap_or_else(|| Err(Self::unsupported(member, action))),
                }
            }
            (Member::LoadBalancer, _) => {
                let context = self.context()?;
                let mut haproxy = lock(&self.haproxy);
                let haproxy = haproxy.as_mut().ok_or_else(poisoned)?;
                match action {
                    Control::Start => {
                        haproxy.process.start(context.spawner)?;
                        haproxy.wait_started(self.ready_timeout)
                    }
                    _ => signal_action(&mut haproxy.process, action, Signal::SIGTERM)
                        .unwrap_or_else(|| Err(Self::unsupported(member, action))),
                }
            }
        }
    }

    fn probe(&self, member: &Member) -> Result<bool, InfraError> {
        let context = self.context()?;
        let slot = match member {
            Member::DatabasePrimary => &self.postgres,
            Member::DatabaseStandby => &self.standby,
            _ => return Err(Self::unsupported(member, Control::Start)),
        };
        // Only the port is needed: a paused server must not block the controls behind the lock.
        let (port, bin) = {
            let postgres = lock(slot);
            let postgres = postgres.as_ref().ok_or_else(poisoned)?;
            (postgres.port, postgres.bin_dir().to_path_buf())
        };
        Ok(postgres::answers(&context, &bin, port))
    }

    fn teardown(&mut self) -> Result<(), InfraError> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        let began = Instant::now();
        let mut errors = self.stop_everything();
        // Nothing runs any more: the spawner thread may go.
        self.spawner.take();
        if let WorkDir::Temporary(dir) = &mut self.work_dir
            && let Some(dir) = dir.take()
        {
            let path = dir.path().to_path_buf();
            if let Err(error) = dir.close() {
                errors.push(InfraError::Failed {
                    what: "local cluster work dir".into(),
                    detail: format!("cannot remove {}: {error}", path.display()),
                });
            }
        }
        tracing::info!(elapsed = ?began.elapsed(), "local cluster torn down");
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(InfraError::Failed {
                what: "local cluster teardown".into(),
                detail: errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            }),
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if let Err(error) = self.teardown() {
            tracing::error!(%error, "local cluster teardown");
        }
    }
}
