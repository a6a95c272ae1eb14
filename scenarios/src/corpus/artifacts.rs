//! What every artifact writer shares: the artifact type, seeded incompressible padding and a
//! reproducible `.tar.gz` writer (fixed mtimes, owners and modes, so the same corpus always
//! yields the same bytes and a repeated upload is recognised as identical).

use std::io::Write;

use flate2::Compression;
use flate2::GzBuilder;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

use crate::error::ScenarioError;

/// Which file an [`Artifact`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArtifactKind {
    /// A wheel: pure-Python `py3-none-any`, or tagged for one CPython and platform.
    Wheel,
    /// A Python source distribution.
    Sdist,
    /// An R source package tarball.
    RSource,
}

/// A built package file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// What it is.
    pub kind: ArtifactKind,
    /// Its file name, as served and uploaded.
    pub file_name: String,
    /// The package version it belongs to.
    pub version: String,
    /// Its content.
    pub bytes: Vec<u8>,
}

impl Artifact {
    /// Hex SHA-256 of the content, as in `#sha256=` links and upload digests.
    pub fn sha256_hex(&self) -> String {
        hex::encode(Sha256::digest(&self.bytes))
    }
}

/// SplitMix64 of `seed ^ salt`: derives independent, reproducible seeds.
pub fn mix_seed(seed: u64, salt: u64) -> u64 {
    let mut z = (seed ^ salt.rotate_left(17)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `len` random bytes from `seed`: incompressible, so the artifact's size on the wire is real.
pub(crate) fn padding(seed: u64, len: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
    StdRng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

/// A `.tar.gz` built in memory from `(path, content)` entries, reproducibly.
pub(crate) fn tar_gz(
    file_name: &str,
    entries: &[(String, &[u8])],
) -> Result<Vec<u8>, ScenarioError> {
    let failed = |e: std::io::Error| ScenarioError::Artifact {
        file: file_name.to_string(),
        detail: e.to_string(),
    };
    // Random padding does not compress; level 1 saves time for the same size.
    let gz = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    for (path, content) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, path, *content)
            .map_err(failed)?;
    }
    let mut gz = tar.into_inner().map_err(failed)?;
    gz.flush().map_err(failed)?;
    gz.finish().map_err(failed)
}

/// A `.tar.gz` of `entries` plus a padding file at `padding_path`, sized so the whole archive
/// comes within a fraction of a percent of `target_bytes` (never below the bare entries).
pub(crate) fn padded_tar_gz(
    file_name: &str,
    entries: Vec<(String, &[u8])>,
    padding_path: String,
    padding_seed: u64,
    target_bytes: u64,
) -> Result<Vec<u8>, ScenarioError> {
    // The small files compress to a known size; measure it once with an empty padding file.
    let mut bare_entries = entries.clone();
    bare_entries.push((padding_path.clone(), &[]));
    let bare = tar_gz(file_name, &bare_entries)?.len() as u64;
    // Random bytes grow by about 1/2000 in gzip's stored blocks; tar padding compresses away.
    let len = target_bytes.saturating_sub(bare + target_bytes / 2000);
    let build = |len: u64| {
        let pad = padding(padding_seed, len);
        let mut padded = entries.clone();
        padded.push((padding_path.clone(), &pad));
        tar_gz(file_name, &padded)
    };
    let first = build(len)?;
    // Small archives miss by their fixed overhead's share; one cheap corrected build fixes it.
    let miss = first.len() as i64 - target_bytes as i64;
    if target_bytes < 1_000_000 && miss.unsigned_abs() * 200 > target_bytes && len > 0 {
        return build(len.saturating_add_signed(-miss));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_and_padding_are_reproducible_and_distinct() {
        assert_eq!(mix_seed(1, 2), mix_seed(1, 2));
        assert_ne!(mix_seed(1, 2), mix_seed(1, 3));
        assert_eq!(padding(5, 1000), padding(5, 1000));
        assert_ne!(padding(5, 1000), padding(6, 1000));
        assert_eq!(padding(5, 1000).len(), 1000);
    }

    #[test]
    fn tar_gz_is_byte_identical_across_builds() {
        let entries = vec![("a/b.txt".to_string(), &b"hello"[..])];
        let one = tar_gz("x.tar.gz", &entries).unwrap();
        let two = tar_gz("x.tar.gz", &entries).unwrap();
        assert_eq!(one, two);
        assert_eq!(&one[..2], &[0x1f, 0x8b]);
    }

    #[test]
    fn padded_tar_gz_lands_near_its_target() {
        for target in [5_000u64, 50_000, 3_000_000] {
            let entries = vec![("p/DESCRIPTION".to_string(), &b"Package: p"[..])];
            let bytes = padded_tar_gz("p.tar.gz", entries, "p/pad".into(), 1, target).unwrap();
            let ratio = bytes.len() as f64 / target as f64;
            assert!((0.99..1.01).contains(&ratio), "{target}: {}", bytes.len());
        }
    }
}
