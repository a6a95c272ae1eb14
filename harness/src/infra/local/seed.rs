//! The local provider's side of the corpus cache: saving a seeded cluster (`pg_dump` of the
//! node database without its members and tokens; Garage's metadata copied and its data files
//! hard-linked while Garage is stopped for a moment) and restoring it before the nodes start
//! (`pg_restore` into the empty database; the Garage directories put back before Garage starts,
//! so its node id, layout, bucket and key come back with the objects).

use std::path::Path;
use std::time::Instant;

use super::layout::Context;
use super::process::{self, Launch};
use crate::corpus_cache::{self, CacheError, CorpusCache, Manifest};
use crate::infra::InfraError;

/// The dump inside an entry.
pub const DB_DUMP: &str = "db.dump";
/// Garage's `meta/` and `data/` inside an entry.
pub const S3_DIR: &str = "s3";

/// Tables whose rows belong to one cluster, not to the corpus: the cluster definition (it holds
/// this run's key fingerprint), the members, and the tokens (signed with this run's key).
const PER_CLUSTER_TABLES: &[&str] = &["cluster", "nodes", "tokens"];

fn cache_error(error: CacheError) -> InfraError {
    InfraError::Failed {
        what: "corpus cache".into(),
        detail: error.to_string(),
    }
}

/// `pg_dump -Fc` of the node database into `to`.
pub fn dump_database(
    context: &Context,
    pg_bin: &Path,
    database_url: &str,
    to: &Path,
) -> Result<(), InfraError> {
    let mut launch = Launch::new("pg_dump", pg_bin.join("pg_dump"), "")
        .arg("--format=custom")
        .arg("--no-owner")
        .arg("--no-privileges")
        .arg("--file")
        .arg(to);
    for table in PER_CLUSTER_TABLES {
        launch = launch.arg(format!("--exclude-table-data={table}"));
    }
    let launch = launch.arg("--dbname").arg(database_url);
    process::run(
        context.spawner,
        &launch,
        &context.commands_dir,
        "corpus-cache-pg-dump",
        context.timeout * 10,
    )
    .map(|_| ())
}

/// `pg_restore` of an entry's dump into the (empty) node database.
pub fn restore_database(
    context: &Context,
    pg_bin: &Path,
    database_url: &str,
    entry: &Path,
) -> Result<(), InfraError> {
    let launch = Launch::new("pg_restore", pg_bin.join("pg_restore"), "")
        .arg("--no-owner")
        .arg("--no-privileges")
        .arg("--exit-on-error")
        .arg("--single-transaction")
        .arg("--dbname")
        .arg(database_url)
        .arg(entry.join(DB_DUMP));
    process::run(
        context.spawner,
        &launch,
        &context.commands_dir,
        "corpus-cache-pg-restore",
        context.timeout * 10,
    )
    .map(|_| ())
}

/// Puts an entry's Garage directories into `garage_dir` (before Garage starts): the metadata
/// copied (Garage writes to it), the data files hard-linked (never rewritten).
pub fn restore_object_store(entry: &Path, garage_dir: &Path) -> Result<u64, InfraError> {
    let saved = entry.join(S3_DIR);
    corpus_cache::copy_tree_files(&saved.join("meta"), &garage_dir.join("meta"))
        .map_err(cache_error)?;
    corpus_cache::link_tree(&saved.join("data"), &garage_dir.join("data")).map_err(cache_error)
}

/// Copies a stopped Garage's directories into an entry being staged.
pub fn save_object_store(garage_dir: &Path, staging: &Path) -> Result<u64, InfraError> {
    let saved = staging.join(S3_DIR);
    corpus_cache::copy_tree_files(&garage_dir.join("meta"), &saved.join("meta"))
        .map_err(cache_error)?;
    corpus_cache::link_tree(&garage_dir.join("data"), &saved.join("data")).map_err(cache_error)
}

/// Commits a staged entry; returns its directory and how long the whole save took.
pub fn commit(
    cache: &CorpusCache,
    staging: &Path,
    manifest: &mut Manifest,
    began: Instant,
) -> Result<std::path::PathBuf, InfraError> {
    manifest.save_seconds = began.elapsed().as_secs_f64();
    cache.commit(staging, manifest).map_err(cache_error)
}

/// A staging directory for `manifest`'s key.
pub fn staging(cache: &CorpusCache, manifest: &Manifest) -> Result<std::path::PathBuf, InfraError> {
    cache.staging(&manifest.key).map_err(cache_error)
}
