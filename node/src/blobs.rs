//! Package files through `object_store`: a local or shared directory, or an S3-compatible bucket.
//! Files are content-addressed by sha256 and written straight to their address (no temporary key,
//! no copy), under the address's content claim (`store::claims`). In a directory (shared between
//! nodes) the writes to one content address also happen under a file lock in `.locks/`.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, PutPayload};

use crate::config::Config;
use crate::locks::{FileLocks, LockError, LockGuard, LockSettings};

/// Errors from the blob store. The message never reaches a client.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob store: {0}")]
    Store(#[from] object_store::Error),
    #[error("blob store directory {path}: {source}")]
    Dir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("blob store configuration: {0}")]
    Config(String),
    #[error("blob store lock: {0}")]
    Lock(#[from] LockError),
    #[error("blob store: writing {0}")]
    Staging(#[source] std::io::Error),
    #[error("{0:?} is not a content address (64 lowercase hex digits of a sha256)")]
    BadAddress(String),
}

/// Lock files of a directory store, next to `blobs/` and `tmp/`.
pub const LOCK_DIR: &str = ".locks";

/// A stored file's bytes, streamed.
pub struct BlobRead {
    pub stream: BoxStream<'static, Result<Bytes, object_store::Error>>,
    /// Bytes served (the range's length when a range was asked for).
    pub len: u64,
}

/// Content-addressed blob storage.
#[derive(Clone, Debug)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// Where it lives, for status pages (`dir:/…` or `s3:bucket`).
    pub description: String,
    /// File locks and their directory, for a directory store.
    locks: Option<(FileLocks, std::path::PathBuf)>,
}

/// What placing bytes at their content address did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// This upload wrote them: if it fails, it removes them.
    Created,
    /// The address already held them (the same bytes uploaded before): they are never removed.
    Existing,
}

impl Blobs {
    /// Opens the store named by the configuration, creating the directory when needed.
    pub fn from_config(config: &Config) -> Result<Self, BlobError> {
        if let Some(s3) = &config.storage.s3 {
            let store = AmazonS3Builder::new()
                .with_endpoint(s3.endpoint.trim_end_matches('/'))
                .with_bucket_name(&s3.bucket)
                .with_region(&s3.region)
                .with_access_key_id(&s3.access_key)
                .with_secret_access_key(&s3.secret_key)
                .with_allow_http(true)
                .with_virtual_hosted_style_request(!s3.path_style)
                .build()?;
            let store: Arc<dyn ObjectStore> = if s3.prefix.is_empty() {
                Arc::new(store)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(
                    store,
                    s3.prefix.as_str(),
                ))
            };
            return Ok(Self {
                store,
                description: format!("s3:{}", s3.bucket),
                locks: None,
            });
        }
        let dir = config.storage_dir();
        std::fs::create_dir_all(&dir).map_err(|source| BlobError::Dir {
            path: dir.clone(),
            source,
        })?;
        let store = LocalFileSystem::new_with_prefix(&dir)?;
        Ok(Self {
            store: Arc::new(store),
            description: format!("dir:{}", dir.display()),
            locks: Some((
                FileLocks::new(LockSettings::from_config(&config.locks)),
                dir.join(LOCK_DIR),
            )),
        })
    }

    /// Locks one content address while its file is promoted, committed or removed; `None` for
    /// S3, whose writes are atomic per key. Waits for a live holder, and reaps a dead one's lock.
    pub async fn lock_content(&self, sha256: &str) -> Result<Option<LockGuard>, BlobError> {
        let Some((locks, dir)) = &self.locks else {
            return Ok(None);
        };
        let wait = locks.settings().timeout_interval * 2 + std::time::Duration::from_secs(5);
        let guard = locks
            .lock_async(&dir.join(format!("{sha256}.lock")), wait)
            .await?;
        Ok(Some(guard))
    }

    /// The stale-lock scan for a directory store: removes locks of dead holders.
    pub fn reap_stale_locks(&self) -> Result<usize, BlobError> {
        match &self.locks {
            Some((locks, dir)) => Ok(locks.reap_stale(dir)?),
            None => Ok(0),
        }
    }

    /// The lock settings of a directory store.
    pub fn lock_settings(&self) -> Option<LockSettings> {
        self.locks.as_ref().map(|(locks, _)| locks.settings())
    }

    /// Where the bytes with this sha256 live. The address comes from the database, so it is
    /// checked, not trusted: a corrupt value is an error, never a panic or a path outside `blobs/`.
    fn final_key(sha256: &str) -> Result<ObjectPath, BlobError> {
        let is_address = sha256.len() == 64
            && sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        match sha256.get(..2) {
            Some(prefix) if is_address => {
                Ok(ObjectPath::from(format!("blobs/sha256/{prefix}/{sha256}")))
            }
            _ => Err(BlobError::BadAddress(sha256.to_string())),
        }
    }

    /// Puts bytes at their content address unless it already holds them (one HEAD, then one PUT
    /// when it is empty). The caller holds the address's claim (`Store::claim_content`), so
    /// nobody else writes, finds or removes it meanwhile.
    pub async fn place(&self, bytes: Bytes, sha256: &str) -> Result<Placed, BlobError> {
        let target = Self::final_key(sha256)?;
        if self.exists_at(&target).await? {
            return Ok(Placed::Existing);
        }
        if let Err(e) = self.store.put(&target, PutPayload::from_bytes(bytes)).await {
            // The request may have landed before it failed: nobody else can have seen it yet.
            let _ = self.store.delete(&target).await;
            return Err(e.into());
        }
        Ok(Placed::Created)
    }

    /// [`Blobs::place`] for a local file, copied in bounded chunks (on S3 a file past the
    /// buffer is a multipart upload, which appears at its key only when complete), so placing a
    /// large upload never holds it in memory. Nothing half-written is ever at the address: a
    /// directory store writes a temporary file and renames it, S3 makes a key appear whole.
    pub async fn place_file(
        &self,
        path: &std::path::Path,
        sha256: &str,
    ) -> Result<Placed, BlobError> {
        use tokio::io::AsyncWriteExt;
        let target = Self::final_key(sha256)?;
        if self.exists_at(&target).await? {
            return Ok(Placed::Existing);
        }
        let mut reader = tokio::fs::File::open(path)
            .await
            .map_err(BlobError::Staging)?;
        let mut writer = object_store::buffered::BufWriter::new(self.store.clone(), target.clone());
        let written = match tokio::io::copy(&mut reader, &mut writer).await {
            Ok(_) => writer.shutdown().await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            let _ = writer.abort().await;
            // A small file may have been put whole before the failure.
            let _ = self.store.delete(&target).await;
            return Err(BlobError::Staging(e));
        }
        Ok(Placed::Created)
    }

    async fn exists_at(&self, target: &ObjectPath) -> Result<bool, BlobError> {
        match self.store.head(target).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the content address holds a file.
    pub async fn exists(&self, sha256: &str) -> Result<bool, BlobError> {
        self.exists_at(&Self::final_key(sha256)?).await
    }

    /// Removes the file at a content address: only for an upload that created it, failed, and
    /// still holds its claim (no row can refer to it).
    pub async fn remove(&self, sha256: &str) -> Result<(), BlobError> {
        self.store.delete(&Self::final_key(sha256)?).await?;
        Ok(())
    }

    /// Reads a stored file, or a byte range of it.
    pub async fn read(
        &self,
        sha256: &str,
        range: Option<Range<u64>>,
    ) -> Result<BlobRead, BlobError> {
        let options = GetOptions {
            range: range.clone().map(GetRange::Bounded),
            ..Default::default()
        };
        let result = self
            .store
            .get_opts(&Self::final_key(sha256)?, options)
            .await?;
        let len = result.range.end - result.range.start;
        Ok(BlobRead {
            stream: result.into_stream().boxed(),
            len,
        })
    }

    /// Reads a whole stored file into memory (small files, tests).
    pub async fn read_all(&self, sha256: &str) -> Result<Bytes, BlobError> {
        Ok(self
            .store
            .get(&Self::final_key(sha256)?)
            .await?
            .bytes()
            .await?)
    }

    /// Lists every key under a prefix (`tmp`, `blobs`), for checks that nothing was left behind.
    pub async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        let prefix = ObjectPath::from(prefix);
        let mut keys = Vec::new();
        let mut listing = self.store.list(Some(&prefix));
        while let Some(meta) = listing.next().await {
            keys.push(meta?.location.to_string());
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 10 defect 3: the address is read from the database and was sliced unchecked.
    #[test]
    fn issue_10_a_corrupt_address_is_an_error_not_a_panic() {
        let good = "ab".repeat(32);
        assert_eq!(
            Blobs::final_key(&good).unwrap().to_string(),
            format!("blobs/sha256/ab/{good}")
        );
        for bad in [
            "",
            "a",
            "é",
            "éé",
            "../../etc/passwd",
            &"AB".repeat(32),
            &"a".repeat(65),
        ] {
            assert!(
                matches!(Blobs::final_key(bad), Err(BlobError::BadAddress(_))),
                "{bad:?}"
            );
        }
    }
}
