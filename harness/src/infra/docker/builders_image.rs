//! The node image of git-builders runs, `pkgcluster/pkgnode-builders:DIGEST`: a Debian root file
//! system with git, R and Python 3 (`build`, `setuptools`, `wheel`) plus the `pkgnode` binary,
//! made offline by `docker/build-builders-image.sh` (debootstrap, then `docker import`). The
//! FROM-scratch `pkgcluster/pkgnode` image has no toolchain, so it cannot build a package; it
//! stays the node image of every run without builders.
//!
//! The script names the image after its inputs' digest and reuses it when it exists, so calling
//! it costs the binary's sha256 when nothing changed. The bootstrapped root is cached under the
//! harness's cache directory ([`root_cache_dir`]): a new binary only imports again.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::infra::InfraError;

/// `docker/build-builders-image.sh` of this workspace.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker/build-builders-image.sh")
}

/// Where the script keeps the bootstrapped root: `$PKGCLUSTER_BUILDERS_CACHE`, else
/// `builders-root` in the harness's cache directory (beside the corpus cache).
pub fn root_cache_dir() -> PathBuf {
    std::env::var_os("PKGCLUSTER_BUILDERS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::corpus_cache::pkgcluster_cache_dir().join("builders-root"))
}

/// Makes sure the builders image for `pkgnode_bin` exists (building it when missing: minutes the
/// first time on a machine, seconds with the root cached) and returns its (repository, tag).
/// The script's progress goes to standard error as it runs. Callers serialise it (the images
/// lock in [`super::engine::ensure_images`]).
pub fn ensure(pkgnode_bin: &Path) -> Result<(String, String), InfraError> {
    let script = script();
    let output = Command::new("bash")
        .arg(&script)
        .env("PKGNODE_BIN", pkgnode_bin)
        .env("PKGCLUSTER_BUILDERS_CACHE", root_cache_dir())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| InfraError::Missing {
            what: "bash (for docker/build-builders-image.sh)".into(),
            detail: e.to_string(),
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(InfraError::Failed {
            what: script.display().to_string(),
            detail: format!("{} (its messages are above)", output.status),
        });
    }
    parse_reference(&stdout).ok_or_else(|| InfraError::Failed {
        what: script.display().to_string(),
        detail: format!("printed no image reference: {stdout:?}"),
    })
}

/// `REPOSITORY:TAG` from the script's last line of output.
fn parse_reference(stdout: &str) -> Option<(String, String)> {
    let line = stdout.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    let (repository, tag) = line.rsplit_once(':')?;
    (!repository.is_empty() && !tag.is_empty() && !tag.contains('/'))
        .then(|| (repository.to_string(), tag.to_string()))
}

#[cfg(test)]
mod tests {
    use super::parse_reference;

    #[test]
    fn the_image_reference_is_the_last_line_and_needs_a_tag() {
        assert_eq!(
            parse_reference("pkgcluster/pkgnode-builders:82adabad57fb5d83\n"),
            Some((
                "pkgcluster/pkgnode-builders".into(),
                "82adabad57fb5d83".into()
            ))
        );
        assert_eq!(parse_reference(""), None);
        assert_eq!(parse_reference("pkgcluster/pkgnode-builders\n"), None);
        assert_eq!(parse_reference("localhost:5000/pkgnode-builders\n"), None);
    }
}
