//! The upload pipeline shared by twine uploads, the R upload endpoint and `pkgnode add`.
//!
//! The file arrives as a [`Received`] (on local disk, digests computed while it streamed in), is
//! inspected from disk and copied to the blob store in chunks: no step holds the whole file in
//! memory.
//!
//! **Invariant:** an upload is all-or-nothing. The bytes are staged under a temporary key, the
//! metadata row is inserted inside an open transaction, the blob is moved to its content address,
//! and only then is the transaction committed. A failure removes the staged copy; a blob already
//! at its content address is never removed, since another upload of the same bytes (on this node or
//! another) may have committed a row that references it. No row ever points at missing bytes and
//! no reader ever sees a half-written upload; at worst a failed commit leaves unreferenced bytes.

use crate::blobs::{BlobError, Blobs};
use crate::config::LimitsConfig;
use crate::formats::{self, FormatError, Inspected};
use crate::received::Received;
use crate::store::{NewPackageFile, PackageFile, Source, SourceKind, Store, StoreError};

/// Why an upload was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("{0}")]
    Invalid(String),
    #[error(
        "{filename} already exists in source {source_name} with different content (sha256 {existing})"
    )]
    Conflict {
        filename: String,
        source_name: String,
        existing: String,
    },
    #[error("upload is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
}

/// What the client says about the file, checked against what is inside it.
#[derive(Debug, Default, Clone)]
pub struct Claims {
    pub name: Option<String>,
    pub version: Option<String>,
    pub sha256: Option<String>,
}

/// The result of an accepted upload.
#[derive(Debug, Clone)]
pub enum Ingested {
    /// Stored under a new transaction.
    Stored { file: PackageFile, tx: i64 },
    /// The same bytes were already there: nothing changed.
    AlreadyPresent(PackageFile),
}

/// Checks, stores and publishes one package file.
pub async fn ingest(
    store: &Store,
    blobs: &Blobs,
    limits: &LimitsConfig,
    source: &Source,
    filename: &str,
    received: &Received,
    claims: &Claims,
) -> Result<Ingested, IngestError> {
    let source_name = source.name.as_str();
    if received.size_bytes > limits.max_upload_bytes {
        return Err(IngestError::TooLarge {
            size: received.size_bytes,
            limit: limits.max_upload_bytes,
        });
    }
    formats::check_file_name(filename)?;
    let inspected =
        inspect_received(source.kind, filename, received, limits.max_inflated_bytes).await?;
    check_claims(&inspected, claims, source.kind)?;
    let sha256 = received.sha256.clone();
    if let Some(claimed) = &claims.sha256
        && !claimed.eq_ignore_ascii_case(&sha256)
    {
        return Err(IngestError::Invalid(format!(
            "sha256_digest {claimed} does not match the uploaded bytes ({sha256}): the upload was corrupted"
        )));
    }
    if let Some(existing) = store.find_file(source.id, filename).await? {
        return same_or_conflict(existing, &sha256, source_name);
    }
    let md5 = received.md5.clone();
    let new_file = NewPackageFile {
        source_id: source.id,
        name: inspected.name,
        normalized: inspected.normalized,
        version: inspected.version,
        filename: filename.to_string(),
        kind: inspected.kind,
        sha256: sha256.clone(),
        md5,
        size_bytes: i64::try_from(received.size_bytes).unwrap_or(i64::MAX),
        metadata: inspected.metadata,
    };

    let staged = blobs.stage_file(received.path(), &sha256).await?;
    // Held until the commit: in a shared directory, two nodes' promotions of the same bytes never
    // interleave.
    let _content_lock = match blobs.lock_content(&sha256).await {
        Ok(guard) => guard,
        Err(e) => {
            blobs.discard(&staged).await;
            return Err(e.into());
        }
    };
    let mut change = match store
        .begin_change("upload", &format!("{source_name}/{filename}"))
        .await
    {
        Ok(change) => change,
        Err(e) => {
            blobs.discard(&staged).await;
            return Err(e.into());
        }
    };
    let id = match change.insert_file(&new_file).await {
        Ok(id) => id,
        Err(e) => {
            drop(change);
            blobs.discard(&staged).await;
            // A concurrent upload of the same file name won the race.
            if let Some(existing) = store.find_file(source.id, filename).await? {
                return same_or_conflict(existing, &sha256, source_name);
            }
            return Err(e.into());
        }
    };
    if let Err(e) = blobs.promote(&staged).await {
        drop(change);
        blobs.discard(&staged).await;
        return Err(e.into());
    }
    let tx = change.id;
    // The promoted blob stays whatever happens now: whether this commit failed, or its outcome is
    // unknown (the connection was lost), a row committed by a concurrent upload of the same bytes
    // may reference it, and S3 offers no lock that would let us know it does not.
    change.commit().await?;
    let file = PackageFile {
        id,
        source_id: new_file.source_id,
        name: new_file.name,
        normalized: new_file.normalized,
        version: new_file.version,
        filename: new_file.filename,
        kind: new_file.kind,
        sha256: new_file.sha256,
        md5: new_file.md5,
        size_bytes: new_file.size_bytes,
        metadata: new_file.metadata,
        added_tx: tx,
    };
    tracing::info!(source = source_name, filename, tx, "stored upload");
    Ok(Ingested::Stored { file, tx })
}

/// Reads the package's metadata from the file on disk, off the async threads (archive reading
/// is CPU work).
async fn inspect_received(
    kind: SourceKind,
    filename: &str,
    received: &Received,
    max_inflated_bytes: u64,
) -> Result<Inspected, IngestError> {
    let file = received
        .open()
        .map_err(|e| IngestError::Invalid(format!("the received upload cannot be read: {e}")))?;
    let filename = filename.to_string();
    let inspected = tokio::task::spawn_blocking(move || match kind {
        SourceKind::LocalPython => {
            formats::pypi::inspect_archive(&filename, file, max_inflated_bytes)
        }
        SourceKind::Local => formats::cran::inspect_archive(&filename, file, max_inflated_bytes),
    })
    .await
    .map_err(|e| IngestError::Invalid(format!("inspecting the upload failed: {e}")))?;
    Ok(inspected?)
}

fn check_claims(
    inspected: &Inspected,
    claims: &Claims,
    kind: SourceKind,
) -> Result<(), IngestError> {
    let same_name = |claimed: &str| match kind {
        SourceKind::LocalPython => formats::pypi::normalize(claimed) == inspected.normalized,
        SourceKind::Local => claimed == inspected.name,
    };
    if let Some(name) = &claims.name
        && !same_name(name)
    {
        return Err(IngestError::Invalid(format!(
            "the form says name {name:?} but the package metadata says {:?}",
            inspected.name
        )));
    }
    if let Some(version) = &claims.version
        && version != &inspected.version
    {
        return Err(IngestError::Invalid(format!(
            "the form says version {version:?} but the package metadata says {:?}",
            inspected.version
        )));
    }
    Ok(())
}

fn same_or_conflict(
    existing: PackageFile,
    sha256: &str,
    source_name: &str,
) -> Result<Ingested, IngestError> {
    if existing.sha256 == sha256 {
        Ok(Ingested::AlreadyPresent(existing))
    } else {
        Err(IngestError::Conflict {
            filename: existing.filename,
            source_name: source_name.to_string(),
            existing: existing.sha256,
        })
    }
}
