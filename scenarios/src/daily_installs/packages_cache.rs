//! One parsed `PACKAGES` per index version: every R install downloads the index (a fresh R
//! session does), but identical bytes are parsed once. Keyed by the sha256 of the bytes, so a
//! new index version (a new upload) is parsed again and never confused with an old one.
//!
//! The parse of a CRAN-sized index takes milliseconds in a release build and a few hundred in a
//! debug one: it runs on a blocking thread, and users that meet a version while it is being
//! parsed wait for that one parse instead of each parsing it on the async workers (which would
//! stall every other user's requests, and show as the server's latency under a write stream,
//! where the index changes every few hundred milliseconds).

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::index::parse_packages_index;

/// How many distinct index versions are kept: a run sees the current index and, around an
/// upload, the one before it; the bound keeps memory flat however long the run.
const KEPT_VERSIONS: usize = 4;

/// `Package` → `Version` of one `PACKAGES` file.
pub type PackagesIndex = std::collections::HashMap<String, String>;

/// One index version's parse: done, under way, or not yet started.
type Slot = Arc<OnceCell<Option<Arc<PackagesIndex>>>>;

/// Parsed indexes by the sha256 of their bytes, newest use last.
#[derive(Debug, Default)]
pub struct PackagesCache {
    entries: Mutex<Vec<([u8; 32], Slot)>>,
    parses: std::sync::atomic::AtomicU64,
}

impl PackagesCache {
    /// The parsed index of a `PACKAGES.gz`; `None` when the bytes are not one.
    pub async fn parsed(&self, gz: Bytes) -> Option<Arc<PackagesIndex>> {
        self.parsed_with(gz, parse_packages_index).await
    }

    /// The parsed index of `bytes`, any serialization of the index (`PACKAGES.gz`,
    /// `PACKAGES.rds`: the bytes differ, so the two never share an entry): from the cache when
    /// the same bytes were parsed before or are being parsed now, else parsed now on a blocking
    /// thread and kept.
    pub async fn parsed_with(
        &self,
        bytes: Bytes,
        parse: fn(&[u8]) -> Option<PackagesIndex>,
    ) -> Option<Arc<PackagesIndex>> {
        let key: [u8; 32] = Sha256::digest(&bytes).into();
        let slot = self.slot(key);
        slot.get_or_init(|| async move {
            let parsed = tokio::task::spawn_blocking(move || parse(&bytes))
                .await
                .ok()
                .flatten()?;
            self.parses
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Some(Arc::new(parsed))
        })
        .await
        .clone()
    }

    /// The slot of `key`, made the most recently used; created (evicting the least recently
    /// used beyond [`KEPT_VERSIONS`]) when new.
    fn slot(&self, key: [u8; 32]) -> Slot {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = match entries.iter().position(|(k, _)| *k == key) {
            Some(at) => entries.remove(at),
            None => {
                if entries.len() == KEPT_VERSIONS {
                    entries.remove(0);
                }
                (key, Slot::default())
            }
        };
        let slot = Arc::clone(&entry.1);
        entries.push(entry);
        slot
    }

    /// How many times an index was actually parsed.
    pub fn parses(&self) -> u64 {
        self.parses.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gz(text: &str) -> Bytes {
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        Bytes::from(gz.finish().unwrap())
    }

    #[tokio::test]
    async fn identical_bytes_are_parsed_once_and_new_versions_again() {
        let cache = PackagesCache::default();
        let v1 = gz("Package: a\nVersion: 1.0\n");
        let first = cache.parsed(v1.clone()).await.unwrap();
        let again = cache.parsed(v1).await.unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(cache.parses(), 1);
        let v2 = gz("Package: a\nVersion: 2.0\n");
        assert_eq!(cache.parsed(v2).await.unwrap()["a"], "2.0");
        assert_eq!(cache.parses(), 2);
        // Not gzip: no index.
        assert!(
            cache
                .parsed(Bytes::from_static(b"not gzip"))
                .await
                .is_none()
        );
        assert_eq!(cache.parses(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn users_meeting_a_new_version_together_share_one_parse() {
        let cache = Arc::new(PackagesCache::default());
        let text: String = (0..20_000)
            .map(|i| format!("Package: p{i}\nVersion: 1.{i}\n\n"))
            .collect();
        let v1 = gz(&text);
        let users: Vec<_> = (0..16)
            .map(|_| {
                let (cache, v1) = (Arc::clone(&cache), v1.clone());
                tokio::spawn(async move { cache.parsed(v1).await.unwrap() })
            })
            .collect();
        let parsed = futures::future::join_all(users).await;
        assert!(
            parsed
                .iter()
                .all(|p| Arc::ptr_eq(p.as_ref().unwrap(), parsed[0].as_ref().unwrap()))
        );
        assert_eq!(cache.parses(), 1, "each user parsed the same bytes");
    }

    #[tokio::test]
    async fn memory_is_bounded_by_the_kept_versions() {
        let cache = PackagesCache::default();
        for v in 0..20 {
            cache
                .parsed(gz(&format!("Package: a\nVersion: {v}\n")))
                .await
                .unwrap();
        }
        assert_eq!(cache.entries.lock().unwrap().len(), KEPT_VERSIONS);
        // The newest is still cached; the oldest was evicted and is parsed again.
        cache.parsed(gz("Package: a\nVersion: 19\n")).await.unwrap();
        assert_eq!(cache.parses(), 20);
        cache.parsed(gz("Package: a\nVersion: 0\n")).await.unwrap();
        assert_eq!(cache.parses(), 21);
    }
}
