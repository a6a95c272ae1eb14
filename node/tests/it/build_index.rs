//! Python Git builds whose build requirements come from the node's own repository
//! (`[git] python_build_index`): a real flit_core project from PyPI — `packaging`'s sdist,
//! downloaded at test time and committed to Git unpacked — builds with build isolation, its
//! backend installed from an authenticated repo of the node with a read token the node issues
//! for the build and revokes after it, and pip installs what it published from that repo;
//! without the backend in the repo the build fails naming the backend and the requirement.
//!
//! PyPI must be reachable: a failed `pip download` fails the test (no skip).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::git_builders::{GIT_FAST, GitRepo, client, wait_build};
use crate::support::{self, NodeDir};

/// The project built: packaging builds with flit_core (`build-backend = "flit_core.buildapi"`).
const PROJECT: &str = "packaging";
const PROJECT_VERSION: &str = "26.4";
const BACKEND: &str = "flit_core";

/// Downloads one distribution from PyPI into `dir` with `pip download --no-deps` and `extra`
/// options; returns its path. Panics when pip fails: these tests need PyPI.
fn pip_download(dir: &Path, requirement: &str, extra: &[&str]) -> PathBuf {
    let dest = dir.display().to_string();
    let mut args = vec!["-m", "pip", "download", "--no-deps", "--dest", &dest];
    args.extend(extra);
    args.push(requirement);
    let (ok, out) = support::client("python3", &args);
    assert!(
        ok,
        "pip download {requirement} failed (these tests need PyPI to be reachable): {out}"
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "pip download left {files:?}");
    files.remove(0)
}

/// The project's sdist from PyPI, unpacked and committed to a new Git repository; returns the
/// repository and the commit.
fn project_in_git(downloads: &Path) -> (GitRepo, String) {
    let sdist = pip_download(
        &downloads.join("sdist"),
        &format!("{PROJECT}=={PROJECT_VERSION}"),
        &["--no-binary", ":all:"],
    );
    let repo = GitRepo::new();
    let out = Command::new("tar")
        .arg("-xzf")
        .arg(&sdist)
        .arg("--strip-components=1")
        .arg("-C")
        .arg(&repo.work)
        .output()
        .expect("tar");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pyproject = std::fs::read_to_string(repo.work.join("pyproject.toml")).unwrap();
    assert!(
        pyproject.contains("flit_core.buildapi"),
        "{PROJECT} {PROJECT_VERSION} no longer builds with flit_core: {pyproject}"
    );
    let sha = repo.commit(&format!("{PROJECT} {PROJECT_VERSION} from its sdist"));
    (repo, sha)
}

/// A node whose Python builds take their requirements from repo `py`, which serves source
/// `backends` (uploads) and source `pygit` (the builds).
fn node_with_build_index(authenticated: bool) -> NodeDir {
    let node = NodeDir::new(&format!("{GIT_FAST}python_build_index = \"py\"\n"));
    node.admin(&[
        "create",
        "source",
        "--name",
        "backends",
        "--type",
        "local-python",
    ]);
    node.admin(&[
        "create",
        "source",
        "--name",
        "pygit",
        "--type",
        "git-python",
    ]);
    let mut repo = vec!["create", "repo", "--name", "py", "--type", "python"];
    if authenticated {
        repo.push("--authenticated");
    }
    node.admin(&repo);
    node.admin(&["subscribe", "--repo", "py", "--source", "backends"]);
    node.admin(&["subscribe", "--repo", "py", "--source", "pygit"]);
    node
}

fn build_log(base: &str, build: &Value) -> String {
    let id = build["id"].as_i64().expect("build id");
    let response = client()
        .get(format!("{base}/__api__/git-builds/{id}/log"))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.text().unwrap()
}

#[test]
fn python_build_index_builds_a_flit_core_sdist_from_pypi_and_pip_installs_it() {
    let downloads = tempfile::tempdir().unwrap();
    let (repo, sha) = project_in_git(downloads.path());
    let backend = pip_download(
        &downloads.path().join("backend"),
        BACKEND,
        &["--only-binary", ":all:"],
    );

    let node = node_with_build_index(true);
    let upload_token = node.token("backends");
    let read_token = node
        .admin(&["create", "token", "--scope", "repos:read", "--repo", "py"])
        .lines()
        .last()
        .expect("token line")
        .trim()
        .to_string();
    let served = node.serve();
    let base = served.base.clone();
    let (ok, out) = support::twine_upload(&base, "backends", &upload_token, &[&backend]);
    assert!(ok, "twine upload of {} failed: {out}", backend.display());
    node.admin(&[
        "create",
        "git-builder",
        "--source",
        "pygit",
        "--url",
        &repo.url(),
        "--name",
        PROJECT,
    ]);

    let log = || node.log();
    let build = wait_build(&base, "pygit", &sha, Duration::from_secs(180), &log);
    let text = build_log(&base, &build);
    assert_eq!(build["state"], "succeeded", "{build}\n{text}");
    assert_eq!(build["version"], PROJECT_VERSION, "{build}");
    let packages = node.admin(&["list", "packages", "--source", "pygit"]);
    for file in [
        format!("{PROJECT}-{PROJECT_VERSION}.tar.gz"),
        format!("{PROJECT}-{PROJECT_VERSION}-py3-none-any.whl"),
    ] {
        assert!(packages.contains(&file), "{file} not published: {packages}");
    }

    // Built isolated, against this node's repo, the token never shown.
    assert!(!text.contains("--no-isolation"), "{text}");
    assert!(text.contains("flit_core.buildapi"), "{text}");
    assert!(
        text.contains(&format!("{}/py/latest/simple/", node.base())),
        "{text}"
    );
    assert!(!text.contains("__token__:ey"), "a token in the log: {text}");
    // The build's token was issued for repo py alone and revoked when the build ended.
    let guid = text
        .split("with a read token for this build, ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no build token named in the log: {text}"));
    let tokens = node.admin(&["list", "tokens"]);
    let line = tokens
        .lines()
        .find(|l| l.starts_with(guid))
        .unwrap_or_else(|| panic!("token {guid} not recorded: {tokens}"));
    assert!(
        line.contains("repos:read py") && line.contains("revoked"),
        "{line}"
    );

    // pip installs the published project from the same repo, as a user with a read token.
    let target = downloads.path().join("site");
    let index = format!(
        "http://__token__:{read_token}@{}:{}/py/latest/simple/",
        node.ip, node.port
    );
    let (ok, out) = support::pip_install(&index, &target, &format!("{PROJECT}=={PROJECT_VERSION}"));
    assert!(ok, "pip install failed: {out}");
    let metadata = std::fs::read_to_string(
        target
            .join(format!("{PROJECT}-{PROJECT_VERSION}.dist-info"))
            .join("METADATA"),
    )
    .unwrap();
    assert!(
        metadata.contains(&format!("Version: {PROJECT_VERSION}")),
        "{metadata}"
    );
    assert!(target.join(PROJECT).join("version.py").is_file());
}

#[test]
fn python_build_index_without_the_backend_fails_naming_it() {
    let downloads = tempfile::tempdir().unwrap();
    let (repo, sha) = project_in_git(downloads.path());
    let node = node_with_build_index(false);
    let served = node.serve();
    let base = served.base.clone();
    node.admin(&[
        "create",
        "git-builder",
        "--source",
        "pygit",
        "--url",
        &repo.url(),
        "--name",
        PROJECT,
    ]);

    let log = || node.log();
    let build = wait_build(&base, "pygit", &sha, Duration::from_secs(180), &log);
    let text = build_log(&base, &build);
    assert_eq!(build["state"], "failed", "{build}\n{text}");
    let error = build["error"].as_str().unwrap_or_default();
    for named in [
        "flit_core.buildapi",
        "flit_core>=",
        "\"py\"",
        "python_build_index",
    ] {
        assert!(error.contains(named), "{named} not in the error: {error}");
    }
    assert!(text.contains(error), "the log ends with the error: {text}");
    assert!(
        text.contains("No matching distribution found for flit_core"),
        "{text}"
    );
    assert_eq!(node.admin(&["list", "packages", "--source", "pygit"]), "");
    assert!(
        node.log().contains("flit_core.buildapi"),
        "the node logs the failure with the backend: {}",
        node.log()
    );
}
