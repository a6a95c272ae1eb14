//! Safe reading of uploaded archives: every member is read (so truncation is caught), no member
//! may escape its directory, and only the small metadata members are kept in memory.

use std::io::{Cursor, Read};

use super::FormatError;

/// Largest metadata member we read into memory.
const MAX_METADATA_BYTES: u64 = 1024 * 1024;

fn archive_error(file: &str, why: impl std::fmt::Display) -> FormatError {
    FormatError::Archive {
        file: file.to_string(),
        why: why.to_string(),
    }
}

fn check_member_path(file: &str, path: &str) -> Result<(), FormatError> {
    let escapes = path.starts_with('/')
        || path.starts_with('\\')
        || path.split(['/', '\\']).any(|part| part == "..")
        || path.contains(':');
    if escapes {
        return Err(archive_error(
            file,
            format!("member {path:?} escapes the archive"),
        ));
    }
    Ok(())
}

/// Reads a gzip-compressed tar archive fully and returns the members `wanted` accepts.
pub fn tar_gz_members(
    file: &str,
    bytes: &[u8],
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<(String, String)>, FormatError> {
    let decoder = flate2::read::GzDecoder::new(Cursor::new(bytes));
    let mut archive = tar::Archive::new(decoder);
    let entries = archive.entries().map_err(|e| archive_error(file, e))?;
    let mut found = Vec::new();
    let mut members = 0usize;
    for entry in entries {
        let mut entry = entry.map_err(|e| archive_error(file, e))?;
        members += 1;
        let path = entry
            .path()
            .map_err(|e| archive_error(file, e))?
            .to_string_lossy()
            .into_owned();
        check_member_path(file, &path)?;
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(|e| archive_error(file, e))?
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            check_member_path(file, &target)?;
        }
        if wanted(&path) && kind.is_file() {
            if entry.size() > MAX_METADATA_BYTES {
                return Err(archive_error(file, format!("{path} is larger than 1 MiB")));
            }
            let mut text = String::new();
            entry
                .read_to_string(&mut text)
                .map_err(|e| archive_error(file, format!("{path}: {e}")))?;
            found.push((path, text));
        } else {
            // Read through the member so a truncated archive fails here, not in a client.
            std::io::copy(&mut entry, &mut std::io::sink()).map_err(|e| archive_error(file, e))?;
        }
    }
    if members == 0 {
        return Err(archive_error(file, "the archive is empty"));
    }
    Ok(found)
}

/// Opens a zip archive, checks every member name and CRC, and returns the members `wanted` accepts.
pub fn zip_members(
    file: &str,
    bytes: &[u8],
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<(String, String)>, FormatError> {
    let mut archive =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| archive_error(file, e))?;
    let mut found = Vec::new();
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|e| archive_error(file, e))?;
        let name = entry.name().to_string();
        check_member_path(file, &name)?;
        if wanted(&name) {
            if entry.size() > MAX_METADATA_BYTES {
                return Err(archive_error(file, format!("{name} is larger than 1 MiB")));
            }
            let mut text = String::new();
            entry
                .read_to_string(&mut text)
                .map_err(|e| archive_error(file, format!("{name}: {e}")))?;
            found.push((name, text));
        } else {
            // Reading checks the CRC of every member.
            std::io::copy(&mut entry, &mut std::io::sink())
                .map_err(|e| archive_error(file, format!("{name}: {e}")))?;
        }
    }
    if archive.is_empty() {
        return Err(archive_error(file, "the archive is empty"));
    }
    Ok(found)
}
