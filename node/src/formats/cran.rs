//! R source packages: `DESCRIPTION` inspection, R's version order, and `PACKAGES` generation.

use std::cmp::Ordering;

use super::{FormatError, Inspected, archive, headers};
use crate::store::{FileKind, FileMetadata};

/// `DESCRIPTION` fields copied into `PACKAGES`, in R's order.
const INDEX_FIELDS: &[&str] = &[
    "Depends",
    "Imports",
    "LinkingTo",
    "Suggests",
    "Enhances",
    "License",
    "License_is_FOSS",
    "License_restricts_use",
    "OS_type",
    "Priority",
    "Archs",
    "NeedsCompilation",
];

/// An R package name: letters, digits and dots, starting with a letter, not ending in a dot.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() >= 2
        && bytes[0].is_ascii_alphabetic()
        && bytes[bytes.len() - 1] != b'.'
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'.')
}

/// An R version: at least two non-negative integers separated by `.` or `-`.
pub fn is_valid_version(version: &str) -> bool {
    let parts: Vec<&str> = version.split(['.', '-']).collect();
    parts.len() >= 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// R's `compareVersion`: numeric components left to right.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let numbers = |v: &str| -> Vec<u64> {
        v.split(['.', '-'])
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    };
    numbers(a).cmp(&numbers(b))
}

/// Name and version from `{pkg}_{version}.tar.gz`.
pub fn parse_file_name(file: &str) -> Result<(String, String), FormatError> {
    let bad = |why: &str| FormatError::FileName {
        name: file.to_string(),
        why: why.to_string(),
    };
    let stem = file
        .strip_suffix(".tar.gz")
        .ok_or_else(|| bad("an R source package is named {package}_{version}.tar.gz"))?;
    let (name, version) = stem
        .split_once('_')
        .ok_or_else(|| bad("an R source package is named {package}_{version}.tar.gz"))?;
    if !is_valid_name(name) {
        return Err(bad(
            "the package name must be letters, digits and dots, starting with a letter",
        ));
    }
    if !is_valid_version(version) {
        return Err(bad(
            "the version must be two or more numbers separated by '.' or '-'",
        ));
    }
    Ok((name.to_string(), version.to_string()))
}

/// Reads and checks `{pkg}/DESCRIPTION` against the file name.
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
    archive: impl std::io::Read,
    max_inflated_bytes: u64,
) -> Result<Inspected, FormatError> {
    let (file_name, file_version) = parse_file_name(file)?;
    let wanted = format!("{file_name}/DESCRIPTION");
    let found = archive::tar_gz_members(file, archive, max_inflated_bytes, |path| {
        path.trim_start_matches("./") == wanted
    })?;
    let (_, text) = found
        .into_iter()
        .next()
        .ok_or_else(|| FormatError::MissingMember {
            file: file.to_string(),
            member: wanted.clone(),
        })?;
    let fields = headers::parse(&text).map_err(|why| FormatError::Metadata {
        file: file.to_string(),
        why: format!("DESCRIPTION: {why}"),
    })?;
    let required = |field: &str| {
        headers::get(&fields, field)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| FormatError::Metadata {
                file: file.to_string(),
                why: format!("DESCRIPTION has no {field} field"),
            })
    };
    let name = required("Package")?;
    let version = required("Version")?;
    required("License")?;
    for (field, inside, outside) in [
        ("Package", name, &file_name),
        ("Version", version, &file_version),
    ] {
        if inside != outside {
            return Err(FormatError::Mismatch {
                file: file.to_string(),
                field: field.into(),
                inside: inside.to_string(),
                outside: outside.clone(),
                claimed_by: "the file name".into(),
            });
        }
    }
    let index_fields = INDEX_FIELDS
        .iter()
        .filter_map(|key| headers::get(&fields, key).map(|v| (key.to_string(), v.to_string())))
        .collect();
    Ok(Inspected {
        name: name.to_string(),
        normalized: name.to_string(),
        version: version.to_string(),
        kind: FileKind::RSource,
        metadata: FileMetadata {
            summary: headers::get(&fields, "Title").map(str::to_string),
            index_fields,
            ..FileMetadata::default()
        },
    })
}

/// One stanza of `PACKAGES`.
pub struct IndexEntry<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub md5: &'a str,
    pub fields: &'a [(String, String)],
}

/// The `PACKAGES` file: one stanza per package, blank-line separated.
pub fn packages_file(entries: &[IndexEntry<'_>]) -> String {
    entries.iter().map(stanza).collect()
}

/// One package's stanza of `PACKAGES`, with its blank line.
pub fn stanza(entry: &IndexEntry<'_>) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Package: {}\nVersion: {}\n",
        entry.name, entry.version
    ));
    for (key, value) in entry.fields {
        if key != "NeedsCompilation" {
            out.push_str(&format!("{key}: {value}\n"));
        }
    }
    out.push_str(&format!("MD5sum: {}\n", entry.md5));
    let needs = entry
        .fields
        .iter()
        .find(|(k, _)| k == "NeedsCompilation")
        .map(|(_, v)| v.as_str())
        .unwrap_or("no");
    out.push_str(&format!("NeedsCompilation: {needs}\n\n"));
    out
}

/// The columns of `PACKAGES.rds`: `Package`, `Version`, the index fields in R's order,
/// `MD5sum`.
pub fn rds_columns() -> Vec<&'static str> {
    let mut columns = vec!["Package", "Version"];
    columns.extend(INDEX_FIELDS.iter().copied());
    columns.push("MD5sum");
    columns
}

/// One package's row of `PACKAGES.rds`, in [`rds_columns`] order; a field the package lacks
/// is `NA`.
pub fn rds_row<'a>(entry: &IndexEntry<'a>) -> Vec<Option<&'a str>> {
    let mut row = vec![Some(entry.name), Some(entry.version)];
    for field in INDEX_FIELDS {
        let value = entry
            .fields
            .iter()
            .find(|(k, _)| k == field)
            .map(|(_, v)| v.as_str());
        // `PACKAGES` always says whether a package needs compiling; so does the matrix.
        row.push(value.or((*field == "NeedsCompilation").then_some("no")));
    }
    row.push(Some(entry.md5));
    row
}

/// `PACKAGES.rds`: the same entries as [`packages_file`] as the character matrix
/// `tools::write_PACKAGES` saves (columns [`rds_columns`]), serialized and gzipped.
pub fn packages_rds(entries: &[IndexEntry<'_>]) -> Result<Vec<u8>, super::rds::RdsError> {
    let columns = rds_columns();
    let rows = entries.iter().map(rds_row).collect();
    super::rds::packages_rds(&super::rds::CharacterMatrix { columns, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_numerically() {
        assert_eq!(compare_versions("1.10.0", "1.9.2"), Ordering::Greater);
        assert_eq!(compare_versions("0.1-2", "0.1.2"), Ordering::Equal);
        assert!(is_valid_version("0.1-2"));
        assert!(!is_valid_version("1"));
        assert!(!is_valid_version("1.a"));
    }

    #[test]
    fn names_and_file_names() {
        assert!(is_valid_name("data.table"));
        assert!(!is_valid_name("2pkg"));
        assert!(!is_valid_name("pkg."));
        assert_eq!(
            parse_file_name("foo_1.0-2.tar.gz").unwrap(),
            ("foo".into(), "1.0-2".into())
        );
        assert!(parse_file_name("../foo_1.0.tar.gz").is_err());
    }

    #[test]
    fn packages_stanza_has_md5_and_compilation() {
        let fields = vec![
            ("Imports".to_string(), "bar".to_string()),
            ("License".into(), "MIT".into()),
        ];
        let text = packages_file(&[IndexEntry {
            name: "foo",
            version: "1.0",
            md5: "abc",
            fields: &fields,
        }]);
        assert_eq!(
            text,
            "Package: foo\nVersion: 1.0\nImports: bar\nLicense: MIT\nMD5sum: abc\nNeedsCompilation: no\n\n"
        );
    }
}
