//! Bring-up: [`start`] checks the options, makes the work dir and runs [`PLAN`], one step per
//! part, each using what the steps before it made. A part lands in its slot of the cluster as
//! soon as it runs, so that on an error the cluster, dropped, stops whatever had started.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use reports::record::{InfraInfo, NodeInfo};

use super::db_endpoint::DbEndpoint;
use super::garage::Garage;
use super::git_daemon::GitServer;
use super::haproxy::HaProxy;
use super::layout::{Context, WorkDir};
use super::network::Network;
use super::nodes::{self, Node};
use super::postgres::{self, Postgres};
use super::process::{PidBoard, Spawner};
use super::{LocalCluster, LocalOptions, PROVIDER, Parts, lock, poisoned, seed};
use crate::corpus_cache::Manifest;
use crate::infra::{Endpoints, GitEndpoints, InfraError, PackageStorage, RestoredCorpus};
use crate::infra::{bootstrap, probe};

/// One step of the bring-up.
type Step = fn(&mut BringUp<'_>) -> Result<(), InfraError>;

/// The bring-up, in order.
const PLAN: [(&str, Step); 6] = [
    ("database and object store", stores),
    ("node configs", node_configs),
    ("sources, repositories and tokens", repositories),
    ("git server", git_server),
    ("nodes", nodes_up),
    ("load balancer", balancer),
];

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
    let s3 = options.package_storage == PackageStorage::S3;
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
        parts: Parts {
            postgres: Mutex::new(None),
            standby: Mutex::new(None),
            db_endpoint: Mutex::new(None),
            garage: Mutex::new(None),
            nodes: Vec::new(),
            invocations: Vec::new(),
            haproxy: Mutex::new(None),
            git: None,
        },
        pids: PidBoard::default(),
        network: Network::open(),
        spawner: Some(Spawner::new()?),
        work_dir: WorkDir::create(options.work_dir.as_deref())?,
        ready_timeout: options.ready_timeout,
        database_url: String::new(),
        synchronous: options.synchronous,
        // The cache holds a Garage data directory: without S3, nothing to restore into.
        corpus_cache: options.corpus_cache.clone().filter(|_| s3),
        restored: None,
        torn_down: false,
    };
    // On error `cluster` drops here, which stops whatever had started.
    bring_up(&mut cluster, &options)?;
    tracing::info!(
        nodes = options.nodes,
        elapsed = ?began.elapsed(),
        base_url = %cluster.endpoints.base_url,
        work_dir = %cluster.work_dir().display(),
        "local cluster ready"
    );
    Ok(cluster)
}

/// What the steps share: the options, the context, the cluster's slots and what the steps
/// before made.
struct BringUp<'a> {
    options: &'a LocalOptions,
    context: Context<'a>,
    parts: &'a mut Parts,
    endpoints: &'a mut Endpoints,
    info: &'a mut InfraInfo,
    /// A complete corpus cache entry of this run's key, restored into both stores.
    restore: Option<(PathBuf, Manifest)>,
    /// Time spent restoring (the file copies, the database restore), not starting.
    restore_micros: AtomicU64,
    database_url: String,
    /// The nodes, configured and not started yet.
    prepared: Vec<Node>,
}

impl BringUp<'_> {
    /// Counts the time since `began` as restoring.
    fn restored_since(&self, began: Instant) -> u64 {
        self.restore_micros
            .fetch_add(began.elapsed().as_micros() as u64, Ordering::Relaxed)
    }
}

fn bring_up(cluster: &mut LocalCluster, options: &LocalOptions) -> Result<(), InfraError> {
    // Field by field: the context borrows some while the steps fill in others.
    let LocalCluster {
        endpoints,
        info,
        parts,
        pids,
        network,
        spawner,
        work_dir,
        ready_timeout,
        database_url,
        corpus_cache,
        restored,
        ..
    } = cluster;
    let context = Context::new(spawner, work_dir, *ready_timeout, pids, network)?;
    std::fs::create_dir_all(&context.commands_dir)?;
    if let Err(reason) = &*network {
        tracing::info!(%reason, "members cannot be cut off the network on this machine");
    }
    let mut up = BringUp {
        options,
        context,
        parts,
        endpoints,
        info,
        restore: corpus_cache
            .as_ref()
            .and_then(|(cache, key)| cache.lookup(key)),
        restore_micros: AtomicU64::new(0),
        database_url: String::new(),
        prepared: Vec::new(),
    };
    for (step, run) in PLAN {
        let began = Instant::now();
        run(&mut up)?;
        tracing::debug!(step, elapsed = ?began.elapsed(), "local cluster bring-up");
    }
    *database_url = up.database_url;
    *restored = up.restore.map(|(entry, manifest)| RestoredCorpus {
        entry,
        manifest,
        restore_seconds: up.restore_micros.into_inner() as f64 / 1e6,
    });
    Ok(())
}

/// The database and the object store are independent: started side by side.
fn stores(up: &mut BringUp<'_>) -> Result<(), InfraError> {
    let s3 = up.options.package_storage == PackageStorage::S3;
    let shared: &BringUp<'_> = up;
    let (database_url, garage_version) = std::thread::scope(|scope| {
        let database = scope.spawn(|| database(shared));
        let garage = s3.then(|| scope.spawn(|| object_store(shared)));
        (
            crate::infra::joined(database, "postgresql"),
            garage.map(|garage| crate::infra::joined(garage, "s3")),
        )
    });
    let (database_url, garage_version) = match (database_url, garage_version.transpose()) {
        (Ok(url), Ok(version)) => (url, version),
        (Err(error), _) | (_, Err(error)) => return Err(error),
    };
    up.database_url = database_url;
    let pg_version = lock(&up.parts.postgres).as_ref().map(|p| p.version.clone());
    let components = &mut up.info.components;
    components.insert("postgresql".to_string(), pg_version.unwrap_or_default());
    if let Some(version) = garage_version {
        components.insert("garage".to_string(), version);
    }
    Ok(())
}

/// The primary, its standby (synchronous unless asked otherwise) and the endpoint the nodes
/// reach them through, with the restored corpus's rows; the endpoint's URL.
fn database(up: &BringUp<'_>) -> Result<String, InfraError> {
    let context = &up.context;
    let mut primary_slot = lock(&up.parts.postgres);
    let primary = primary_slot.insert(Postgres::start(context)?);
    let mut standby_slot = lock(&up.parts.standby);
    let replica = standby_slot.insert(Postgres::start_standby(context, primary)?);
    if up.options.synchronous {
        primary.require_standby(context)?;
    }
    let servers = [(primary.name, primary.port), (replica.name, replica.port)];
    let started = DbEndpoint::start(context, &servers)?;
    let url = lock(&up.parts.db_endpoint)
        .insert(started)
        .url(postgres::DATABASE);
    if let Some((entry, _)) = &up.restore {
        let began = Instant::now();
        seed::restore_database(context, Path::new(postgres::BIN_DIR), &url, entry)?;
        up.restored_since(began);
    }
    Ok(url)
}

/// Garage, from the restored corpus's directories if there are some; its version.
fn object_store(up: &BringUp<'_>) -> Result<String, InfraError> {
    let restore = up.restore.as_ref().map(|(entry, m)| (entry.as_path(), m));
    let garage = Garage::start(&up.context, restore, &|began| up.restored_since(began))?;
    let version = garage.version.clone();
    *lock(&up.parts.garage) = Some(garage);
    Ok(version)
}

/// The key file and each node's data dir and config, wired to the stores.
fn node_configs(up: &mut BringUp<'_>) -> Result<(), InfraError> {
    let context = &up.context;
    let garage = lock(&up.parts.garage);
    let shared_dir = context.shared_packages_dir();
    let storage = match (garage.as_ref(), up.options.package_storage) {
        (Some(garage), _) => bootstrap::StorageWiring::S3 {
            endpoint: &garage.endpoint,
            access_key: &garage.access_key,
            secret_key: &garage.secret_key,
        },
        (None, PackageStorage::SharedDirectory) => {
            std::fs::create_dir_all(&shared_dir)?;
            bootstrap::StorageWiring::Directory(Some(&shared_dir))
        }
        (None, _) => bootstrap::StorageWiring::Directory(None),
    };
    let key_file = context.key_file();
    nodes::write_key_file(&key_file)?;
    let shared = nodes::Shared {
        database_url: &up.database_url,
        storage,
        key_file: &key_file,
        extra: &up.options.node_config_extra,
    };
    let addresses = (0..up.options.nodes)
        .map(nodes::node_ip)
        .collect::<Result<Vec<_>, _>>()?;
    let port = probe::free_port_on(&addresses)?;
    let prepared = (0..up.options.nodes)
        .map(|index| Node::prepare(context, &up.options.pkgnode_bin, index, port, &shared))
        .collect::<Result<Vec<_>, _>>()?;
    drop(garage);
    up.prepared = prepared;
    Ok(())
}

/// The sources, repositories and tokens, through the first node's config (the restored
/// corpus brought the sources and repositories).
fn repositories(up: &mut BringUp<'_>) -> Result<(), InfraError> {
    let tokens = nodes::create_layout(
        &up.context,
        &up.options.pkgnode_bin,
        &up.prepared[0].config,
        up.restore.is_some(),
    )?;
    up.endpoints.pypi_token = tokens.pypi;
    up.endpoints.cran_token = tokens.cran;
    Ok(())
}

/// The Git server and the Git sources, for the git-builders workload only.
fn git_server(up: &mut BringUp<'_>) -> Result<(), InfraError> {
    if !up.options.git_builders {
        return Ok(());
    }
    let server = GitServer::start(Some(&up.context.git_dir()), up.context.timeout)?;
    up.info
        .components
        .insert("git".to_string(), server.version.clone());
    let (r_token, python_token) =
        nodes::create_git_layout(&up.context, &up.options.pkgnode_bin, &up.prepared[0].config)?;
    let endpoints = GitEndpoints {
        remote: server.remote(),
        r_source: bootstrap::GIT_R_SOURCE.into(),
        python_source: bootstrap::GIT_PYTHON_SOURCE.into(),
        r_token,
        python_token,
    };
    up.parts.git = Some((server, endpoints));
    Ok(())
}

/// Every node started, then waited for: they come up in parallel.
fn nodes_up(up: &mut BringUp<'_>) -> Result<(), InfraError> {
    for node in std::mem::take(&mut up.prepared) {
        up.parts.invocations.push(node.invocation.clone());
        up.parts.nodes.push(Mutex::new(node));
    }
    for node in &mut up.parts.nodes {
        let node = node.get_mut().map_err(|_| poisoned())?;
        node.process.start(up.context.spawner)?;
    }
    for node in &mut up.parts.nodes {
        let node = node.get_mut().map_err(|_| poisoned())?;
        node.wait_ready(up.context.timeout)?;
        up.endpoints.nodes.push((node.name.clone(), node.url()));
        up.info.nodes.push(NodeInfo {
            id: node.id.clone(),
            address: node.address.to_string(),
            version: node.version.clone(),
        });
    }
    Ok(())
}

/// HAProxy in front of the nodes; the cluster's base URL.
fn balancer(up: &mut BringUp<'_>) -> Result<(), InfraError> {
    let mut members = Vec::new();
    for node in &mut up.parts.nodes {
        let node = node.get_mut().map_err(|_| poisoned())?;
        members.push((node.name.clone(), node.address));
    }
    let haproxy = HaProxy::start(&up.context, &members)?;
    up.info
        .components
        .insert("haproxy".to_string(), haproxy.version.clone());
    up.endpoints.base_url = haproxy.url();
    *up.parts.haproxy.get_mut().map_err(|_| poisoned())? = Some(haproxy);
    Ok(())
}
