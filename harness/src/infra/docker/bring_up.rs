//! The docker cluster brought up: the images made sure of, orphans of dead runs reaped, the
//! run's network, then the databases (primary, then the synchronous standby), the object
//! store (restored from the corpus cache when it holds this run's key), the Git server, the
//! nodes and HAProxy, each waited for until it serves.

use std::sync::Mutex;
use std::time::Instant;

use reports::record::{InfraInfo, NodeInfo};

use super::parts::Names;
use super::{DockerCluster, DockerOptions, PROVIDER, engine, git_daemon, lock, parts, seed};
use crate::infra::{Endpoints, GitEndpoints, InfraError, RestoredCorpus, bootstrap, joined};

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
}
