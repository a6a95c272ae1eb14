//! Git builders with real git, R and Python: a commit on a `git` builder is built by
//! `R CMD build` and installed by `install.packages`; a tag on a `git-python` builder is built by
//! `python3 -m build` and installed by pip; a broken commit fails with its log served and does not
//! block the queue; two nodes on one PostgreSQL share one queue and publish every (builder,
//! commit) once; a SIGKILLed node's leased build completes on the other node after the lease
//! expires; a poll records the tip it saw before queueing, so a commit seen and never queued
//! stays on record.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cluster::{Fixture, Key, list_nodes};
use crate::support::{self, NodeDir, Served, wait_until};

/// Fast polling and short leases, so a test takes seconds.
pub(crate) const GIT_FAST: &str =
    "[git]\npoll_interval = \"250ms\"\nlease_duration = \"2s\"\nbuild_timeout = \"2m\"\n";

/// A bare repository (the remote) and a work tree that pushes to it.
pub(crate) struct GitRepo {
    _dir: tempfile::TempDir,
    bare: PathBuf,
    pub(crate) work: PathBuf,
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.org")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.org")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git is not installed: run .ci/install.sh");
    assert!(
        out.status.success(),
        "git {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl GitRepo {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("remote.git");
        let work = dir.path().join("work");
        git(
            dir.path(),
            &["init", "--quiet", "--bare", "-b", "main", "remote.git"],
        );
        git(dir.path(), &["init", "--quiet", "-b", "main", "work"]);
        git(
            &work,
            &["remote", "add", "origin", &bare.display().to_string()],
        );
        Self {
            _dir: dir,
            bare,
            work,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    fn write(&self, path: &str, content: &str) {
        let file = self.work.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }

    /// Commits everything and pushes; returns the commit id.
    pub(crate) fn commit(&self, message: &str) -> String {
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "--quiet", "-m", message]);
        git(&self.work, &["push", "--quiet", "origin", "HEAD:main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// Tags the newest commit (annotated) and pushes the tag; returns the commit id.
    fn tag(&self, name: &str) -> String {
        git(&self.work, &["tag", "-a", name, "-m", name]);
        git(&self.work, &["push", "--quiet", "origin", name]);
        git(&self.work, &["rev-parse", &format!("{name}^{{commit}}")])
    }

    /// An R package at `version`.
    fn r_package(&self, name: &str, version: &str) {
        self.write(
            "DESCRIPTION",
            &format!(
                "Package: {name}\nType: Package\nTitle: Built From Git\nVersion: {version}\n\
                 Author: Test\nMaintainer: Test <test@example.org>\n\
                 Description: A package the node builds from a Git repository.\nLicense: GPL-3\n"
            ),
        );
        self.write("NAMESPACE", &format!("export(hello_{name})\n"));
        self.write(
            "R/hello.R",
            &format!("hello_{name} <- function() paste(\"{name}\", \"{version}\")\n"),
        );
    }

    /// A Python package at `version`; `slow_s` makes each build step sleep.
    fn python_package(&self, name: &str, version: &str, slow_s: u32) {
        let module = name.replace('-', "_");
        self.write(
            "pyproject.toml",
            &format!(
                "[build-system]\nrequires = [\"setuptools>=61\"]\nbuild-backend = \"setuptools.build_meta\"\n\
                 [project]\nname = \"{name}\"\nversion = \"{version}\"\nrequires-python = \">=3.8\"\n\
                 [tool.setuptools]\npackages = [\"{module}\"]\n"
            ),
        );
        self.write(
            &format!("{module}/__init__.py"),
            &format!("VALUE = {version:?}\n"),
        );
        if slow_s > 0 {
            self.write(
                "setup.py",
                &format!(
                    "import time\ntime.sleep({slow_s})\nfrom setuptools import setup\nsetup()\n"
                ),
            );
        }
    }
}

pub(crate) fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn create_builder(base: &str, token: &str, source: &str, body: Value) -> (u16, Value) {
    let response = client()
        .post(format!("{base}/__api__/sources/{source}/git-builders"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn builds(base: &str, source: &str) -> Vec<Value> {
    let response = client()
        .get(format!(
            "{base}/__api__/sources/{source}/git-builds?count=1000"
        ))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.json().unwrap()
}

/// Waits until the build of `sha` ended; returns it.
pub(crate) fn wait_build(
    base: &str,
    source: &str,
    sha: &str,
    timeout: Duration,
    log: &dyn Fn() -> String,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let found = builds(base, source)
            .into_iter()
            .find(|b| b["commit_sha"] == sha);
        if let Some(build) = &found
            && (build["state"] == "succeeded" || build["state"] == "failed")
        {
            return build.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the build of {sha} did not end in {timeout:?}: {found:?}\nbuilds: {:?}\nnode log:\n{}",
            builds(base, source),
            log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn install_r(base: &str, package: &str, lib: &Path) -> String {
    std::fs::create_dir_all(lib).unwrap();
    let script = format!(
        "options(warn = 2); install.packages('{package}', repos = '{base}/cran/latest', lib = '{0}'); \
         library({package}, lib.loc = '{0}'); cat(hello_{package}(), '\\n')",
        lib.display()
    );
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
    printed
}

fn r_layout(node: &NodeDir) {
    node.admin(&["create", "source", "--name", "rgit", "--type", "git"]);
    node.admin(&["create", "repo", "--name", "cran", "--type", "r"]);
    node.admin(&["subscribe", "--repo", "cran", "--source", "rgit"]);
}

/// The value of the sample `name` whose labels are `labels` in `base`'s `/metrics`.
fn metric(base: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let text = client()
        .get(format!("{base}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    support::metric_samples(&text)
        .into_iter()
        .find(|(sample, sample_labels, _)| {
            let sample_labels = sample_labels.iter().map(|(l, v)| (l.as_str(), v.as_str()));
            sample == name && sample_labels.eq(labels.iter().copied())
        })
        .map(|(_, _, value)| value)
}

#[test]
fn a_commit_on_a_git_builder_is_built_and_installed_by_r() {
    let node = NodeDir::new(GIT_FAST);
    r_layout(&node);
    let token = node.token("rgit");
    let served = node.serve();
    let base = served.base.clone();
    let log = || node.log();
    let repo = GitRepo::new();
    repo.r_package("gitpkg", "0.1.0");
    let first = repo.commit("first");

    // Negative controls: no token, a token for another source, a local source.
    let body =
        json!({"name": "gitpkg", "url": repo.url(), "branch": "main", "build_trigger": "commits"});
    let refused = client()
        .post(format!("{base}/__api__/sources/rgit/git-builders"))
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    node.admin(&["create", "source", "--name", "other", "--type", "local"]);
    let other = node.token("other");
    assert_eq!(create_builder(&base, &other, "rgit", body.clone()).0, 403);
    let (status, answer) = create_builder(&base, &other, "other", body.clone());
    assert_eq!(status, 400, "{answer}");

    let (status, created) = create_builder(&base, &token, "rgit", body.clone());
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "gitpkg");
    assert_eq!(create_builder(&base, &token, "rgit", body).0, 409);

    let build = wait_build(&base, "rgit", &first, Duration::from_secs(60), &log);
    assert_eq!(build["state"], "succeeded", "{build}\n{}", node.log());
    // The fields the harness reads, every one present (null where not known).
    for key in [
        "id",
        "builder",
        "commit_sha",
        "tag",
        "version",
        "state",
        "attempts",
        "node_id",
        "queued_at",
        "started_at",
        "finished_at",
        "transaction_id",
        "error",
    ] {
        assert!(build.get(key).is_some(), "{key} missing from {build}");
    }
    assert!(
        build["tag"].is_null() && build["error"].is_null(),
        "{build}"
    );
    let listed: Value = client()
        .get(format!("{base}/__api__/sources/rgit/git-builders"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(listed[0]["name"], "gitpkg", "{listed}");
    assert_eq!(listed[0]["build_trigger"], "commits", "{listed}");
    assert_eq!(build["version"], "0.1.0");
    assert_eq!(build["attempts"], 1);
    assert!(build["transaction_id"].as_i64().is_some(), "{build}");
    assert!(
        build["finished_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{build}"
    );
    let work = tempfile::tempdir().unwrap();
    let printed = install_r(&base, "gitpkg", &work.path().join("lib1"));
    assert!(printed.contains("gitpkg 0.1.0"), "R printed: {printed}");

    // The next commit, with a new version, is built and served as the newest.
    repo.r_package("gitpkg", "0.2.0");
    let second = repo.commit("second");
    let build = wait_build(&base, "rgit", &second, Duration::from_secs(60), &log);
    assert_eq!(build["state"], "succeeded", "{build}");
    let printed = install_r(&base, "gitpkg", &work.path().join("lib2"));
    assert!(printed.contains("gitpkg 0.2.0"), "R printed: {printed}");

    // A commit that keeps the published version fails: a published version never changes.
    repo.write("R/more.R", "more <- function() 2\n");
    let third = repo.commit("same version");
    let build = wait_build(&base, "rgit", &third, Duration::from_secs(60), &log);
    assert_eq!(build["state"], "failed", "{build}");
    assert!(
        build["error"]
            .as_str()
            .unwrap_or("")
            .contains("already exists"),
        "{build}"
    );

    // Re-polls and `run` never queue a commit twice; rerunning a published commit is refused.
    let run = client()
        .post(format!(
            "{base}/__api__/sources/rgit/git-builders/gitpkg/run"
        ))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(run.status().as_u16(), 202);
    let run: Value = run.json().unwrap();
    assert_eq!(run["queued"], json!([]), "{run}");
    let rerun = client()
        .post(format!(
            "{base}/__api__/sources/rgit/git-builders/gitpkg/rerun"
        ))
        .bearer_auth(&token)
        .json(&json!({"commit_sha": first}))
        .send()
        .unwrap();
    assert_eq!(rerun.status().as_u16(), 409);
    assert_eq!(builds(&base, "rgit").len(), 3);
    let listed = node.admin(&["list", "git-builds", "--source", "rgit", "--name", "gitpkg"]);
    assert_eq!(listed.lines().count(), 3, "{listed}");
    assert!(
        listed.lines().next().unwrap().contains(&third),
        "newest first: {listed}"
    );

    assert_eq!(
        metric(
            &base,
            "pkgnode_git_builds_total",
            &[("result", "succeeded")]
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(&base, "pkgnode_git_builds_total", &[("result", "failed")]),
        Some(1.0)
    );
    assert_eq!(metric(&base, "pkgnode_git_builds_queued", &[]), Some(0.0));
    // The scratch directories are gone.
    let scratch = node.data_dir().join("builds");
    let left: Vec<_> = std::fs::read_dir(&scratch)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "scratch left behind: {left:?}");
}

#[test]
fn a_tag_on_a_git_python_builder_is_built_and_installed_by_pip() {
    let node = NodeDir::new(GIT_FAST);
    node.admin(&[
        "create",
        "source",
        "--name",
        "pygit",
        "--type",
        "git-python",
    ]);
    node.admin(&["create", "repo", "--name", "pypi", "--type", "python"]);
    node.admin(&["subscribe", "--repo", "pypi", "--source", "pygit"]);
    let served = node.serve();
    let base = served.base.clone();
    let log = || node.log();
    let repo = GitRepo::new();
    repo.python_package("gitpy-demo", "1.0.0", 0);
    repo.commit("untagged");
    node.admin(&[
        "create",
        "git-builder",
        "--source",
        "pygit",
        "--url",
        &repo.url(),
        "--name",
        "gitpy-demo",
        "--build-trigger",
        "tags",
    ]);
    // Negative control: a commit without a tag builds nothing on a tag-triggered builder. `run`
    // checks the remote now and queues what it finds, so the listing after it is the answer.
    node.admin(&[
        "run",
        "git-builder",
        "--source",
        "pygit",
        "--name",
        "gitpy-demo",
        "--no-wait",
    ]);
    assert_eq!(builds(&base, "pygit"), Vec::<Value>::new());

    let tagged = repo.tag("v1.0.0");
    let build = wait_build(&base, "pygit", &tagged, Duration::from_secs(90), &log);
    assert_eq!(build["state"], "succeeded", "{build}\n{}", node.log());
    assert_eq!(build["tag"], "v1.0.0");
    assert_eq!(build["version"], "1.0.0");
    let packages = node.admin(&["list", "packages", "--source", "pygit"]);
    assert!(
        packages.contains("gitpy_demo-1.0.0-py3-none-any.whl"),
        "{packages}"
    );
    assert!(packages.contains("-1.0.0.tar.gz"), "the sdist: {packages}");
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("site");
    let (ok, out) = support::pip_install(
        &format!("{base}/pypi/latest/simple/"),
        &target,
        "gitpy-demo",
    );
    assert!(ok, "pip install failed: {out}");
    let installed = std::fs::read_to_string(target.join("gitpy_demo/__init__.py")).unwrap();
    assert!(installed.contains("1.0.0"), "{installed}");
    // The log of a build is served, and `logs --transaction-id` finds it.
    let tx = build["transaction_id"].as_i64().unwrap().to_string();
    let cli_log = node.admin(&["logs", "--transaction-id", &tx]);
    assert!(
        cli_log.contains("python3 -m build --no-isolation"),
        "{cli_log}"
    );
}

#[test]
fn a_broken_commit_fails_with_its_log_served_and_the_queue_goes_on() {
    let node = NodeDir::new(GIT_FAST);
    r_layout(&node);
    let served = node.serve();
    let base = served.base.clone();
    let log = || node.log();
    let repo = GitRepo::new();
    repo.r_package("brokenpkg", "1.0");
    repo.write(
        "DESCRIPTION",
        "Package: brokenpkg\nVersion: 1.0\nthis line is not a field\nLicense: GPL-3\n",
    );
    let broken = repo.commit("broken DESCRIPTION");
    node.admin(&[
        "create",
        "git-builder",
        "--source",
        "rgit",
        "--url",
        &repo.url(),
        "--branch",
        "main",
    ]);
    let build = wait_build(&base, "rgit", &broken, Duration::from_secs(60), &log);
    assert_eq!(build["state"], "failed", "{build}");
    assert_eq!(
        build["builder"], "remote",
        "the name defaults to the repository's"
    );
    assert!(build["transaction_id"].is_null(), "{build}");
    assert!(
        build["error"].as_str().unwrap().contains("R CMD"),
        "{build}"
    );
    let id = build["id"].as_i64().unwrap();
    let response = client()
        .get(format!("{base}/__api__/git-builds/{id}/log"))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response
            .headers()
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap().starts_with("text/plain"))
    );
    let text = response.text().unwrap();
    assert!(text.contains("not in valid DCF format"), "{text}");
    assert!(text.contains(&broken), "{text}");
    assert_eq!(
        client()
            .get(format!("{base}/__api__/git-builds/999999/log"))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    // Nothing was published, and the next good commit builds.
    assert_eq!(node.admin(&["list", "packages", "--source", "rgit"]), "");
    repo.r_package("brokenpkg", "1.0");
    let fixed = repo.commit("fixed");
    let build = wait_build(&base, "rgit", &fixed, Duration::from_secs(60), &log);
    assert_eq!(build["state"], "succeeded", "{build}");
    // `rerun --wait` queues the failed commit again, waits, and reports that it failed again.
    let (ok, out, err) = node.run(&[
        "rerun",
        "git-builder",
        "--source",
        "rgit",
        "--name",
        "remote",
        "--commit-sha",
        &broken,
    ]);
    assert!(!ok, "{out}{err}");
    assert!(
        out.contains("queued build") && out.contains("\tfailed\tattempts 1\t"),
        "{out}"
    );
    assert!(err.contains("1 build(s) failed"), "{err}");

    // A package in a sub-directory of its repository, created through the CLI with every option.
    let nested = GitRepo::new();
    nested.write("README", "a repository with an R package inside\n");
    let inner = GitRepo::new();
    inner.r_package("subpkg", "0.5");
    for file in ["DESCRIPTION", "NAMESPACE", "R/hello.R"] {
        let text = std::fs::read_to_string(inner.work.join(file)).unwrap();
        nested.write(&format!("pkgs/subpkg/{file}"), &text);
    }
    let sha = nested.commit("nested");
    node.admin(&[
        "create",
        "git-builder",
        "--source",
        "rgit",
        "--url",
        &nested.url(),
        "--name",
        "nested",
        "--branch",
        "main",
        "--build-trigger",
        "commits",
        "--sub-dir",
        "pkgs/subpkg",
        "--clone-depth",
        "0",
    ]);
    let build = wait_build(&base, "rgit", &sha, Duration::from_secs(60), &log);
    assert_eq!(build["state"], "succeeded", "{build}");
    assert_eq!(build["version"], "0.5", "{build}");
    let bad = node.admin_fails(&[
        "create",
        "git-builder",
        "--source",
        "rgit",
        "--url=--upload-pack=touch /tmp/x",
        "--name",
        "bad",
        "--sub-dir",
        "../..",
    ]);
    assert!(
        bad.contains("invalid url") && bad.contains("invalid sub_dir"),
        "{bad}"
    );
    assert!(
        node.admin(&["list", "packages", "--source", "rgit"])
            .contains("brokenpkg_1.0.tar.gz")
    );
}

/// Two cluster nodes on one PostgreSQL with fast check-ins and git polling.
fn two_nodes(db: &str, ips: [&str; 2]) -> (Fixture, NodeDir, NodeDir) {
    let fx = Fixture::new(db, crate::cluster::FAST);
    let a = fx.node_with(ips[0], "", GIT_FAST, Key::Shared);
    let b = fx.node_with(ips[1], "", GIT_FAST, Key::Shared);
    (fx, a, b)
}

#[test]
fn two_nodes_share_one_queue_and_publish_each_commit_once() {
    const BUILDERS: usize = 10;
    let (fx, a, b) = two_nodes("gitqueue", ["127.0.0.71", "127.0.0.72"]);
    r_layout(&a);
    let served_a = a.serve();
    let served_b = b.serve();
    let log = || format!("a:\n{}\nb:\n{}", a.log(), b.log());
    let repos: Vec<GitRepo> = (0..BUILDERS).map(|_| GitRepo::new()).collect();
    let mut commits = Vec::new();
    for (i, repo) in repos.iter().enumerate() {
        repo.r_package(&format!("share{i}"), "1.0");
        commits.push(repo.commit("first"));
        a.admin(&[
            "create",
            "git-builder",
            "--source",
            "rgit",
            "--url",
            &repo.url(),
            "--name",
            &format!("share{i}"),
        ]);
    }
    for sha in &commits {
        let build = wait_build(&served_a.base, "rgit", sha, Duration::from_secs(120), &log);
        assert_eq!(build["state"], "succeeded", "{build}");
    }
    // Second round; meanwhile both nodes' pollers and repeated `run`s check every remote.
    let pushed = Instant::now();
    for (i, repo) in repos.iter().enumerate() {
        repo.r_package(&format!("share{i}"), "2.0");
        commits.push(repo.commit("second"));
    }
    for i in 0..BUILDERS {
        for node in [&a, &b] {
            node.admin(&[
                "run",
                "git-builder",
                "--source",
                "rgit",
                "--name",
                &format!("share{i}"),
                "--no-wait",
            ]);
        }
    }
    for sha in &commits[BUILDERS..] {
        let build = wait_build(&served_b.base, "rgit", sha, Duration::from_secs(120), &log);
        assert_eq!(build["state"], "succeeded", "{build}");
    }
    eprintln!(
        "{BUILDERS} commits pushed at once, all published by two nodes in {:?}",
        pushed.elapsed()
    );
    let all = builds(&served_a.base, "rgit");
    assert_eq!(all.len(), 2 * BUILDERS, "{all:?}");
    // Each (builder, commit) published exactly once: one transaction, two files per builder.
    assert_eq!(
        fx.psql("SELECT COUNT(*) FROM transactions WHERE kind = 'git-build'"),
        (2 * BUILDERS).to_string()
    );
    assert_eq!(
        fx.psql("SELECT COUNT(*) FROM (SELECT description FROM transactions WHERE kind = 'git-build' GROUP BY description HAVING COUNT(*) > 1) d"),
        "0"
    );
    assert_eq!(
        fx.psql("SELECT COUNT(*) FROM packages"),
        (2 * BUILDERS).to_string()
    );
    assert_eq!(
        fx.psql("SELECT COUNT(DISTINCT transaction_id) FROM git_builds WHERE state = 'succeeded'"),
        (2 * BUILDERS).to_string()
    );
    let nodes: std::collections::BTreeSet<String> = all
        .iter()
        .map(|b| b["node_id"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(nodes.len(), 2, "both nodes build: {all:?}");

    // An Offline node claims nothing: every build of a third round runs on a.
    let (_, rows) = list_nodes(&a);
    let b_id = rows
        .iter()
        .find(|r| r.port == b.port)
        .unwrap()
        .id
        .to_string();
    a.admin(&["offline", "--node", &b_id]);
    crate::cluster::wait_status(&a, &b, "Offline", Duration::from_secs(10));
    let mut third = Vec::new();
    for (i, repo) in repos.iter().enumerate() {
        repo.r_package(&format!("share{i}"), "3.0");
        third.push(repo.commit("third"));
    }
    let a_id = served_a_node_id(&served_a.base);
    for sha in &third {
        let build = wait_build(&served_a.base, "rgit", sha, Duration::from_secs(120), &log);
        assert_eq!(build["state"], "succeeded", "{build}");
        assert_eq!(build["node_id"], a_id.as_str(), "{build}");
    }
}

fn served_a_node_id(base: &str) -> String {
    let status: Value = client()
        .get(format!("{base}/__api__/status"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    status["node_id"].as_str().unwrap().to_string()
}

/// A slow Python build (each step sleeps 3 s) of package `package` running on node `a`, the
/// only node serving: returns a's server, its node id, the repository and the commit.
fn slow_build_running_on(a: &NodeDir, package: &str) -> (Served, String, GitRepo, String) {
    a.admin(&[
        "create",
        "source",
        "--name",
        "pygit",
        "--type",
        "git-python",
    ]);
    a.admin(&["create", "repo", "--name", "pypi", "--type", "python"]);
    a.admin(&["subscribe", "--repo", "pypi", "--source", "pygit"]);
    let served_a = a.serve();
    let a_id = served_a_node_id(&served_a.base);
    let repo = GitRepo::new();
    repo.python_package(package, "1.0", 3);
    let sha = repo.commit("slow");
    a.admin(&[
        "create",
        "git-builder",
        "--source",
        "pygit",
        "--url",
        &repo.url(),
        "--name",
        package,
    ]);
    wait_until("the build running on a", Duration::from_secs(30), || {
        builds(&served_a.base, "pygit")
            .iter()
            .any(|b| b["state"] == "running" && b["node_id"] == a_id.as_str())
    });
    (served_a, a_id, repo, sha)
}

#[test]
fn a_killed_nodes_leased_build_completes_on_the_other_node() {
    let (fx, a, b) = two_nodes("gitkill", ["127.0.0.73", "127.0.0.74"]);
    // The build is still running when a dies.
    let (mut served_a, a_id, _repo, sha) = slow_build_running_on(&a, "slow-pkg");
    let served_b = b.serve();
    served_a.kill();
    let killed = Instant::now();
    let log = || b.log();
    let build = wait_build(&served_b.base, "pygit", &sha, Duration::from_secs(90), &log);
    eprintln!("finished on b {:?} after a was killed", killed.elapsed());
    assert_eq!(build["state"], "succeeded", "{build}\n{}", b.log());
    assert_ne!(build["node_id"], a_id.as_str(), "{build}");
    assert_eq!(build["attempts"], 2, "{build}");
    assert_eq!(
        fx.psql("SELECT COUNT(*) FROM transactions WHERE kind = 'git-build'"),
        "1"
    );
    assert_eq!(fx.psql("SELECT COUNT(*) FROM packages"), "2");
    let work = tempfile::tempdir().unwrap();
    let (ok, out) = support::pip_install(
        &format!("{}/pypi/latest/simple/", served_b.base),
        &work.path().join("site"),
        "slow-pkg",
    );
    assert!(ok, "{out}");
}

/// Issue 23: a worker frozen (SIGSTOP) past its lease while its build runs comes back to find
/// the build published by the other node. Whether it notices at its next renewal, at its
/// publish, or when it records a failure (its build's time limit passed while it was frozen,
/// as on a loaded machine), the lease token refuses it, and the commit is published exactly
/// once.
#[test]
fn issue_23_a_paused_worker_past_its_lease_cannot_publish() {
    let (fx, a, b) = two_nodes("gitpause", ["127.0.0.75", "127.0.0.76"]);
    // The build is under way when a is frozen.
    let (served_a, a_id, _repo, sha) = slow_build_running_on(&a, "paused-pkg");
    support::signal(served_a.pid(), "STOP");
    let served_b = b.serve();
    let log = || format!("a:\n{}\nb:\n{}", a.log(), b.log());
    let build = wait_build(&served_b.base, "pygit", &sha, Duration::from_secs(90), &log);
    assert_eq!(build["state"], "succeeded", "{build}\n{}", log());
    assert_ne!(build["node_id"], a_id.as_str(), "{build}");

    support::signal(served_a.pid(), "CONT");
    wait_until("a to find its lease gone", Duration::from_secs(30), || {
        let a_log = a.log();
        a_log.contains("lost the lease of a build") || a_log.contains("no longer this worker's")
    });
    assert_eq!(
        fx.psql("SELECT COUNT(*) FROM transactions WHERE kind = 'git-build'"),
        "1",
        "{}",
        log()
    );
    assert_eq!(fx.psql("SELECT COUNT(*) FROM packages"), "2");
    assert_eq!(
        fx.psql("SELECT state || ' ' || node_id FROM git_builds"),
        format!(
            "succeeded {}",
            build["node_id"].as_str().unwrap_or_default()
        )
    );
}

#[test]
fn a_stopping_node_hands_its_build_back_and_a_build_past_its_time_limit_fails() {
    let node = NodeDir::new(GIT_FAST);
    node.admin(&[
        "create",
        "source",
        "--name",
        "pygit",
        "--type",
        "git-python",
    ]);
    let mut served = node.serve();
    let base = served.base.clone();
    let repo = GitRepo::new();
    repo.python_package("handback-pkg", "1.0", 3);
    let sha = repo.commit("slow");
    node.admin(&[
        "create",
        "git-builder",
        "--source",
        "pygit",
        "--url",
        &repo.url(),
    ]);
    wait_until("the build running", Duration::from_secs(30), || {
        builds(&base, "pygit")
            .iter()
            .any(|b| b["state"] == "running")
    });
    // (The check below that no build process outlives its build can see a running one.)
    let scratch = node.data_dir().join("builds").display().to_string();
    wait_until("pgrep to see the build", Duration::from_secs(10), || {
        let running = Command::new("pgrep")
            .args(["-f", &scratch])
            .output()
            .unwrap();
        !String::from_utf8_lossy(&running.stdout).trim().is_empty()
    });
    // A clean stop (SIGTERM) puts the build back in the queue at once, its attempt given back.
    let status = served.terminate();
    assert!(status.success(), "{status:?}\n{}", node.log());
    let listed = node.admin(&["list", "git-builds", "--source", "pygit"]);
    assert!(
        listed.contains("\tqueued\tattempts 0\t-\t"),
        "{listed}\n{}",
        node.log()
    );
    // The next start builds it.
    let served = node.serve();
    let log = || node.log();
    let build = wait_build(&served.base, "pygit", &sha, Duration::from_secs(60), &log);
    assert_eq!(build["state"], "succeeded", "{build}");
    assert_eq!(build["attempts"], 1, "{build}");
    drop(served);

    // A build that runs past build_timeout is killed (its whole process group) and fails.
    let strict =
        NodeDir::new(&GIT_FAST.replace("build_timeout = \"2m\"", "build_timeout = \"2s\""));
    strict.admin(&[
        "create",
        "source",
        "--name",
        "pygit",
        "--type",
        "git-python",
    ]);
    let served = strict.serve();
    let slow = GitRepo::new();
    slow.python_package("too-slow", "1.0", 30);
    let sha = slow.commit("too slow");
    strict.admin(&[
        "create",
        "git-builder",
        "--source",
        "pygit",
        "--url",
        &slow.url(),
    ]);
    let started = Instant::now();
    let log = || strict.log();
    let build = wait_build(&served.base, "pygit", &sha, Duration::from_secs(30), &log);
    assert_eq!(build["state"], "failed", "{build}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(
        build["error"]
            .as_str()
            .unwrap()
            .contains("longer than build_timeout"),
        "{build}"
    );
    // Nothing that ran in the scratch directory is alive, and the directory is gone.
    let scratch = strict.data_dir().join("builds");
    let alive = Command::new("pgrep")
        .args(["-f", &scratch.display().to_string()])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&alive.stdout).trim().is_empty(),
        "the build's processes outlived it: {}",
        String::from_utf8_lossy(&alive.stdout)
    );
    let left: Vec<_> = std::fs::read_dir(&scratch)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "scratch left behind: {left:?}");
}

/// `git daemon --verbose` serving one directory; its log shows every request.
struct GitDaemon {
    child: std::process::Child,
    log: PathBuf,
    port: u16,
}

impl GitDaemon {
    fn start(base: &Path) -> Self {
        let port = support::free_port();
        let log = base.join("daemon.log");
        // `git daemon` runs `git-daemon` as its child: start that directly, so killing it stops
        // the server.
        let exec_path = git(base, &["--exec-path"]);
        let child = Command::new(Path::new(&exec_path).join("git-daemon"))
            .args([
                "--verbose",
                "--export-all",
                "--reuseaddr",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={}", base.display()),
                &base.display().to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("git daemon");
        wait_until("git daemon", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Self { child, log, port }
    }

    fn upload_packs(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches("Request upload-pack")
            .count()
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn one_node_at_a_time_polls_a_builder() {
    let fx = Fixture::new("gitpoll", crate::cluster::FAST);
    let tables = GIT_FAST.replace("poll_interval = \"250ms\"", "poll_interval = \"1s\"");
    let a = fx.node_with("127.0.0.79", "", &tables, Key::Shared);
    let b = fx.node_with("127.0.0.80", "", &tables, Key::Shared);
    r_layout(&a);
    let served_a = a.serve();
    let _served_b = b.serve();
    let repo = GitRepo::new();
    repo.r_package("polled", "1.0");
    let sha = repo.commit("first");
    let daemon = GitDaemon::start(repo.bare.parent().unwrap());
    let url = format!("git://127.0.0.1:{}/remote.git", daemon.port);
    a.admin(&[
        "create",
        "git-builder",
        "--source",
        "rgit",
        "--url",
        &url,
        "--name",
        "polled",
    ]);
    let log = || format!("a:\n{}\nb:\n{}", a.log(), b.log());
    let build = wait_build(&served_a.base, "rgit", &sha, Duration::from_secs(60), &log);
    assert_eq!(build["state"], "succeeded", "{build}");
    // Nothing new on the remote: what the daemon sees now is polls only (`git ls-remote`). Each
    // node looks every 500 ms for builders due (1 s after their last poll): one node at a time
    // makes 4 to 6 polls in 6 s; two nodes polling on their own would make 8 to 12.
    let before = daemon.upload_packs();
    std::thread::sleep(Duration::from_secs(6));
    let polls = daemon.upload_packs() - before;
    eprintln!("{polls} polls in 6 s by two nodes, poll_interval 1 s");
    assert!((3..=7).contains(&polls), "{polls} polls in 6 s");
}

/// The sightings the source's API lists, as (commit, node) pairs.
fn sightings(base: &str, source: &str) -> Vec<(String, String)> {
    let response = client()
        .get(format!("{base}/__api__/sources/{source}/git-sightings"))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let rows: Vec<Value> = response.json().unwrap();
    rows.iter()
        .map(|r| {
            (
                r["commit_sha"].as_str().unwrap_or("").to_string(),
                r["node_id"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn a_poll_records_what_it_saw_before_queueing_even_when_queueing_fails() {
    let (fx, a, b) = two_nodes("gitsight", ["127.0.0.77", "127.0.0.78"]);
    r_layout(&a);
    let served_a = a.serve();
    let served_b = b.serve();
    let log = || format!("a:\n{}\nb:\n{}", a.log(), b.log());
    let repo = GitRepo::new();
    repo.r_package("sighted", "1.0");
    let first = repo.commit("first");
    a.admin(&[
        "create",
        "git-builder",
        "--source",
        "rgit",
        "--url",
        &repo.url(),
        "--name",
        "sighted",
    ]);
    let build = wait_build(
        &served_a.base,
        "rgit",
        &first,
        Duration::from_secs(60),
        &log,
    );
    assert_eq!(build["state"], "succeeded", "{build}");
    // The poll that queued it saw it first, on a node of the cluster.
    let nodes = [
        served_a_node_id(&served_a.base),
        served_a_node_id(&served_b.base),
    ];
    let seen = sightings(&served_b.base, "rgit");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, first);
    assert!(nodes.contains(&seen[0].1), "{seen:?} not by {nodes:?}");
    assert_eq!(
        fx.psql(
            "SELECT COUNT(*) FROM git_tip_sightings t JOIN git_builds b \
             ON b.builder_id = t.builder_id AND b.commit_sha = t.commit_sha \
             WHERE t.first_seen_at_ms <= b.queued_at_ms"
        ),
        "1"
    );

    // The planted fault: queueing fails after the poll saw the tip. The sighting stays.
    fx.psql(
        "CREATE FUNCTION refuse_builds() RETURNS trigger AS $$ \
         BEGIN RAISE EXCEPTION 'queueing refused by the test'; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER refuse_builds BEFORE INSERT ON git_builds \
         FOR EACH ROW EXECUTE FUNCTION refuse_builds();",
    );
    repo.r_package("sighted", "2.0");
    let second = repo.commit("second");
    wait_until(
        "a poll to see the second commit",
        Duration::from_secs(30),
        || {
            sightings(&served_a.base, "rgit")
                .iter()
                .any(|(sha, _)| *sha == second)
        },
    );
    // Polls keep seeing it and keep failing to queue it: still one sighting, no build.
    let polled_at = || {
        fx.psql("SELECT last_polled_at_ms || ' ' || last_poll_error FROM git_builders WHERE name = 'sighted'")
    };
    wait_until("a poll to fail queueing", Duration::from_secs(30), || {
        polled_at().contains("queueing refused")
    });
    let failed_once = polled_at();
    wait_until(
        "another poll to fail queueing",
        Duration::from_secs(30),
        || {
            let now = polled_at();
            now != failed_once && now.contains("queueing refused")
        },
    );
    assert_eq!(sightings(&served_a.base, "rgit").len(), 2);
    assert!(
        !builds(&served_a.base, "rgit")
            .iter()
            .any(|b| b["commit_sha"] == second.as_str())
    );

    // A third commit is pushed and seen (still not queued), then queueing works again: the
    // third is built and the second never is. The sightings say a poll saw the second (lost),
    // not that nobody looked (superseded). The poll that saw the third ran after every poll
    // that saw the second (one poll of a builder at a time), so none can queue the second now.
    repo.r_package("sighted", "3.0");
    let third = repo.commit("third");
    wait_until(
        "a poll to see the third commit",
        Duration::from_secs(30),
        || {
            sightings(&served_a.base, "rgit")
                .iter()
                .any(|(sha, _)| *sha == third)
        },
    );
    fx.psql("DROP TRIGGER refuse_builds ON git_builds;");
    let build = wait_build(
        &served_a.base,
        "rgit",
        &third,
        Duration::from_secs(60),
        &log,
    );
    assert_eq!(build["state"], "succeeded", "{build}");
    let seen: Vec<String> = sightings(&served_a.base, "rgit")
        .into_iter()
        .map(|(sha, _)| sha)
        .collect();
    assert_eq!(seen, [first, second.clone(), third], "oldest first");
    assert_eq!(
        fx.psql(&format!(
            "SELECT COUNT(*) FROM git_builds WHERE commit_sha = '{second}'"
        )),
        "0"
    );
}
