//! The upload pipeline shared by twine uploads, the R upload endpoint and `pkgnode add`.
//!
//! The file arrives as a [`Received`] (on local disk, digests computed while it streamed in), is
//! inspected from disk and copied to the blob store in chunks: no step holds the whole file in
//! memory.
//!
//! **Invariant:** an upload is all-or-nothing. Everything a bad upload can be refused for is
//! checked before any byte is stored. Then the content address is claimed
//! ([`Store::claim_content`]), the bytes are written straight to it when it is empty (one HEAD,
//! one PUT: no temporary key, no copy), and the metadata row is inserted and committed in a
//! change opened under the same claim — the `transactions` lock covers database work only. A
//! failure before the commit removes the blob if this upload created it and no row refers to it
//! ([`remove_created`]); a blob that was already there is never removed. No row ever points at
//! missing bytes and no reader ever sees a half-written upload; at worst a failed (or unknown)
//! commit, or a database lost mid-upload, leaves unreferenced bytes.
//!
//! A git build publishes its products (an R tarball, or an sdist and a wheel) the same way, in
//! one transaction, and records its own success inside that transaction ([`ingest_products`]).

use bytes::Bytes;
use md5::Md5;
use sha2::{Digest, Sha256};

use crate::blobs::{BlobError, Blobs, Placed};
use crate::config::LimitsConfig;
use crate::formats::{self, FormatError, Inspected};
use crate::received::Received;
use crate::store::{Change, NewPackageFile, PackageFile, Source, SourceKind, Store, StoreError};

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
    /// The work done before the commit refused it (a git build that lost its lease).
    #[error("{0}")]
    Aborted(String),
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

    let description = format!("{source_name}/{filename}");
    let claim = store.claim_content(&[&sha256]).await?;
    // Held until the commit: in a shared directory, two nodes' writes of the same bytes never
    // interleave.
    let _content_lock = blobs.lock_content(&sha256).await?;
    let began = std::time::Instant::now();
    let placed = blobs.place_file(received.path(), &sha256).await?;
    let created = created_blobs(placed, &sha256, Content::File(received.path()));
    let placed_at = std::time::Instant::now();
    let mut change = match store.claimed_change(claim, "upload", &description).await {
        Ok(change) => change,
        Err(e) => {
            remove_created(store, blobs, &created).await;
            return Err(e.into());
        }
    };
    let locked_at = std::time::Instant::now();
    let id = match change.insert_file(&new_file).await {
        Ok(id) => id,
        Err(e) => {
            change.rollback().await;
            remove_created(store, blobs, &created).await;
            // A concurrent upload of the same file name won the race.
            if let Some(existing) = store.find_file(source.id, filename).await? {
                return same_or_conflict(existing, &sha256, source_name);
            }
            return Err(e.into());
        }
    };
    let tx = change.id;
    // The blob stays whatever happens now: whether this commit failed, or its outcome is unknown
    // (the connection was lost, and the claim with it), a row committed by a concurrent upload of
    // the same bytes may reference it.
    change.commit().await?;
    // Where an upload's time goes once it is checked: the object store, the wait for the
    // `transactions` lock, and the time holding it (seeding's profile reads these).
    let (place_ms, lock_wait_ms, locked_ms) = (
        (placed_at - began).as_secs_f64() * 1e3,
        (locked_at - placed_at).as_secs_f64() * 1e3,
        locked_at.elapsed().as_secs_f64() * 1e3,
    );
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
    tracing::info!(
        source = source_name,
        filename,
        tx,
        created = placed == Placed::Created,
        place_ms,
        lock_wait_ms,
        locked_ms,
        "stored upload"
    );
    Ok(Ingested::Stored { file, tx })
}

/// Work done inside the publishing transaction just before it commits: a git build marks itself
/// succeeded there, so its package files and its `succeeded` row commit together or not at all.
pub trait BeforeCommit: Send + Sync {
    /// Runs in `change`, which publishes `version` of the package.
    fn run<'a>(
        &'a self,
        change: &'a mut Change,
        version: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<(), IngestError>>;
}

/// One file a build produced.
#[derive(Debug, Clone)]
pub struct Product {
    pub filename: String,
    pub bytes: Bytes,
}

/// What [`ingest_products`] published.
#[derive(Debug, Clone)]
pub struct PublishedProducts {
    pub tx: i64,
    pub name: String,
    pub version: String,
    /// Files stored by this transaction (files already present with the same bytes are not).
    pub stored: Vec<PackageFile>,
}

/// Checks every product, then stores all of them under one new transaction in which `before_commit`
/// runs last: all files and whatever `before_commit` wrote commit together, or nothing does.
/// Every product must be the same package and version. A file name already in the source with the
/// same bytes is kept as it is; with other bytes the whole build is refused (a published version
/// never changes).
pub async fn ingest_products(
    store: &Store,
    blobs: &Blobs,
    limits: &LimitsConfig,
    source: &Source,
    products: Vec<Product>,
    description: &str,
    before_commit: &dyn BeforeCommit,
) -> Result<PublishedProducts, IngestError> {
    let source_name = source.name.as_str();
    let mut checked: Vec<(NewPackageFile, Bytes)> = Vec::new();
    let mut name_version: Option<(String, String)> = None;
    for product in products {
        let size = product.bytes.len() as u64;
        if size > limits.max_upload_bytes {
            return Err(IngestError::TooLarge {
                size,
                limit: limits.max_upload_bytes,
            });
        }
        formats::check_file_name(&product.filename)?;
        let inspected = inspect(
            source.kind,
            &product.filename,
            &product.bytes,
            limits.max_inflated_bytes,
        )?;
        if let Some((name, version)) = &name_version
            && (*name != inspected.name || *version != inspected.version)
        {
            return Err(IngestError::Invalid(format!(
                "the build produced {name} {version} and {} {}: one build publishes one package version",
                inspected.name, inspected.version
            )));
        }
        if name_version.is_none() {
            name_version = Some((inspected.name.clone(), inspected.version.clone()));
        }
        let sha256 = hex::encode(Sha256::digest(&product.bytes));
        if let Some(existing) = store.find_file(source.id, &product.filename).await? {
            same_or_conflict(existing, &sha256, source_name)?;
            continue;
        }
        let new_file = NewPackageFile {
            source_id: source.id,
            name: inspected.name,
            normalized: inspected.normalized,
            version: inspected.version,
            filename: product.filename,
            kind: inspected.kind,
            sha256,
            md5: hex::encode(Md5::digest(&product.bytes)),
            size_bytes: size as i64,
            metadata: inspected.metadata,
        };
        checked.push((new_file, product.bytes));
    }
    let Some((name, version)) = name_version else {
        return Err(IngestError::Invalid(
            "the build produced no package file".into(),
        ));
    };
    let result =
        publish_checked(store, blobs, &checked, description, &version, before_commit).await;
    let (tx, stored) = match result {
        Ok(published) => published,
        Err((e, created)) => {
            remove_created(store, blobs, &created).await;
            return Err(e);
        }
    };
    tracing::info!(source = source_name, %name, %version, tx, "published build products");
    Ok(PublishedProducts {
        tx,
        name,
        version,
        stored,
    })
}

/// Where a placed blob's bytes can be read again (to put them back, see [`remove_created`]).
#[derive(Debug, Clone)]
enum Content<'a> {
    File(&'a std::path::Path),
    Bytes(Bytes),
}

/// The blobs an upload created (and so must remove if it fails): none when the address already
/// held the bytes.
fn created_blobs<'a>(
    placed: Placed,
    sha256: &str,
    content: Content<'a>,
) -> Vec<(String, Content<'a>)> {
    match placed {
        Placed::Created => vec![(sha256.to_string(), content)],
        Placed::Existing => Vec::new(),
    }
}

/// After a failed upload whose change never committed: removes the blobs it created, under a
/// fresh claim, unless a row refers to them (a concurrent upload of the same bytes found them
/// after this upload's claim ended, and committed). When the database cannot say, the bytes
/// stay: unreferenced bytes are harmless, a row without its bytes is not. Should the claim lapse
/// during a removal (its connection died), another upload may have found the bytes in that
/// moment, so they are put back.
async fn remove_created(store: &Store, blobs: &Blobs, created: &[(String, Content<'_>)]) {
    if created.is_empty() {
        return;
    }
    let shas: Vec<&str> = created.iter().map(|(sha, _)| sha.as_str()).collect();
    let mut claim = match store.claim_content(&shas).await {
        Ok(claim) => claim,
        Err(e) => {
            tracing::warn!(error = %e, "a failed upload's blobs stay: their claim cannot be taken");
            return;
        }
    };
    for (sha, content) in created {
        match claim.referenced(store, sha).await {
            Ok(false) => {}
            Ok(true) => continue,
            Err(e) => {
                tracing::warn!(%sha, error = %e, "a failed upload's blob stays: the database cannot say whether it is used");
                return;
            }
        }
        if let Err(e) = blobs.remove(sha).await {
            tracing::warn!(%sha, error = %e, "could not remove a failed upload's blob");
            continue;
        }
        if !claim.still_held().await {
            let restored = match content {
                Content::File(path) => blobs.place_file(path, sha).await,
                Content::Bytes(bytes) => blobs.place(bytes.clone(), sha).await,
            };
            if let Err(e) = restored {
                tracing::error!(%sha, error = %e, "a blob removed while its claim lapsed could not be put back");
            }
        }
    }
}

/// Claims and places every product's bytes, then inserts the rows, runs `before_commit` and
/// commits in one change. On failure, the blobs this call created (for [`remove_created`]).
async fn publish_checked<'a>(
    store: &Store,
    blobs: &Blobs,
    checked: &'a [(NewPackageFile, Bytes)],
    description: &str,
    version: &str,
    before_commit: &dyn BeforeCommit,
) -> Result<(i64, Vec<PackageFile>), (IngestError, Vec<(String, Content<'a>)>)> {
    // Claims and content locks in one order, so two nodes publishing overlapping bytes never
    // deadlock.
    let mut shas: Vec<&str> = checked.iter().map(|(f, _)| f.sha256.as_str()).collect();
    shas.sort_unstable();
    shas.dedup();
    let claim = store
        .claim_content(&shas)
        .await
        .map_err(|e| (e.into(), Vec::new()))?;
    let mut _locks = Vec::new();
    for sha in &shas {
        _locks.push(
            blobs
                .lock_content(sha)
                .await
                .map_err(|e| (e.into(), Vec::new()))?,
        );
    }
    let mut created = Vec::new();
    for (file, bytes) in checked {
        match blobs.place(bytes.clone(), &file.sha256).await {
            Ok(placed) => created.extend(created_blobs(
                placed,
                &file.sha256,
                Content::Bytes(bytes.clone()),
            )),
            Err(e) => {
                claim.release().await;
                return Err((e.into(), created));
            }
        }
    }
    let mut change = match store.claimed_change(claim, "git-build", description).await {
        Ok(change) => change,
        Err(e) => return Err((e.into(), created)),
    };
    let mut ids = Vec::new();
    for (file, _) in checked {
        match change.insert_file(file).await {
            Ok(id) => ids.push(id),
            Err(e) => {
                change.rollback().await;
                return Err((e.into(), created));
            }
        }
    }
    if let Err(e) = before_commit.run(&mut change, version).await {
        change.rollback().await;
        return Err((e, created));
    }
    let tx = change.id;
    // As for an upload: once the commit is under way the blobs stay, whatever its outcome.
    change.commit().await.map_err(|e| (e.into(), Vec::new()))?;
    let stored = checked
        .iter()
        .zip(ids)
        .map(|((file, _), id)| PackageFile {
            id,
            source_id: file.source_id,
            name: file.name.clone(),
            normalized: file.normalized.clone(),
            version: file.version.clone(),
            filename: file.filename.clone(),
            kind: file.kind,
            sha256: file.sha256.clone(),
            md5: file.md5.clone(),
            size_bytes: file.size_bytes,
            metadata: file.metadata.clone(),
            added_tx: tx,
        })
        .collect();
    Ok((tx, stored))
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
        SourceKind::LocalPython | SourceKind::GitPython => {
            formats::pypi::inspect_archive(&filename, file, max_inflated_bytes)
        }
        SourceKind::Local | SourceKind::Git => {
            formats::cran::inspect_archive(&filename, file, max_inflated_bytes)
        }
    })
    .await
    .map_err(|e| IngestError::Invalid(format!("inspecting the upload failed: {e}")))?;
    Ok(inspected?)
}

/// Reads the metadata of a build product held in memory (bounded by `[git] max_output_bytes`).
fn inspect(
    kind: SourceKind,
    filename: &str,
    bytes: &[u8],
    max_inflated_bytes: u64,
) -> Result<Inspected, FormatError> {
    match kind {
        SourceKind::LocalPython | SourceKind::GitPython => {
            formats::pypi::inspect(filename, bytes, max_inflated_bytes)
        }
        SourceKind::Local | SourceKind::Git => {
            formats::cran::inspect(filename, bytes, max_inflated_bytes)
        }
    }
}

fn check_claims(
    inspected: &Inspected,
    claims: &Claims,
    kind: SourceKind,
) -> Result<(), IngestError> {
    let same_name = |claimed: &str| match kind {
        SourceKind::LocalPython | SourceKind::GitPython => {
            formats::pypi::normalize(claimed) == inspected.normalized
        }
        SourceKind::Local | SourceKind::Git => claimed == inspected.name,
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
