//! The real clients: twine uploads, pip and uv installs with a dependency from the repo, a pinned
//! old version from a transaction snapshot, and R `install.packages` with an Imports dependency.

use std::path::Path;
use std::process::Command;

use crate::support::{self, NodeDir, Postgres};

fn round_trip(node: &NodeDir) {
    node.standard_layout();
    let token = node.token("py");
    let served = node.serve();
    let work = tempfile::tempdir().unwrap();
    let pkgs = work.path().join("pkgs");
    let alpha1 = support::mkpkg(&pkgs, &["wheel", "alpha-lib", "1.0"]);
    let beta_wheel = support::mkpkg(&pkgs, &["wheel", "beta", "1.0", "alpha-lib>=1.0"]);
    let beta_sdist = support::mkpkg(&pkgs, &["sdist", "beta", "1.0", "alpha-lib>=1.0"]);
    let (ok, out) = support::twine_upload(
        &served.base,
        "py",
        &token,
        &[&alpha1, &beta_wheel, &beta_sdist],
    );
    assert!(ok, "twine upload failed: {out}");

    let index = format!("{}/pypi/latest/simple/", served.base);
    let target = work.path().join("pip-target");
    let (ok, out) = support::pip_install(&index, &target, "beta");
    assert!(ok, "pip install beta failed: {out}");
    assert!(
        target.join("beta/__init__.py").exists(),
        "pip did not install beta"
    );
    assert!(
        target.join("alpha_lib/__init__.py").exists(),
        "pip did not install the dependency alpha-lib"
    );

    let uv_target = work.path().join("uv-target");
    let (ok, out) = support::client(
        "uv",
        &[
            "pip",
            "install",
            "--python",
            "python3",
            "--target",
            &uv_target.display().to_string(),
            "--index-url",
            &index,
            "beta",
        ],
    );
    assert!(ok, "uv pip install beta failed: {out}");
    assert!(
        uv_target.join("beta/__init__.py").exists()
            && uv_target.join("alpha_lib/__init__.py").exists()
    );

    // A snapshot taken now keeps serving alpha-lib 1.0 after 2.0 arrives.
    let status: serde_json::Value =
        reqwest::blocking::get(format!("{}/__api__/status", served.base))
            .unwrap()
            .json()
            .unwrap();
    let snapshot_tx = status["transaction"]
        .as_i64()
        .expect("transaction in status");
    let alpha2 = support::mkpkg(&pkgs, &["wheel", "alpha-lib", "2.0"]);
    let (ok, out) = support::twine_upload(&served.base, "py", &token, &[&alpha2]);
    assert!(ok, "twine upload of alpha-lib 2.0 failed: {out}");
    let old_index = format!("{}/pypi/{snapshot_tx}/simple/", served.base);
    let pinned = work.path().join("pinned");
    let (ok, out) = support::pip_install(&old_index, &pinned, "alpha-lib==1.0");
    assert!(
        ok,
        "pip install alpha-lib==1.0 from snapshot {snapshot_tx} failed: {out}"
    );
    let (ok, _) = support::pip_install(&old_index, &work.path().join("nope"), "alpha-lib==2.0");
    assert!(!ok, "snapshot {snapshot_tx} must not offer alpha-lib 2.0");
    let newest = work.path().join("newest");
    let (ok, out) = support::pip_install(&index, &newest, "alpha-lib");
    assert!(ok, "{out}");
    let installed = std::fs::read_to_string(newest.join("alpha_lib/__init__.py")).unwrap();
    assert!(
        installed.contains("2.0"),
        "latest should install alpha-lib 2.0, got {installed}"
    );

    // R: a package whose Imports dependency also comes from the repo.
    let rdep = support::mkpkg(&pkgs, &["rpkg", "rdep", "1.0"]);
    let rtop = support::mkpkg(&pkgs, &["rpkg", "rtop", "0.1-1", "rdep"]);
    node.admin(&[
        "add",
        "--source",
        "rsrc",
        "--path",
        &rdep.display().to_string(),
        &rtop.display().to_string(),
    ]);
    install_r(&served.base, work.path());
}

fn install_r(base: &str, work: &Path) {
    let lib = work.join("rlib");
    std::fs::create_dir_all(&lib).unwrap();
    let script = format!(
        "options(warn = 2); install.packages('rtop', repos = '{base}/cran/latest', lib = '{0}'); \
         library(rtop, lib.loc = '{0}'); cat(hello_rtop(), '\\n')",
        lib.display()
    );
    // No retry: the node sees what the admin CLI committed before the install began (issue 10
    // defect 1).
    let out = Command::new("Rscript")
        .args(["-e", &script])
        .output()
        .expect("Rscript is not installed: run .ci/install.sh");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "install.packages failed: {printed}");
    assert!(printed.contains("rtop 0.1-1"), "R printed: {printed}");
    assert!(
        lib.join("rdep/DESCRIPTION").exists(),
        "R did not install the Imports dependency"
    );
}

#[test]
fn real_clients_on_sqlite() {
    // A head poll far slower than the test: only a per-request head read can explain R seeing
    // what `pkgnode add` committed.
    round_trip(&NodeDir::with_head_poll("", "30s"));
}

#[test]
fn real_clients_on_postgres() {
    let pg = Postgres::start();
    let url = pg.database("clients");
    round_trip(&NodeDir::with_head_poll(
        &format!("[database]\nurl = \"{url}\"\n"),
        "30s",
    ));
    // Metadata really is in PostgreSQL.
    assert_eq!(pg.psql("clients", "SELECT COUNT(*) FROM packages"), "6");
}
