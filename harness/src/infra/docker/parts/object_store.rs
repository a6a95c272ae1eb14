//! The docker cluster's object store: Garage (one-node layout, key and bucket through `docker
//! exec`) or a local `minio/minio` image when there is one, and the S3 endpoint the nodes use.

use std::time::Duration;

use super::super::containers::{self, Started};
use super::super::engine;
use super::{Names, S3_PORT, local};
use crate::infra::{InfraError, bootstrap, probe};

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
