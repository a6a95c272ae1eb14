//! An R repository's index: per package a pre-rendered `PACKAGES` stanza, and the packages cut
//! into groups whose compressed pieces of `PACKAGES.gz` and `PACKAGES.rds` are kept, so that a
//! new transaction recompresses only the groups it changed.
//!
//! The three files are joined from the groups when first asked for, so a step that changes one
//! package costs that package's group, not the repository.
//!
//! Group boundaries depend on package names alone (a group ends at a name whose hash is a
//! multiple of [`GROUP_SPAN`]) and each piece on its group's packages alone, so the files are
//! the same bytes whichever way a view was built (see `formats::chunked_gzip`).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use imbl::OrdMap;

use crate::formats::chunked_gzip::{self, Piece};
use crate::formats::{cran, rds};
use crate::store::PackageFile;

/// About how many packages a group holds: big enough that the pieces compress nearly as well
/// as one stream (each `PACKAGES.rds` piece is one column of a group), small enough that
/// recompressing one is cheap.
const GROUP_SPAN: u64 = 256;

/// One package: the files of the source that provides it, and its `PACKAGES` stanza.
#[derive(Debug)]
pub struct RPackage {
    /// The providing source's subscription priority.
    pub(super) priority: i64,
    /// That source's files of the package, in upload order.
    pub(super) files: Vec<Arc<PackageFile>>,
    /// The same files oldest version first; the last is the current one.
    by_version: Vec<Arc<PackageFile>>,
    stanza: String,
}

impl RPackage {
    /// `files` is never empty.
    pub(super) fn new(priority: i64, files: Vec<Arc<PackageFile>>) -> Self {
        let mut by_version = files.clone();
        // Stable: of two equal versions, the later upload is current, as in every build.
        by_version.sort_by(|a, b| cran::compare_versions(&a.version, &b.version));
        let stanza = by_version
            .last()
            .map(|latest| cran::stanza(&index_entry(latest)))
            .unwrap_or_default();
        Self {
            priority,
            files,
            by_version,
            stanza,
        }
    }

    pub fn current(&self) -> Option<&Arc<PackageFile>> {
        self.by_version.last()
    }

    /// Older versions, served under `Archive/{package}/`.
    pub fn archived(&self) -> &[Arc<PackageFile>] {
        &self.by_version[..self.by_version.len().saturating_sub(1)]
    }
}

fn index_entry(file: &PackageFile) -> cran::IndexEntry<'_> {
    cran::IndexEntry {
        name: &file.name,
        version: &file.version,
        md5: &file.md5,
        fields: &file.metadata.index_fields,
    }
}

/// A run of consecutive packages and its compressed pieces.
#[derive(Debug)]
struct Group {
    /// The first package's name: where a later build looks for this group.
    first: Arc<str>,
    members: Vec<Arc<RPackage>>,
    packages: Piece,
    /// One piece per `PACKAGES.rds` column; `None` past R's 32-bit lengths.
    rds_columns: Option<Vec<Piece>>,
}

impl Group {
    fn build(first: Arc<str>, members: Vec<Arc<RPackage>>, columns: usize) -> Self {
        let text: String = members.iter().map(|p| p.stanza.as_str()).collect();
        let rows: Vec<Vec<Option<&str>>> = members
            .iter()
            .filter_map(|p| p.current())
            .map(|f| cran::rds_row(&index_entry(f)))
            .collect();
        let rds_columns = (0..columns)
            .map(|column| {
                let mut bytes = Vec::new();
                for row in &rows {
                    rds::cell(&mut bytes, row[column]).ok()?;
                }
                Some(Piece::compress(&bytes))
            })
            .collect();
        Self {
            packages: Piece::compress(text.as_bytes()),
            first,
            members,
            rds_columns,
        }
    }

    /// Whether this group holds exactly these packages (the same, unchanged entries).
    fn holds(&self, members: &[Arc<RPackage>]) -> bool {
        self.members.len() == members.len()
            && self
                .members
                .iter()
                .zip(members)
                .all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

/// Where a group ends: FNV-1a of the name, fixed so that every node cuts alike.
fn ends_group(name: &str) -> bool {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash.is_multiple_of(GROUP_SPAN)
}

/// The served files of an R repository and what the next build reuses.
#[derive(Debug, Default)]
pub struct CranIndex {
    groups: Vec<Arc<Group>>,
    /// How many packages the groups hold.
    rows: usize,
    repo_name: String,
    packages: OnceLock<Bytes>,
    packages_gz: OnceLock<Bytes>,
    packages_rds: OnceLock<Bytes>,
}

impl CranIndex {
    /// The index of `packages`, reusing the groups of `previous` that did not change.
    pub(super) fn assemble(
        packages: &OrdMap<Arc<str>, Arc<RPackage>>,
        previous: Option<&CranIndex>,
        repo_name: &str,
    ) -> Self {
        let columns = cran::rds_columns();
        let reusable: HashMap<&str, &Arc<Group>> = previous
            .map(|p| p.groups.iter().map(|g| (g.first.as_ref(), g)).collect())
            .unwrap_or_default();
        let mut groups = Vec::new();
        let mut first: Option<Arc<str>> = None;
        let mut members: Vec<Arc<RPackage>> = Vec::new();
        let mut close = |first: Option<Arc<str>>, members: &mut Vec<Arc<RPackage>>| {
            let Some(first) = first else { return };
            let group = match reusable.get(first.as_ref()) {
                Some(old) if old.holds(members) => Arc::clone(old),
                _ => Arc::new(Group::build(first, std::mem::take(members), columns.len())),
            };
            members.clear();
            groups.push(group);
        };
        for (name, package) in packages {
            first.get_or_insert_with(|| Arc::clone(name));
            members.push(Arc::clone(package));
            if ends_group(name) {
                close(first.take(), &mut members);
            }
        }
        close(first.take(), &mut members);
        Self {
            groups,
            rows: packages.len(),
            repo_name: repo_name.to_string(),
            ..Self::default()
        }
    }

    /// `PACKAGES`: every package's stanza, in name order.
    pub fn packages(&self) -> &Bytes {
        self.packages.get_or_init(|| {
            let members = || self.groups.iter().flat_map(|g| g.members.iter());
            let mut text = String::with_capacity(members().map(|p| p.stanza.len()).sum());
            for package in members() {
                text.push_str(&package.stanza);
            }
            Bytes::from(text)
        })
    }

    /// `PACKAGES.gz`: the groups' compressed pieces joined into one gzip member.
    pub fn packages_gz(&self) -> &Bytes {
        self.packages_gz.get_or_init(|| {
            Bytes::from(chunked_gzip::assemble(
                self.groups.iter().map(|g| &g.packages),
            ))
        })
    }

    /// `PACKAGES.rds`; empty when it could not be built (past R's 32-bit lengths).
    pub fn packages_rds(&self) -> &Bytes {
        self.packages_rds.get_or_init(|| {
            match rds_file(&self.groups, self.rows, &cran::rds_columns()) {
                Ok(bytes) => Bytes::from(bytes),
                // Only past 2^31 cells; R then falls back to `PACKAGES.gz`, as with a 404.
                Err(e) => {
                    tracing::warn!(repo = self.repo_name, "PACKAGES.rds not built: {e}");
                    Bytes::new()
                }
            }
        })
    }
}

/// `PACKAGES.rds`: the matrix header, each column group by group, the attributes.
fn rds_file(
    groups: &[Arc<Group>],
    rows: usize,
    columns: &[&str],
) -> Result<Vec<u8>, rds::RdsError> {
    let header = Piece::compress(&rds::matrix_header(rows, columns.len())?);
    let trailer = Piece::compress(&rds::matrix_trailer(rows, columns)?);
    let mut pieces = vec![&header];
    for column in 0..columns.len() {
        for group in groups {
            let piece = group
                .rds_columns
                .as_ref()
                .and_then(|c| c.get(column))
                .ok_or(rds::RdsError::TooLong(rows))?;
            pieces.push(piece);
        }
    }
    pieces.push(&trailer);
    Ok(chunked_gzip::assemble(pieces))
}
