//! Histogram files: HdrHistogram V2 + deflate encoding, one `.hdr` per kind and one `.buckets`
//! file of base64 lines per kind, and the mapping from kind names to safe file names.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};

use crate::ReportError;

/// Encodes a histogram in the HdrHistogram V2 compressed (deflate) format, which the Java, Go
/// and Rust HdrHistogram libraries all read.
pub fn encode(h: &Histogram<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut out)
        .expect("a histogram always serializes into memory");
    out
}

/// Decodes a V2 (plain or deflate) histogram; the result auto-resizes so it can take merges.
pub fn decode(bytes: &[u8], path: &Path) -> Result<Histogram<u64>, ReportError> {
    let mut h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|e| ReportError::Histogram {
            path: path.to_owned(),
            reason: format!("not an HdrHistogram V2 encoding: {e:?}"),
        })?;
    h.auto(true);
    Ok(h)
}

/// The `.buckets` file: line *i* is the base64 (standard alphabet, padded) of bucket *i*'s
/// V2-deflate histogram.
pub fn encode_buckets<'a>(histograms: impl Iterator<Item = &'a Histogram<u64>>) -> Vec<u8> {
    let mut out = Vec::new();
    for h in histograms {
        out.extend_from_slice(STANDARD.encode(encode(h)).as_bytes());
        out.push(b'\n');
    }
    out
}

/// Reads a `.buckets` file back; it must hold exactly `expected` lines.
pub fn decode_buckets(
    text: &str,
    expected: usize,
    path: &Path,
) -> Result<Vec<Histogram<u64>>, ReportError> {
    let bad = |reason: String| ReportError::Histogram {
        path: path.to_owned(),
        reason,
    };
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() != expected {
        return Err(bad(format!(
            "{} bucket lines but record.json has {expected} buckets",
            lines.len()
        )));
    }
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let bytes = STANDARD
                .decode(line.trim())
                .map_err(|e| bad(format!("line {}: bad base64: {e}", i + 1)))?;
            decode(&bytes, path).map_err(|e| match e {
                ReportError::Histogram { reason, .. } => bad(format!("line {}: {reason}", i + 1)),
                other => other,
            })
        })
        .collect()
}

/// A file name stem for a request kind: ASCII letters, digits, `_` and `-` stay, every other
/// byte becomes `%XX` (so `.`, `/` and `..` can never escape the directory). The empty kind is
/// `%`.
pub fn file_stem(kind: &str) -> String {
    if kind.is_empty() {
        return "%".to_owned();
    }
    let mut out = String::with_capacity(kind.len());
    for byte in kind.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Writes `bytes` to `path` atomically: a temporary sibling, synced, then renamed over `path`,
/// so a reader never sees half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file =
            std::fs::File::create(&tmp).map_err(|e| ReportError::io("create", &tmp, e))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| ReportError::io("write", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| ReportError::io("rename", &tmp, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems_are_safe_and_distinct() {
        assert_eq!(file_stem("install"), "install");
        assert_eq!(file_stem("pypi_simple"), "pypi_simple");
        assert_eq!(file_stem("cran-packages"), "cran-packages");
        assert_eq!(file_stem("../x"), "%2E%2E%2Fx");
        assert_eq!(file_stem("a.b"), "a%2Eb");
        assert_eq!(file_stem(""), "%");
        assert_ne!(file_stem("a b"), file_stem("a_b"));
    }

    #[test]
    fn corrupt_buckets_are_reported_with_line() {
        let path = Path::new("x.buckets");
        let err = decode_buckets("AAAA\n", 1, path).unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
        let err = decode_buckets("", 2, path).unwrap_err().to_string();
        assert!(
            err.contains("0 bucket lines but record.json has 2"),
            "{err}"
        );
    }
}
