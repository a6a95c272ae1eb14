//! Package names and versions taken from the real PyPI popularity list, made valid for each
//! ecosystem (PEP 503 / PEP 427 for Python, "Writing R Extensions" §1.1.1 for R).

use std::collections::HashSet;

/// The PyPI download-popularity list (`rank`, `name`, `version`), most popular first.
const PYPI_TOP_TSV: &str = include_str!("../../data/pypi-top.tsv");

/// Names a client's own tool chain depends on: a dummy `pip` or `setuptools` installed from
/// the corpus would break the very installer a test drives, so the corpus skips them.
const PYTHON_TOOLCHAIN: &[&str] = &["pip", "setuptools", "wheel", "uv", "distribute"];

/// R's base and recommended-at-install packages: a corpus package with one of these names
/// would shadow R itself.
const R_BASE: &[&str] = &[
    "base",
    "compiler",
    "datasets",
    "graphics",
    "grdevices",
    "grid",
    "methods",
    "parallel",
    "splines",
    "stats",
    "stats4",
    "tcltk",
    "tools",
    "translations",
    "utils",
    "r",
];

/// One row of the popularity list, after validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ListedName {
    /// The name as listed (already PEP 503 normalized on the list).
    pub name: String,
    /// The latest version on the list, when it is a plain dotted release.
    pub version: Option<String>,
}

/// Every usable row of the embedded list, in rank order.
pub(crate) fn listed_names() -> Vec<ListedName> {
    PYPI_TOP_TSV
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let _rank = fields.next()?;
            let name = fields.next()?.trim();
            let version = fields.next().unwrap_or("").trim();
            if name.is_empty() {
                return None;
            }
            Some(ListedName {
                name: name.to_string(),
                version: plain_release(version),
            })
        })
        .collect()
}

/// Python names for the `count` most popular usable packages, with their listed versions.
pub(crate) fn python_names(count: usize) -> Vec<ListedName> {
    let mut seen = HashSet::new();
    listed_names()
        .into_iter()
        .filter(|row| !PYTHON_TOOLCHAIN.contains(&row.name.as_str()))
        .filter(|row| seen.insert(pep503_normalize(&row.name)))
        .take(count)
        .collect()
}

/// Suffixes of the later passes over the list when R needs more names than it has: CRAN
/// (about 21,000 packages) is larger than the PyPI list (about 15,000), and R packages often
/// come in families (`foo`, `foo.data`, `foo.tools`).
const R_FAMILY_SUFFIXES: &[&str] = &["", ".tools", ".data", ".extra"];

/// R names derived from the same list, in rank order, unique (ignoring case, as CRAN does):
/// the whole list first, then again with each family suffix in turn.
pub(crate) fn r_names(count: usize) -> Vec<ListedName> {
    let mut seen = HashSet::new();
    let listed = listed_names();
    R_FAMILY_SUFFIXES
        .iter()
        .flat_map(|suffix| {
            listed.iter().filter_map(move |row| {
                let name = r_name(&row.name)?;
                Some(ListedName {
                    name: format!("{name}{suffix}"),
                    version: row.version.clone(),
                })
            })
        })
        .filter(|row| seen.insert(row.name.to_ascii_lowercase()))
        .take(count)
        .collect()
}

/// How many distinct names each ecosystem can draw from the list.
pub(crate) fn available() -> (usize, usize) {
    (python_names(usize::MAX).len(), r_names(usize::MAX).len())
}

/// PEP 503 normalization: lower case, runs of `-`, `_`, `.` become one `-`.
pub fn pep503_normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_separator = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_separator {
                out.push('-');
            }
            in_separator = true;
        } else {
            out.push(c.to_ascii_lowercase());
            in_separator = false;
        }
    }
    out
}

/// The distribution name as it appears in wheel and sdist file names (PEP 427 / PEP 625):
/// the normalized name with `-` replaced by `_`.
pub fn dist_file_name(name: &str) -> String {
    pep503_normalize(name).replace('-', "_")
}

/// A Python identifier for the package's top-level module.
pub fn module_name(name: &str) -> String {
    let mut module: String = pep503_normalize(name)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if module.starts_with(|c: char| c.is_ascii_digit()) {
        module.insert(0, '_');
    }
    module
}

/// Makes a valid R package name: ASCII letters, digits and dots, starting with a letter, not
/// ending in a dot, at least two characters, and not a base R package.
fn r_name(listed: &str) -> Option<String> {
    let mut name = String::with_capacity(listed.len());
    for c in listed.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c);
        } else if matches!(c, '-' | '_' | '.') && !name.ends_with('.') {
            name.push('.');
        }
    }
    let name = name.trim_matches('.');
    let name = if name.starts_with(|c: char| c.is_ascii_digit()) {
        format!("r{name}")
    } else {
        name.to_string()
    };
    let valid = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && !R_BASE.contains(&name.to_ascii_lowercase().as_str());
    valid.then_some(name)
}

/// A version that is a plain dotted release (`1.44.5`), re-rendered without leading zeros;
/// anything else (`2.0rc1`, empty) yields `None` and the corpus makes one up.
fn plain_release(version: &str) -> Option<String> {
    let parts: Option<Vec<u64>> = version.split('.').map(|p| p.parse().ok()).collect();
    let parts = parts?;
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    Some(render(&parts))
}

/// A release strictly older than `version` (`1.44.5` → `1.44.4`, `2.0` → `1.0`), `None` for
/// an all-zero version. Both PEP 440 and R order the result before `version`.
pub(crate) fn older_release(version: &str) -> Option<String> {
    let mut parts: Vec<u64> = version
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let last_nonzero = parts.iter().rposition(|&p| p > 0)?;
    parts[last_nonzero] -= 1;
    Some(render(&parts))
}

/// Pads a version to at least two components, as R requires (`2024` → `2024.0`).
pub(crate) fn r_version(version: &str) -> String {
    if version.contains('.') {
        version.to_string()
    } else {
        format!("{version}.0")
    }
}

fn render(parts: &[u64]) -> String {
    parts
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_embedded_and_ranked() {
        let names = listed_names();
        assert!(names.len() > 10_000, "list has {} rows", names.len());
        assert_eq!(names[0].name, "boto3");
        assert_eq!(names[0].version.as_deref(), Some("1.44.5"));
    }

    #[test]
    fn python_names_skip_toolchain_and_keep_order() {
        let names: Vec<String> = python_names(60).into_iter().map(|n| n.name).collect();
        assert_eq!(names[0], "boto3");
        for tool in PYTHON_TOOLCHAIN {
            assert!(!names.iter().any(|n| n == tool), "{tool} in corpus");
        }
    }

    #[test]
    fn r_names_are_valid_and_unique() {
        let names = r_names(2_000);
        assert_eq!(names.len(), 2_000);
        let mut seen = HashSet::new();
        for ListedName { name, .. } in &names {
            assert!(name.len() >= 2, "{name}");
            assert!(
                name.starts_with(|c: char| c.is_ascii_alphabetic()),
                "{name}"
            );
            assert!(!name.ends_with('.'), "{name}");
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'),
                "{name}"
            );
            assert!(seen.insert(name.to_ascii_lowercase()), "duplicate {name}");
        }
        assert!(names.iter().any(|n| n.name == "typing.extensions"));
    }

    #[test]
    fn normalization_follows_pep_503_and_427() {
        assert_eq!(
            pep503_normalize("Typing__Extensions.x"),
            "typing-extensions-x"
        );
        assert_eq!(dist_file_name("typing-extensions"), "typing_extensions");
        assert_eq!(module_name("3to2"), "_3to2");
        assert_eq!(module_name("zope.interface"), "zope_interface");
    }

    #[test]
    fn versions_are_plain_and_older_ones_sort_before() {
        assert_eq!(plain_release("01.2"), Some("1.2".into()));
        assert_eq!(plain_release("2.0rc1"), None);
        assert_eq!(plain_release(""), None);
        assert_eq!(older_release("1.44.5").as_deref(), Some("1.44.4"));
        assert_eq!(older_release("2.0").as_deref(), Some("1.0"));
        assert_eq!(older_release("0.0"), None);
        assert_eq!(r_version("2024"), "2024.0");
    }
}
