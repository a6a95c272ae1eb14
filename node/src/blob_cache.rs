//! Package files kept in memory after a download. Files are content-addressed, so a cached copy
//! is never stale; popular files (installs follow a Zipf law) are then served without a round
//! trip to S3 or the shared directory. Concurrent misses of one file share one read.

use std::sync::Arc;

use bytes::Bytes;

use crate::blobs::{BlobError, Blobs};

/// A byte-bounded cache of whole files by sha256.
#[derive(Clone)]
pub struct BlobCache {
    cache: moka::future::Cache<String, Bytes>,
    max_file_bytes: u64,
}

impl BlobCache {
    pub fn new(capacity_bytes: u64, max_file_bytes: u64) -> Self {
        let cache = moka::future::Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|_key: &String, value: &Bytes| u32::try_from(value.len()).unwrap_or(u32::MAX))
            .build();
        Self {
            cache,
            max_file_bytes,
        }
    }

    /// Whether a file of this size is kept.
    pub fn keeps(&self, size_bytes: u64) -> bool {
        self.max_file_bytes > 0 && size_bytes <= self.max_file_bytes
    }

    /// Bytes and files held now (after pending evictions are applied), for `/metrics`.
    pub async fn size(&self) -> (u64, u64) {
        self.cache.run_pending_tasks().await;
        (self.cache.weighted_size(), self.cache.entry_count())
    }

    /// The bytes this cache may hold.
    pub fn capacity_bytes(&self) -> u64 {
        self.cache.policy().max_capacity().unwrap_or(0)
    }

    /// The whole file, from memory or read once from storage. The flag says whether it was cached.
    pub async fn get(&self, blobs: &Blobs, sha256: &str) -> Result<(Bytes, bool), Arc<BlobError>> {
        if let Some(bytes) = self.cache.get(sha256).await {
            return Ok((bytes, true));
        }
        let bytes = self
            .cache
            .try_get_with(sha256.to_string(), blobs.read_all(sha256))
            .await?;
        Ok((bytes, false))
    }
}
