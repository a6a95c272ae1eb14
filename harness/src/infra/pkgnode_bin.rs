//! Where the `pkgnode` binary is: what the local provider runs and the docker provider builds
//! its image from.

use std::path::PathBuf;

use super::InfraError;

/// Finds `pkgnode`: `$PKGNODE_BIN`, else next to the running executable (`target/debug/`), else
/// one level up (a test binary runs from `target/debug/deps/`).
pub fn find_pkgnode_bin() -> Result<PathBuf, InfraError> {
    if let Some(path) = std::env::var_os("PKGNODE_BIN") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            // Absolute: the nodes run from their own working directories.
            Ok(path.canonicalize()?)
        } else {
            Err(InfraError::Missing {
                what: "pkgnode".into(),
                detail: format!("PKGNODE_BIN={} is not a file", path.display()),
            })
        };
    }
    let exe = std::env::current_exe()?;
    let mut looked = Vec::new();
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join("pkgnode");
        if candidate.is_file() {
            return Ok(candidate);
        }
        looked.push(candidate.display().to_string());
    }
    Err(InfraError::Missing {
        what: "pkgnode".into(),
        detail: format!(
            "not found at {}: build it with `cargo build -p node` or set PKGNODE_BIN",
            looked.join(" or ")
        ),
    })
}
