//! Node configuration: one TOML file, defaults for a single node, and the command-line overrides.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default port, as Posit Package Manager's.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4242";

/// The rule for the names of sources, repos and builders, as an operator reads it.
pub const NAME_RULE: &str =
    "use up to 64 letters, digits, '-', '_' or '.', starting with a letter or digit";

/// Whether `name` follows [`NAME_RULE`]. Here, below everything that names things, because the
/// configuration names a repo too (`[git] python_build_index`).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Errors reading or checking a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole node configuration. Every interval is configurable so tests run in seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Directory for the SQLite database, local package files and the key file by default.
    pub data_dir: PathBuf,
    pub database: DatabaseConfig,
    pub storage: StorageConfig,
    pub limits: LimitsConfig,
    pub cache: CacheConfig,
    pub downloads: DownloadsConfig,
    pub cluster: ClusterConfig,
    pub locks: LocksConfig,
    pub git: GitConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `postgres://…` or `sqlite://…`; SQLite under the data dir when absent.
    pub url: Option<String>,
    /// Connections in the pool.
    pub max_connections: Option<u32>,
    /// How long a request waits for a live database connection before it is answered 503 with
    /// `Retry-After` (and reads fall back to what the node holds). Short, so that a lost
    /// database is noticed quickly and a promoted one is picked up within seconds.
    #[serde(with = "humantime_serde_compat")]
    pub acquire_timeout: Duration,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: None,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Local or shared directory for package files; `{data_dir}/packages` when absent.
    pub dir: Option<PathBuf>,
    /// An S3-compatible endpoint instead of a directory.
    pub s3: Option<S3Config>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub endpoint: String,
    pub bucket: String,
    #[serde(default = "default_region")]
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    /// Path-style addressing (`endpoint/bucket/key`), what Garage and MinIO expect by default.
    #[serde(default = "default_true")]
    pub path_style: bool,
    /// Key prefix inside the bucket, so several deployments can share one.
    #[serde(default)]
    pub prefix: String,
}

fn default_region() -> String {
    "garage".to_string()
}
fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest accepted upload, bytes.
    pub max_upload_bytes: u64,
    /// Largest size an uploaded archive may inflate to, bytes (all members together, tar
    /// headers included). Refuses decompression bombs. The default, 512 MiB, is twice the
    /// default upload limit: far above real R and sdist tarballs; raise it with
    /// `max_upload_bytes` for very large native wheels.
    pub max_inflated_bytes: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_upload_bytes: 256 * 1024 * 1024,
            max_inflated_bytes: 512 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Repository snapshot views kept in memory.
    pub views: u64,
    /// How often the node re-reads the newest transaction id when no notification arrives.
    #[serde(with = "humantime_serde_compat")]
    pub head_poll_interval: Duration,
    /// Memory for package files kept after a download (they never change: content-addressed).
    pub blob_bytes: u64,
    /// Files larger than this are always streamed from storage, never kept.
    pub blob_max_file_bytes: u64,
    /// Build each repository's view at start and each new head's views as soon as the node
    /// hears of the head, instead of when the first request asks (a request then waits for the
    /// build). Off only to observe a node that holds nothing but what requests built.
    pub warm_views: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            views: 64,
            head_poll_interval: Duration::from_secs(1),
            blob_bytes: 512 * 1024 * 1024,
            blob_max_file_bytes: 32 * 1024 * 1024,
            warm_views: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DownloadsConfig {
    /// Download counts are written in batches this often, off the request path.
    #[serde(with = "humantime_serde_compat")]
    pub flush_interval: Duration,
}

impl Default for DownloadsConfig {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_secs(5),
        }
    }
}

/// Load-balancing settings, after Posit Workbench's cluster rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    pub enabled: bool,
    /// Secure key shared by every node; signs tokens. `{data_dir}/pkgnode.key` when absent.
    /// A single node creates one when it is missing; a cluster node never does.
    pub key_file: Option<PathBuf>,
    /// The name other nodes reach this node by (`host` or `host:port`); when absent, the listen
    /// address, then the host name, then the last non-loopback IPv4 address.
    pub www_host_name: Option<String>,
    /// How often the node checks in and measures its clock against the database.
    #[serde(with = "humantime_serde_compat")]
    pub heartbeat: Duration,
    /// An Online node whose last check-in is older than this is shown as "Missed check-in".
    #[serde(with = "humantime_serde_compat")]
    pub missed_check_in_after: Duration,
    /// Beyond this offset from the database's clock the node goes to Clock skew.
    #[serde(with = "humantime_serde_compat")]
    pub max_clock_skew: Duration,
    /// Remove the node's row on clean shutdown instead of marking it Offline (Kubernetes).
    pub delete_node_on_exit: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            key_file: None,
            www_host_name: None,
            heartbeat: Duration::from_secs(300),
            missed_check_in_after: Duration::from_secs(600),
            max_clock_skew: Duration::from_secs(1),
            delete_node_on_exit: false,
        }
    }
}

/// Cross-node file locks for state in the shared directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocksConfig {
    /// `linkbased` (hard links, or symlinks with `use_symlinks`) or `advisory` (fcntl).
    #[serde(rename = "type")]
    pub kind: String,
    pub use_symlinks: bool,
    /// How often a holder refreshes its lock files.
    #[serde(with = "humantime_serde_compat")]
    pub refresh_rate: Duration,
    /// A lock not refreshed for this long is stale and is reaped.
    #[serde(with = "humantime_serde_compat")]
    pub timeout_interval: Duration,
}

impl Default for LocksConfig {
    fn default() -> Self {
        Self {
            kind: "linkbased".into(),
            use_symlinks: false,
            refresh_rate: Duration::from_secs(20),
            timeout_interval: Duration::from_secs(30),
        }
    }
}

/// Git builders: how often remotes are checked, how many builds a node runs at once, and the
/// limits of one build.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GitConfig {
    /// How often each builder's remote is checked for new commits or tags (one node polls a given
    /// builder at a time).
    #[serde(with = "humantime_serde_compat")]
    pub poll_interval: Duration,
    /// Builds this node runs at once; 0 makes the node build nothing (it still polls and serves).
    pub build_concurrency: usize,
    /// How long a claimed build stays this node's without a renewal; the worker renews it every
    /// third of it. A build whose lease expires (node killed, paused or cut off) goes back to the
    /// queue.
    #[serde(with = "humantime_serde_compat")]
    pub lease_duration: Duration,
    /// A build running longer is killed (its whole process group) and fails.
    #[serde(with = "humantime_serde_compat")]
    pub build_timeout: Duration,
    /// A build's log is cut at this size, and a build whose products together exceed it fails.
    pub max_output_bytes: u64,
    /// A Python repository of this node that `git-python` builds install their build
    /// requirements from: `python3 -m build` runs with build isolation, its pip pointed at this
    /// repo's simple index on this node (and at nothing else), so a project's PEP 517 backend
    /// (flit_core, hatchling, setuptools_scm, …) comes from the repository. Absent: builds run
    /// `--no-isolation` with what the node's own Python has installed.
    pub python_build_index: Option<String>,
}

impl Default for GitConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(60),
            build_concurrency: 2,
            lease_duration: Duration::from_secs(30),
            build_timeout: Duration::from_secs(600),
            max_output_bytes: 64 * 1024 * 1024,
            python_build_index: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 4242))),
            data_dir: PathBuf::from("/var/lib/pkgnode"),
            database: DatabaseConfig::default(),
            storage: StorageConfig::default(),
            limits: LimitsConfig::default(),
            cache: CacheConfig::default(),
            downloads: DownloadsConfig::default(),
            cluster: ClusterConfig::default(),
            locks: LocksConfig::default(),
            git: GitConfig::default(),
        }
    }
}

/// Command-line values that win over the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
}

impl Config {
    /// Reads `path` (or the embedded defaults when `None`) and applies the overrides.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                Self::parse(&text).map_err(|message| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message,
                })?
            }
            None => Self::default(),
        };
        if let Some(dir) = &overrides.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(listen) = overrides.listen {
            config.listen = listen;
        }
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text, reporting the line and key of the first problem.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.database.url
            && !(url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.starts_with("sqlite:"))
        {
            return Err(ConfigError::Invalid(format!(
                "database.url must start with postgres:// or sqlite:, got {url:?}"
            )));
        }
        if self.storage.dir.is_some() && self.storage.s3.is_some() {
            return Err(ConfigError::Invalid(
                "set either storage.dir or [storage.s3], not both".into(),
            ));
        }
        if !matches!(self.locks.kind.as_str(), "linkbased" | "advisory") {
            return Err(ConfigError::Invalid(format!(
                "locks.type must be \"linkbased\" or \"advisory\", got {:?}",
                self.locks.kind
            )));
        }
        if self.cluster.enabled && !self.is_postgres() {
            return Err(ConfigError::Invalid(
                "load balancing (cluster.enabled = true) needs PostgreSQL: set [database] url = \"postgres://…\"; \
                 SQLite cannot be shared between nodes"
                    .into(),
            ));
        }
        let cluster = &self.cluster;
        if cluster.heartbeat.is_zero() || cluster.missed_check_in_after <= cluster.heartbeat {
            return Err(ConfigError::Invalid(format!(
                "cluster.missed_check_in_after ({}) must be longer than cluster.heartbeat ({}), which must be above 0",
                humantime::format_duration(cluster.missed_check_in_after),
                humantime::format_duration(cluster.heartbeat)
            )));
        }
        let locks = &self.locks;
        if locks.refresh_rate.is_zero() || locks.timeout_interval <= locks.refresh_rate {
            return Err(ConfigError::Invalid(format!(
                "locks.timeout_interval ({}) must be longer than locks.refresh_rate ({}), which must be above 0",
                humantime::format_duration(locks.timeout_interval),
                humantime::format_duration(locks.refresh_rate)
            )));
        }
        if self.database.acquire_timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "database.acquire_timeout must be above 0, e.g. \"3s\"".into(),
            ));
        }
        if self.limits.max_inflated_bytes == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_inflated_bytes must be above 0".into(),
            ));
        }
        let git = &self.git;
        if git.poll_interval.is_zero()
            || git.build_timeout.is_zero()
            || git.lease_duration < Duration::from_millis(300)
            || git.max_output_bytes == 0
        {
            return Err(ConfigError::Invalid(format!(
                "[git] poll_interval ({}) and build_timeout ({}) must be above 0, lease_duration ({}) at least 300ms, max_output_bytes above 0",
                humantime::format_duration(git.poll_interval),
                humantime::format_duration(git.build_timeout),
                humantime::format_duration(git.lease_duration)
            )));
        }
        if let Some(repo) = &git.python_build_index
            && !valid_name(repo)
        {
            return Err(ConfigError::Invalid(format!(
                "[git] python_build_index must name a Python repo of this node, got {repo:?}: {NAME_RULE}"
            )));
        }
        if self.limits.max_upload_bytes == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_upload_bytes must be above 0".into(),
            ));
        }
        Ok(())
    }

    /// The database URL in force: the configured one or SQLite under the data dir.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("pkgnode.db").display()
            ),
        }
    }

    /// Whether metadata lives in PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.database_url().starts_with("postgres")
    }

    /// The key file in force.
    pub fn key_file(&self) -> PathBuf {
        self.cluster
            .key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("pkgnode.key"))
    }

    /// The package directory in force when no S3 endpoint is set.
    pub fn storage_dir(&self) -> PathBuf {
        self.storage
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("packages"))
    }
}

/// Durations as humans write them ("1s", "5m", "250ms").
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(*value).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration {text:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_keys() {
        let config = Config::parse(
            r#"
            listen = "127.0.0.11:4242"
            [database]
            url = "postgres://u@127.0.0.1/db"
            [storage.s3]
            endpoint = "http://127.0.0.1:3900"
            bucket = "pkgs"
            region = "garage"
            access_key = "GK1"
            secret_key = "s"
            [cluster]
            heartbeat = "1s"
            missed_check_in_after = "3s"
            "#,
        )
        .expect("valid config");
        assert_eq!(config.cluster.heartbeat, Duration::from_secs(1));
        assert!(config.is_postgres());
        assert_eq!(config.storage.s3.as_ref().map(|s| s.path_style), Some(true));
        assert_eq!(config.git.poll_interval, Duration::from_secs(60));
        let git = Config::parse(
            "[git]\npoll_interval = \"2s\"\nbuild_concurrency = 4\nlease_duration = \"3s\"\nbuild_timeout = \"1m\"\nmax_output_bytes = 1000",
        )
        .expect("valid [git]");
        assert_eq!(git.git.poll_interval, Duration::from_secs(2));
        assert_eq!(git.git.build_concurrency, 4);
        assert_eq!(git.git.lease_duration, Duration::from_secs(3));
        assert_eq!(git.git.build_timeout, Duration::from_secs(60));
        assert_eq!(git.git.max_output_bytes, 1000);
        assert_eq!(git.git.python_build_index, None);
        let index = Config::parse("[git]\npython_build_index = \"build-deps\"").expect("valid");
        assert_eq!(index.git.python_build_index.as_deref(), Some("build-deps"));
        assert!(index.validate().is_ok());
    }

    #[test]
    fn python_build_index_must_be_a_repo_name() {
        for bad in ["", "../pypi", "-x", "a b", "py/simple"] {
            let mut config = Config::default();
            config.git.python_build_index = Some(bad.into());
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains("python_build_index"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        assert!(
            Config::parse("listn = \"x\"")
                .unwrap_err()
                .contains("listn")
        );
        assert!(
            Config::parse("[cluster]\nheartbeat = \"soon\"")
                .unwrap_err()
                .contains("soon")
        );
        let mut config = Config::default();
        config.database.url = Some("mysql://x".into());
        assert!(matches!(config.validate(), Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn cluster_needs_postgres_and_sane_intervals() {
        let mut config = Config::default();
        config.cluster.enabled = true;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("needs PostgreSQL"), "{err}");
        config.database.url = Some("postgres://u@127.0.0.1/db".into());
        assert!(config.validate().is_ok());
        config.cluster.missed_check_in_after = config.cluster.heartbeat;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("missed_check_in_after"), "{err}");
        let mut config = Config::default();
        config.locks.timeout_interval = Duration::from_secs(1);
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("timeout_interval"), "{err}");
    }
}
