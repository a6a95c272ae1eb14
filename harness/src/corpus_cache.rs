//! The corpus cache: a seeded cluster's state (a `pg_dump` of the node database without its
//! cluster members and tokens, and the object store's files) saved once and restored by later
//! runs in seconds instead of re-uploading the corpus.
//!
//! An entry is keyed by what makes the seeded state what it is: the corpus config (seed
//! included), the node's schema version (`pkgnode schema-version`), the provider that saved it
//! and [`FORMAT`]. Any change gives another key, so a stale entry is never restored; an entry
//! is complete only once its `manifest.json` exists (it is written last, in a directory renamed
//! into place), so an interrupted save leaves nothing a later run would take.
//!
//! Layout: `DIR/<key>/{manifest.json, db.dump, s3/…}`. `DIR` is `--corpus-cache`, else
//! `$PKGCLUSTER_CORPUS_CACHE`, else `$XDG_CACHE_HOME/pkgcluster/corpus`, else
//! `~/.cache/pkgcluster/corpus`. `harness corpus-cache list|clear` shows and removes entries.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use scenarios::corpus::{CorpusConfig, CorpusStats};

/// Version of the entry layout; bump it when what an entry holds changes. 2: the local Garage's
/// metadata is LMDB, no longer SQLite.
pub const FORMAT: u32 = 2;

/// The file that makes an entry complete.
pub const MANIFEST: &str = "manifest.json";

/// Errors reading or writing the cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("corpus cache {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corpus cache manifest {path}: {detail}")]
    Manifest { path: PathBuf, detail: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What identifies an entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheKey {
    pub format: u32,
    pub corpus: CorpusConfig,
    /// The node's newest migration.
    pub schema_version: i64,
    /// `local` or `docker`: what the saved files are restored into.
    pub provider: String,
}

impl CacheKey {
    pub fn new(corpus: &CorpusConfig, schema_version: i64, provider: &str) -> Self {
        CacheKey {
            format: FORMAT,
            corpus: corpus.clone(),
            schema_version,
            provider: provider.to_string(),
        }
    }

    /// The entry's directory name: the hex SHA-256 of the key as JSON (first 24 digits).
    pub fn digest(&self) -> String {
        // Serializing plain data cannot fail; an empty string would still key consistently.
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(&json))[..24].to_string()
    }
}

/// What an entry holds besides its files: the key, the S3 key the objects belong to, the corpus
/// figures and how long seeding took.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub key: CacheKey,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Wall time of the upload that seeded it.
    pub seed_seconds: f64,
    /// Wall time of the save itself.
    pub save_seconds: f64,
    pub stats: CorpusStats,
    /// Uploaded files and bytes, as the seeding run counted them.
    pub uploaded_python_files: usize,
    pub uploaded_r_files: usize,
    pub uploaded_bytes: u64,
    /// The object store's access key the saved objects are owned by (Garage's metadata is
    /// restored with them, so the same key is valid again).
    pub s3_access_key: String,
    pub s3_secret_key: String,
    /// Version of the object store that wrote the files.
    pub s3_version: String,
}

/// The cache directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorpusCache {
    pub dir: PathBuf,
}

impl CorpusCache {
    /// `--corpus-cache DIR` if given, else the default location.
    pub fn at(dir: Option<PathBuf>) -> Self {
        CorpusCache {
            dir: dir.unwrap_or_else(default_dir),
        }
    }

    /// The entry directory for `key` (whether or not it exists).
    pub fn entry_dir(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(key.digest())
    }

    /// The complete entry for `key`, with its manifest; `None` when there is none, or when
    /// the manifest does not match the key (a hash collision or a hand-edited entry).
    pub fn lookup(&self, key: &CacheKey) -> Option<(PathBuf, Manifest)> {
        let dir = self.entry_dir(key);
        let manifest = read_manifest(&dir).ok()?;
        (manifest.key == *key).then_some((dir, manifest))
    }

    /// A fresh staging directory for a new entry, next to the entries (same file system, so
    /// [`CorpusCache::commit`] is one rename).
    pub fn staging(&self, key: &CacheKey) -> Result<PathBuf, CacheError> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let dir = self
            .dir
            .join(format!(".staging-{}-{}", key.digest(), std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
        }
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(dir)
    }

    /// Writes the manifest into `staging` and moves it into place as the entry of its key,
    /// replacing an older entry of the same key.
    pub fn commit(&self, staging: &Path, manifest: &Manifest) -> Result<PathBuf, CacheError> {
        let path = staging.join(MANIFEST);
        let json = serde_json::to_vec_pretty(manifest).map_err(|e| CacheError::Manifest {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        std::fs::write(&path, json).map_err(io(&path))?;
        let entry = self.entry_dir(&manifest.key);
        if entry.exists() {
            std::fs::remove_dir_all(&entry).map_err(io(&entry))?;
        }
        std::fs::rename(staging, &entry).map_err(io(&entry))?;
        Ok(entry)
    }

    /// Every complete entry: (directory, manifest).
    pub fn list(&self) -> Result<Vec<(PathBuf, Manifest)>, CacheError> {
        let mut entries = Vec::new();
        let read = match std::fs::read_dir(&self.dir) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(entries),
            Err(e) => return Err(io(&self.dir)(e)),
        };
        for entry in read {
            let path = entry.map_err(io(&self.dir))?.path();
            if let Ok(manifest) = read_manifest(&path) {
                entries.push((path, manifest));
            }
        }
        entries.sort_by_key(|(_, m)| m.created_at);
        Ok(entries)
    }

    /// Removes every entry (and any abandoned staging directory); returns how many entries.
    pub fn clear(&self) -> Result<usize, CacheError> {
        let read = match std::fs::read_dir(&self.dir) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io(&self.dir)(e)),
        };
        let mut removed = 0;
        for entry in read {
            let path = entry.map_err(io(&self.dir))?.path();
            if path.is_dir() {
                if path.join(MANIFEST).exists() {
                    removed += 1;
                }
                std::fs::remove_dir_all(&path).map_err(io(&path))?;
            }
        }
        Ok(removed)
    }
}

fn read_manifest(dir: &Path) -> Result<Manifest, CacheError> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read(&path).map_err(io(&path))?;
    serde_json::from_slice(&text).map_err(|e| CacheError::Manifest {
        path,
        detail: e.to_string(),
    })
}

/// `$PKGCLUSTER_CORPUS_CACHE`, `$XDG_CACHE_HOME/pkgcluster/corpus`, `~/.cache/pkgcluster/corpus`.
pub fn default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PKGCLUSTER_CORPUS_CACHE") {
        return PathBuf::from(dir);
    }
    pkgcluster_cache_dir().join("corpus")
}

/// The harness's cache directory, which the corpus cache and the builders image's root file
/// system live under: `$XDG_CACHE_HOME/pkgcluster`, else `~/.cache/pkgcluster`.
pub fn pkgcluster_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| std::env::temp_dir().join("cache"));
    base.join("pkgcluster")
}

/// Copies the tree `from` into `to` (created), hard-linking files where the file system allows
/// it (the saved object files are immutable: a store writes new files and renames, never
/// rewrites one) and copying them otherwise. Returns the number of files.
pub fn link_tree(from: &Path, to: &Path) -> Result<u64, CacheError> {
    copy_tree(from, to, true)
}

/// Copies the tree `from` into `to` (created), file by file, no links: for files a process will
/// change (a database).
pub fn copy_tree_files(from: &Path, to: &Path) -> Result<u64, CacheError> {
    copy_tree(from, to, false)
}

fn copy_tree(from: &Path, to: &Path, link: bool) -> Result<u64, CacheError> {
    std::fs::create_dir_all(to).map_err(io(to))?;
    let mut files = 0;
    for entry in std::fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().map_err(io(&source))?;
        if kind.is_dir() {
            files += copy_tree(&source, &target, link)?;
        } else if kind.is_file() {
            let linked = link && std::fs::hard_link(&source, &target).is_ok();
            if !linked {
                std::fs::copy(&source, &target).map_err(io(&source))?;
            }
            files += 1;
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(key: CacheKey) -> Manifest {
        let corpus = scenarios::corpus::Corpus::generate(&key.corpus).unwrap();
        Manifest {
            key,
            created_at: chrono::Utc::now(),
            seed_seconds: 1.0,
            save_seconds: 0.5,
            stats: corpus.stats(),
            uploaded_python_files: 1,
            uploaded_r_files: 1,
            uploaded_bytes: 10,
            s3_access_key: "GK1".into(),
            s3_secret_key: "s".into(),
            s3_version: "2.5.0".into(),
        }
    }

    #[test]
    fn key_changes_with_every_part() {
        let corpus = CorpusConfig::default();
        let base = CacheKey::new(&corpus, 3, "local");
        assert_eq!(base.digest(), CacheKey::new(&corpus, 3, "local").digest());
        let other_seed = CorpusConfig {
            seed: 2,
            ..corpus.clone()
        };
        let other_size = CorpusConfig {
            size_median_bytes: corpus.size_median_bytes + 1,
            ..corpus.clone()
        };
        for other in [
            CacheKey::new(&other_seed, 3, "local"),
            CacheKey::new(&other_size, 3, "local"),
            CacheKey::new(&corpus, 4, "local"),
            CacheKey::new(&corpus, 3, "docker"),
        ] {
            assert_ne!(base.digest(), other.digest(), "{other:?}");
        }
    }

    #[test]
    fn only_a_committed_entry_of_the_same_key_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CorpusCache::at(Some(dir.path().to_path_buf()));
        let corpus = CorpusConfig {
            packages: 4,
            ..CorpusConfig::default()
        };
        let key = CacheKey::new(&corpus, 3, "local");
        assert!(cache.lookup(&key).is_none());
        // A save interrupted before its manifest leaves no entry.
        let staging = cache.staging(&key).unwrap();
        std::fs::write(staging.join("db.dump"), b"x").unwrap();
        assert!(cache.lookup(&key).is_none());
        let entry = cache.commit(&staging, &manifest(key.clone())).unwrap();
        assert!(entry.join("db.dump").exists());
        let (found, manifest) = cache.lookup(&key).unwrap();
        assert_eq!((found, manifest.key), (entry, key.clone()));
        // Another schema version is another entry: not found.
        assert!(cache.lookup(&CacheKey::new(&corpus, 4, "local")).is_none());
        assert_eq!(cache.list().unwrap().len(), 1);
        assert_eq!(cache.clear().unwrap(), 1);
        assert!(cache.lookup(&key).is_none());
        assert!(cache.list().unwrap().is_empty());
    }

    #[test]
    fn link_tree_copies_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("a");
        std::fs::create_dir_all(from.join("x/y")).unwrap();
        std::fs::write(from.join("x/y/f"), b"1").unwrap();
        std::fs::write(from.join("g"), b"2").unwrap();
        let to = dir.path().join("b");
        assert_eq!(link_tree(&from, &to).unwrap(), 2);
        assert_eq!(std::fs::read(to.join("x/y/f")).unwrap(), b"1");
        let copied = dir.path().join("c");
        assert_eq!(copy_tree_files(&from, &copied).unwrap(), 2);
        assert_eq!(std::fs::read(copied.join("g")).unwrap(), b"2");
    }
}
