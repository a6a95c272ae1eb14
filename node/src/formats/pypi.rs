//! Python packages: PEP 503 names, wheel and sdist inspection, and the simple index (PEP 503 HTML,
//! PEP 691 JSON).

use super::{FormatError, Inspected, archive, headers};
use crate::store::{FileKind, FileMetadata};

/// PEP 503 normalization: lowercase, runs of `-`, `_`, `.` become one `-`.
pub fn normalize(name: &str) -> String {
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

/// A valid project name per the core metadata spec.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 200
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn is_valid_version(version: &str) -> bool {
    !version.is_empty()
        && version.len() <= 100
        && version.as_bytes()[0].is_ascii_alphanumeric()
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '!' | '_' | '-'))
}

/// Versions compare equal across the spellings wheel names use (`-` escaped as `_`, case).
fn same_version(a: &str, b: &str) -> bool {
    let canon = |v: &str| {
        v.trim_start_matches(['v', 'V'])
            .replace('-', "_")
            .to_ascii_lowercase()
    };
    canon(a) == canon(b)
}

fn bad_name(file: &str, why: &str) -> FormatError {
    FormatError::FileName {
        name: file.to_string(),
        why: why.to_string(),
    }
}

/// Name and version from a wheel or sdist file name, and which of the two it is.
pub fn parse_file_name(file: &str) -> Result<(String, String, FileKind), FormatError> {
    if let Some(stem) = file.strip_suffix(".whl") {
        let parts: Vec<&str> = stem.split('-').collect();
        if !(parts.len() == 5 || parts.len() == 6) {
            return Err(bad_name(
                file,
                "a wheel is named {name}-{version}(-{build})?-{python}-{abi}-{platform}.whl",
            ));
        }
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad_name(file, "a wheel name has an empty component"));
        }
        return Ok((parts[0].to_string(), parts[1].to_string(), FileKind::Wheel));
    }
    let stem = file
        .strip_suffix(".tar.gz")
        .ok_or_else(|| bad_name(file, "a Python upload must be a .whl or a .tar.gz sdist"))?;
    let (name, version) = stem
        .rsplit_once('-')
        .ok_or_else(|| bad_name(file, "an sdist is named {name}-{version}.tar.gz"))?;
    if name.is_empty() || version.is_empty() {
        return Err(bad_name(file, "an sdist is named {name}-{version}.tar.gz"));
    }
    Ok((name.to_string(), version.to_string(), FileKind::Sdist))
}

/// Reads and checks the metadata inside a wheel or sdist against its file name.
/// The archive may inflate to at most `max_inflated_bytes`.
pub fn inspect(
    file: &str,
    bytes: &[u8],
    max_inflated_bytes: u64,
) -> Result<Inspected, FormatError> {
    inspect_archive(file, std::io::Cursor::new(bytes), max_inflated_bytes)
}

/// [`inspect`] over any reader of the archive (an upload on disk).
pub fn inspect_archive(
    file: &str,
    archive: impl std::io::Read + std::io::Seek,
    max_inflated_bytes: u64,
) -> Result<Inspected, FormatError> {
    let (file_name, file_version, kind) = parse_file_name(file)?;
    let (member, text) = match kind {
        FileKind::Wheel => {
            let mut found = archive::zip_members(file, archive, max_inflated_bytes, |path| {
                let mut parts = path.split('/');
                matches!((parts.next(), parts.next(), parts.next()),
                    (Some(dir), Some("METADATA"), None) if dir.ends_with(".dist-info"))
            })?;
            let wanted_dir = format!("{file_name}-{file_version}.dist-info/METADATA");
            let index = found
                .iter()
                .position(|(path, _)| normalize(path) == normalize(&wanted_dir))
                .ok_or_else(|| FormatError::MissingMember {
                    file: file.to_string(),
                    member: wanted_dir.clone(),
                })?;
            found.swap_remove(index)
        }
        _ => {
            let mut found = archive::tar_gz_members(file, archive, max_inflated_bytes, |path| {
                let mut parts = path.trim_start_matches("./").split('/');
                matches!(
                    (parts.next(), parts.next(), parts.next()),
                    (Some(_), Some("PKG-INFO"), None)
                )
            })?;
            if found.is_empty() {
                return Err(FormatError::MissingMember {
                    file: file.to_string(),
                    member: format!("{file_name}-{file_version}/PKG-INFO"),
                });
            }
            found.swap_remove(0)
        }
    };
    let fields = headers::parse(&text).map_err(|why| FormatError::Metadata {
        file: file.to_string(),
        why: format!("{member}: {why}"),
    })?;
    let missing = |field: &str| FormatError::Metadata {
        file: file.to_string(),
        why: format!("{member} has no {field} field"),
    };
    let name = headers::get(&fields, "Name").ok_or_else(|| missing("Name"))?;
    let version = headers::get(&fields, "Version").ok_or_else(|| missing("Version"))?;
    if !is_valid_name(name) {
        return Err(FormatError::Metadata {
            file: file.to_string(),
            why: format!("{name:?} is not a valid project name"),
        });
    }
    if !is_valid_version(version) {
        return Err(FormatError::Metadata {
            file: file.to_string(),
            why: format!("{version:?} is not a valid version"),
        });
    }
    if normalize(name) != normalize(&file_name) {
        return Err(FormatError::Mismatch {
            file: file.to_string(),
            field: "Name".into(),
            inside: name.to_string(),
            outside: file_name,
            claimed_by: "the file name".into(),
        });
    }
    if !same_version(version, &file_version) {
        return Err(FormatError::Mismatch {
            file: file.to_string(),
            field: "Version".into(),
            inside: version.to_string(),
            outside: file_version,
            claimed_by: "the file name".into(),
        });
    }
    Ok(Inspected {
        name: name.to_string(),
        normalized: normalize(name),
        version: version.to_string(),
        kind,
        metadata: FileMetadata {
            summary: headers::get(&fields, "Summary").map(str::to_string),
            requires_python: headers::get(&fields, "Requires-Python")
                .filter(|v| !v.is_empty())
                .map(str::to_string),
            requires_dist: headers::get_all(&fields, "Requires-Dist"),
            index_fields: Vec::new(),
        },
    })
}

/// One file link on a project page.
#[derive(Debug, Clone)]
pub struct IndexFile<'a> {
    pub filename: &'a str,
    /// Relative to the project page.
    pub url: String,
    pub sha256: &'a str,
    pub requires_python: Option<&'a str>,
    pub size_bytes: i64,
}

/// PEP 503 project page (`templates/pypi/project.html`; askama escapes every value).
#[derive(askama::Template)]
#[template(path = "pypi/project.html")]
struct ProjectPage<'a> {
    name: &'a str,
    files: &'a [IndexFile<'a>],
}

/// PEP 503 project page.
pub fn project_html(name: &str, files: &[IndexFile<'_>]) -> Result<String, askama::Error> {
    askama::Template::render(&ProjectPage { name, files })
}

/// PEP 691 project page.
pub fn project_json(name: &str, files: &[IndexFile<'_>]) -> serde_json::Value {
    let files: Vec<_> = files
        .iter()
        .map(|f| {
            let mut entry = serde_json::json!({
                "filename": f.filename,
                "url": f.url,
                "hashes": { "sha256": f.sha256 },
                "size": f.size_bytes,
            });
            if let Some(r) = f.requires_python {
                entry["requires-python"] = serde_json::Value::String(r.to_string());
            }
            entry
        })
        .collect();
    serde_json::json!({ "meta": { "api-version": "1.1" }, "name": name, "files": files })
}

/// PEP 503 root page (`templates/pypi/root.html`).
#[derive(askama::Template)]
#[template(path = "pypi/root.html")]
struct RootPage<'a> {
    names: &'a [&'a str],
}

/// PEP 503 root page listing every project.
pub fn root_html(names: &[&str]) -> Result<String, askama::Error> {
    askama::Template::render(&RootPage { names })
}

/// PEP 691 root page.
pub fn root_json(names: &[&str]) -> serde_json::Value {
    let projects: Vec<_> = names
        .iter()
        .map(|n| serde_json::json!({ "name": n }))
        .collect();
    serde_json::json!({ "meta": { "api-version": "1.1" }, "projects": projects })
}

/// [`root_json`] as text, written straight from the names (no `Value` per project: the page
/// of a PyPI-sized repository lists tens of thousands).
pub fn root_json_text(names: &[&str]) -> String {
    #[derive(serde::Serialize)]
    struct Meta {
        #[serde(rename = "api-version")]
        api_version: &'static str,
    }
    #[derive(serde::Serialize)]
    struct Name<'a> {
        name: &'a str,
    }
    #[derive(serde::Serialize)]
    struct Root<'a> {
        meta: Meta,
        projects: Vec<Name<'a>>,
    }
    let root = Root {
        meta: Meta { api_version: "1.1" },
        projects: names.iter().map(|&name| Name { name }).collect(),
    };
    // Serializing strings into a String cannot fail.
    serde_json::to_string(&root).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_pep_503() {
        assert_eq!(normalize("Friendly-Bard"), "friendly-bard");
        assert_eq!(normalize("FRIENDLY._.bard"), "friendly-bard");
        assert_eq!(normalize("zope.interface"), "zope-interface");
    }

    #[test]
    fn parses_file_names() {
        assert_eq!(
            parse_file_name("my_pkg-1.0-py3-none-any.whl").unwrap(),
            ("my_pkg".into(), "1.0".into(), FileKind::Wheel)
        );
        assert_eq!(
            parse_file_name("my_pkg-1.0.tar.gz").unwrap(),
            ("my_pkg".into(), "1.0".into(), FileKind::Sdist)
        );
        assert!(parse_file_name("pkg.zip").is_err());
        assert!(parse_file_name("pkg-1.0.whl").is_err());
    }

    #[test]
    fn html_escapes_requires_python() {
        let files = [IndexFile {
            filename: "a-1.0.tar.gz",
            url: "../../packages/a-1.0.tar.gz".into(),
            sha256: "00",
            requires_python: Some(">=3.8"),
            size_bytes: 1,
        }];
        let page = project_html("a", &files).unwrap();
        assert!(
            page.contains("data-requires-python=\"&#62;=3.8\""),
            "{page}"
        );
        assert!(page.contains("#sha256=00"));
        let hostile = project_html("<script>", &[]).unwrap();
        assert!(!hostile.contains("<script>"), "{hostile}");
        let names = ["a&b", "c", "\"quoted\" \u{e9}"];
        assert_eq!(root_json_text(&names), root_json(&names).to_string());
        let root = root_html(&["a&b", "c"]).unwrap();
        assert!(
            root.contains(r#"<a href="a&#38;b/">a&#38;b</a><br>"#),
            "{root}"
        );
        assert!(root.contains(r#"<a href="c/">c</a><br>"#), "{root}");
    }
}
