//! The `pkgnode` processes: one config per node (each node on its own loopback address, all on
//! one port), the shared secure key, the repository layout created once with the admin CLI, and
//! `pkgnode serve` as direct children.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Context;
use super::process::{self, Launch, Supervised};
use crate::infra::InfraError;

pub const PYPI_REPO: &str = "pypi";
pub const CRAN_REPO: &str = "cran";
pub const PYPI_SOURCE: &str = "pypi-local";
pub const CRAN_SOURCE: &str = "cran-local";

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

/// What every node's config shares.
pub struct Shared<'a> {
    pub database_url: &'a str,
    pub s3_endpoint: &'a str,
    pub s3_access_key: &'a str,
    pub s3_secret_key: &'a str,
    pub key_file: &'a Path,
    /// TOML merged into every config (tables merge key by key; later values win).
    pub extra: &'a str,
}

/// One `pkgnode serve` process and what it reported about itself.
pub struct Node {
    /// `node-1`, `node-2`, …
    pub name: String,
    pub address: SocketAddr,
    pub config: PathBuf,
    pub process: Supervised,
    /// `node_id` and `version` from `/__api__/status`, once it has served.
    pub id: String,
    pub version: String,
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
        let data_dir = context.work_dir.join(&name);
        std::fs::create_dir_all(&data_dir)?;
        let config = context.work_dir.join(format!("{name}.toml"));
        std::fs::write(&config, config_text(address, &data_dir, shared)?)?;
        let serve = Launch::new(
            &name,
            pkgnode_bin,
            context.work_dir.join(format!("{name}.log")),
        )
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .cwd(&data_dir);
        Ok(Self {
            name,
            address,
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
        process::wait_ready(&self.name, timeout, Some(&mut self.process), || {
            super::probe::ping(address)
        })?;
        let status = super::probe::get(address, "/__api__/status", Duration::from_secs(5))
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

/// The node config: the fixed cluster wiring with `shared.extra` merged over it.
fn config_text(
    address: SocketAddr,
    data_dir: &Path,
    shared: &Shared,
) -> Result<String, InfraError> {
    use toml::{Table, Value};
    let string = |s: &str| Value::String(s.to_string());
    let path = |p: &Path| Value::String(p.display().to_string());
    let mut database = Table::new();
    database.insert("url".into(), string(shared.database_url));
    database.insert("max_connections".into(), Value::Integer(16));
    let mut s3 = Table::new();
    s3.insert("endpoint".into(), string(shared.s3_endpoint));
    s3.insert("bucket".into(), string(super::garage::BUCKET));
    s3.insert("region".into(), string("garage"));
    s3.insert("access_key".into(), string(shared.s3_access_key));
    s3.insert("secret_key".into(), string(shared.s3_secret_key));
    let mut storage = Table::new();
    storage.insert("s3".into(), Value::Table(s3));
    let mut cluster = Table::new();
    cluster.insert("key_file".into(), path(shared.key_file));
    let mut config = Table::new();
    config.insert("listen".into(), string(&address.to_string()));
    config.insert("data_dir".into(), path(data_dir));
    config.insert("database".into(), Value::Table(database));
    config.insert("storage".into(), Value::Table(storage));
    config.insert("cluster".into(), Value::Table(cluster));
    let extra: Table = shared.extra.parse().map_err(|e| InfraError::Failed {
        what: "node_config_extra".into(),
        detail: format!("not valid TOML: {e}"),
    })?;
    merge(&mut config, extra);
    toml::to_string(&config).map_err(|e| InfraError::Failed {
        what: "node config".into(),
        detail: e.to_string(),
    })
}

fn merge(base: &mut toml::Table, extra: toml::Table) {
    for (key, value) in extra {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(more)) => merge(inner, more),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Writes the cluster's secure key: 32 random bytes, hex, mode 0600 from the first byte on.
pub fn write_key_file(path: &Path) -> Result<(), InfraError> {
    let key: [u8; 32] = rand::random();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| InfraError::Failed {
            what: "secure key file".into(),
            detail: format!("cannot create {}: {e}", path.display()),
        })?;
    writeln!(file, "{}", hex::encode(key))?;
    Ok(())
}

/// `sources:write` tokens for the two sources.
pub struct Tokens {
    pub pypi: String,
    pub cran: String,
}

/// Creates the sources, repos and subscriptions once (they live in the shared database) and
/// issues upload tokens, with the admin CLI on one node's config.
pub fn create_layout(
    context: &Context,
    pkgnode_bin: &Path,
    config: &Path,
) -> Result<Tokens, InfraError> {
    let admin = |step: &str, args: &[&str]| -> Result<String, InfraError> {
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
    };
    let create = |kind: &str, name: &str, kind_name: &str| {
        admin(
            &format!("create-{kind}-{name}"),
            &["create", kind, "--name", name, "--type", kind_name],
        )
    };
    let subscribe = |repo: &str, source: &str| {
        admin(
            &format!("subscribe-{repo}"),
            &["subscribe", "--repo", repo, "--source", source],
        )
    };
    let token = |source: &str| -> Result<String, InfraError> {
        let out = admin(
            &format!("token-{source}"),
            &[
                "create",
                "token",
                "--scope",
                "sources:write",
                "--source",
                source,
            ],
        )?;
        out.lines()
            .map(str::trim)
            .rfind(|line| !line.is_empty())
            .map(str::to_string)
            .ok_or_else(|| InfraError::Failed {
                what: format!("pkgnode create token --source {source}"),
                detail: "printed no token".into(),
            })
    };
    create("source", PYPI_SOURCE, "local-python")?;
    create("repo", PYPI_REPO, "python")?;
    subscribe(PYPI_REPO, PYPI_SOURCE)?;
    create("source", CRAN_SOURCE, "local")?;
    create("repo", CRAN_REPO, "r")?;
    subscribe(CRAN_REPO, CRAN_SOURCE)?;
    Ok(Tokens {
        pypi: token(PYPI_SOURCE)?,
        cran: token(CRAN_SOURCE)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared<'a>(extra: &'a str, key_file: &'a Path) -> Shared<'a> {
        Shared {
            database_url: "postgres://postgres@127.0.0.1:5/pkgnode",
            s3_endpoint: "http://127.0.0.1:6",
            s3_access_key: "GK1",
            s3_secret_key: "s3cr3t",
            key_file,
            extra,
        }
    }

    #[test]
    fn extra_toml_merges_into_the_cluster_wiring() {
        let key = Path::new("/w/pkgnode.key");
        let extra = "[cluster]\nenabled = true\n[cache]\nhead_poll_interval = \"200ms\"\n";
        let text = config_text(
            "127.0.0.11:4242".parse().unwrap(),
            Path::new("/w/node-1"),
            &shared(extra, key),
        )
        .unwrap();
        let table: toml::Table = text.parse().unwrap();
        assert_eq!(table["listen"].as_str(), Some("127.0.0.11:4242"));
        assert_eq!(
            table["cluster"]["key_file"].as_str(),
            Some("/w/pkgnode.key")
        );
        assert_eq!(table["cluster"]["enabled"].as_bool(), Some(true));
        assert_eq!(table["storage"]["s3"]["bucket"].as_str(), Some("pkgs"));
        assert_eq!(table["database"]["max_connections"].as_integer(), Some(16));
        assert_eq!(table["cache"]["head_poll_interval"].as_str(), Some("200ms"));
    }

    #[test]
    fn bad_extra_toml_is_named() {
        let error = config_text(
            "127.0.0.11:4242".parse().unwrap(),
            Path::new("/w/node-1"),
            &shared("[cluster", Path::new("/k")),
        )
        .unwrap_err();
        assert!(error.to_string().contains("node_config_extra"), "{error}");
    }

    #[test]
    fn nodes_get_consecutive_loopback_addresses() {
        assert_eq!(node_ip(0).unwrap().to_string(), "127.0.0.11");
        assert_eq!(node_ip(1).unwrap().to_string(), "127.0.0.12");
        assert!(node_ip(244).is_err());
    }
}
