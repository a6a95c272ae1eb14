//! A data dir the `postgres` user can reach when the work dir is private to the harness (as
//! root, the servers run as `postgres`).

use std::path::{Path, PathBuf};

use super::super::process::Identity;
use crate::infra::InfraError;

/// Whether `identity` may traverse every directory down to `path` (root ignores permissions, so
/// `access(2)` cannot tell).
pub(super) fn reachable_by(path: &Path, identity: Identity) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(path) = path.canonicalize() else {
        return false;
    };
    path.ancestors().all(|dir| {
        let Ok(meta) = std::fs::metadata(dir) else {
            return false;
        };
        let mode = meta.mode();
        if meta.uid() == identity.uid.as_raw() {
            mode & 0o100 != 0
        } else if meta.gid() == identity.gid.as_raw() {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        }
    })
}

/// A temp dir the `postgres` user can reach, for when the work dir is private (e.g. under a
/// mode-0700 `$TMPDIR`).
pub(super) fn outside_dir(identity: Identity) -> Result<tempfile::TempDir, InfraError> {
    use std::os::unix::fs::PermissionsExt;
    let candidates = [
        std::env::temp_dir(),
        PathBuf::from("/tmp"),
        PathBuf::from("/var/tmp"),
    ];
    let base = candidates
        .iter()
        .find(|dir| reachable_by(dir, identity))
        .ok_or_else(|| InfraError::Failed {
            what: "postgresql".into(),
            detail: "no directory the postgres user can reach: neither the work dir, $TMPDIR, \
                     /tmp nor /var/tmp"
                .into(),
        })?;
    let dir = tempfile::Builder::new()
        .prefix("harness-pg-")
        .tempdir_in(base)?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))?;
    Ok(dir)
}

pub(super) fn chown(path: &Path, identity: Identity) -> Result<(), InfraError> {
    std::os::unix::fs::chown(
        path,
        Some(identity.uid.as_raw()),
        Some(identity.gid.as_raw()),
    )
    .map_err(|e| InfraError::Failed {
        what: "postgresql".into(),
        detail: format!("cannot give {} to the postgres user: {e}", path.display()),
    })
}
