//! Garage, the S3-compatible object store: a one-node layout with one bucket and one key, set up
//! with the same CLI steps as the node's own integration tests, or restored from the corpus
//! cache (its directories put back before it starts, so layout, bucket, key and objects return).

use std::path::PathBuf;
use std::time::Duration;

use super::layout::Context;
use super::process::{self, Launch};
use super::supervised::{self, Supervised};
use crate::infra::InfraError;

/// The name of Garage's dir and log in the work dir (its process is `s3`).
pub const NAME: &str = "garage";

/// A running one-node Garage server.
pub struct Garage {
    pub endpoint: String,
    pub s3_port: u16,
    pub access_key: String,
    pub secret_key: String,
    /// e.g. `2.5.0`.
    pub version: String,
    pub process: Supervised,
    /// Its data and metadata directories.
    pub dir: PathBuf,
}

/// `~/.cargo/bin/garage` when `cargo install garage` put it there, else `garage` on PATH.
pub fn garage_bin() -> PathBuf {
    let cached = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
        .join(".cargo/bin/garage");
    if cached.exists() {
        cached
    } else {
        PathBuf::from("garage")
    }
}

impl Garage {
    /// Starts Garage; with `restore` (an entry of the corpus cache and its manifest) its saved
    /// directories and key instead of a new layout.
    /// `timed` is told when the restore's copy began, once it is done.
    pub fn start(
        context: &Context,
        restore: Option<(&std::path::Path, &crate::corpus_cache::Manifest)>,
        timed: &(dyn Fn(std::time::Instant) -> u64 + Sync),
    ) -> Result<Self, InfraError> {
        let bin = garage_bin();
        let dir = context.data_dir(NAME);
        std::fs::create_dir_all(&dir)?;
        if let Some((entry, _)) = restore {
            let began = std::time::Instant::now();
            super::seed::restore_object_store(entry, &dir)?;
            timed(began);
        }
        let (s3_port, rpc_port) = (
            crate::infra::probe::free_port()?,
            crate::infra::probe::free_port()?,
        );
        let secret: [u8; 32] = rand::random();
        let config = dir.join("garage.toml");
        std::fs::write(
            &config,
            config_toml(&dir, rpc_port, s3_port, &hex::encode(secret)),
        )?;
        let cli = |step: &str, args: &[&str]| -> Result<String, InfraError> {
            let launch = Launch::new(&format!("garage {}", args.join(" ")), &bin, "")
                .arg("-c")
                .arg(&config)
                .args(args);
            let name = format!("garage-{step}");
            process::run(
                context.spawner,
                &launch,
                &context.commands_dir,
                &name,
                context.timeout,
            )
        };
        let version = cli("version", &["--version"])
            .map(|line| crate::infra::bootstrap::garage_version(&line))?;

        let server = Launch::new("s3", &bin, context.log_file(NAME))
            .arg("-c")
            .arg(&config)
            .arg("server")
            .cgroup(context.cgroup("s3")?);
        let mut process = Supervised::new(server, &context.pids);
        process.start(context.spawner)?;
        let mut node_id = String::new();
        supervised::wait_ready("garage", context.timeout, Some(&mut process), || {
            // `node id` answers from the metadata dir before the server listens: wait for the
            // RPC and S3 ports first, or `layout assign` finds nobody to talk to.
            for port in [rpc_port, s3_port] {
                let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                std::net::TcpStream::connect_timeout(&address, Duration::from_secs(1))
                    .map_err(|e| format!("connect {address}: {e}"))?;
            }
            let id = cli("node-id", &["node", "id", "-q"]).map_err(|e| e.to_string())?;
            node_id = id.trim().to_string();
            Ok(!node_id.is_empty())
        })?;
        let (access_key, secret_key) = match restore {
            Some((_, manifest)) => (
                manifest.s3_access_key.clone(),
                manifest.s3_secret_key.clone(),
            ),
            None => crate::infra::bootstrap::garage_single_node(&node_id, cli)?,
        };
        Ok(Self {
            endpoint: format!("http://127.0.0.1:{s3_port}"),
            s3_port,
            access_key,
            secret_key,
            version,
            process,
            dir,
        })
    }

    /// Waits until the S3 API accepts connections again (after a restart).
    pub fn wait_ready(&mut self, context: &Context) -> Result<(), InfraError> {
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], self.s3_port));
        supervised::wait_ready("garage", context.timeout, Some(&mut self.process), || {
            // Any HTTP answer (S3 says 403 to an anonymous GET) means the API is up.
            crate::infra::probe::get(address, "/", Duration::from_secs(2)).map(|_| true)
        })
    }
}

/// The test cluster's Garage configuration, with [`TUNING`].
fn config_toml(dir: &std::path::Path, rpc_port: u16, s3_port: u16, secret: &str) -> String {
    let tuning = TUNING;
    format!(
        "metadata_dir = \"{dir}/meta\"\ndata_dir = \"{dir}/data\"\n{tuning}\
         replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc_port}\"\n\
         rpc_public_addr = \"127.0.0.1:{rpc_port}\"\nrpc_secret = \"{secret}\"\n\
         [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3_port}\"\n\
         root_domain = \".s3.garage.localhost\"\n",
        dir = dir.display(),
    )
}

/// Tuned for seeding (issue 25, measured in the README): LMDB metadata instead of SQLite (the
/// same uploads cost Garage 40 % less CPU) and no zstd on blocks (package files are compressed
/// already). Writes are not fsynced: that is Garage's default (`metadata_fsync`, `data_fsync`).
/// A test cluster only; the corpus cache's format changed with it.
const TUNING: &str = "db_engine = \"lmdb\"\ncompression_level = \"none\"\n";

#[cfg(test)]
mod tests {
    #[test]
    fn the_config_is_tuned_for_seeding_and_parses() {
        let text = super::config_toml(std::path::Path::new("/tmp/g"), 3901, 3900, "ab");
        let config: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(config["db_engine"].as_str(), Some("lmdb"));
        assert_eq!(config["compression_level"].as_str(), Some("none"));
        assert_eq!(
            config["s3_api"]["api_bind_addr"].as_str(),
            Some("127.0.0.1:3900")
        );
    }

    #[test]
    fn version_drops_the_build_origin() {
        assert_eq!(
            crate::infra::bootstrap::garage_version(
                "garage cargo:2.5.0 [features: bundled-libs, k2v]\n"
            ),
            "2.5.0"
        );
        assert_eq!(
            crate::infra::bootstrap::garage_version("garage v1.0.1"),
            "v1.0.1"
        );
    }
}
