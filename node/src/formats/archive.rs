//! Safe reading of uploaded archives: every member is read (so truncation is caught), no member
//! may escape its directory, only the small metadata members are kept in memory, and no archive
//! may inflate past `max_inflated_bytes` (a decompression bomb is refused as soon as it is seen).

use std::cell::Cell;
use std::io::{Read, Seek};
use std::rc::Rc;

use super::FormatError;

/// Counts the bytes a decompressor produces and fails the read once they pass the limit. The flag
/// says afterwards that the failure was ours, whatever the archive reader made of the error.
struct Inflation<R> {
    inner: R,
    inflated: u64,
    limit: u64,
    exceeded: Rc<Cell<bool>>,
}

impl<R: Read> Read for Inflation<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.inflated = self.inflated.saturating_add(n as u64);
        if self.inflated > self.limit {
            self.exceeded.set(true);
            return Err(std::io::Error::other("inflated size limit exceeded"));
        }
        Ok(n)
    }
}

fn too_inflated(file: &str, limit: u64) -> FormatError {
    FormatError::Inflated {
        file: file.to_string(),
        limit,
    }
}

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

/// Reads a gzip-compressed tar archive fully and returns the members `wanted` accepts. The tar
/// stream may inflate to at most `max_inflated_bytes`.
pub fn tar_gz_members(
    file: &str,
    archive: impl Read,
    max_inflated_bytes: u64,
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<(String, String)>, FormatError> {
    let exceeded = Rc::new(Cell::new(false));
    let decoder = Inflation {
        inner: flate2::read::GzDecoder::new(archive),
        inflated: 0,
        limit: max_inflated_bytes,
        exceeded: exceeded.clone(),
    };
    let found = read_tar(file, tar::Archive::new(decoder), wanted);
    if exceeded.get() {
        return Err(too_inflated(file, max_inflated_bytes));
    }
    found
}

fn read_tar(
    file: &str,
    mut archive: tar::Archive<impl Read>,
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<(String, String)>, FormatError> {
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
/// The members together may inflate to at most `max_inflated_bytes` (counted as read, not as
/// declared: a zip's declared sizes can lie).
pub fn zip_members(
    file: &str,
    archive: impl Read + Seek,
    max_inflated_bytes: u64,
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<(String, String)>, FormatError> {
    let mut budget = max_inflated_bytes;
    let mut archive = zip::ZipArchive::new(archive).map_err(|e| archive_error(file, e))?;
    let mut found = Vec::new();
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|e| archive_error(file, e))?;
        let name = entry.name().to_string();
        check_member_path(file, &name)?;
        let exceeded = Rc::new(Cell::new(false));
        let mut counted = Inflation {
            inner: &mut entry,
            inflated: 0,
            limit: budget,
            exceeded: exceeded.clone(),
        };
        let read = if wanted(&name) {
            if counted.inner.size() > MAX_METADATA_BYTES {
                return Err(archive_error(file, format!("{name} is larger than 1 MiB")));
            }
            let mut text = String::new();
            let read = (&mut counted)
                .take(MAX_METADATA_BYTES + 1)
                .read_to_string(&mut text);
            if read.as_ref().is_ok_and(|n| *n as u64 > MAX_METADATA_BYTES) {
                return Err(archive_error(file, format!("{name} is larger than 1 MiB")));
            }
            read.map(|_| found.push((name.clone(), text)))
        } else {
            // Reading checks the CRC of every member.
            std::io::copy(&mut counted, &mut std::io::sink()).map(|_| ())
        };
        if exceeded.get() {
            return Err(too_inflated(file, max_inflated_bytes));
        }
        read.map_err(|e| archive_error(file, format!("{name}: {e}")))?;
        budget -= counted.inflated;
    }
    if archive.is_empty() {
        return Err(archive_error(file, "the archive is empty"));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use super::*;

    fn tar_gz(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let mut builder = tar::Builder::new(gz);
        for (path, data) in members {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, &data[..]).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    fn zip(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (path, data) in members {
            writer.start_file(*path, options).unwrap();
            writer.write_all(data).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn issue_10_inflation_past_the_limit_is_refused() {
        let members = [
            ("pkg/DESCRIPTION", b"Package: pkg\n".to_vec()),
            ("pkg/zeros.bin", vec![0u8; 4 << 20]),
        ];
        let limit = 1 << 20;
        let is_description = |p: &str| p == "pkg/DESCRIPTION";
        for (kind, bytes) in [("tar.gz", tar_gz(&members)), ("zip", zip(&members))] {
            assert!(bytes.len() < 64 << 10, "{kind}: {} bytes", bytes.len());
            let refused = match kind {
                "zip" => zip_members("f.whl", Cursor::new(&bytes), limit, is_description),
                _ => tar_gz_members("f.tar.gz", Cursor::new(&bytes), limit, is_description),
            };
            assert!(
                matches!(refused, Err(FormatError::Inflated { limit: l, .. }) if l == limit),
                "{kind}: {refused:?}"
            );
            let accepted = match kind {
                "zip" => zip_members("f.whl", Cursor::new(&bytes), 8 << 20, is_description),
                _ => tar_gz_members("f.tar.gz", Cursor::new(&bytes), 8 << 20, is_description),
            };
            assert_eq!(
                accepted.unwrap(),
                vec![("pkg/DESCRIPTION".to_string(), "Package: pkg\n".to_string())],
                "{kind}"
            );
        }
    }

    /// The budget is shared by all members: many small ones add up.
    #[test]
    fn issue_10_the_limit_counts_all_members_together() {
        let members: Vec<(String, Vec<u8>)> = (0..8)
            .map(|i| (format!("pkg/part{i}"), vec![0u8; 200_000]))
            .collect();
        let members: Vec<(&str, Vec<u8>)> = members
            .iter()
            .map(|(p, d)| (p.as_str(), d.clone()))
            .collect();
        let refused = zip_members("f.whl", Cursor::new(&zip(&members)), 1_000_000, |_| false);
        assert!(
            matches!(refused, Err(FormatError::Inflated { .. })),
            "{refused:?}"
        );
        let refused = tar_gz_members(
            "f.tar.gz",
            Cursor::new(&tar_gz(&members)),
            1_000_000,
            |_| false,
        );
        assert!(
            matches!(refused, Err(FormatError::Inflated { .. })),
            "{refused:?}"
        );
    }
}
