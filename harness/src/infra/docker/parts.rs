//! Starting each part of the docker cluster and waiting until it serves: PostgreSQL primary (with
//! the `db` alias) and synchronous standby, Garage (one-node layout, key and bucket through
//! `docker exec`), the nodes (config and key copied in; layout created with the admin CLI through
//! `docker exec` on the first node) and HAProxy (health checks, DNS re-resolution through the
//! network's resolver so a restarted node is found at its new address).

use std::net::SocketAddr;
use std::time::Duration;

use super::containers::{self, Spec, Started};
use super::engine;
use crate::infra::{InfraError, bootstrap, haproxy_config, probe};

/// The network alias the nodes reach the database by; moved on promotion.
pub const DB_ALIAS: &str = "db";
pub const PGDATA: &str = "/var/lib/postgresql/data";
pub const NODE_PORT: u16 = 4242;
pub const LB_PORT: u16 = 8080;
pub const STATS_PORT: u16 = 8404;
const S3_PORT: u16 = 3900;
const NODE_CONFIG: &str = "/etc/pkgnode/node.toml";
const SEED_KEY: &str = "/etc/pkgnode/seed.key";
const KEY_FILE: &str = "/var/lib/pkgnode/pkgnode.key";

/// Arguments of both database servers. Replication notices a dead peer within 10 s (default
/// 60 s): a standby cut off and reconnected, maybe under a new address, streams again soon.
const SERVER_ARGS: &[&str] = &[
    "-c",
    "max_connections=200",
    "-c",
    "wal_sender_timeout=10s",
    "-c",
    "wal_receiver_timeout=10s",
];

/// The names of a run's containers.
pub struct Names {
    pub run_id: String,
    pub network: String,
}

impl Names {
    pub fn container(&self, part: &str) -> String {
        format!("{}-{part}", self.run_id)
    }

    pub fn spec(&self, part: &str, image: &'static str) -> Spec {
        Spec::new(self.container(part), image, &self.run_id, &self.network)
    }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Waits until `pg_isready` answers inside the container.
pub fn wait_postgres(name: &str, timeout: Duration) -> Result<(), InfraError> {
    engine::wait_until(name, Some(name), timeout, || {
        engine::exec(
            name,
            None,
            &["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"],
        )
        .map(|_| true)
        .map_err(|e| e.to_string())
    })
}

/// `psql -tA -c SQL` inside a database container, on database `pkgnode`.
pub fn psql(name: &str, sql: &str) -> Result<String, InfraError> {
    engine::exec(
        name,
        None,
        &[
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            bootstrap::DATABASE,
            "-tAc",
            sql,
        ],
    )
    .map(|out| out.trim().to_string())
}

/// The primary (synchronous standby `standby1`, database `pkgnode`), then the `db` alias on it,
/// then the standby streaming from it; returns (primary, standby, PostgreSQL version).
pub fn start_postgres(
    names: &Names,
    timeout: Duration,
) -> Result<(Started, Started, String), InfraError> {
    let spec = names
        .spec("pg-primary", "postgres")
        .env("SYNC_STANDBY_NAMES", bootstrap::STANDBY_NAME)
        .env("POSTGRES_DB", bootstrap::DATABASE)
        .publish(5432)?
        // A standby needs at least the primary's max_connections.
        .cmd(SERVER_ARGS);
    let primary = containers::start(spec)?;
    wait_postgres(&primary.name, timeout)?;
    // Give the primary the alias the nodes use: testcontainers attaches a container to one
    // network without aliases, so detach and attach it again with the alias (CLI).
    engine::disconnect(&names.network, &primary.name)?;
    engine::connect(&names.network, &primary.name, Some(DB_ALIAS))?;
    let version = engine::exec(&primary.name, None, &["postgres", "--version"])?;
    // `postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)` → `15.14`.
    let version = version
        .split_whitespace()
        .nth(2)
        .unwrap_or(version.trim())
        .to_string();

    let standby = containers::start(
        names
            .spec("pg-standby", "postgres")
            .env("PRIMARY_HOST", &primary.name)
            .env("STANDBY_NAME", bootstrap::STANDBY_NAME)
            .publish(5432)?
            .cmd(SERVER_ARGS),
    )?;
    wait_postgres(&standby.name, timeout)?;
    // Commits on the primary wait for the standby from now on (set at initdb).
    wait_sync(&primary.name, &standby.name, timeout)?;
    Ok((primary, standby, version))
}

/// Makes `primary` wait for the standby named [`bootstrap::STANDBY_NAME`] on every commit and
/// returns once `standby` streams as the synchronous one.
pub fn require_standby(primary: &str, standby: &str, timeout: Duration) -> Result<(), InfraError> {
    psql(
        primary,
        &format!(
            "ALTER SYSTEM SET synchronous_standby_names = '{}'",
            bootstrap::STANDBY_NAME
        ),
    )?;
    psql(primary, "SELECT pg_reload_conf()")?;
    wait_sync(primary, standby, timeout)
}

fn wait_sync(primary: &str, standby: &str, timeout: Duration) -> Result<(), InfraError> {
    engine::wait_until("synchronous replication", Some(standby), timeout, || {
        let state = psql(
            primary,
            &format!(
                "SELECT sync_state FROM pg_stat_replication WHERE application_name = '{}'",
                bootstrap::STANDBY_NAME
            ),
        )
        .map_err(|e| e.to_string())?;
        Ok(state == "sync")
    })
}

/// A running S3 server (Garage or MinIO) and the nodes' key.
pub struct ObjectStore {
    /// `garage` or `minio`, for the report's components.
    pub kind: &'static str,
    pub started: Started,
    pub access_key: String,
    pub secret_key: String,
    pub version: String,
}

/// MinIO from a local `minio/minio:TAG` image (see [`engine::minio_tag`]) when there is one,
/// else Garage from the image built here.
/// Starts the object store. `garage_dir` (Garage only): a host directory mounted as Garage's
/// `/var/lib/garage`, so the corpus cache can save and restore its files; with a manifest, it
/// already holds a restored Garage, whose key is the manifest's.
pub fn start_object_store(
    names: &Names,
    timeout: Duration,
    garage_dir: Option<(&std::path::Path, Option<&crate::corpus_cache::Manifest>)>,
) -> Result<ObjectStore, InfraError> {
    match engine::minio_tag() {
        Some(tag) => start_minio(names, &tag, timeout),
        None => start_garage(names, timeout, garage_dir),
    }
}

/// Whether the object store is Garage (the corpus cache saves only Garage's files).
pub fn object_store_is_garage() -> bool {
    engine::minio_tag().is_none()
}

/// Garage's directory inside its image.
pub const GARAGE_DIR: &str = "/var/lib/garage";

/// MinIO on the S3 port Garage uses, with a root user as the nodes' key, the region the nodes
/// sign with, and the bucket made by the `mc` the image ships.
fn start_minio(names: &Names, tag: &str, timeout: Duration) -> Result<ObjectStore, InfraError> {
    let access_key = "pkgcluster".to_string();
    let secret_key = hex::encode(rand::random::<[u8; 20]>());
    let spec = names
        .spec("s3", "minio")
        .image(engine::MINIO_REPOSITORY, tag)
        .env("MINIO_ROOT_USER", &access_key)
        .env("MINIO_ROOT_PASSWORD", &secret_key)
        .env("MINIO_REGION", bootstrap::S3_REGION)
        .env("MINIO_SITE_REGION", bootstrap::S3_REGION)
        .publish(S3_PORT)?
        .cmd(&["server", "/data", "--address", &format!(":{S3_PORT}")]);
    let started = containers::start(spec)?;
    let name = started.name.clone();
    let s3 = local(started.host_port(S3_PORT));
    engine::wait_until("minio", Some(&name), timeout, || {
        let answer = probe::get(s3, "/minio/health/live", Duration::from_secs(2))?;
        Ok(answer.status == 200)
    })?;
    let endpoint = format!("http://127.0.0.1:{S3_PORT}");
    engine::exec(
        &name,
        None,
        &[
            "mc",
            "alias",
            "set",
            "local",
            &endpoint,
            &access_key,
            &secret_key,
        ],
    )
    .map_err(|e| InfraError::Failed {
        what: "minio".into(),
        detail: format!("the image's `mc` cannot reach the server: {e}"),
    })?;
    engine::exec(
        &name,
        None,
        &[
            "mc",
            "mb",
            "--ignore-existing",
            &format!("local/{}", bootstrap::BUCKET),
        ],
    )?;
    // `minio version RELEASE.2025-04-22T22-12-26Z (commit-id=…)` → the release.
    let version = engine::exec(&name, None, &["minio", "--version"])?;
    let version = version.split_whitespace().nth(2).unwrap_or(tag).to_string();
    Ok(ObjectStore {
        kind: "minio",
        started,
        access_key,
        secret_key,
        version,
    })
}

fn start_garage(
    names: &Names,
    timeout: Duration,
    garage_dir: Option<(&std::path::Path, Option<&crate::corpus_cache::Manifest>)>,
) -> Result<ObjectStore, InfraError> {
    let mut spec = names.spec("s3", "garage").publish(S3_PORT)?;
    if let Some((dir, _)) = garage_dir {
        spec = spec.mount(dir, GARAGE_DIR);
    }
    let started = containers::start(spec)?;
    let name = started.name.clone();
    let cli = |_step: &str, args: &[&str]| -> Result<String, InfraError> {
        let mut all = vec!["garage", "-c", "/etc/garage.toml"];
        all.extend(args);
        engine::exec(&name, None, &all)
    };
    let s3 = local(started.host_port(S3_PORT));
    let mut node_id = String::new();
    engine::wait_until("garage", Some(&name), timeout, || {
        // Any HTTP answer (403 to an anonymous GET) means the S3 API is up; `node id` answers
        // from the metadata dir even before that.
        probe::get(s3, "/", Duration::from_secs(2))?;
        node_id = cli("node-id", &["node", "id", "-q"])
            .map_err(|e| e.to_string())?
            .trim()
            .to_string();
        Ok(!node_id.is_empty())
    })?;
    let (access_key, secret_key) = match garage_dir {
        Some((_, Some(manifest))) => (
            manifest.s3_access_key.clone(),
            manifest.s3_secret_key.clone(),
        ),
        _ => bootstrap::garage_single_node(&node_id, cli)?,
    };
    let version = bootstrap::garage_version(&cli("version", &["--version"])?);
    Ok(ObjectStore {
        kind: "garage",
        started,
        access_key,
        secret_key,
        version,
    })
}

/// The S3 endpoint the nodes use (the S3 container on the run's network).
pub fn s3_endpoint(names: &Names) -> String {
    format!("http://{}:{S3_PORT}", names.container("s3"))
}

/// Starts node `index` (0-based) from `image` (repository, tag): `pkgnode serve` with its
/// config, under its own host name. The key is copied in as root's; the entrypoint copies it to
/// the pkgnode user's 0600 file.
pub fn start_node(
    names: &Names,
    image: &(String, String),
    index: usize,
    shared: &bootstrap::Shared,
    key_text: &str,
) -> Result<Started, InfraError> {
    let part = format!("node-{}", index + 1);
    let host = names.container(&part);
    let config = bootstrap::node_config(
        &format!("0.0.0.0:{NODE_PORT}"),
        std::path::Path::new("/var/lib/pkgnode"),
        Some(&host),
        shared,
    )?;
    let mut spec = names
        .spec(&part, "pkgnode")
        .image(&image.0, &image.1)
        .file(NODE_CONFIG, config)
        .file(SEED_KEY, key_text)
        .publish(NODE_PORT)?;
    spec.entrypoint = Some("/bin/sh".into());
    spec.cmd = vec![
        "-c".into(),
        format!(
            "cp {SEED_KEY} {KEY_FILE} && chmod 600 {KEY_FILE} && \
             exec pkgnode --config {NODE_CONFIG} serve"
        ),
    ];
    containers::start(spec)
}

/// The key file path the node configs name.
pub fn key_file() -> &'static std::path::Path {
    std::path::Path::new(KEY_FILE)
}

/// Waits for `/__ping__` = 200 on the node's published port; returns (node_id, version).
pub fn wait_node(node: &Started, timeout: Duration) -> Result<(String, String), InfraError> {
    let address = local(node.host_port(NODE_PORT));
    engine::wait_until(&node.name, Some(&node.name), timeout, || {
        probe::ping(address)
    })?;
    let status = probe::get(address, "/__api__/status", Duration::from_secs(5)).map_err(|e| {
        InfraError::Failed {
            what: format!("{} /__api__/status", node.name),
            detail: e,
        }
    })?;
    let json: serde_json::Value =
        serde_json::from_str(&status.body).map_err(|e| InfraError::Failed {
            what: format!("{} /__api__/status", node.name),
            detail: format!("not JSON ({e}): {}", status.body),
        })?;
    let field = |name: &str| json[name].as_str().unwrap_or_default().to_string();
    Ok((field("node_id"), field("version")))
}

/// `pkgnode --config … ARGS` inside a node container.
pub fn node_admin(node: &str, args: &[&str]) -> Result<String, InfraError> {
    let mut all = vec!["pkgnode", "--config", NODE_CONFIG];
    all.extend(args);
    engine::exec(node, None, &all)
}

/// `pkgnode ARGS` in node `index`'s container, as a [`crate::infra::NodeCommand`] that can be
/// read line by line and interrupted.
pub fn node_command(container: &str, index: usize, args: &[&str]) -> crate::infra::NodeCommand {
    crate::infra::NodeCommand::in_container(
        format!("node-{}: pkgnode {}", index + 1, args.join(" ")),
        container,
        NODE_CONFIG,
        args,
        Box::new({
            let container = container.to_string();
            move |pid| engine::exec_kill(&container, pid, "INT")
        }),
    )
}

/// HAProxy in front of `nodes` (container names), with an HTTP stats page for its view of them.
pub fn start_haproxy(names: &Names, nodes: &[String]) -> Result<(Started, String), InfraError> {
    let servers: Vec<(String, String)> = nodes
        .iter()
        .enumerate()
        .map(|(i, host)| (format!("node-{}", i + 1), format!("{host}:{NODE_PORT}")))
        .collect();
    let config = haproxy_config::config_text(&haproxy_config::Layout {
        bind: &format!(":{LB_PORT}"),
        global: &[],
        servers: &servers,
        // Re-resolve through Docker's DNS: a restarted or reconnected node may change address.
        server_options: " resolvers docker init-addr last,libc,none",
        tail: &format!(
            "resolvers docker\n\
             \x20   nameserver dns 127.0.0.11:53\n\
             \x20   hold valid 1s\n\
             \x20   hold nx 1s\n\
             \x20   hold other 1s\n\
             \x20   hold refused 1s\n\
             \x20   hold timeout 1s\n\
             \n\
             frontend stats\n\
             \x20   bind :{STATS_PORT}\n\
             \x20   stats enable\n\
             \x20   stats uri /stats\n"
        ),
    });
    let started = containers::start(
        names
            .spec("lb", "haproxy")
            .file("/usr/local/etc/haproxy/haproxy.cfg", config)
            .publish(LB_PORT)?
            .publish(STATS_PORT)?,
    )?;
    let version =
        haproxy_config::parse_version(&engine::exec(&started.name, None, &["haproxy", "-v"])?);
    Ok((started, version))
}

/// HAProxy's view of the nodes from its stats page: (server name, `UP`/`DOWN`/`MAINT`…).
pub fn balancer_states(haproxy: &Started) -> Result<Vec<(String, String)>, String> {
    let stats = local(haproxy.host_port(STATS_PORT));
    let response = probe::get(stats, "/stats;csv", Duration::from_secs(2))?;
    if response.status != 200 {
        return Err(format!("stats page answered {}", response.status));
    }
    haproxy_config::server_states(&response.body)
}

/// Waits until the balancer answers `/__ping__` and reports every node UP.
pub fn wait_balancer(haproxy: &Started, nodes: usize, timeout: Duration) -> Result<(), InfraError> {
    let lb = local(haproxy.host_port(LB_PORT));
    engine::wait_until("haproxy", Some(&haproxy.name), timeout, || {
        let states = balancer_states(haproxy)?;
        let up = states.iter().filter(|(_, state)| state == "UP").count();
        if up < nodes {
            return Err(format!("servers not all UP: {states:?}"));
        }
        probe::ping(lb)
    })
}
