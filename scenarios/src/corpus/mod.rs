//! The package corpus a load run installs: real PyPI names and their R look-alikes, Zipf
//! popularity over rank, a dependency DAG pointing at more popular packages, log-normal sizes,
//! one or more versions each (older R versions land in `Archive/`), and for a share of the
//! Python packages one wheel per CPython version so that pip's tag selection runs. Everything
//! is a pure function of [`CorpusConfig`]; [`CorpusPreset`] names the two shapes the harness
//! offers (`small` for quick tests, `realistic` at CRAN's and the PyPI list's scale).

mod artifacts;
mod names;
mod popularity;
mod preset;
mod python_artifacts;
mod r_artifacts;

use std::collections::HashSet;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use serde::{Deserialize, Serialize};

use crate::error::ScenarioError;

pub use artifacts::{Artifact, ArtifactKind, mix_seed};
pub use names::{dist_file_name, module_name, pep503_normalize};
pub use popularity::Popularity;
pub use preset::{CorpusPreset, CorpusStats};
pub use python_artifacts::{
    WHEEL_PLATFORM, WHEEL_PYTHONS, sdist_bytes, sdist_file_name, tagged_wheel_bytes,
    tagged_wheel_file_name, wheel_bytes, wheel_file_name, wheel_tag,
};
pub use r_artifacts::{description as r_description, r_tarball_bytes, r_tarball_file_name};

/// Smallest artifact size drawn: the metadata alone takes about this much.
pub const MIN_SIZE_BYTES: u64 = 2_048;

/// Largest dependency fan-out a config may ask for.
pub const MAX_DEPS_LIMIT: usize = 20;

/// Most versions a config may give one package.
pub const MAX_VERSIONS_LIMIT: usize = 50;

/// How the corpus is drawn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorpusConfig {
    /// Packages in both ecosystems together.
    pub packages: usize,
    /// Share of `packages` that are R packages, and share of installs that are R installs.
    pub r_share: f64,
    /// Median artifact size.
    pub size_median_bytes: u64,
    /// Sigma of the log-normal size distribution (of the natural log of the size).
    pub size_sigma: f64,
    /// Sizes above this are clipped to it.
    pub size_max_bytes: u64,
    /// Each package depends on `0..=max_deps` more popular packages of its ecosystem.
    pub max_deps: usize,
    /// Exponent `s` of the Zipf popularity: package of rank `k` is installed ∝ `k^-s`.
    pub zipf_exponent: f64,
    /// Seed for every random draw; the same seed gives the same corpus, byte for byte.
    pub seed: u64,
    /// Most versions of one package. Each package has the newest, and each older one (down to
    /// this many) with `older_version_probability` after the previous: a truncated geometric
    /// count, as release histories are.
    pub max_versions: usize,
    /// Chance that a package has one more, older, version.
    pub older_version_probability: f64,
    /// Share of Python packages that ship compiled wheels: one per CPython version of
    /// [`WHEEL_PYTHONS`] on [`WHEEL_PLATFORM`] (the others ship one `py3-none-any` wheel); every
    /// version has an sdist as well.
    pub platform_wheel_share: f64,
    /// Share of installs that are R installs, when it differs from `r_share` (the share of
    /// packages): CRAN has more packages than the PyPI list, not more installs.
    pub install_r_share: Option<f64>,
}

impl Default for CorpusConfig {
    fn default() -> Self {
        CorpusConfig {
            packages: 200,
            r_share: 0.5,
            size_median_bytes: 100_000,
            size_sigma: 1.2,
            size_max_bytes: 20 * 1024 * 1024,
            max_deps: 3,
            zipf_exponent: 1.1,
            seed: 1,
            max_versions: 2,
            older_version_probability: 0.5,
            platform_wheel_share: 0.0,
            install_r_share: None,
        }
    }
}

impl CorpusConfig {
    /// Package counts per ecosystem: `(python, r)`.
    pub fn split(&self) -> (usize, usize) {
        let r = (self.packages as f64 * self.r_share.clamp(0.0, 1.0)).round() as usize;
        (self.packages - r.min(self.packages), r.min(self.packages))
    }

    /// Checks every field; returns all problems found, not just the first.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.packages == 0 {
            problems.push("packages must be at least 1".to_string());
        }
        if !(0.0..=1.0).contains(&self.r_share) {
            problems.push(format!(
                "r_share must be between 0 and 1, got {}",
                self.r_share
            ));
        } else if self.packages > 0 {
            let (python, r) = self.split();
            if self.r_share > 0.0 && self.r_share < 1.0 && (python == 0 || r == 0) {
                problems.push(format!(
                    "{} packages cannot be split {:.0}% R / {:.0}% Python with at least one each",
                    self.packages,
                    self.r_share * 100.0,
                    (1.0 - self.r_share) * 100.0
                ));
            }
            let (python_max, r_max) = names::available();
            if python > python_max {
                problems.push(format!(
                    "{python} Python packages asked for, the name list has {python_max}"
                ));
            }
            if r > r_max {
                problems.push(format!(
                    "{r} R packages asked for, the name list gives {r_max}"
                ));
            }
        }
        if self.size_median_bytes < MIN_SIZE_BYTES {
            problems.push(format!(
                "size_median_bytes must be at least {MIN_SIZE_BYTES}, got {}",
                self.size_median_bytes
            ));
        }
        if !(self.size_sigma.is_finite() && self.size_sigma >= 0.0 && self.size_sigma <= 5.0) {
            problems.push(format!(
                "size_sigma must be between 0 and 5, got {}",
                self.size_sigma
            ));
        }
        if self.size_max_bytes < self.size_median_bytes {
            problems.push(format!(
                "size_max_bytes ({}) must be at least size_median_bytes ({})",
                self.size_max_bytes, self.size_median_bytes
            ));
        }
        if self.max_deps > MAX_DEPS_LIMIT {
            problems.push(format!(
                "max_deps must be at most {MAX_DEPS_LIMIT}, got {}",
                self.max_deps
            ));
        }
        if self.max_versions == 0 || self.max_versions > MAX_VERSIONS_LIMIT {
            problems.push(format!(
                "max_versions must be between 1 and {MAX_VERSIONS_LIMIT}, got {}",
                self.max_versions
            ));
        }
        for (name, value) in [
            ("older_version_probability", self.older_version_probability),
            ("platform_wheel_share", self.platform_wheel_share),
            (
                "install_r_share",
                self.install_r_share.unwrap_or(self.r_share.clamp(0.0, 1.0)),
            ),
        ] {
            if !(0.0..=1.0).contains(&value) {
                problems.push(format!("{name} must be between 0 and 1, got {value}"));
            }
        }
        if !(self.zipf_exponent.is_finite() && self.zipf_exponent > 0.0) {
            problems.push(format!(
                "zipf_exponent must be a positive number, got {}",
                self.zipf_exponent
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// The two package ecosystems the node serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Ecosystem {
    /// PyPI-style repository, installed with pip.
    Python,
    /// CRAN-style repository, installed with `install.packages`.
    R,
}

/// A package in the corpus: its ecosystem and its index there (0 = most popular).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PkgId {
    /// Which ecosystem.
    pub ecosystem: Ecosystem,
    /// Index into that ecosystem's packages, in popularity order.
    pub index: usize,
}

/// One released version of a package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageVersion {
    /// The version string, a plain dotted release.
    pub version: String,
    /// The drawn size of each artifact of this version; artifacts come within a few percent.
    pub size_bytes: u64,
    /// Seed of the artifact's padding bytes, so artifacts are identical on every build.
    pub content_seed: u64,
}

/// A Python package of the corpus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PyPackage {
    /// The project name as listed on PyPI.
    pub name: String,
    /// Popularity rank within the Python packages, 1 = most popular.
    pub rank: usize,
    /// Versions, oldest first; the last one is what an unpinned install gets.
    pub versions: Vec<PackageVersion>,
    /// Indices of the Python packages this one requires (all more popular).
    pub deps: Vec<usize>,
    /// Names of those packages, for `Requires-Dist`.
    pub requires: Vec<String>,
    /// CPython tags (`cp311`, …) of its compiled wheels; empty for a pure-Python package,
    /// which ships one `py3-none-any` wheel per version.
    #[serde(default)]
    pub wheel_pythons: Vec<String>,
}

/// An R package of the corpus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RPackage {
    /// The package name, valid for R.
    pub name: String,
    /// Popularity rank within the R packages, 1 = most popular.
    pub rank: usize,
    /// Versions, oldest first; the last one is current, older ones live in the archive.
    pub versions: Vec<PackageVersion>,
    /// Indices of the R packages this one imports (all more popular).
    pub deps: Vec<usize>,
    /// Names of those packages, for `Imports:`.
    pub imports: Vec<String>,
}

impl PyPackage {
    /// PEP 503 normalized name, as in `simple/{name}/`.
    pub fn normalized(&self) -> String {
        pep503_normalize(&self.name)
    }

    /// The newest version, what pip picks.
    pub fn latest(&self) -> &PackageVersion {
        self.versions.last().expect("every package has a version")
    }
}

impl RPackage {
    /// The current version, the one listed in `PACKAGES`.
    pub fn latest(&self) -> &PackageVersion {
        self.versions.last().expect("every package has a version")
    }
}

/// A generated corpus: both ecosystems with their popularity and dependencies.
#[derive(Clone, Debug)]
pub struct Corpus {
    config: CorpusConfig,
    python: Vec<PyPackage>,
    r: Vec<RPackage>,
    python_popularity: Popularity,
    r_popularity: Popularity,
}

/// What the generator draws for one package before it is typed by ecosystem.
struct Drawn {
    name: String,
    versions: Vec<PackageVersion>,
    deps: Vec<usize>,
    dep_names: Vec<String>,
    compiled: bool,
}

impl Corpus {
    /// Draws the corpus; the same config (seed included) gives the same corpus.
    pub fn generate(config: &CorpusConfig) -> Result<Corpus, ScenarioError> {
        config
            .validate()
            .map_err(|problems| ScenarioError::InvalidConfig {
                what: "corpus",
                problems,
            })?;
        let (python_count, r_count) = config.split();
        let python_popularity = Popularity::zipf(python_count, config.zipf_exponent);
        let r_popularity = Popularity::zipf(r_count, config.zipf_exponent);
        let python = draw(
            config,
            Ecosystem::Python,
            names::python_names(python_count),
            &python_popularity,
        )
        .into_iter()
        .enumerate()
        .map(|(i, d)| PyPackage {
            name: d.name,
            rank: i + 1,
            versions: d.versions,
            deps: d.deps,
            requires: d.dep_names,
            wheel_pythons: if d.compiled {
                WHEEL_PYTHONS.iter().map(|cp| cp.to_string()).collect()
            } else {
                Vec::new()
            },
        })
        .collect();
        let r = draw(config, Ecosystem::R, names::r_names(r_count), &r_popularity)
            .into_iter()
            .enumerate()
            .map(|(i, d)| RPackage {
                name: d.name,
                rank: i + 1,
                versions: d.versions,
                deps: d.deps,
                imports: d.dep_names,
            })
            .collect();
        Ok(Corpus {
            config: config.clone(),
            python,
            r,
            python_popularity,
            r_popularity,
        })
    }

    /// A corpus of packages a server already serves (read-only discovery), most popular first;
    /// popularity is Zipf over that order with `config.zipf_exponent`. Its artifacts cannot be
    /// rebuilt ([`Corpus::artifacts`] is for generated corpora): nothing is uploaded.
    pub fn from_served(config: &CorpusConfig, python: Vec<PyPackage>, r: Vec<RPackage>) -> Corpus {
        Corpus {
            config: config.clone(),
            python_popularity: Popularity::zipf(python.len(), config.zipf_exponent),
            r_popularity: Popularity::zipf(r.len(), config.zipf_exponent),
            python,
            r,
        }
    }

    /// The config this corpus was drawn from.
    pub fn config(&self) -> &CorpusConfig {
        &self.config
    }

    /// Python packages, most popular first.
    pub fn python(&self) -> &[PyPackage] {
        &self.python
    }

    /// R packages, most popular first.
    pub fn r(&self) -> &[RPackage] {
        &self.r
    }

    /// Number of packages in one ecosystem.
    pub fn len(&self, ecosystem: Ecosystem) -> usize {
        match ecosystem {
            Ecosystem::Python => self.python.len(),
            Ecosystem::R => self.r.len(),
        }
    }

    /// Whether the corpus has no package at all.
    pub fn is_empty(&self) -> bool {
        self.python.is_empty() && self.r.is_empty()
    }

    /// Every package id, Python first, each ecosystem in popularity order.
    pub fn ids(&self) -> impl Iterator<Item = PkgId> + '_ {
        let python = (0..self.python.len()).map(|index| PkgId {
            ecosystem: Ecosystem::Python,
            index,
        });
        let r = (0..self.r.len()).map(|index| PkgId {
            ecosystem: Ecosystem::R,
            index,
        });
        python.chain(r)
    }

    /// The package's name (PyPI project name or R package name).
    pub fn name(&self, id: PkgId) -> &str {
        match id.ecosystem {
            Ecosystem::Python => &self.python[id.index].name,
            Ecosystem::R => &self.r[id.index].name,
        }
    }

    /// The package's direct dependencies.
    pub fn deps(&self, id: PkgId) -> Vec<PkgId> {
        let deps = match id.ecosystem {
            Ecosystem::Python => &self.python[id.index].deps,
            Ecosystem::R => &self.r[id.index].deps,
        };
        deps.iter()
            .map(|&index| PkgId {
                ecosystem: id.ecosystem,
                index,
            })
            .collect()
    }

    /// The package and everything it transitively depends on, each once, dependencies before
    /// their dependents (the order an installer installs them in); `id` comes last.
    pub fn install_closure(&self, id: PkgId) -> Vec<PkgId> {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        // Iterative post-order: (package, whether its deps were already pushed).
        let mut stack = vec![(id, false)];
        while let Some((pkg, expanded)) = stack.pop() {
            if expanded {
                order.push(pkg);
                continue;
            }
            if !seen.insert(pkg) {
                continue;
            }
            stack.push((pkg, true));
            for dep in self.deps(pkg).into_iter().rev() {
                if !seen.contains(&dep) {
                    stack.push((dep, false));
                }
            }
        }
        order
    }

    /// The probability that an install of `id.ecosystem` asks for `id` directly.
    pub fn popularity(&self, id: PkgId) -> f64 {
        self.popularity_of(id.ecosystem).probability(id.index)
    }

    /// The popularity distribution of one ecosystem.
    pub fn popularity_of(&self, ecosystem: Ecosystem) -> &Popularity {
        match ecosystem {
            Ecosystem::Python => &self.python_popularity,
            Ecosystem::R => &self.r_popularity,
        }
    }

    /// Share of installs that are R installs: `install_r_share` (else `r_share`), or 0 / 1
    /// when an ecosystem is empty.
    pub fn r_install_share(&self) -> f64 {
        match (self.python.is_empty(), self.r.is_empty()) {
            (true, _) => 1.0,
            (_, true) => 0.0,
            _ => self.config.install_r_share.unwrap_or(self.config.r_share),
        }
    }

    /// Draws the package of one install: ecosystem by `r_share`, package by popularity.
    pub fn sample_install<R: Rng + ?Sized>(&self, rng: &mut R) -> PkgId {
        let ecosystem = if rng.gen_bool(self.r_install_share()) {
            Ecosystem::R
        } else {
            Ecosystem::Python
        };
        PkgId {
            ecosystem,
            index: self.popularity_of(ecosystem).sample(rng),
        }
    }

    /// Every artifact of one package, all versions, oldest first: the wheel(s) then the sdist
    /// for Python, the source tarball for R.
    pub fn artifacts(&self, id: PkgId) -> Result<Vec<Artifact>, ScenarioError> {
        match id.ecosystem {
            Ecosystem::Python => {
                let pkg = &self.python[id.index];
                let mut out = Vec::with_capacity(self.files_per_version(pkg) * pkg.versions.len());
                for version in &pkg.versions {
                    if pkg.wheel_pythons.is_empty() {
                        out.push(wheel_bytes(pkg, version)?);
                    }
                    for cp in &pkg.wheel_pythons {
                        out.push(tagged_wheel_bytes(pkg, version, Some(cp))?);
                    }
                    out.push(sdist_bytes(pkg, version)?);
                }
                Ok(out)
            }
            Ecosystem::R => {
                let pkg = &self.r[id.index];
                pkg.versions
                    .iter()
                    .map(|version| r_tarball_bytes(pkg, version))
                    .collect()
            }
        }
    }

    /// How many files [`Corpus::artifacts`] gives for `id`, without making them.
    pub fn artifact_count(&self, id: PkgId) -> usize {
        match id.ecosystem {
            Ecosystem::Python => {
                let pkg = &self.python[id.index];
                self.files_per_version(pkg) * pkg.versions.len()
            }
            Ecosystem::R => self.r[id.index].versions.len(),
        }
    }

    /// Files one version of a Python package has: its wheel(s) and its sdist.
    fn files_per_version(&self, pkg: &PyPackage) -> usize {
        pkg.wheel_pythons.len().max(1) + 1
    }

    /// Total bytes of every artifact the corpus uploads (wheel(s) + sdist per Python version,
    /// one tarball per R version), by drawn size.
    pub fn total_drawn_bytes(&self) -> u64 {
        let python: u64 = self
            .python
            .iter()
            .flat_map(|p| {
                let files = self.files_per_version(p) as u64;
                p.versions.iter().map(move |v| files * v.size_bytes)
            })
            .sum();
        let r: u64 = self
            .r
            .iter()
            .flat_map(|p| &p.versions)
            .map(|v| v.size_bytes)
            .sum();
        python + r
    }
}

/// Draws versions, sizes and dependencies for one ecosystem's names.
fn draw(
    config: &CorpusConfig,
    ecosystem: Ecosystem,
    listed: Vec<names::ListedName>,
    popularity: &Popularity,
) -> Vec<Drawn> {
    let ecosystem_salt = match ecosystem {
        Ecosystem::Python => 0x5059,
        Ecosystem::R => 0x5252,
    };
    let mut rng = StdRng::seed_from_u64(mix_seed(config.seed, ecosystem_salt));
    let sizes = LogNormal::new((config.size_median_bytes as f64).ln(), config.size_sigma)
        .expect("validated: sigma is finite and non-negative");
    let min_size = MIN_SIZE_BYTES.min(config.size_max_bytes);
    let mut drawn: Vec<Drawn> = Vec::with_capacity(listed.len());
    for (index, row) in listed.into_iter().enumerate() {
        let latest = row.version.unwrap_or_else(|| format!("1.{}.0", index % 10));
        let latest = match ecosystem {
            Ecosystem::Python => latest,
            Ecosystem::R => names::r_version(&latest),
        };
        // Newest first, then each older release with `older_version_probability`; with the
        // defaults (two at most, one half) this is the one draw the corpus always made.
        let mut chain = vec![latest];
        while chain.len() < config.max_versions && rng.gen_bool(config.older_version_probability) {
            match chain.last().and_then(|v| names::older_release(v)) {
                Some(older) => chain.push(older),
                None => break,
            }
        }
        let versions = chain
            .into_iter()
            .rev()
            .enumerate()
            .map(|(v, version)| PackageVersion {
                version,
                size_bytes: (sizes.sample(&mut rng) as u64).clamp(min_size, config.size_max_bytes),
                content_seed: mix_seed(
                    config.seed,
                    ecosystem_salt ^ ((index as u64) << 16) ^ v as u64,
                ),
            })
            .collect();
        // Drawn only when asked for, so a corpus without compiled wheels draws as it always did.
        let compiled = ecosystem == Ecosystem::Python
            && config.platform_wheel_share > 0.0
            && rng.gen_bool(config.platform_wheel_share);
        let dep_count = rng.gen_range(0..=config.max_deps.min(index));
        let mut deps = Vec::with_capacity(dep_count);
        while deps.len() < dep_count {
            // More popular packages are likelier dependencies, as on PyPI and CRAN.
            let dep = popularity.sample_below(index, &mut rng);
            if !deps.contains(&dep) {
                deps.push(dep);
            }
        }
        deps.sort_unstable();
        let dep_names = deps.iter().map(|&d| drawn[d].name.clone()).collect();
        drawn.push(Drawn {
            name: row.name,
            versions,
            deps,
            dep_names,
            compiled,
        });
    }
    drawn
}

#[cfg(test)]
mod tests;
