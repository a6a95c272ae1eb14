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

pub mod builders_image;
mod containers;
pub mod engine;
mod git_daemon;
mod parts;
mod seed;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reports::record::{InfraInfo, NodeInfo};

use self::containers::Started;
use self::parts::Names;
use super::{
    Control, Endpoints, GitEndpoints, Infra, InfraError, Member, Monitored, RestoredCorpus,
    bootstrap, joined,
};
use crate::corpus_cache::{CacheKey, CorpusCache, Manifest};

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

/// Makes sure the images are there, starts the cluster and waits until the load balancer sees
/// every node UP. Blocking: call it from `spawn_blocking` in async code (and do not drop the
/// cluster inside an async context: testcontainers' synchronous drop blocks on its runtime).
pub fn start(options: DockerOptions) -> Result<DockerCluster, InfraError> {
    let began = Instant::now();
    if options.nodes == 0 {
        return Err(InfraError::Failed {
            what: "docker cluster".into(),
            detail: "at least one node is needed".into(),
        });
    }
    let engine_version = engine::engine_version()?;
    let node_image = if options.git_builders {
        engine::NodeImage::Builders
    } else {
        engine::NodeImage::Scratch
    };
    let images = engine::ensure_images(&options.pkgnode_bin, node_image)?;
    if !images.built.is_empty() || options.git_builders {
        tracing::info!(built = ?images.built, node_image = ?images.node, elapsed = ?began.elapsed(), "docker images ready");
    }
    let run_id = options
        .run_id
        .clone()
        .unwrap_or_else(|| format!("pkgc-{:08x}", rand::random::<u32>()));
    for orphan in engine::reap_orphans()? {
        tracing::warn!(run = %orphan, "removed the containers of a harness run that no longer exists");
    }
    engine::create_network(&run_id, &run_id)?;
    let mut components = std::collections::BTreeMap::new();
    components.insert("docker".to_string(), engine_version);
    let mut cluster = DockerCluster {
        names: Names {
            network: run_id.clone(),
            run_id,
        },
        endpoints: Endpoints {
            base_url: String::new(),
            nodes: Vec::new(),
            pypi_repo: bootstrap::PYPI_REPO.into(),
            cran_repo: bootstrap::CRAN_REPO.into(),
            pypi_source: bootstrap::PYPI_SOURCE.into(),
            cran_source: bootstrap::CRAN_SOURCE.into(),
            pypi_token: String::new(),
            cran_token: String::new(),
        },
        info: InfraInfo {
            provider: PROVIDER.into(),
            reason: options.reason.clone(),
            components,
            ..InfraInfo::default()
        },
        databases: [None, None],
        primary_slot: std::sync::atomic::AtomicUsize::new(0),
        garage: None,
        nodes: Vec::new(),
        haproxy: None,
        git: None,
        node_image: images.node,
        db_holder: Mutex::new(String::new()),
        ready_timeout: options.ready_timeout,
        garage_dir: None,
        s3_key: (String::new(), String::new()),
        corpus_cache: options
            .corpus_cache
            .clone()
            .filter(|_| parts::object_store_is_garage()),
        restored: None,
        torn_down: false,
    };
    // On error `cluster` drops here, which removes whatever had started.
    cluster.bring_up(&options)?;
    tracing::info!(
        nodes = options.nodes,
        elapsed = ?began.elapsed(),
        base_url = %cluster.endpoints.base_url,
        run_id = %cluster.names.run_id,
        "docker cluster ready"
    );
    Ok(cluster)
}

impl DockerCluster {
    fn bring_up(&mut self, options: &DockerOptions) -> Result<(), InfraError> {
        let timeout = options.ready_timeout;
        let names = &self.names;
        // A complete corpus cache entry of this run's key is restored into both stores.
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
        if self.corpus_cache.is_some() {
            let began = Instant::now();
            self.garage_dir = Some(seed::garage_dir(
                restore.as_ref().map(|(entry, _)| entry.as_path()),
            )?);
            add(began);
        }
        let garage_dir = self
            .garage_dir
            .as_ref()
            .map(|dir| (dir.path(), restore.as_ref().map(|(_, m)| m)));
        let restore_entry = restore.as_ref().map(|(entry, _)| entry.as_path());
        // The database and the object store are independent: start them side by side.
        let (postgres, garage) = std::thread::scope(|scope| {
            let postgres = scope.spawn(|| -> Result<_, InfraError> {
                let started = parts::start_postgres(names, timeout)?;
                if let Some(entry) = restore_entry {
                    let began = Instant::now();
                    let url = seed::host_database_url(started.0.host_port(5432));
                    // Dropping `started` on error removes the containers.
                    seed::restore_database(&url, entry)?;
                    add(began);
                }
                Ok(started)
            });
            let garage = scope.spawn(|| parts::start_object_store(names, timeout, garage_dir));
            (joined(postgres, "postgresql"), joined(garage, "s3"))
        });
        // Keep whatever started, so that an error below still removes it.
        let postgres = postgres.map(|(primary, standby, version)| {
            *lock(&self.db_holder) = primary.name.clone();
            self.databases = [Some(primary), Some(standby)];
            version
        });
        let garage = garage.map(|garage| {
            self.garage = Some(garage.started);
            (
                garage.access_key,
                garage.secret_key,
                (garage.kind, garage.version),
            )
        });
        let (pg_version, (access_key, secret_key, (s3_kind, s3_version))) = (postgres?, garage?);
        self.info.components.insert("postgresql".into(), pg_version);
        self.info.components.insert(s3_kind.into(), s3_version);
        self.s3_key = (access_key.clone(), secret_key.clone());

        let mut extra: toml::Table =
            toml::from_str("[cluster]\nenabled = true\n").expect("fixed TOML parses");
        let user: toml::Table =
            options
                .node_config_extra
                .parse()
                .map_err(|e| InfraError::Failed {
                    what: "node_config_extra".into(),
                    detail: format!("not valid TOML: {e}"),
                })?;
        bootstrap::merge(&mut extra, user);
        let extra = toml::to_string(&extra).map_err(|e| InfraError::Failed {
            what: "node_config_extra".into(),
            detail: e.to_string(),
        })?;
        let database_url = format!(
            "postgres://postgres@{}:5432/{}",
            parts::DB_ALIAS,
            bootstrap::DATABASE
        );
        let s3_endpoint = parts::s3_endpoint(&self.names);
        let shared = bootstrap::Shared {
            database_url: &database_url,
            storage: bootstrap::StorageWiring::S3 {
                endpoint: &s3_endpoint,
                access_key: &access_key,
                secret_key: &secret_key,
            },
            key_file: parts::key_file(),
            extra: &extra,
        };
        let key_text = bootstrap::new_key_text();
        // The first node migrates the schema; the others start once it serves.
        let image = &self.node_image;
        self.nodes.push(parts::start_node(
            &self.names,
            image,
            0,
            &shared,
            &key_text,
        )?);
        let mut ids = vec![parts::wait_node(&self.nodes[0], timeout)?];
        for index in 1..options.nodes {
            self.nodes.push(parts::start_node(
                &self.names,
                image,
                index,
                &shared,
                &key_text,
            )?);
        }
        let first = self.nodes[0].name.clone();
        let admin = |_step: &str, args: &[&str]| parts::node_admin(&first, args);
        let tokens = bootstrap::create_layout(restore.is_some(), admin)?;
        if options.git_builders {
            let daemon = git_daemon::start(&self.names, image, timeout)?;
            self.info
                .components
                .insert("git".into(), daemon.version.clone());
            let (r_token, python_token) = bootstrap::create_git_layout(admin)?;
            let endpoints = GitEndpoints {
                remote: daemon.remote(),
                r_source: bootstrap::GIT_R_SOURCE.into(),
                python_source: bootstrap::GIT_PYTHON_SOURCE.into(),
                r_token,
                python_token,
            };
            self.git = Some((daemon, endpoints));
        }
        if let Some((entry, manifest)) = restore {
            self.restored = Some(RestoredCorpus {
                entry,
                manifest,
                restore_seconds: restore_micros.into_inner() as f64 / 1e6,
            });
        }
        for node in &self.nodes[1..] {
            ids.push(parts::wait_node(node, timeout)?);
        }
        for (node, (id, version)) in self.nodes.iter().zip(ids) {
            let short = node
                .name
                .trim_start_matches(&format!("{}-", self.names.run_id));
            self.endpoints.nodes.push((
                short.to_string(),
                format!("http://127.0.0.1:{}", node.host_port(parts::NODE_PORT)),
            ));
            self.info.nodes.push(NodeInfo {
                id,
                address: format!("{}:{}", node.name, parts::NODE_PORT),
                version,
            });
        }

        let hosts: Vec<String> = self.nodes.iter().map(|n| n.name.clone()).collect();
        let (haproxy, version) = parts::start_haproxy(&self.names, &hosts)?;
        self.info.components.insert("haproxy".into(), version);
        let haproxy = self.haproxy.insert(haproxy);
        parts::wait_balancer(haproxy, hosts.len(), timeout)?;
        self.endpoints.base_url = format!("http://127.0.0.1:{}", haproxy.host_port(parts::LB_PORT));
        self.endpoints.pypi_token = tokens.pypi;
        self.endpoints.cran_token = tokens.cran;
        Ok(())
    }

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

    fn started(&self, member: &Member) -> Result<&Started, InfraError> {
        let found = match member {
            Member::Node(index) => self.nodes.get(*index),
            Member::DatabasePrimary => self.databases[self.primary_slot()].as_ref(),
            Member::DatabaseStandby => self.databases[1 - self.primary_slot()].as_ref(),
            Member::LoadBalancer => self.haproxy.as_ref(),
            Member::ObjectStore => self.garage.as_ref(),
        };
        found.ok_or_else(|| InfraError::Failed {
            what: format!("{member:?}"),
            detail: if self.torn_down {
                "the docker cluster is torn down".into()
            } else {
                format!(
                    "no such member (the cluster has {} nodes)",
                    self.nodes.len()
                )
            },
        })
    }

    /// Waits until a restarted member serves again.
    fn wait_ready(&self, member: &Member, started: &Started) -> Result<(), InfraError> {
        let timeout = self.ready_timeout;
        match member {
            Member::Node(_) => parts::wait_node(started, timeout).map(|_| ()),
            Member::DatabasePrimary | Member::DatabaseStandby => {
                parts::wait_postgres(&started.name, timeout)
            }
            Member::LoadBalancer => {
                engine::wait_until("haproxy", Some(&started.name), timeout, || {
                    parts::balancer_states(started).map(|s| s.len() == self.nodes.len())
                })
            }
            Member::ObjectStore => {
                let address = std::net::SocketAddr::from(([127, 0, 0, 1], started.host_port(3900)));
                engine::wait_until("garage", Some(&started.name), timeout, || {
                    crate::infra::probe::get(address, "/", Duration::from_secs(2)).map(|_| true)
                })
            }
        }
    }

    fn primary_slot(&self) -> usize {
        self.primary_slot.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn promote(&self) -> Result<(), InfraError> {
        let standby = self.started(&Member::DatabaseStandby)?;
        // A former primary is not in recovery: `pg_ctl promote` refuses it.
        engine::exec(
            &standby.name,
            None,
            &["pg_ctl", "promote", "-w", "-D", parts::PGDATA],
        )?;
        let network = &self.names.network;
        let mut holder = lock(&self.db_holder);
        if *holder != standby.name {
            // Whatever state the old primary is in, it must not answer to `db` any more.
            engine::disconnect(network, &holder)?;
            engine::disconnect(network, &standby.name)?;
            engine::connect(network, &standby.name, Some(parts::DB_ALIAS))?;
            *holder = standby.name.clone();
        }
        self.primary_slot
            .store(1 - self.primary_slot(), std::sync::atomic::Ordering::SeqCst);
        // A server that once rejoined carries `synchronous_standby_names`: until a standby
        // rejoins it, the promoted primary waits for no one (as a managed database does).
        parts::psql(
            &standby.name,
            "ALTER SYSTEM SET synchronous_standby_names = ''",
        )?;
        parts::psql(&standby.name, "SELECT pg_reload_conf()")?;
        Ok(())
    }

    /// The former primary (now in the standby role) becomes a fresh synchronous standby of
    /// the primary: stopped, a rejoin marker copied in, started on the network again (the
    /// entrypoint empties PGDATA and takes a base backup), then required by the primary.
    fn rejoin(&self) -> Result<(), InfraError> {
        let primary = self.started(&Member::DatabasePrimary)?;
        let former = self.started(&Member::DatabaseStandby)?;
        // Killed already, or still running as a stale primary: either way, down.
        let _ = engine::docker(&["kill", "-s", "KILL", &former.name]);
        let marker = tempfile::NamedTempFile::new()?;
        std::fs::write(
            marker.path(),
            format!(
                "{} {}\n",
                primary.name,
                crate::infra::bootstrap::STANDBY_NAME
            ),
        )?;
        // The entrypoint runs as postgres: the copied file (owned by root) must be readable.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(marker.path(), std::fs::Permissions::from_mode(0o644))?;
        }
        let marker_path = marker.path().display().to_string();
        engine::docker(&[
            "cp",
            &marker_path,
            &format!("{}:/var/lib/postgresql/rejoin", former.name),
        ])?;
        engine::disconnect(&self.names.network, &former.name)?;
        engine::connect(&self.names.network, &former.name, None)?;
        former.start()?;
        parts::wait_postgres(&former.name, self.ready_timeout)?;
        parts::require_standby(&primary.name, &former.name, self.ready_timeout)
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
        let started = self.started(member)?;
        let name = started.name.as_str();
        let network = self.names.network.as_str();
        match action {
            Control::Kill => engine::docker(&["kill", "-s", "KILL", name]).map(|_| ()),
            Control::Stop => started.stop(STOP_GRACE),
            Control::Start => {
                started.start()?;
                self.wait_ready(member, started)
            }
            Control::Pause => engine::docker(&["pause", name]).map(|_| ()),
            Control::Unpause => engine::docker(&["unpause", name]).map(|_| ()),
            Control::Disconnect => engine::disconnect(network, name),
            Control::Reconnect => {
                if let Member::Node(_) = member {
                    engine::database_cut(name, false)?;
                }
                let alias = (*lock(&self.db_holder) == name).then_some(parts::DB_ALIAS);
                match engine::connect(network, name, alias) {
                    // Only its database traffic was cut (or nothing): it is on the network.
                    Err(InfraError::Failed { detail, .. }) if detail.contains("already exists") => {
                        Ok(())
                    }
                    other => other,
                }
            }
            Control::DisconnectFromDatabase if matches!(member, Member::Node(_)) => {
                engine::database_cut(name, true)
            }
            Control::Promote if *member == Member::DatabaseStandby => self.promote(),
            Control::Rejoin if *member == Member::DatabaseStandby => self.rejoin(),
            Control::Promote | Control::Rejoin | Control::DisconnectFromDatabase => {
                Err(InfraError::Unsupported {
                    provider: PROVIDER.into(),
                    action,
                    member: member.clone(),
                })
            }
        }
    }

    /// A database member answers when `psql SELECT 1` runs inside its container (a killed or
    /// paused container refuses `docker exec`).
    fn probe(&self, member: &Member) -> Result<bool, InfraError> {
        match member {
            Member::DatabasePrimary | Member::DatabaseStandby => {
                Ok(parts::psql(&self.started(member)?.name, "SELECT 1").is_ok())
            }
            _ => Err(InfraError::Unsupported {
                provider: PROVIDER.into(),
                action: Control::Start,
                member: member.clone(),
            }),
        }
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
