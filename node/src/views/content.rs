//! What a repository serves at one transaction, built in full from every visible file or as
//! the previous transaction's content plus the files added since. Both paths make the same
//! per-name entries and assemble them with the same code, so they serve the same bytes.
//!
//! The highest-priority source that holds a name provides all of it, as Package Manager does.
//! Entries are shared (`Arc`) between the contents of successive transactions, in persistent
//! maps (`imbl`): a step rebuilds only the names its files touched and shares the rest of the
//! maps with the previous content, so its cost follows what changed. What is rendered from the
//! whole repository (the simple index's root page, `PACKAGES`) is rendered when first asked for.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use imbl::OrdMap;

use super::cran_index::{CranIndex, RPackage};
use super::file_index::{Claim, FileIndex};
use crate::formats::pypi;
use crate::store::{PackageFile, RepoKind};

/// One Python project.
#[derive(Debug)]
pub struct Project {
    pub display_name: String,
    /// The providing source's files, in upload order.
    pub files: Vec<Arc<PackageFile>>,
    /// The providing source's subscription priority.
    priority: i64,
}

impl Project {
    fn new(normalized: &str, priority: i64, files: Vec<Arc<PackageFile>>) -> Self {
        let display_name = files
            .last()
            .map(|f| f.name.clone())
            .unwrap_or_else(|| normalized.to_string());
        Self {
            display_name,
            files,
            priority,
        }
    }
}

/// Everything a repository serves at one transaction.
#[derive(Debug, Default)]
pub struct Content {
    /// Python: projects by normalized name.
    pub projects: OrdMap<Arc<str>, Arc<Project>>,
    /// Python: files by file name (of two with one name, the first project's, first file).
    files: FileIndex,
    /// Python: the simple index's root page, PEP 503 HTML and PEP 691 JSON, rendered at the
    /// first request (pip never asks for it; a mirror does, once per transaction at most).
    root_html: OnceLock<Bytes>,
    root_json: OnceLock<Bytes>,
    /// R: packages by name.
    r_packages: OrdMap<Arc<str>, Arc<RPackage>>,
    /// R: current tarballs by file name (of two with one name, the later package's).
    current: FileIndex,
    /// R: `PACKAGES`, `PACKAGES.gz` and `PACKAGES.rds`.
    pub(super) cran: CranIndex,
}

/// Files leaving and entering a file index in one step.
type Replaced = (Vec<Arc<PackageFile>>, Vec<Arc<PackageFile>>);

/// Rows as the store lists them (priority, name, id order) grouped by name: the files of the
/// lowest priority number holding each name, in id order.
fn owners(rows: Vec<(PackageFile, i64)>) -> BTreeMap<String, (i64, Vec<Arc<PackageFile>>)> {
    let mut by_name: BTreeMap<String, (i64, Vec<Arc<PackageFile>>)> = BTreeMap::new();
    for (file, priority) in rows {
        let (owner, files) = by_name
            .entry(file.normalized.clone())
            .or_insert_with(|| (priority, Vec::new()));
        if *owner == priority {
            files.push(Arc::new(file));
        }
    }
    by_name
}

/// A name's files after `added` (its new files, each with its priority) landed on `old`
/// (priority and files before), or `None` when the new files are all shadowed.
fn with_added(
    old: Option<(i64, &[Arc<PackageFile>])>,
    added: Vec<(Arc<PackageFile>, i64)>,
) -> Option<(i64, Vec<Arc<PackageFile>>)> {
    let lowest = added.iter().map(|(_, p)| *p).min()?;
    let mut files: Vec<Arc<PackageFile>> = match old {
        // Shadowed by the source that provides the name.
        Some((owner, _)) if owner < lowest => return None,
        Some((owner, files)) if owner == lowest => files.to_vec(),
        // A higher-priority source now holds the name: it had none of its files before
        // (subscriptions did not change), so its files are all among the new ones.
        _ => Vec::new(),
    };
    files.extend(
        added
            .into_iter()
            .filter(|(_, p)| *p == lowest)
            .map(|(f, _)| f),
    );
    files.sort_by_key(|f| f.id);
    Some((lowest, files))
}

impl Content {
    /// From every file visible at a transaction (`Store::repo_files_at`).
    pub fn full(kind: RepoKind, rows: Vec<(PackageFile, i64)>, repo_name: &str) -> Self {
        let mut content = Self::default();
        for (name, (priority, files)) in owners(rows) {
            let name: Arc<str> = Arc::from(name);
            match kind {
                RepoKind::Python => {
                    let project = Project::new(&name, priority, files);
                    content.projects.insert(name, Arc::new(project));
                }
                RepoKind::R => {
                    content
                        .r_packages
                        .insert(name, Arc::new(RPackage::new(priority, files)));
                }
            }
        }
        content.assemble(kind, None, repo_name);
        content
    }

    /// The whole-repository parts, from the entries; with `previous`, its compressed pieces
    /// are reused and its file index patched with `replaced` (files out, files in).
    fn assemble(
        &mut self,
        kind: RepoKind,
        previous: Option<(&Content, Replaced)>,
        repo_name: &str,
    ) {
        match kind {
            RepoKind::Python => {
                self.files = previous
                    .as_ref()
                    .and_then(|(p, (out, into))| p.files.patched(out, into))
                    .unwrap_or_else(|| {
                        FileIndex::build(
                            self.projects.values().flat_map(|p| p.files.iter()),
                            Claim::FirstWins,
                        )
                    });
            }
            RepoKind::R => {
                self.current = previous
                    .as_ref()
                    .and_then(|(p, (out, into))| p.current.patched(out, into))
                    .unwrap_or_else(|| {
                        FileIndex::build(
                            self.r_packages.values().filter_map(|p| p.current()),
                            Claim::LastWins,
                        )
                    });
                self.cran = CranIndex::assemble(
                    &self.r_packages,
                    previous.map(|(p, _)| &p.cran),
                    repo_name,
                );
            }
        }
    }

    /// `previous` plus the files the transactions since added (`Store::repo_additions`).
    pub fn with_additions(
        previous: &Content,
        kind: RepoKind,
        rows: Vec<(PackageFile, i64)>,
        repo_name: &str,
    ) -> Self {
        let mut added: BTreeMap<String, Vec<(Arc<PackageFile>, i64)>> = BTreeMap::new();
        for (file, priority) in rows {
            added
                .entry(file.normalized.clone())
                .or_default()
                .push((Arc::new(file), priority));
        }
        let (mut out, mut into) = (Vec::new(), Vec::new());
        let mut content = Self {
            projects: previous.projects.clone(),
            r_packages: previous.r_packages.clone(),
            ..Self::default()
        };
        for (name, files) in added {
            match kind {
                RepoKind::Python => {
                    let old = content
                        .projects
                        .get(name.as_str())
                        .map(|p| (p.priority, p.files.as_slice()));
                    if let Some((priority, files)) = with_added(old, files) {
                        let project = Project::new(&name, priority, files);
                        into.extend(project.files.iter().cloned());
                        if let Some(old) =
                            content.projects.insert(Arc::from(name), Arc::new(project))
                        {
                            out.extend(old.files.iter().cloned());
                        }
                    }
                }
                RepoKind::R => {
                    let old = content
                        .r_packages
                        .get(name.as_str())
                        .map(|p| (p.priority, p.files.as_slice()));
                    if let Some((priority, files)) = with_added(old, files) {
                        let package = RPackage::new(priority, files);
                        into.extend(package.current().cloned());
                        if let Some(old) = content
                            .r_packages
                            .insert(Arc::from(name), Arc::new(package))
                        {
                            out.extend(old.current().cloned());
                        }
                    }
                }
            }
        }
        content.assemble(kind, Some((previous, (out, into))), repo_name);
        content
    }

    /// R: `PACKAGES`, the newest version of each package.
    pub fn packages(&self) -> &Bytes {
        self.cran.packages()
    }

    /// R: `PACKAGES.gz`.
    pub fn packages_gz(&self) -> &Bytes {
        self.cran.packages_gz()
    }

    /// R: `PACKAGES.rds`, what R 4.x asks for first; empty when it could not be built.
    pub fn packages_rds(&self) -> &Bytes {
        self.cran.packages_rds()
    }

    /// Python: a file by its name.
    pub fn file(&self, filename: &str) -> Option<&PackageFile> {
        self.files.get(filename)
    }

    /// R: a current tarball by its file name.
    pub fn current_file(&self, filename: &str) -> Option<&PackageFile> {
        self.current.get(filename)
    }

    /// R: an older version of `package` by its file name (`Archive/{package}/{file}`).
    pub fn archived_file(&self, package: &str, filename: &str) -> Option<&PackageFile> {
        self.r_packages
            .get(package)?
            .archived()
            .iter()
            .rev()
            .find(|f| f.filename == filename)
            .map(|f| f.as_ref())
    }

    /// R: every current tarball.
    pub fn current_files(&self) -> impl Iterator<Item = &PackageFile> {
        self.current.files()
    }

    /// R: every archived file with its package.
    pub fn archived_files(&self) -> impl Iterator<Item = (&str, &PackageFile)> {
        self.r_packages.iter().flat_map(|(name, package)| {
            package
                .archived()
                .iter()
                .map(move |f| (name.as_ref(), f.as_ref()))
        })
    }

    /// Python: the simple index's root page as PEP 503 HTML.
    pub fn root_html(&self) -> Bytes {
        self.root_html
            .get_or_init(|| match pypi::root_html(&self.display_names()) {
                Ok(html) => Bytes::from(html),
                Err(e) => {
                    // Askama fails only when writing fails; a String does not.
                    tracing::error!("rendering the simple index: {e}");
                    Bytes::new()
                }
            })
            .clone()
    }

    /// Python: the simple index's root page as PEP 691 JSON.
    pub fn root_json(&self) -> Bytes {
        self.root_json
            .get_or_init(|| Bytes::from(pypi::root_json_text(&self.display_names())))
            .clone()
    }

    fn display_names(&self) -> Vec<&str> {
        self.projects
            .values()
            .map(|p| p.display_name.as_str())
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{FileKind, FileMetadata};

    fn file(id: i64, name: &str, version: &str) -> PackageFile {
        PackageFile {
            id,
            source_id: 1,
            name: name.into(),
            normalized: name.into(),
            version: version.into(),
            filename: format!("{name}_{version}.tar.gz"),
            kind: FileKind::RSource,
            sha256: "00".into(),
            md5: format!("{id:032x}"),
            size_bytes: 1,
            metadata: FileMetadata::default(),
            added_tx: id,
        }
    }

    /// The store's order: priority, name, id.
    fn sorted(mut rows: Vec<(PackageFile, i64)>) -> Vec<(PackageFile, i64)> {
        rows.sort_by(|(a, p), (b, q)| (p, &a.normalized, a.id).cmp(&(q, &b.normalized, b.id)));
        rows
    }

    #[test]
    fn additions_follow_the_priority_rule() {
        let base = vec![(file(1, "a", "1.0"), 2), (file(2, "b", "1.0"), 1)];
        let added = vec![
            // `a` is taken over by the higher-priority source.
            (file(3, "a", "0.5"), 1),
            // `b`'s new file from the lower-priority source is shadowed.
            (file(4, "b", "2.0"), 2),
            (file(5, "c", "1.0"), 3),
        ];
        let before = Content::full(RepoKind::R, sorted(base.clone()), "r");
        let stepped = Content::with_additions(&before, RepoKind::R, sorted(added.clone()), "r");
        let full = Content::full(RepoKind::R, sorted([base, added].concat()), "r");
        assert_eq!(stepped.packages(), full.packages());
        assert_eq!(stepped.packages_gz(), full.packages_gz());
        assert_eq!(stepped.packages_rds(), full.packages_rds());
        let text = std::str::from_utf8(full.packages()).unwrap();
        assert!(text.contains("Package: a\nVersion: 0.5\n"), "{text}");
        assert!(text.contains("Package: b\nVersion: 1.0\n"), "{text}");
        assert!(text.contains("Package: c\nVersion: 1.0\n"), "{text}");
    }

    #[test]
    fn an_older_version_goes_to_the_archive() {
        let base = vec![(file(1, "a", "2.0"), 1)];
        let before = Content::full(RepoKind::R, base, "r");
        let stepped =
            Content::with_additions(&before, RepoKind::R, vec![(file(2, "a", "1.0"), 1)], "r");
        assert_eq!(stepped.current_file("a_2.0.tar.gz").map(|f| f.id), Some(1));
        assert_eq!(
            stepped.archived_file("a", "a_1.0.tar.gz").map(|f| f.id),
            Some(2)
        );
        assert!(stepped.archived_file("a", "a_2.0.tar.gz").is_none());
    }
}
