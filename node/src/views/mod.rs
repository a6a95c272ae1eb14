//! Snapshot views: everything a repository served at one transaction, built once and cached.
//!
//! **Invariant:** a view is a pure function of (repo, transaction id). Views are never invalidated;
//! a new transaction moves `latest` to a new key, and older snapshots keep their exact content.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use chrono::NaiveDate;

use crate::formats::{cran, pypi};
use crate::store::{PackageFile, Repo, RepoKind, Store, StoreError};

/// Which state of a repository a URL asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snapshot {
    Latest,
    Tx(i64),
    /// The state at the end of this UTC day.
    Date(NaiveDate),
}

impl Snapshot {
    pub fn parse(text: &str) -> Option<Self> {
        if text == "latest" {
            return Some(Self::Latest);
        }
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return text.parse().ok().map(Self::Tx);
        }
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .map(Self::Date)
    }
}

/// One Python project in a view.
#[derive(Debug)]
pub struct Project {
    pub display_name: String,
    pub files: Vec<PackageFile>,
}

/// A repository at one transaction.
#[derive(Debug)]
pub struct RepoView {
    pub repo: Repo,
    pub tx: i64,
    /// Python: projects by normalized name.
    pub projects: BTreeMap<String, Project>,
    /// Python files by file name.
    pub files: HashMap<String, PackageFile>,
    /// R: `PACKAGES` and its gzip, newest version of each package.
    pub packages: Bytes,
    pub packages_gz: Bytes,
    /// R: `PACKAGES.rds`, what R 4.x asks for first; empty when it could not be built.
    pub packages_rds: Bytes,
    /// R: newest version's tarball by file name.
    pub current: HashMap<String, PackageFile>,
    /// R: older versions by (package, file name).
    pub archive: HashMap<(String, String), PackageFile>,
}

impl RepoView {
    /// Builds the view from the files visible at `tx`. The highest-priority source that has a
    /// name provides all of it, as Package Manager does.
    pub async fn build(store: &Store, repo: Repo, tx: i64) -> Result<Self, StoreError> {
        let rows = store.repo_files_at(repo.id, tx).await?;
        let mut owner: HashMap<String, i64> = HashMap::new();
        let mut by_name: BTreeMap<String, Vec<PackageFile>> = BTreeMap::new();
        for (file, priority) in rows {
            let first = *owner.entry(file.normalized.clone()).or_insert(priority);
            if first == priority {
                by_name
                    .entry(file.normalized.clone())
                    .or_default()
                    .push(file);
            }
        }
        let mut view = Self {
            repo,
            tx,
            projects: BTreeMap::new(),
            files: HashMap::new(),
            packages: Bytes::new(),
            packages_gz: Bytes::new(),
            packages_rds: Bytes::new(),
            current: HashMap::new(),
            archive: HashMap::new(),
        };
        match view.repo.kind {
            RepoKind::Python => view.fill_python(by_name),
            RepoKind::R => view.fill_r(by_name),
        }
        Ok(view)
    }

    fn fill_python(&mut self, by_name: BTreeMap<String, Vec<PackageFile>>) {
        for (normalized, files) in by_name {
            for file in &files {
                self.files
                    .entry(file.filename.clone())
                    .or_insert_with(|| file.clone());
            }
            let display_name = files
                .last()
                .map(|f| f.name.clone())
                .unwrap_or_else(|| normalized.clone());
            self.projects.insert(
                normalized,
                Project {
                    display_name,
                    files,
                },
            );
        }
    }

    fn fill_r(&mut self, by_name: BTreeMap<String, Vec<PackageFile>>) {
        let mut newest: Vec<PackageFile> = Vec::new();
        for (name, mut files) in by_name {
            files.sort_by(|a, b| cran::compare_versions(&a.version, &b.version));
            let Some(latest) = files.pop() else { continue };
            for older in files {
                self.archive
                    .insert((name.clone(), older.filename.clone()), older);
            }
            self.current.insert(latest.filename.clone(), latest.clone());
            newest.push(latest);
        }
        let entries: Vec<cran::IndexEntry<'_>> = newest
            .iter()
            .map(|f| cran::IndexEntry {
                name: &f.name,
                version: &f.version,
                md5: &f.md5,
                fields: &f.metadata.index_fields,
            })
            .collect();
        match cran::packages_rds(&entries) {
            Ok(rds) => self.packages_rds = Bytes::from(rds),
            // Only past 2^31 cells; R then falls back to `PACKAGES.gz`, as with a 404.
            Err(e) => tracing::warn!(repo = %self.repo.name, "PACKAGES.rds not built: {e}"),
        }
        let text = cran::packages_file(&entries);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        // Writing to a Vec cannot fail.
        let _ = gz.write_all(text.as_bytes());
        self.packages_gz = Bytes::from(gz.finish().unwrap_or_default());
        self.packages = Bytes::from(text);
    }

    /// Index links for a project page (relative to `…/simple/{name}/`).
    pub fn index_files<'a>(&'a self, project: &'a Project) -> Vec<pypi::IndexFile<'a>> {
        project
            .files
            .iter()
            .map(|f| pypi::IndexFile {
                filename: &f.filename,
                url: format!("../../packages/{}", f.filename),
                sha256: &f.sha256,
                requires_python: f.metadata.requires_python.as_deref(),
                size_bytes: f.size_bytes,
            })
            .collect()
    }
}

/// The view cache, keyed by (repo id, transaction id), plus the newest view built of each repo:
/// what `latest` falls back to while the database is unavailable.
#[derive(Clone)]
pub struct Views {
    cache: moka::future::Cache<(i64, i64), Arc<RepoView>>,
    newest: Arc<std::sync::Mutex<HashMap<i64, Arc<RepoView>>>>,
}

impl Views {
    pub fn new(capacity: u64) -> Self {
        Self {
            cache: moka::future::Cache::new(capacity),
            newest: Arc::default(),
        }
    }

    /// The newest view of `repo_id` this node has built, whatever its transaction.
    pub fn newest(&self, repo_id: i64) -> Option<Arc<RepoView>> {
        let newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
        newest.get(&repo_id).cloned()
    }

    fn remember(&self, view: &Arc<RepoView>) {
        let mut newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
        let entry = newest.entry(view.repo.id).or_insert_with(|| view.clone());
        if entry.tx < view.tx {
            *entry = view.clone();
        }
    }

    /// The cached view, or one built now (concurrent callers share one build). The flag says
    /// whether it came from the cache.
    pub async fn get(
        &self,
        store: &Store,
        repo: Repo,
        tx: i64,
    ) -> Result<(Arc<RepoView>, bool), Arc<StoreError>> {
        let key = (repo.id, tx);
        if let Some(view) = self.cache.get(&key).await {
            return Ok((view, true));
        }
        let view = self
            .cache
            .try_get_with(key, async {
                RepoView::build(store, repo, tx).await.map(Arc::new)
            })
            .await?;
        self.remember(&view);
        Ok((view, false))
    }
}
