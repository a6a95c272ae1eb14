//! The docker provider's side of the corpus cache: Garage's `/var/lib/garage` is a host
//! directory mounted into its container, saved while the container is stopped and put back
//! before it starts; the database is dumped and restored by the machine's `pg_dump` and
//! `pg_restore` through the primary's published port (the image holds only the server).

use std::path::Path;
use std::process::Command;

use crate::corpus_cache::{self, CacheError};
use crate::infra::InfraError;

/// The dump inside an entry (the same layout as the local provider's).
pub const DB_DUMP: &str = "db.dump";
/// Garage's `meta/` and `data/` inside an entry.
pub const S3_DIR: &str = "s3";
/// The uid every `pkgcluster/*` image runs as (`docker/build-images.sh`).
const IMAGE_UID: u32 = 999;
/// Where Debian's PostgreSQL 15 client programs are.
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// Rows that belong to one cluster, not to the corpus.
const PER_CLUSTER_TABLES: &[&str] = &["cluster", "nodes", "tokens"];

fn cache_error(error: CacheError) -> InfraError {
    InfraError::Failed {
        what: "corpus cache".into(),
        detail: error.to_string(),
    }
}

fn run(mut command: Command, what: &str) -> Result<(), InfraError> {
    let out = command.output().map_err(|e| InfraError::Missing {
        what: what.into(),
        detail: format!("{e} (install postgresql-client-15)"),
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(InfraError::Failed {
            what: what.into(),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// `postgres://postgres@127.0.0.1:PORT/pkgnode`: the primary through its published port.
pub fn host_database_url(port: u16) -> String {
    format!(
        "postgres://postgres@127.0.0.1:{port}/{}",
        crate::infra::bootstrap::DATABASE
    )
}

/// `pg_dump -Fc` of the node database into `to`.
pub fn dump_database(database_url: &str, to: &Path) -> Result<(), InfraError> {
    let mut command = Command::new(Path::new(PG_BIN).join("pg_dump"));
    command.args(["--format=custom", "--no-owner", "--no-privileges", "--file"]);
    command.arg(to);
    for table in PER_CLUSTER_TABLES {
        command.arg(format!("--exclude-table-data={table}"));
    }
    command.args(["--dbname", database_url]);
    run(command, "pg_dump")
}

/// `pg_restore` of an entry's dump into the empty node database.
pub fn restore_database(database_url: &str, entry: &Path) -> Result<(), InfraError> {
    let mut command = Command::new(Path::new(PG_BIN).join("pg_restore"));
    command.args([
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--single-transaction",
        "--dbname",
        database_url,
    ]);
    command.arg(entry.join(DB_DUMP));
    run(command, "pg_restore")
}

/// A host directory for Garage's `/var/lib/garage`, owned by the image's user; with `entry`,
/// holding that entry's Garage (metadata copied, data files hard-linked).
pub fn garage_dir(entry: Option<&Path>) -> Result<tempfile::TempDir, InfraError> {
    let dir = tempfile::Builder::new()
        .prefix("harness-garage-")
        .tempdir()?;
    if let Some(entry) = entry {
        let saved = entry.join(S3_DIR);
        corpus_cache::copy_tree_files(&saved.join("meta"), &dir.path().join("meta"))
            .map_err(cache_error)?;
        corpus_cache::link_tree(&saved.join("data"), &dir.path().join("data"))
            .map_err(cache_error)?;
    }
    chown_tree(dir.path())?;
    Ok(dir)
}

/// Copies a stopped Garage's directory into an entry being staged.
pub fn save_object_store(garage_dir: &Path, staging: &Path) -> Result<u64, InfraError> {
    let saved = staging.join(S3_DIR);
    corpus_cache::copy_tree_files(&garage_dir.join("meta"), &saved.join("meta"))
        .map_err(cache_error)?;
    corpus_cache::link_tree(&garage_dir.join("data"), &saved.join("data")).map_err(cache_error)
}

/// Gives the tree to the image's user when this process may (as root); otherwise leaves it
/// (an unprivileged engine maps users itself).
fn chown_tree(path: &Path) -> Result<(), InfraError> {
    if std::os::unix::fs::chown(path, Some(IMAGE_UID), Some(IMAGE_UID)).is_err() {
        return Ok(());
    }
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path())?;
        }
    }
    Ok(())
}
