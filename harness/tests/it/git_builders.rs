//! Git builders, harness side: the `git daemon` the local provider runs (it serves what the
//! commit driver pushes, tags included, and nothing else), the generated package trees built
//! by the real toolchains (`R CMD build`, `python3 -m build --no-isolation`; broken commits
//! refused), and `harness scenario git-builders` end to end on the local provider and on the
//! docker provider (nodes from the builders image, `git daemon` in a container).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::infra::local::git_daemon::GitServer;
use reports::Recorder;
use scenarios::corpus::Ecosystem;
use scenarios::git_builders::{
    BuildTrigger, BuilderSpec, CommitDriver, CommitPlan, GitBuildersConfig, PushedCommit,
};

use crate::support::{assert_nothing_left, harness_command};

/// One R builder on commits and one Python builder on tags.
fn two_builders() -> Vec<BuilderSpec> {
    let config = GitBuildersConfig {
        builders: 2,
        python_share: 0.5,
        tags_share: 0.5,
        tag: "t".into(),
        ..GitBuildersConfig::default()
    };
    let mut builders = config.builders();
    // The draw is seeded; make the roles explicit whatever it drew.
    builders[0].ecosystem = Ecosystem::R;
    builders[0].package = "gb.t.0".into();
    builders[0].trigger = BuildTrigger::Commits;
    builders[1].ecosystem = Ecosystem::Python;
    builders[1].package = builders[1].name.clone();
    builders[1].trigger = BuildTrigger::Tags;
    builders
}

fn git(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("git runs")
}

/// Starts a Git server, creates the repositories and pushes each first commit, then one more
/// commit per builder (`broken` or not). Returns the server and every commit.
fn pushed(
    broken: bool,
) -> (
    GitServer,
    tempfile::TempDir,
    Vec<BuilderSpec>,
    Vec<PushedCommit>,
) {
    let server = GitServer::start(None, Duration::from_secs(30)).expect("git daemon starts");
    let builders = two_builders();
    for b in &builders {
        server.create_repository(&b.name).expect("bare repository");
    }
    let work = tempfile::tempdir().unwrap();
    let driver = CommitDriver::new(work.path(), server.remote(), builders.clone(), 4);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let commits = runtime.block_on(async {
        let start = Instant::now();
        let mut all = driver.init(start).await.expect("first commits pushed");
        let plan: Vec<CommitPlan> = builders
            .iter()
            .map(|b| CommitPlan {
                builder: b.index,
                seq: 1,
                at: Duration::ZERO,
                broken,
            })
            .collect();
        let recorder = Arc::new(Recorder::new(start, Duration::from_secs(1)));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let more = driver
            .run(&plan, start, recorder.clone(), tx)
            .await
            .expect("commits pushed");
        // Every push was announced and recorded as it returned.
        let mut announced = 0;
        while rx.recv().await.is_some() {
            announced += 1;
        }
        assert_eq!(announced, 2);
        let metrics = recorder.finish();
        assert_eq!(metrics.kinds["git_push"].ok(), 2);
        all.extend(more);
        all
    });
    (server, work, builders, commits)
}

#[test]
fn the_git_server_serves_pushed_commits_and_tags_and_nothing_else() {
    let (server, _work, builders, commits) = pushed(false);
    let scratch = tempfile::tempdir().unwrap();
    for commit in &commits {
        assert!(commit.error.is_none(), "{commit:?}");
        let url = server.remote().clone_url(&commit.builder_name);
        let out = git(&["ls-remote", &url], scratch.path());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let refs = String::from_utf8_lossy(&out.stdout).to_string();
        if commit.seq == 1 {
            let sha = commit.sha.as_deref().unwrap();
            assert!(refs.contains(&format!("{sha}\trefs/heads/main")), "{refs}");
        }
        match &commit.tag {
            Some(tag) => assert!(refs.contains(&format!("refs/tags/{tag}")), "{refs}"),
            None => assert!(!refs.contains("refs/tags/"), "{refs}"),
        }
    }
    assert_eq!(builders[1].tag_name(1), "v1.0.1");
    // Negative controls: a repository nobody created is not served, a bad name is refused.
    let missing = git(
        &["ls-remote", &server.remote().clone_url("nobody")],
        scratch.path(),
    );
    assert!(!missing.status.success());
    assert!(server.create_repository("../escape").is_err());
    // Once stopped, nothing answers.
    let url = server.remote().clone_url(&builders[0].name);
    drop(server);
    assert!(!git(&["ls-remote", &url], scratch.path()).status.success());
}

/// Clones `url` into `dir` and runs the builder's toolchain as the node would; returns whether
/// it built and the files it produced.
fn build(builder: &BuilderSpec, url: &str, dir: &Path) -> (bool, Vec<String>, String) {
    let src = dir.join("src");
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let clone = git(&["clone", "-q", url, src.to_str().unwrap()], dir);
    assert!(
        clone.status.success(),
        "{}",
        String::from_utf8_lossy(&clone.stderr)
    );
    let result = match builder.ecosystem {
        Ecosystem::R => Command::new("R")
            .args(["CMD", "build", "--no-build-vignettes", "--no-manual"])
            .arg(&src)
            .current_dir(&out)
            .output(),
        Ecosystem::Python => Command::new("python3")
            .args(["-m", "build", "--no-isolation", "--outdir"])
            .arg(&out)
            .arg(&src)
            .output(),
    }
    .expect("the toolchain runs (R and python3 -m build are installed by .ci/install.sh)");
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    (result.status.success(), files, log)
}

#[test]
fn generated_trees_build_with_the_real_toolchains_and_broken_ones_fail() {
    let (server, _work, builders, _) = pushed(false);
    for builder in &builders {
        let dir = tempfile::tempdir().unwrap();
        let (ok, files, log) = build(
            builder,
            &server.remote().clone_url(&builder.name),
            dir.path(),
        );
        assert!(ok, "{} did not build:\n{log}", builder.name);
        let expected: Vec<String> = match builder.ecosystem {
            Ecosystem::R => vec![format!("{}_1.0.1.tar.gz", builder.package)],
            Ecosystem::Python => {
                let dist = scenarios::corpus::dist_file_name(&builder.package);
                vec![format!("{dist}-1.0.1-py3-none-any.whl")]
            }
        };
        for file in expected {
            assert!(files.contains(&file), "{file} not in {files:?}");
        }
    }
    // The same builders one commit later, broken on purpose: both toolchains refuse.
    let (server, _work, builders, _) = pushed(true);
    for builder in &builders {
        let dir = tempfile::tempdir().unwrap();
        let (ok, files, log) = build(
            builder,
            &server.remote().clone_url(&builder.name),
            dir.path(),
        );
        assert!(
            !ok,
            "{} built a broken commit: {files:?}\n{log}",
            builder.name
        );
        assert!(
            files.iter().all(|f| !f.contains("1.0.1")),
            "a broken build left {files:?}"
        );
    }
}

/// The builds checker's evidence in a run directory (which builds failed or were lost, with the
/// nodes' errors), for failure messages.
fn builds_evidence(out: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(out.join("record.json")) else {
        return "no record.json".into();
    };
    let record: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    record["checkers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "builds"))
        .map(|c| serde_json::to_string_pretty(&c["evidence"]).unwrap_or_default())
        .unwrap_or_else(|| "no builds checker".into())
}

#[test]
fn a_short_git_builders_scenario_passes_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("run");
    let result = harness_command(
        tmp.path(),
        &out,
        &[
            "scenario",
            "git-builders",
            "--infra",
            "local",
            "--quiet",
            "--builders",
            "10",
            "--duration",
            "20s",
            "--commits-per-builder-per-hour",
            "360",
            "--bad-commit-share",
            "0.2",
            "--grace",
            "60s",
            "--git-poll-interval",
            "1s",
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert_eq!(
        result.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}\nbuilds evidence:\n{}",
        builds_evidence(&out)
    );
    assert!(stdout.contains("verdict: PASS"), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let builds = summary["checkers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "builds")
        .expect("the builds checker ran")
        .clone();
    assert_eq!(builds["validity"], "valid", "{builds}");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("record.json")).unwrap()).unwrap();
    let counters = &record["metrics"]["counters"];
    assert!(counters["commits"].as_f64().unwrap() >= 5.0, "{counters}");
    assert_eq!(counters["lost"], 0.0);
    assert_eq!(counters["duplicates"], 0.0);
    // Every broken commit failed, except one pushed over before any poll saw it (superseded).
    let count = |name: &str| counters[name].as_f64().unwrap();
    assert!(
        count("builds_failed") <= count("broken_commits")
            && count("builds_failed") + count("superseded") >= count("broken_commits"),
        "{counters}"
    );
    // The polls' sightings were read from the database: at least every commit built was seen,
    // and the time line holds their summary.
    let evidence = &record["checkers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "builds")
        .unwrap()["evidence"];
    assert_eq!(evidence["sightings"]["read"], "database", "{evidence}");
    let commits_seen = evidence["sightings"]["commits_seen"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(
        commits_seen >= counters["builds_succeeded"].as_f64().unwrap(),
        "{commits_seen} commits seen: {evidence}"
    );
    let events = record["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("polls saw ")),
        "{events:?}"
    );
    for file in ["report.html", "commits.jsonl", "builds.jsonl"] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Git builders") && html.contains("Build queue depth"));
    assert_nothing_left(tmp.path());
}

#[test]
fn a_killed_node_during_git_builds_loses_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("run");
    let result = harness_command(
        tmp.path(),
        &out,
        &[
            "drill",
            "kill-node",
            "--workload",
            "git-builders",
            "--infra",
            "local",
            "--quiet",
            "--builders",
            "8",
            "--duration",
            "30s",
            // Two builds a minute per builder: what two debug nodes on a shared two-core
            // machine drain well within the grace, fault included.
            "--commits-per-builder-per-hour",
            "120",
            "--bad-commit-share",
            "0.1",
            "--at",
            "8s",
            "--for",
            "10s",
            "--grace",
            "90s",
            "--git-poll-interval",
            "1s",
            "--lease-duration",
            "3s",
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert_eq!(
        result.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}\nbuilds evidence:\n{}",
        builds_evidence(&out)
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let validity = |name: &str| {
        summary["checkers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["validity"].as_str().unwrap().to_string())
    };
    assert_eq!(validity("builds").as_deref(), Some("valid"), "{summary}");
    assert_eq!(
        validity("cluster-status").as_deref(),
        Some("valid"),
        "{summary}"
    );
    // The fault is in the record, and every build finished on a node that was alive for it.
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("record.json")).unwrap()).unwrap();
    assert!(
        record["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "fault"),
        "no fault window recorded"
    );
    let counters = &record["metrics"]["counters"];
    assert_eq!(counters["lost"], 0.0);
    assert_eq!(counters["duplicates"], 0.0);
    assert_eq!(counters["builds_unfinished"], 0.0);
    eprintln!("drill counters: {counters}");
    assert_nothing_left(tmp.path());
}

/// `harness scenario reference --infra docker` (issue 24): installs, Git builders and the
/// upload writer together on the docker provider, started as the scenario command starts it for
/// a plan with a Git server — nodes from the builders image (git, R, Python), a `git daemon`
/// container as `git://gitd` — then run, torn down and judged by `lifecycle::execute`.
/// Builds are published, broken commits fail and nothing else, every workload passes. The first
/// run on a machine builds the builders image (debootstrap, minutes).
#[test]
fn docker_reference_scenario_builds_installs_and_uploads_and_passes() {
    use clap::Parser;
    use harness::cli::{Cli, Command as CliCommand};
    use harness::infra::docker::{self, DockerOptions};
    use harness::infra::{Infra, Member};

    let _serial = crate::infra_docker::serial();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("run");
    let cli = Cli::try_parse_from([
        "harness",
        "scenario",
        "reference",
        "--infra",
        "docker",
        "--quiet",
        "--installs-per-day",
        "200000",
        "--corpus",
        "small",
        "--packages",
        "24",
        "--size-max-bytes",
        "2000000",
        "--writes-per-s",
        "2",
        "--threshold",
        "install:error_rate<=0",
        "--threshold",
        "install:rate_ratio>=0.95",
        "--threshold",
        "p99<2s",
        "--builders",
        "6",
        "--duration",
        "40s",
        "--commits-per-builder-per-hour",
        "180",
        "--bad-commit-share",
        "0.2",
        "--grace",
        "120s",
        "--git-poll-interval",
        "1s",
    ])
    .expect("scenario arguments parse");
    let CliCommand::Scenario(args) = cli.command else {
        panic!("not a scenario");
    };
    let plan = harness::commands::plan::scenario(&args).expect("a valid plan");
    assert_eq!(plan.infra.kind, harness::plan::InfraKind::Docker);
    assert!(plan.infra.git_server);
    let began = Instant::now();
    let cluster = docker::start(DockerOptions {
        nodes: plan.infra.nodes,
        pkgnode_bin: crate::support::pkgnode_release(),
        node_config_extra: plan.infra.node_config_extra.clone(),
        reason: "--infra docker".into(),
        git_builders: plan.infra.git_server,
        ..DockerOptions::default()
    })
    .expect("docker cluster with git builders starts");
    eprintln!(
        "docker cluster with git builders started in {:?}",
        began.elapsed()
    );
    let run_id = cluster.run_id().to_string();
    // The nodes run the builders image, and the Git server is the `gitd` container.
    let node = cluster.container_name(&Member::Node(0)).unwrap();
    let image = Command::new("docker")
        .args(["inspect", "-f", "{{.Config.Image}}", &node])
        .output()
        .expect("docker inspect");
    let image = String::from_utf8_lossy(&image.stdout).trim().to_string();
    assert!(image.starts_with("pkgcluster/pkgnode-builders:"), "{image}");
    let git = cluster.git().expect("the cluster serves git").clone();
    assert_eq!(git.remote.clone_base, "git://gitd");
    assert!(cluster.info().components.contains_key("git"));
    assert!(
        cluster.monitored().iter().any(|m| m.name == "git-daemon"),
        "the git daemon is sampled"
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let code = runtime
        .block_on(harness::lifecycle::execute(
            &plan,
            Box::new(cluster),
            Some(out.clone()),
        ))
        .expect("the scenario runs");
    assert_eq!(
        code,
        0,
        "verdict not PASS; builds evidence:\n{}",
        builds_evidence(&out)
    );
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("record.json")).unwrap()).unwrap();
    assert_eq!(record["verdict"], "pass");
    assert_eq!(record["meta"]["infra"]["provider"], "docker");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let workloads: Vec<(&str, &str)> = summary["workloads"]
        .as_array()
        .expect("workloads")
        .iter()
        .map(|w| (w["name"].as_str().unwrap(), w["verdict"].as_str().unwrap()))
        .collect();
    assert_eq!(
        workloads,
        [
            ("installs", "pass"),
            ("uploads", "pass"),
            ("git-builders", "pass")
        ],
        "{summary:#}"
    );
    let builds = record["checkers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "builds")
        .expect("the builds checker ran");
    assert_eq!(builds["validity"], "valid", "{builds}");
    // Published: the primary's `git-build` transactions that added files, one per build.
    let published = builds["evidence"]["publications"]["builds_published"]
        .as_f64()
        .unwrap_or(0.0);
    let counters = &record["metrics"]["counters"];
    eprintln!("docker git builders counters: {counters}");
    assert!(
        counters["good_commits"].as_f64().unwrap() >= 1.0,
        "{counters}"
    );
    assert!(
        counters["builds_succeeded"].as_f64().unwrap() >= 6.0,
        "every builder's first commit built: {counters}"
    );
    assert_eq!(published, counters["builds_succeeded"].as_f64().unwrap());
    // Every broken commit failed, except one pushed over before any poll saw it (superseded:
    // never built, which the builds checker accepts); nothing else failed.
    let count = |name: &str| counters[name].as_f64().unwrap();
    assert!(
        count("builds_failed") <= count("broken_commits")
            && count("builds_failed") + count("superseded") >= count("broken_commits"),
        "{counters}"
    );
    assert_eq!(counters["broken_published"], 0.0);
    assert_eq!(counters["lost"], 0.0);
    assert_eq!(counters["duplicates"], 0.0);
    assert_eq!(counters["unexpected_failures"], 0.0);
    assert_eq!(crate::infra_docker::leftovers(&run_id), "", "left behind");
}
