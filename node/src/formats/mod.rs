//! Package formats: reading metadata out of uploaded archives and writing the indexes clients read.
//! Pure functions over bytes; no I/O beyond the archive in memory.

pub mod archive;
pub mod chunked_gzip;
pub mod cran;
pub mod headers;
pub mod pypi;
pub mod rds;

/// Why an uploaded file was refused. Each message tells the user what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("invalid file name {name:?}: {why}")]
    FileName { name: String, why: String },
    #[error("{file} is not a valid archive: {why}")]
    Archive { file: String, why: String },
    #[error(
        "{file} inflates to more than {limit} bytes, the limit for an unpacked upload \
         ([limits] max_inflated_bytes); a real package this large needs that limit raised"
    )]
    Inflated { file: String, limit: u64 },
    #[error("{file} has no {member}")]
    MissingMember { file: String, member: String },
    #[error("{file}: {why}")]
    Metadata { file: String, why: String },
    #[error("{file}: metadata says {field} {inside:?} but {claimed_by} says {outside:?}")]
    Mismatch {
        file: String,
        field: String,
        inside: String,
        outside: String,
        claimed_by: String,
    },
}

/// What an archive says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    pub name: String,
    pub normalized: String,
    pub version: String,
    pub kind: crate::store::FileKind,
    pub metadata: crate::store::FileMetadata,
}

/// A file name a client could have sent us: no separators, no traversal, printable ASCII.
pub fn check_file_name(name: &str) -> Result<(), FormatError> {
    let bad = |why: &str| FormatError::FileName {
        name: name.to_string(),
        why: why.to_string(),
    };
    if name.is_empty() || name.len() > 255 {
        return Err(bad("must be 1 to 255 characters"));
    }
    if name.contains('/') || name.contains('\\') || name.contains("..") || name.starts_with('.') {
        return Err(bad("must not contain path separators or '..'"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+' | '!'))
    {
        return Err(bad("may contain only letters, digits and . - _ + !"));
    }
    Ok(())
}
