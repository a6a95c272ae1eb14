//! The `docker` provider: the cluster as containers started through testcontainers, on a
//! private network of its own (one per run, named after the run id): PostgreSQL primary with a
//! synchronous streaming standby, Garage (S3), N `pkgnode` containers each under its own host
//! name (its `www_host_name`), and HAProxy. The harness reaches them only through ports
//! published on 127.0.0.1. The nodes reach the database by the network alias `db`, which
//! [`Control::Promote`] moves to the promoted standby, the way a managed database flips its
//! DNS name. Members are roles: after a promotion [`Member::DatabasePrimary`] is the promoted
//! container and [`Member::DatabaseStandby`] the former primary (which no longer replicates).
//!
//! Images are `pkgcluster/*` built offline by `docker/build-images.sh` ([`engine::ensure_images`]
//! builds missing ones, and rebuilds `pkgnode` when its binary changed). A cluster started with
//! [`DockerOptions::git_builders`] runs its nodes from the builders image instead (git, R and
//! Python on a Debian root: [`builders_image`]) and a `git daemon` container beside them
//! (`git_daemon.rs`), and creates the Git sources: [`Infra::git`].
//!
//! **Invariant:** nothing is left behind. Every container carries the label
//! `pkgcluster.run=RUN_ID` (as does the network); teardown, [`Drop`] and a failed start drop the
//! testcontainers handles (which remove their containers) and then remove whatever still carries
//! the label, and the network.

mod bring_up;
pub mod builders_image;
mod containers;
mod control;
pub mod engine;
mod git_daemon;
mod parts;
mod seed;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reports::record::InfraInfo;

use self::containers::Started;
use self::parts::Names;

use super::{
    Control, Endpoints, GitEndpoints, Infra, InfraError, Member, Monitored, RestoredCorpus,
};
use crate::corpus_cache::{CacheKey, CorpusCache, Manifest};
pub use bring_up::start;

const PROVIDER: &str = "docker";
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What to start.
#[derive(Debug, Clone)]
pub struct DockerOptions {
    /// Number of `pkgnode` containers (at least 1).
    pub nodes: usize,
    /// The `pkgnode` binary the node image must hold (rebuilt when it differs).
    pub pkgnode_bin: PathBuf,
    /// TOML merged into every node's config, over `[cluster] enabled = true`.
    pub node_config_extra: String,
    /// How long each component may take to become ready.
    pub ready_timeout: Duration,
    /// Why the docker provider was chosen, for the report.
    pub reason: String,
    /// The run id (container name prefix, network name, label value); `None`: a random
    /// `pkgc-XXXXXXXX`. Must be unique among the engine's networks and containers.
    pub run_id: Option<String>,
    /// The corpus cache and this run's key (Garage only): a complete entry is restored before
    /// the nodes start; otherwise [`Infra::save_corpus`] saves the seeded cluster into it.
    pub corpus_cache: Option<(CorpusCache, CacheKey)>,
    /// The git-builders workload: the nodes run the builders image (git, R, Python; built the
    /// first time, minutes), a `git daemon` container serves the builders' repositories as
    /// `git://gitd/NAME.git`, and the Git sources (`cran-git`, `pypi-git`) are created.
    pub git_builders: bool,
}

impl Default for DockerOptions {
    fn default() -> Self {
        Self {
            nodes: 2,
            pkgnode_bin: super::pkgnode_bin::find_pkgnode_bin()
                .unwrap_or_else(|_| "pkgnode".into()),
            node_config_extra: String::new(),
            ready_timeout: Duration::from_secs(90),
            reason: "docker containers requested".into(),
            run_id: None,
            corpus_cache: None,
            git_builders: false,
        }
    }
}

/// Whether this provider can run here: the engine's version when `docker version` answers and
/// the images exist or the build script is there to build them; else why not.
pub fn available() -> Result<String, String> {
    let version = engine::engine_version().map_err(|e| format!("no docker engine ({e})"))?;
    let script = engine::build_script();
    let present = engine::IMAGES.iter().all(|name| {
        engine::docker(&["image", "inspect", "-f", "{{.Id}}", &engine::image(name)]).is_ok()
    });
    if present || script.is_file() {
        Ok(version)
    } else {
        Err(format!(
            "docker {version} answers, but the images are missing and {} is not there",
            script.display()
        ))
    }
}

/// A running docker cluster. Dropping it removes every container and the network.
pub struct DockerCluster {
    names: Names,
    endpoints: Endpoints,
    info: InfraInfo,
    /// The two database containers, `pg-primary` then `pg-standby`.
    databases: [Option<Started>; 2],
    /// Which of `databases` holds the primary role now (0 until a promotion).
    primary_slot: std::sync::atomic::AtomicUsize,
    garage: Option<Started>,
    nodes: Vec<Started>,
    haproxy: Option<Started>,
    /// The Git server and the Git sources, when started with `git_builders`.
    git: Option<(git_daemon::GitDaemon, GitEndpoints)>,
    /// The nodes' image: (repository, tag).
    node_image: (String, String),
    /// The database container that holds the `db` alias.
    db_holder: Mutex<String>,
    ready_timeout: Duration,
    /// Garage's `/var/lib/garage` on the host, when the corpus cache is used.
    garage_dir: Option<tempfile::TempDir>,
    /// The S3 access key and secret the nodes use.
    s3_key: (String, String),
    corpus_cache: Option<(CorpusCache, CacheKey)>,
    restored: Option<RestoredCorpus>,
    torn_down: bool,
}

impl DockerCluster {
    /// The run id: container names start with it, and `pkgcluster.run=RUN_ID` labels them.
    pub fn run_id(&self) -> &str {
        &self.names.run_id
    }

    /// The run's docker network.
    pub fn network(&self) -> &str {
        &self.names.network
    }

    /// The container of a member.
    pub fn container_name(&self, member: &Member) -> Result<String, InfraError> {
        self.started(member).map(|s| s.name.clone())
    }

    /// HAProxy's view of the nodes: (server name, `UP`/`DOWN`/`MAINT`…).
    pub fn balancer_states(&self) -> Result<Vec<(String, String)>, InfraError> {
        let haproxy = self.started(&Member::LoadBalancer)?;
        parts::balancer_states(haproxy).map_err(|detail| InfraError::Failed {
            what: "haproxy stats".into(),
            detail,
        })
    }

    /// `pkgnode ARGS` (admin CLI, e.g. `list-nodes`, `node-status`) run by `docker exec` in node
    /// `index`'s container.
    pub fn node_admin(&self, index: usize, args: &[&str]) -> Result<String, InfraError> {
        parts::node_admin(&self.started(&Member::Node(index))?.name, args)
    }

    /// `psql -tA -c SQL` on the `pkgnode` database inside a database member's container.
    pub fn psql(&self, member: &Member, sql: &str) -> Result<String, InfraError> {
        parts::psql(&self.started(member)?.name, sql)
    }

    /// Promotes the standby and moves the `db` alias to it; [`Control::Promote`] on
    /// [`Member::DatabaseStandby`].
    pub fn promote_standby(&self) -> Result<(), InfraError> {
        self.control(&Member::DatabaseStandby, Control::Promote)
    }

    fn remove_everything(&mut self) -> Result<(), InfraError> {
        // testcontainers removes each container (rm -f -v) as its handle drops.
        self.haproxy.take();
        self.git.take();
        self.nodes.clear();
        self.garage.take();
        self.databases = [None, None];
        engine::remove_run(&self.names.run_id, &self.names.network)
    }
}

impl Infra for DockerCluster {
    fn query_primary(&self, sql: &str) -> Option<Result<String, InfraError>> {
        Some(self.psql(&Member::DatabasePrimary, sql))
    }

    fn balancer_states(&self) -> Option<Result<Vec<(String, String)>, InfraError>> {
        Some(DockerCluster::balancer_states(self))
    }

    fn restored_corpus(&self) -> Option<&RestoredCorpus> {
        self.restored.as_ref()
    }

    fn git(&self) -> Option<&GitEndpoints> {
        self.git.as_ref().map(|(_, endpoints)| endpoints)
    }

    fn create_git_repository(&self, name: &str) -> Result<(), InfraError> {
        match &self.git {
            Some((daemon, _)) => daemon.create_repository(name),
            None => Err(InfraError::Failed {
                what: format!("git repository {name}"),
                detail: "this cluster was started without a Git server (git_builders: false)"
                    .into(),
            }),
        }
    }

    fn node_command(
        &self,
        index: usize,
        args: &[&str],
    ) -> Option<Result<super::NodeCommand, InfraError>> {
        Some(
            self.started(&Member::Node(index))
                .map(|node| parts::node_command(&node.name, index, args)),
        )
    }

    /// Blocking: the database dumped through the primary's published port, then Garage's
    /// container stopped while its mounted directory is copied, and started again.
    fn save_corpus(&self, mut manifest: Manifest) -> Result<Option<PathBuf>, InfraError> {
        let (Some((cache, key)), Some(garage_dir)) = (&self.corpus_cache, &self.garage_dir) else {
            return Ok(None);
        };
        if self.restored.is_some() {
            return Ok(None);
        }
        let failed = |e: crate::corpus_cache::CacheError| InfraError::Failed {
            what: "corpus cache".into(),
            detail: e.to_string(),
        };
        let began = Instant::now();
        manifest.key = key.clone();
        let staging = cache.staging(key).map_err(failed)?;
        let primary = self.started(&Member::DatabasePrimary)?;
        seed::dump_database(
            &seed::host_database_url(primary.host_port(5432)),
            &staging.join(seed::DB_DUMP),
        )?;
        let garage = self.started(&Member::ObjectStore)?;
        garage.stop(STOP_GRACE)?;
        let copied = seed::save_object_store(garage_dir.path(), &staging);
        garage.start()?;
        self.wait_ready(&Member::ObjectStore, garage)?;
        copied?;
        manifest.s3_access_key = self.s3_key.0.clone();
        manifest.s3_secret_key = self.s3_key.1.clone();
        manifest.s3_version = self
            .info
            .components
            .get("garage")
            .cloned()
            .unwrap_or_default();
        manifest.save_seconds = began.elapsed().as_secs_f64();
        cache.commit(&staging, &manifest).map_err(failed).map(Some)
    }

    fn info(&self) -> InfraInfo {
        self.info.clone()
    }

    fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The host pid of each running container's first process, named after the container
    /// (`postgresql` is the first primary's whatever role it holds now, as in `local`), and
    /// `docker-proxy`, the engine's userland proxy for the balancer's published port, which
    /// copies every request and response of the load.
    fn monitored(&self) -> Vec<Monitored> {
        let nodes = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| (format!("node-{}", i + 1), Some(node)));
        let [primary, standby] = &self.databases;
        let others = [
            ("postgresql".to_string(), primary.as_ref()),
            ("postgresql-standby".to_string(), standby.as_ref()),
            ("s3".to_string(), self.garage.as_ref()),
            ("haproxy".to_string(), self.haproxy.as_ref()),
            (
                "git-daemon".to_string(),
                self.git.as_ref().map(|(daemon, _)| &daemon.started),
            ),
        ];
        let proxy = self
            .haproxy
            .as_ref()
            .and_then(|lb| crate::procs::docker_proxy_for(lb.host_port(parts::LB_PORT)))
            .map(|pid| Monitored {
                name: "docker-proxy".into(),
                pid,
            });
        nodes
            .chain(others)
            .filter_map(|(name, started)| {
                let pid = engine::container_pid(&started?.name)?;
                Some(Monitored { name, pid })
            })
            .chain(proxy)
            .collect()
    }

    /// Blocking: Stop waits up to 5 s, Start waits until the member serves again.
    fn control(&self, member: &Member, action: Control) -> Result<(), InfraError> {
        self.apply(member, action)
    }

    /// A database member answers when `psql SELECT 1` runs inside its container (a killed or
    /// paused container refuses `docker exec`).
    fn probe(&self, member: &Member) -> Result<bool, InfraError> {
        self.probe_database(member)
    }

    fn teardown(&mut self) -> Result<(), InfraError> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        let began = Instant::now();
        // On a thread of its own: the containers' handles remove them with blocking calls,
        // which panic on an async runtime's thread — and abort the process, leaking every
        // container, when the drop runs there while a panic unwinds.
        let result = super::off_runtime("docker cluster teardown", || self.remove_everything());
        tracing::info!(elapsed = ?began.elapsed(), "docker cluster torn down");
        result
    }
}

impl Drop for DockerCluster {
    fn drop(&mut self) {
        if let Err(error) = self.teardown() {
            tracing::error!(%error, "docker cluster teardown");
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
