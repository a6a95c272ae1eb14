//! The `pkgnode` processes: one config per node (each node on its own loopback address, all on
//! one port), the shared secure key, the repository layout created once with the admin CLI, and
//! `pkgnode serve` as direct children.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::layout::Context;
use super::process::{self, Launch};
use super::supervised::{self, Supervised};
use crate::infra::{InfraError, bootstrap};

pub use crate::infra::bootstrap::{CRAN_REPO, CRAN_SOURCE, PYPI_REPO, PYPI_SOURCE, Shared, Tokens};

/// The loopback address of node `index` (0-based): 127.0.0.11, 127.0.0.12, …
pub fn node_ip(index: usize) -> Result<IpAddr, InfraError> {
    u8::try_from(11 + index)
        .ok()
        .filter(|last| *last < 255)
        .map(|last| IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .ok_or_else(|| InfraError::Failed {
            what: "local cluster".into(),
            detail: format!(
                "node {} has no loopback address (at most 244 nodes)",
                index + 1
            ),
        })
}

/// One `pkgnode serve` process and what it reported about itself.
pub struct Node {
    /// `node-1`, `node-2`, …
    pub name: String,
    pub address: SocketAddr,
    pub config: PathBuf,
    /// How to run `pkgnode` as this node does.
    pub invocation: Invocation,
    pub process: Supervised,
    /// `node_id` and `version` from `/__api__/status`, once it has served.
    pub id: String,
    pub version: String,
}

/// A node's binary, config and data directory: what an admin command needs to run as the
/// node does, kept apart from the process so that no start or stop in progress delays it.
#[derive(Debug, Clone)]
pub struct Invocation {
    name: String,
    bin: PathBuf,
    config: PathBuf,
    /// Its data directory (also its working directory).
    data_dir: PathBuf,
}

impl Invocation {
    /// `pkgnode --config CONFIG ARGS` as the node runs it (see
    /// [`crate::infra::Infra::node_command`]).
    pub fn command(&self, args: &[&str]) -> crate::infra::NodeCommand {
        let mut command = std::process::Command::new(&self.bin);
        command
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .current_dir(&self.data_dir);
        crate::infra::NodeCommand::direct(
            format!("{}: pkgnode {}", self.name, args.join(" ")),
            command,
        )
    }
}

impl Node {
    /// Writes node `index`'s data dir and config.
    pub fn prepare(
        context: &Context,
        pkgnode_bin: &Path,
        index: usize,
        port: u16,
        shared: &Shared,
    ) -> Result<Self, InfraError> {
        let name = format!("node-{}", index + 1);
        let address = SocketAddr::new(node_ip(index)?, port);
        let data_dir = context.data_dir(&name);
        std::fs::create_dir_all(&data_dir)?;
        let config = context.config_file(&name, "toml");
        std::fs::write(
            &config,
            bootstrap::node_config(&address.to_string(), &data_dir, None, shared)?,
        )?;
        let serve = Launch::new(&name, pkgnode_bin, context.log_file(&name))
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .cwd(&data_dir)
            .cgroup(context.cgroup(&name)?);
        Ok(Self {
            name: name.clone(),
            address,
            invocation: Invocation {
                name,
                bin: pkgnode_bin.to_path_buf(),
                config: config.clone(),
                data_dir,
            },
            config,
            process: Supervised::new(serve, &context.pids),
            id: String::new(),
            version: String::new(),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Waits for `/__ping__` = 200, then records the node's id and version.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), InfraError> {
        let address = self.address;
        supervised::wait_ready(&self.name, timeout, Some(&mut self.process), || {
            crate::infra::probe::ping(address)
        })?;
        let status = crate::infra::probe::get(address, "/__api__/status", Duration::from_secs(5))
            .map_err(|detail| InfraError::Failed {
            what: format!("{} /__api__/status", self.name),
            detail,
        })?;
        let json: serde_json::Value =
            serde_json::from_str(&status.body).map_err(|e| InfraError::Failed {
                what: format!("{} /__api__/status", self.name),
                detail: format!("not JSON ({e}): {}", status.body),
            })?;
        let field = |name: &str| json[name].as_str().unwrap_or_default().to_string();
        self.id = field("node_id");
        self.version = field("version");
        Ok(())
    }
}

/// Writes the cluster's secure key: 32 random bytes, hex, mode 0600 from the first byte on.
pub fn write_key_file(path: &Path) -> Result<(), InfraError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| InfraError::Failed {
            what: "secure key file".into(),
            detail: format!("cannot create {}: {e}", path.display()),
        })?;
    file.write_all(bootstrap::new_key_text().as_bytes())?;
    Ok(())
}

/// Creates the repository layout with the admin CLI on one node's config (see
/// [`bootstrap::create_layout`]).
pub fn create_layout(
    context: &Context,
    pkgnode_bin: &Path,
    config: &Path,
    layout_exists: bool,
) -> Result<Tokens, InfraError> {
    bootstrap::create_layout(layout_exists, |step, args| {
        let launch = Launch::new(&format!("pkgnode {}", args.join(" ")), pkgnode_bin, "")
            .arg("--config")
            .arg(config)
            .args(args);
        process::run(
            context.spawner,
            &launch,
            &context.commands_dir,
            &format!("pkgnode-{step}"),
            context.timeout,
        )
    })
}

/// The Git sources and their tokens, created with node 1's config (see
/// [`bootstrap::create_git_layout`]).
pub fn create_git_layout(
    context: &Context,
    pkgnode_bin: &Path,
    config: &Path,
) -> Result<(String, String), InfraError> {
    bootstrap::create_git_layout(|step, args| {
        let launch = Launch::new(&format!("pkgnode {}", args.join(" ")), pkgnode_bin, "")
            .arg("--config")
            .arg(config)
            .args(args);
        process::run(
            context.spawner,
            &launch,
            &context.commands_dir,
            &format!("pkgnode-{step}"),
            context.timeout,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_get_consecutive_loopback_addresses() {
        assert_eq!(node_ip(0).unwrap().to_string(), "127.0.0.11");
        assert_eq!(node_ip(1).unwrap().to_string(), "127.0.0.12");
        assert!(node_ip(244).is_err());
    }
}
