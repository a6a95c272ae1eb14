//! One parsed `PACKAGES` per index version: every R install downloads `PACKAGES.gz` (a fresh
//! R session does), but identical bytes are parsed once. Keyed by the sha256 of the bytes, so a
//! new index version (a new upload) is parsed again and never confused with an old one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};

use super::index::parse_packages_index;

/// How many distinct index versions are kept: a run sees the current index and, around an
/// upload, the one before it; the bound keeps memory flat however long the run.
const KEPT_VERSIONS: usize = 4;

/// `Package` → `Version` of one `PACKAGES` file.
pub type PackagesIndex = HashMap<String, String>;

/// Parsed `PACKAGES.gz` indexes by the sha256 of their bytes, newest use last.
#[derive(Debug, Default)]
pub struct PackagesCache {
    entries: Mutex<Vec<([u8; 32], Arc<PackagesIndex>)>>,
    parses: std::sync::atomic::AtomicU64,
}

impl PackagesCache {
    /// The parsed index of `gz`: from the cache when the same bytes were parsed before, else
    /// parsed now (outside the lock) and kept. `None` when `gz` is not a gzipped `PACKAGES`.
    pub fn parsed(&self, gz: &[u8]) -> Option<Arc<PackagesIndex>> {
        self.parsed_with(gz, parse_packages_index)
    }

    /// [`PackagesCache::parsed`] for any serialization of the index (`PACKAGES.gz`,
    /// `PACKAGES.rds`): the bytes differ, so the two never share an entry.
    pub fn parsed_with(
        &self,
        bytes: &[u8],
        parse: fn(&[u8]) -> Option<PackagesIndex>,
    ) -> Option<Arc<PackagesIndex>> {
        let gz = bytes;
        let key: [u8; 32] = Sha256::digest(gz).into();
        {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(at) = entries.iter().position(|(k, _)| *k == key) {
                let entry = entries.remove(at);
                let index = Arc::clone(&entry.1);
                entries.push(entry);
                return Some(index);
            }
        }
        let index = Arc::new(parse(gz)?);
        self.parses
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if !entries.iter().any(|(k, _)| *k == key) {
            if entries.len() == KEPT_VERSIONS {
                entries.remove(0);
            }
            entries.push((key, Arc::clone(&index)));
        }
        Some(index)
    }

    /// How many times an index was actually parsed (concurrent first sightings may each parse).
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

    fn gz(text: &str) -> Vec<u8> {
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn identical_bytes_are_parsed_once_and_new_versions_again() {
        let cache = PackagesCache::default();
        let v1 = gz("Package: a\nVersion: 1.0\n");
        let first = cache.parsed(&v1).unwrap();
        let again = cache.parsed(&v1.clone()).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(cache.parses(), 1);
        let v2 = gz("Package: a\nVersion: 2.0\n");
        assert_eq!(cache.parsed(&v2).unwrap()["a"], "2.0");
        assert_eq!(cache.parses(), 2);
        // Not gzip: no index, nothing cached.
        assert!(cache.parsed(b"not gzip").is_none());
    }

    #[test]
    fn memory_is_bounded_by_the_kept_versions() {
        let cache = PackagesCache::default();
        for v in 0..20 {
            cache
                .parsed(&gz(&format!("Package: a\nVersion: {v}\n")))
                .unwrap();
        }
        assert_eq!(cache.entries.lock().unwrap().len(), KEPT_VERSIONS);
        // The newest is still cached; the oldest was evicted and is parsed again.
        cache.parsed(&gz("Package: a\nVersion: 19\n")).unwrap();
        assert_eq!(cache.parses(), 20);
        cache.parsed(&gz("Package: a\nVersion: 0\n")).unwrap();
        assert_eq!(cache.parses(), 21);
    }
}
