//! What several test areas share: the `pkgnode` binary, built once per test process, and real
//! package files from `node/tests/support/mkpkg.py`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// `$PKGNODE_BIN`, or `pkgnode` built once per test process (same profile and target dir as
/// this test binary): `cargo nextest run` builds only the harness's own targets.
pub fn pkgnode() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("PKGNODE_BIN") {
                return PathBuf::from(path);
            }
            let exe = std::env::current_exe().expect("test binary path");
            // target/{profile}/deps/it-HASH
            let profile_dir = exe.parent().and_then(Path::parent).expect("profile dir");
            let target_dir = profile_dir.parent().expect("target dir");
            let profile = profile_dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("debug");
            let profile = if profile == "debug" { "dev" } else { profile };
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "node",
                    "--bin",
                    "pkgnode",
                    "--profile",
                ])
                .arg(profile)
                .arg("--target-dir")
                .arg(target_dir)
                .status()
                .expect("run cargo");
            assert!(status.success(), "cargo build -p node --bin pkgnode failed");
            profile_dir.join("pkgnode")
        })
        .clone()
}

/// The release `pkgnode` (what the image holds, as for `harness scenario`), built once per test
/// process; `$PKGNODE_BIN` when set.
pub fn pkgnode_release() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("PKGNODE_BIN") {
                return PathBuf::from(path);
            }
            let exe = std::env::current_exe().expect("test binary path");
            // target/{profile}/deps/it-HASH
            let target_dir = exe.ancestors().nth(3).expect("target dir");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args([
                    "build",
                    "--quiet",
                    "--release",
                    "-p",
                    "node",
                    "--bin",
                    "pkgnode",
                ])
                .arg("--target-dir")
                .arg(target_dir)
                .status()
                .expect("run cargo");
            assert!(status.success(), "cargo build --release -p node failed");
            target_dir.join("release").join("pkgnode")
        })
        .clone()
}

/// A pure-Python wheel `{name}-1.0` written by `node/tests/support/mkpkg.py`.
pub fn wheel(dir: &Path, name: &str) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../node/tests/support/mkpkg.py");
    let output = Command::new("python3")
        .arg(script)
        .args(["wheel"])
        .arg(dir)
        .args([name, "1.0"])
        .output()
        .expect("python3 runs mkpkg.py");
    assert!(output.status.success(), "mkpkg.py: {output:?}");
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}
