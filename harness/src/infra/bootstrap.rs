//! Cluster bootstrapping shared by the providers that start nodes (`local`, `docker`): the node
//! config (fixed cluster wiring with the caller's extra TOML merged over it), the shared secure
//! key, the repository layout created once with the admin CLI, and parsing Garage's key output.
//! Each provider supplies only how a command runs (a child process, or `docker exec`).

use std::path::Path;

use crate::infra::InfraError;

pub const PYPI_REPO: &str = "pypi";
pub const CRAN_REPO: &str = "cran";
pub const PYPI_SOURCE: &str = "pypi-local";
pub const CRAN_SOURCE: &str = "cran-local";
/// The Git source of R packages (type `git`).
pub const GIT_R_SOURCE: &str = "cran-git";
/// The Git source of Python packages (type `git-python`).
pub const GIT_PYTHON_SOURCE: &str = "pypi-git";
/// The bucket the nodes store package files in.
pub const BUCKET: &str = "pkgs";
/// The region the nodes sign S3 requests with (Garage's `s3_region`; MinIO is told the same).
pub const S3_REGION: &str = "garage";
/// The Garage key the nodes use.
pub const KEY_NAME: &str = "pkgnode";
/// `application_name` of the standby, named in the primary's `synchronous_standby_names`.
pub const STANDBY_NAME: &str = "standby1";
/// The database the nodes use.
pub const DATABASE: &str = "pkgnode";

/// What every node's config shares.
pub struct Shared<'a> {
    pub database_url: &'a str,
    pub storage: StorageWiring<'a>,
    pub key_file: &'a Path,
    /// TOML merged into every config (tables merge key by key; later values win).
    pub extra: &'a str,
}

/// Where the nodes' configs say package files are.
pub enum StorageWiring<'a> {
    /// The bucket [`BUCKET`] on an S3 server.
    S3 {
        endpoint: &'a str,
        access_key: &'a str,
        secret_key: &'a str,
    },
    /// `storage.dir`: `Some` names one directory for every node; `None` leaves it unset, so
    /// each node keeps its files in its own `{data_dir}/packages`.
    Directory(Option<&'a Path>),
}

/// One node's config: listen address, data dir and (in a cluster) the name other nodes reach it
/// by, plus `shared`, with `shared.extra` merged over it.
pub fn node_config(
    listen: &str,
    data_dir: &Path,
    www_host_name: Option<&str>,
    shared: &Shared,
) -> Result<String, InfraError> {
    use toml::{Table, Value};
    let string = |s: &str| Value::String(s.to_string());
    let path = |p: &Path| Value::String(p.display().to_string());
    let mut database = Table::new();
    database.insert("url".into(), string(shared.database_url));
    database.insert("max_connections".into(), Value::Integer(16));
    let mut storage = Table::new();
    match shared.storage {
        StorageWiring::S3 {
            endpoint,
            access_key,
            secret_key,
        } => {
            let mut s3 = Table::new();
            s3.insert("endpoint".into(), string(endpoint));
            s3.insert("bucket".into(), string(BUCKET));
            s3.insert("region".into(), string(S3_REGION));
            s3.insert("access_key".into(), string(access_key));
            s3.insert("secret_key".into(), string(secret_key));
            storage.insert("s3".into(), Value::Table(s3));
        }
        StorageWiring::Directory(Some(dir)) => {
            storage.insert("dir".into(), path(dir));
        }
        StorageWiring::Directory(None) => {}
    }
    let mut cluster = Table::new();
    // Every provider runs a real cluster: the Workbench rules (shared key, check-ins,
    // statuses) apply to every node.
    cluster.insert("enabled".into(), Value::Boolean(true));
    cluster.insert("key_file".into(), path(shared.key_file));
    if let Some(name) = www_host_name {
        cluster.insert("www_host_name".into(), string(name));
    }
    let mut config = Table::new();
    config.insert("listen".into(), string(listen));
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

/// Merges `extra` into `base`: tables key by key, other values replaced.
pub fn merge(base: &mut toml::Table, extra: toml::Table) {
    for (key, value) in extra {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(more)) => merge(inner, more),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// A new secure key's file content: 32 random bytes, hex, one line.
pub fn new_key_text() -> String {
    let key: [u8; 32] = rand::random();
    format!("{}\n", hex::encode(key))
}

/// `sources:write` tokens for the two sources.
pub struct Tokens {
    pub pypi: String,
    pub cran: String,
}

/// Creates the sources, repos and subscriptions once (they live in the shared database) and
/// issues upload tokens. `admin(step, args)` runs `pkgnode --config … ARGS` on one node's
/// config and returns its standard output; `step` names the command for logs. With
/// `layout_exists` (a database restored from the corpus cache) only the tokens are issued.
pub fn create_layout(
    layout_exists: bool,
    admin: impl Fn(&str, &[&str]) -> Result<String, InfraError>,
) -> Result<Tokens, InfraError> {
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
    if !layout_exists {
        create("source", PYPI_SOURCE, "local-python")?;
        create("repo", PYPI_REPO, "python")?;
        subscribe(PYPI_REPO, PYPI_SOURCE)?;
        create("source", CRAN_SOURCE, "local")?;
        create("repo", CRAN_REPO, "r")?;
        subscribe(CRAN_REPO, CRAN_SOURCE)?;
    }
    Ok(Tokens {
        pypi: source_token(&admin, PYPI_SOURCE)?,
        cran: source_token(&admin, CRAN_SOURCE)?,
    })
}

/// Creates the two Git sources, subscribes the repos to them and issues their
/// `sources:write` tokens: (R token, Python token). Run after [`create_layout`].
pub fn create_git_layout(
    admin: impl Fn(&str, &[&str]) -> Result<String, InfraError>,
) -> Result<(String, String), InfraError> {
    for (source, kind, repo) in [
        (GIT_R_SOURCE, "git", CRAN_REPO),
        (GIT_PYTHON_SOURCE, "git-python", PYPI_REPO),
    ] {
        admin(
            &format!("create-source-{source}"),
            &["create", "source", "--name", source, "--type", kind],
        )?;
        admin(
            &format!("subscribe-{repo}-{source}"),
            &["subscribe", "--repo", repo, "--source", source],
        )?;
    }
    Ok((
        source_token(&admin, GIT_R_SOURCE)?,
        source_token(&admin, GIT_PYTHON_SOURCE)?,
    ))
}

/// A `sources:write` token for `source`: the last line `pkgnode create token` prints.
fn source_token(
    admin: &impl Fn(&str, &[&str]) -> Result<String, InfraError>,
    source: &str,
) -> Result<String, InfraError> {
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
}

/// `garage key create` output → (Key ID, Secret key).
pub fn garage_key(text: &str) -> Result<(String, String), InfraError> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(name).map(|v| v.trim().to_string()))
            .ok_or_else(|| InfraError::Failed {
                what: "garage key create".into(),
                detail: format!("printed no {name:?}:\n{text}"),
            })
    };
    Ok((field("Key ID:")?, field("Secret key:")?))
}

/// The `garage layout`, `key` and `bucket` steps of a one-node Garage, after `node id -q`
/// answered `node_id`. `cli(step, args)` runs `garage -c CONFIG ARGS`. Returns the S3 key.
pub fn garage_single_node(
    node_id: &str,
    cli: impl Fn(&str, &[&str]) -> Result<String, InfraError>,
) -> Result<(String, String), InfraError> {
    let id = node_id.trim().split('@').next().unwrap_or_default();
    cli(
        "layout-assign",
        &["layout", "assign", "-z", "dc1", "-c", "1G", id],
    )?;
    cli("layout-apply", &["layout", "apply", "--version", "1"])?;
    let key = garage_key(&cli("key-create", &["key", "create", KEY_NAME])?)?;
    cli("bucket-create", &["bucket", "create", BUCKET])?;
    cli(
        "bucket-allow",
        &[
            "bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", KEY_NAME,
        ],
    )?;
    Ok(key)
}

/// `garage cargo:2.5.0 [features: …]` → `2.5.0`.
pub fn garage_version(line: &str) -> String {
    let line = line.trim();
    line.split_whitespace()
        .nth(1)
        .map(|word| word.rsplit(':').next().unwrap_or(word).to_string())
        .unwrap_or_else(|| line.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared<'a>(extra: &'a str, key_file: &'a Path) -> Shared<'a> {
        Shared {
            database_url: "postgres://postgres@127.0.0.1:5/pkgnode",
            storage: StorageWiring::S3 {
                endpoint: "http://127.0.0.1:6",
                access_key: "GK1",
                secret_key: "s3cr3t",
            },
            key_file,
            extra,
        }
    }

    #[test]
    fn extra_toml_merges_into_the_cluster_wiring() {
        let key = Path::new("/w/pkgnode.key");
        let extra = "[cluster]\nenabled = true\n[cache]\nhead_poll_interval = \"200ms\"\n";
        let text = node_config(
            "127.0.0.11:4242",
            Path::new("/w/node-1"),
            None,
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
        assert!(table["cluster"].get("www_host_name").is_none());
        assert_eq!(table["storage"]["s3"]["bucket"].as_str(), Some("pkgs"));
        assert_eq!(table["database"]["max_connections"].as_integer(), Some(16));
        assert_eq!(table["cache"]["head_poll_interval"].as_str(), Some("200ms"));
    }

    #[test]
    fn directory_storage_names_one_directory_or_leaves_it_to_each_node() {
        let key = Path::new("/k");
        let config = |storage| {
            let shared = Shared {
                storage,
                ..shared("", key)
            };
            let text = node_config("127.0.0.11:4242", Path::new("/w/node-1"), None, &shared);
            text.unwrap().parse::<toml::Table>().unwrap()
        };
        let one = config(StorageWiring::Directory(Some(Path::new("/w/packages"))));
        assert_eq!(one["storage"]["dir"].as_str(), Some("/w/packages"));
        assert!(one["storage"].get("s3").is_none());
        let own = config(StorageWiring::Directory(None));
        assert!(own["storage"].as_table().unwrap().is_empty(), "{own}");
    }

    #[test]
    fn a_host_name_is_written_when_given() {
        let text = node_config(
            "0.0.0.0:4242",
            Path::new("/var/lib/pkgnode"),
            Some("run-node-1"),
            &shared("", Path::new("/k")),
        )
        .unwrap();
        let table: toml::Table = text.parse().unwrap();
        assert_eq!(
            table["cluster"]["www_host_name"].as_str(),
            Some("run-node-1")
        );
    }

    #[test]
    fn bad_extra_toml_is_named() {
        let error = node_config(
            "127.0.0.11:4242",
            Path::new("/w/node-1"),
            None,
            &shared("[cluster", Path::new("/k")),
        )
        .unwrap_err();
        assert!(error.to_string().contains("node_config_extra"), "{error}");
    }

    #[test]
    fn garage_key_output_is_parsed() {
        let text = "==== ACCESS KEY INFORMATION ====\nKey ID:              GK123\n\
                    Key name:            pkgnode\nSecret key:          abcdef\n";
        let (id, secret) = garage_key(text).unwrap();
        assert_eq!((id.as_str(), secret.as_str()), ("GK123", "abcdef"));
        assert!(garage_key("nothing").is_err());
    }
}
