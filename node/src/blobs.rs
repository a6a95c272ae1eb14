//! Package files through `object_store`: a local or shared directory, or an S3-compatible bucket.
//! Files are content-addressed by sha256; an upload is staged under a temporary key first. In a
//! directory (shared between nodes) the writes to one content address happen under a file lock in
//! `.locks/`, so two nodes never interleave promoting and removing the same file.

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
    #[error("blob store: staging {0}")]
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

/// A staged upload: bytes under a temporary key, not yet visible under their content address.
#[derive(Debug)]
pub struct Staged {
    temp: ObjectPath,
    pub sha256: String,
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

    /// Writes bytes under a fresh temporary key.
    pub async fn stage(&self, bytes: Bytes, sha256: &str) -> Result<Staged, BlobError> {
        let temp = ObjectPath::from(format!("tmp/{}", uuid::Uuid::new_v4()));
        self.store.put(&temp, PutPayload::from_bytes(bytes)).await?;
        Ok(Staged {
            temp,
            sha256: sha256.to_string(),
        })
    }

    /// Copies a local file under a fresh temporary key in bounded chunks (on S3 a multipart
    /// upload), so staging a large upload never holds it in memory.
    pub async fn stage_file(
        &self,
        path: &std::path::Path,
        sha256: &str,
    ) -> Result<Staged, BlobError> {
        use tokio::io::AsyncWriteExt;
        let temp = ObjectPath::from(format!("tmp/{}", uuid::Uuid::new_v4()));
        let mut reader = tokio::fs::File::open(path)
            .await
            .map_err(BlobError::Staging)?;
        let mut writer = object_store::buffered::BufWriter::new(self.store.clone(), temp.clone());
        let written = match tokio::io::copy(&mut reader, &mut writer).await {
            Ok(_) => writer.shutdown().await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            let _ = writer.abort().await;
            // A small file may have been put whole before the failure.
            let _ = self.store.delete(&temp).await;
            return Err(BlobError::Staging(e));
        }
        Ok(Staged {
            temp,
            sha256: sha256.to_string(),
        })
    }

    /// Moves a staged file to its content address. When the address already holds the same
    /// content (another upload of the same bytes) the staged copy is dropped.
    pub async fn promote(&self, staged: &Staged) -> Result<(), BlobError> {
        let target = Self::final_key(&staged.sha256)?;
        if self.store.head(&target).await.is_ok() {
            self.store.delete(&staged.temp).await?;
            return Ok(());
        }
        self.store.rename(&staged.temp, &target).await?;
        Ok(())
    }

    /// Removes a staged file after a failed upload.
    pub async fn discard(&self, staged: &Staged) {
        if let Err(e) = self.store.delete(&staged.temp).await {
            tracing::warn!(key = %staged.temp, error = %e, "could not remove staged upload");
        }
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
