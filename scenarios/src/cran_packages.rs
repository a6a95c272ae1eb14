//! R's `PACKAGES` index, DCF (paragraphs of `Field: value` lines, continuation lines indented),
//! read by `deb822-fast`: the one reader behind the generator's index, discovery and read-back.

use deb822_fast::{Deb822, Paragraph};

/// One paragraph of `PACKAGES`: a package at one version, and what it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackagesEntry {
    pub name: String,
    pub version: String,
    /// Names in `Depends`, `Imports` and `LinkingTo`, version constraints and `R` left out.
    pub deps: Vec<String>,
}

/// Why a `PACKAGES` text could not be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PackagesError {
    /// A line is neither `Field: value`, a continuation nor a blank line between paragraphs.
    #[error("PACKAGES is not DCF: {0}")]
    NotDcf(String),
}

/// The paragraphs of a `PACKAGES` text that name a package and its version, in file order
/// (a name listed twice is returned twice).
pub fn entries(text: &str) -> Result<Vec<PackagesEntry>, PackagesError> {
    let document: Deb822 = text
        .parse()
        .map_err(|e: deb822_fast::Error| PackagesError::NotDcf(e.to_string()))?;
    Ok(document.iter().filter_map(entry).collect())
}

fn entry(paragraph: &Paragraph) -> Option<PackagesEntry> {
    let field = |name: &str| paragraph.get(name).map(str::trim);
    let deps = ["Depends", "Imports", "LinkingTo"]
        .iter()
        .filter_map(|name| field(name))
        .flat_map(|value| value.split(','))
        .map(|dep| dep.split('(').next().unwrap_or_default().trim().to_string())
        .filter(|dep| !dep.is_empty() && dep != "R")
        .collect();
    Some(PackagesEntry {
        name: field("Package")?.to_string(),
        version: field("Version")?.to_string(),
        deps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_give_names_versions_and_dependencies() {
        let text = "Package: a\nVersion: 1.0\nDepends: R (>= 3.5)\n\nPackage: b\nVersion: 2.1\n\
                    Imports: a (>= 1.0), stats,\n    c\nLinkingTo: Rcpp\n\n\n\
                    Package: no-version\n\nPackage: a\nVersion: 1.0 \n";
        let entries = entries(text).unwrap();
        let listed: Vec<(&str, &str)> = entries
            .iter()
            .map(|e| (e.name.as_str(), e.version.as_str()))
            .collect();
        assert_eq!(listed, [("a", "1.0"), ("b", "2.1"), ("a", "1.0")]);
        assert_eq!(entries[0].deps, Vec::<String>::new());
        assert_eq!(entries[1].deps, ["a", "stats", "c", "Rcpp"]);
    }

    #[test]
    fn text_that_is_not_dcf_is_an_error() {
        assert!(matches!(
            entries("<html>\n<body>not found</body>\n"),
            Err(PackagesError::NotDcf(_))
        ));
        assert_eq!(entries(""), Ok(Vec::new()));
    }
}
