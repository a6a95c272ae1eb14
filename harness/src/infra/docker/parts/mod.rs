//! Starting each part of the docker cluster and waiting until it serves: PostgreSQL primary (with
//! the `db` alias) and synchronous standby, Garage (one-node layout, key and bucket through
//! `docker exec`), the nodes (config and key copied in; layout created with the admin CLI through
//! `docker exec` on the first node) and HAProxy (health checks, DNS re-resolution through the
//! network's resolver so a restarted node is found at its new address). `database.rs` and
//! `object_store.rs` are the stores; the nodes and HAProxy are here.

mod database;
mod object_store;

use std::net::SocketAddr;
use std::time::Duration;

use super::containers::{self, Spec, Started};
use super::engine;
use crate::infra::{InfraError, bootstrap, haproxy_config, probe};

pub use database::{psql, require_standby, start_postgres, wait_postgres};
pub use object_store::{object_store_is_garage, s3_endpoint, start_object_store};

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

pub(super) fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
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
