//! The two corpus shapes the harness offers, and the figures a report states about a corpus so
//! that two runs are only compared on the same one.
//!
//! Sizes. Package files are log-normal. The shape is fitted to published PyPI figures: a crawl of
//! 34,923 PyPI projects (ysar.net, "Python Package Statistics", October 2013) found a mean file
//! of 161 KiB with a standard deviation of 1 MiB; a log-normal with that mean and spread has
//! σ = √ln(1 + (1024/161)²) ≈ 1.93 and a median of 161 KiB / e^{σ²/2} ≈ 25 KiB. CRAN publishes
//! no such summary, but its policy caps data and documentation at 5 MB per package ("CRAN
//! Repository Policy", quoted in "Size and Limitations of Packages on CRAN",
//! thecoatlessprofessor.com, 2016) and its archive database lists typical small packages at
//! 40–50 kB (`tools:::CRAN_archive_db()`, e.g. `A3_0.9.1.tar.gz` 45,252 B, in "Exploring CRAN's
//! files: part 2", llrs.dev, 2022), the same order as PyPI's median; one distribution serves
//! both, clipped at CRAN's 5 MB. The realistic preset keeps σ and scales the median down to a
//! quarter (6.4 KiB) so that its ≈ 90,000 files (≈ 3 GB) seed on a shared CI machine;
//! `--size-median-bytes 25600` gives the fitted median.
//!
//! Counts. CRAN holds about 21,000 packages; the Python side takes every usable name of the
//! PyPI popularity list (about 15,000). Versions are a truncated geometric count (most packages
//! have one or two releases, a few many), older R versions land in `Archive/`; a tenth of the
//! Python packages ship one compiled wheel per CPython version, the rest one pure wheel, and
//! every version an sdist.

use serde::{Deserialize, Serialize};

use super::{Corpus, CorpusConfig, names};

/// R packages in the realistic corpus: CRAN's size.
pub const CRAN_PACKAGES: usize = 21_000;
/// σ of the natural log of package file sizes, fitted to PyPI's published mean and spread.
pub const FITTED_SIZE_SIGMA: f64 = 1.93;
/// Median package file, fitted the same way.
pub const FITTED_SIZE_MEDIAN_BYTES: u64 = 25 * 1024;
/// CRAN's per-package cap on data and documentation.
pub const CRAN_SIZE_CAP_BYTES: u64 = 5 * 1024 * 1024;

/// A named corpus shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CorpusPreset {
    /// 200 packages, one or two versions, pure wheels: seeds in seconds, for quick tests.
    Small,
    /// CRAN's scale for R and the whole PyPI list for Python, several versions, compiled wheels.
    Realistic,
}

impl CorpusPreset {
    /// The preset's name, as `--corpus` takes it.
    pub fn name(self) -> &'static str {
        match self {
            CorpusPreset::Small => "small",
            CorpusPreset::Realistic => "realistic",
        }
    }

    /// The config this preset draws from (seed 1).
    pub fn config(self) -> CorpusConfig {
        match self {
            CorpusPreset::Small => CorpusConfig::default(),
            CorpusPreset::Realistic => {
                let python = names::available().0;
                let packages = python + CRAN_PACKAGES;
                CorpusConfig {
                    packages,
                    r_share: CRAN_PACKAGES as f64 / packages as f64,
                    install_r_share: Some(0.5),
                    size_median_bytes: FITTED_SIZE_MEDIAN_BYTES / 4,
                    size_sigma: FITTED_SIZE_SIGMA,
                    size_max_bytes: CRAN_SIZE_CAP_BYTES,
                    max_deps: 6,
                    max_versions: 4,
                    older_version_probability: 0.4,
                    platform_wheel_share: 0.1,
                    ..CorpusConfig::default()
                }
            }
        }
    }
}

/// What a report states about the corpus a run used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CorpusStats {
    pub python_packages: usize,
    pub r_packages: usize,
    pub python_versions: usize,
    pub r_versions: usize,
    /// Wheels and sdists.
    pub python_files: usize,
    /// Source tarballs, current and archived.
    pub r_files: usize,
    /// Python packages with one compiled wheel per CPython version.
    pub python_packages_with_compiled_wheels: usize,
    /// Sum of the drawn sizes (artifacts come within a few percent).
    pub bytes: u64,
    pub size_median_bytes: u64,
    pub size_sigma: f64,
    pub size_max_bytes: u64,
}

impl Corpus {
    /// The corpus's counts and size distribution.
    pub fn stats(&self) -> CorpusStats {
        let python_versions = self.python.iter().map(|p| p.versions.len()).sum();
        let python_files = self
            .python
            .iter()
            .map(|p| p.versions.len() * self.files_per_version(p))
            .sum();
        let r_versions = self.r.iter().map(|p| p.versions.len()).sum();
        CorpusStats {
            python_packages: self.python.len(),
            r_packages: self.r.len(),
            python_versions,
            r_versions,
            python_files,
            r_files: r_versions,
            python_packages_with_compiled_wheels: self
                .python
                .iter()
                .filter(|p| !p.wheel_pythons.is_empty())
                .count(),
            bytes: self.total_drawn_bytes(),
            size_median_bytes: self.config.size_median_bytes,
            size_sigma: self.config.size_sigma,
            size_max_bytes: self.config.size_max_bytes,
        }
    }
}

impl CorpusStats {
    /// Files of both ecosystems.
    pub fn files(&self) -> usize {
        self.python_files + self.r_files
    }
}
