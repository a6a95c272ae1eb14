//! The metadata model: sources, repos, subscriptions and package files, as stored and as served.

use serde::{Deserialize, Serialize};

/// Where packages come from. Names follow Posit Package Manager's source types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceKind {
    /// R packages uploaded locally (`local`).
    #[serde(rename = "local")]
    Local,
    /// Python packages uploaded locally (`local-python`).
    #[serde(rename = "local-python")]
    LocalPython,
    /// R packages built from a Git repository by its git builders (`git`).
    #[serde(rename = "git")]
    Git,
    /// Python packages built from a Git repository by its git builders (`git-python`).
    #[serde(rename = "git-python")]
    GitPython,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::LocalPython => "local-python",
            Self::Git => "git",
            Self::GitPython => "git-python",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "local" => Some(Self::Local),
            "local-python" => Some(Self::LocalPython),
            "git" => Some(Self::Git),
            "git-python" => Some(Self::GitPython),
            _ => None,
        }
    }

    /// The repository type that may subscribe to this source.
    pub fn repo_kind(self) -> RepoKind {
        match self {
            Self::Local | Self::Git => RepoKind::R,
            Self::LocalPython | Self::GitPython => RepoKind::Python,
        }
    }

    /// Whether packages come from git builders rather than uploads.
    pub fn is_git(self) -> bool {
        matches!(self, Self::Git | Self::GitPython)
    }
}

/// The client protocol a repository speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RepoKind {
    R,
    Python,
}

impl RepoKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::R => "r",
            Self::Python => "python",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "r" => Some(Self::R),
            "python" => Some(Self::Python),
            _ => None,
        }
    }
}

/// What kind of file a package file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    Wheel,
    Sdist,
    RSource,
}

impl FileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wheel => "wheel",
            Self::Sdist => "sdist",
            Self::RSource => "r-source",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "wheel" => Some(Self::Wheel),
            "sdist" => Some(Self::Sdist),
            "r-source" => Some(Self::RSource),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    pub id: i64,
    pub name: String,
    pub kind: SourceKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repo {
    pub id: i64,
    pub name: String,
    pub kind: RepoKind,
    /// Reading needs a `repos:read` token.
    pub authenticated: bool,
}

/// Metadata read from inside the file, kept for index generation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_python: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires_dist: Vec<String>,
    /// CRAN `PACKAGES` fields (Depends, Imports, LinkingTo, Suggests, License, NeedsCompilation…),
    /// in DESCRIPTION order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub index_fields: Vec<(String, String)>,
}

/// One stored package file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageFile {
    pub id: i64,
    pub source_id: i64,
    /// The name as the package spells it.
    pub name: String,
    /// The name as clients look it up (PEP 503 for Python; as-is for R).
    pub normalized: String,
    pub version: String,
    pub filename: String,
    pub kind: FileKind,
    pub sha256: String,
    pub md5: String,
    pub size_bytes: i64,
    pub metadata: FileMetadata,
    pub added_tx: i64,
}

/// A file about to be stored.
#[derive(Debug, Clone)]
pub struct NewPackageFile {
    pub source_id: i64,
    pub name: String,
    pub normalized: String,
    pub version: String,
    pub filename: String,
    pub kind: FileKind,
    pub sha256: String,
    pub md5: String,
    pub size_bytes: i64,
    pub metadata: FileMetadata,
}
