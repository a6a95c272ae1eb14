//! `harness check` (the HA checklist) on the local provider: every rule valid on a healthy
//! cluster, the run directory and the page; nodes restarted on another configuration and on
//! another secure key fail those rules by name; the CLI's exit code and files.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use harness::checklist::{self, ChecklistOptions, Facts};
use harness::commands::check as check_command;
use harness::infra::local::{self, LocalCluster, LocalOptions};
use harness::infra::{Control, Infra, Member};
use harness::plan::{CheckPlan, InfraKind, InfraPlan};
use reports::RunRecord;
use reports::record::{CheckerResult, Validity};

use crate::support::{client, eventually, get, harness_command, pkgnode};

fn start(nodes: usize, ready_timeout: Duration) -> LocalCluster {
    let options = LocalOptions {
        nodes,
        pkgnode_bin: pkgnode(),
        // As `harness check` starts it.
        node_config_extra: check_command::CHECK_NODE_CONFIG.into(),
        ready_timeout,
        reason: "integration test".into(),
        ..LocalOptions::default()
    };
    let began = Instant::now();
    let cluster = local::start(options).expect("local cluster starts");
    eprintln!(
        "local cluster ({nodes} nodes) started in {:?}",
        began.elapsed()
    );
    cluster
}

fn plan(nodes: usize) -> CheckPlan {
    CheckPlan {
        infra: InfraPlan {
            kind: InfraKind::Local,
            nodes,
            synchronous_replication: true,
            node_config_extra: check_command::CHECK_NODE_CONFIG.into(),
            keep_work_dir: None,
            git_server: false,
            auto_prefers_docker: false,
            corpus_cache: None,
            package_storage: harness::infra::PackageStorage::S3,
        },
        options: ChecklistOptions::default(),
    }
}

/// What `harness check` runs between start-up and teardown.
pub(crate) fn check(cluster: &dyn Infra, nodes: usize) -> (RunRecord, Facts) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime
        .block_on(harness::run::checklist::check(cluster, &plan(nodes)))
        .expect("the checklist runs")
}

pub(crate) fn rule<'a>(record: &'a RunRecord, name: &str) -> &'a CheckerResult {
    record
        .checkers
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no rule {name} in {:?}", record.checkers))
}

#[test]
fn a_healthy_local_cluster_passes_every_rule_and_the_key_never_shows() {
    let mut cluster = start(2, Duration::from_secs(60));
    let (record, facts) = check(&cluster, 2);
    let table = check_command::table(&record.checkers);
    eprintln!("{table}");
    let names: Vec<&str> = record.checkers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, checklist::RULES);
    for result in &record.checkers {
        // Package files are in Garage: lock correctness does not apply, and says why.
        let expected = if result.name == checklist::locks::LOCK_CORRECTNESS {
            Validity::NotApplicable
        } else {
            Validity::Valid
        };
        assert_eq!(
            result.validity, expected,
            "{}: {}\n{table}",
            result.name, result.summary
        );
    }
    assert_eq!(record.verdict, reports::Verdict::Pass);
    assert_eq!(
        rule(&record, checklist::locks::LOCK_CORRECTNESS).summary,
        checklist::locks::NOT_APPLICABLE_ON_S3,
        "{table}"
    );
    // The upload was read from both nodes, and both nodes are Online in both listings.
    assert_eq!(facts.shared_storage.reads.len(), 2, "{facts:?}");

    // The status shows the key's fingerprint, never the key.
    let key = std::fs::read_to_string(cluster.work_dir().join("pkgnode.key")).unwrap();
    let key = key.trim();
    assert!(key.len() >= 32);
    let http = client();
    for (name, url) in &cluster.endpoints().nodes {
        let (status, body) = get(&http, &format!("{url}/__api__/status"));
        assert_eq!(status, 200, "{name}");
        assert!(!body.contains(key), "{name} shows the secure key: {body}");
        assert!(body.contains("key_fingerprint"), "{body}");
    }

    // The run directory renders the rules like any report.
    let out = tempfile::tempdir().unwrap();
    check_command::write(out.path(), &record, &facts).expect("run dir written");
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    for name in checklist::RULES {
        assert!(html.contains(name), "report.html lacks {name}");
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["verdict"], "pass", "{summary}");
    assert!(out.path().join("facts.json").is_file());
    cluster.teardown().expect("teardown");
}

/// Rewrites node `index`'s config file (`node-N.toml` in the work dir) with `change`.
pub(crate) fn edit_node_config(
    cluster: &LocalCluster,
    index: usize,
    change: impl FnOnce(&mut toml::Table),
) {
    let path = cluster.work_dir().join(format!("node-{}.toml", index + 1));
    let mut config: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    change(&mut config);
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
}

pub(crate) fn table<'a>(config: &'a mut toml::Table, name: &str) -> &'a mut toml::Table {
    config
        .entry(name)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .expect("a table")
}

/// A new secure key (32 random bytes, hex), mode 0600 as the node requires.
fn write_key(path: &Path) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let key: [u8; 32] = rand::random();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    writeln!(file, "{}", hex::encode(key)).unwrap();
}

/// The conformance cases the local provider can make: node-3 restarted on another secure key
/// (same key file path, other bytes, so its configuration is unchanged), node-2 restarted with
/// one more config option. The cluster refuses both (they never come Online), and the checklist
/// fails `same-secure-key` naming node-3 only and `identical-config` naming node-2 only; the
/// version, database and status-endpoint rules still hold.
#[test]
fn nodes_on_another_key_and_another_config_fail_those_rules_by_name() {
    // Restarting a refused node waits this long for a `/__ping__` that never comes.
    let mut cluster = start(3, Duration::from_secs(40));
    let (before, _) = check(&cluster, 3);
    assert_eq!(
        rule(&before, checklist::identity::IDENTICAL_CONFIG).validity,
        Validity::Valid,
        "{}",
        check_command::table(&before.checkers)
    );
    for node in [1, 2] {
        cluster
            .control(&Member::Node(node), Control::Stop)
            .expect("stop");
    }
    let key_file = cluster.work_dir().join("pkgnode.key");
    let cluster_key = std::fs::read(&key_file).unwrap();
    let other_key = cluster.work_dir().join("other.key");
    write_key(&other_key);
    let http = client();
    let endpoints = cluster.endpoints().nodes.clone();
    let refused = |index: usize, word: &str| {
        let (name, url) = &endpoints[index];
        eventually(
            &format!("{name} refused as {word}"),
            Duration::from_secs(30),
            || {
                let (_, body) = get(&http, &format!("{url}/__api__/status"));
                if body.contains(word) {
                    Ok(())
                } else {
                    Err(body)
                }
            },
        );
    };

    let (record, facts) = std::thread::scope(|scope| {
        let cluster = &cluster;
        // node-3 reads the other key at start; the file gets the cluster's key back after.
        std::fs::write(&key_file, std::fs::read(&other_key).unwrap()).unwrap();
        let node_3 = scope.spawn(move || cluster.control(&Member::Node(2), Control::Start));
        refused(2, "Invalid secure key");
        std::fs::write(&key_file, &cluster_key).unwrap();
        edit_node_config(cluster, 1, |config| {
            table(config, "cache").insert("views".into(), toml::Value::Integer(65));
        });
        let node_2 = scope.spawn(move || cluster.control(&Member::Node(1), Control::Start));
        refused(1, "Config mismatch");
        // HAProxy takes a node out after two failed health checks 500 ms apart; right after a
        // quick restart it can still show the refused node UP. Let it settle first.
        eventually(
            "the refused nodes out of rotation",
            Duration::from_secs(10),
            || {
                let states = cluster.balancer_states().map_err(|e| e.to_string())?;
                if states.iter().filter(|(_, s)| s == "UP").count() == 1 {
                    Ok(())
                } else {
                    Err(format!("{states:?}"))
                }
            },
        );
        let checked = check(cluster, 3);
        for restart in [node_2, node_3] {
            let result = restart.join().expect("restart thread");
            assert!(
                result.is_err(),
                "a refused node never answers /__ping__ 200"
            );
        }
        checked
    });
    let table = check_command::table(&record.checkers);
    eprintln!("{table}");
    assert_eq!(record.verdict, reports::Verdict::Fail, "{table}");

    // node-3 alone on another key; node-2 alone on another config.
    let key = rule(&record, checklist::identity::SAME_SECURE_KEY);
    assert_eq!(key.validity, Validity::Invalid, "{table}");
    assert!(key.summary.contains("on node-3"), "{}", key.summary);
    let by_node = &key.evidence["by_node"];
    assert_eq!(by_node["node-1"], by_node["node-2"], "{by_node}");
    assert_ne!(by_node["node-1"], by_node["node-3"], "{by_node}");

    let config = rule(&record, checklist::identity::IDENTICAL_CONFIG);
    assert_eq!(config.validity, Validity::Invalid, "{table}");
    assert!(config.summary.contains("on node-2"), "{}", config.summary);
    let by_node = &config.evidence["by_node"];
    assert_eq!(by_node["node-1"], by_node["node-3"], "{by_node}");
    assert_ne!(by_node["node-1"], by_node["node-2"], "{by_node}");

    // Refused nodes are not members, and the balancer takes them out of rotation.
    let membership = rule(&record, checklist::membership::CLUSTER_MEMBERSHIP);
    assert_eq!(membership.validity, Validity::Invalid, "{table}");
    assert!(
        membership.summary.contains("node-2 is Config mismatch"),
        "{table}"
    );
    assert!(
        membership.summary.contains("node-3 is Invalid secure key"),
        "{table}"
    );
    let balancer = rule(&record, checklist::membership::BALANCER_HEALTH_CHECK);
    assert_eq!(balancer.validity, Validity::Invalid, "{table}");

    // What was not broken still holds.
    for name in [
        checklist::identity::SAME_VERSION,
        checklist::backend::POSTGRESQL,
        checklist::membership::STATUS_ENDPOINT_CLOSED,
    ] {
        assert_eq!(
            rule(&record, name).validity,
            Validity::Valid,
            "{name}\n{table}"
        );
    }
    assert_eq!(facts.nodes.len(), 3);
    cluster.teardown().expect("teardown");
}

#[test]
fn the_cli_exits_0_on_a_healthy_local_cluster_and_writes_the_run_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("check-run");
    let result = harness_command(
        tmp.path(),
        &out,
        &["check", "--infra", "local", "--nodes", "2"],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(
        result.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for name in checklist::RULES {
        // Package files in S3 need no cross-node file locks.
        let word = if name == checklist::locks::LOCK_CORRECTNESS {
            " n/a "
        } else {
            " pass "
        };
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(name) && l.contains(word)),
            "no{word}line for {name}:\n{stdout}"
        );
    }
    assert!(stdout.contains("verdict: PASS"), "{stdout}");
    for file in [
        "record.json",
        "summary.json",
        "report.html",
        "events.jsonl",
        "facts.json",
    ] {
        assert!(
            out.join(file).is_file(),
            "{file} missing in {}",
            out.display()
        );
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["verdict"], "pass");
    assert_eq!(summary["infra"]["provider"], "local");
    // The cluster is gone: nothing of it runs under the test's TMPDIR.
    crate::support::assert_nothing_left(tmp.path());
}

/// A `pkgnode` wrapper that exports the variables in `CONFIG.env` (beside the node's
/// `--config CONFIG`) before it runs the real binary: one node at a time can be started on
/// another reported version or under libfaketime, and the others stay as they are.
fn pkgnode_wrapper(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("pkgnode");
    let script = format!(
        "#!/bin/sh\n\
         prev=\n\
         for arg in \"$@\"; do\n\
         \x20 if [ \"$prev\" = --config ] && [ -f \"$arg.env\" ]; then . \"$arg.env\"; fi\n\
         \x20 prev=$arg\n\
         done\n\
         exec {} \"$@\"\n",
        pkgnode().display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// node-2 restarted reporting another version (the node's test hook), node-3 restarted with
/// its clock 30 s ahead (libfaketime): `same-version` fails naming node-2 only and
/// `synchronized-clocks` fails naming node-3 only; key and configuration still match.
#[test]
fn nodes_on_another_version_and_a_clock_30_s_off_fail_those_rules_by_name() {
    assert!(
        Path::new(FAKETIME).is_file(),
        "libfaketime is not installed (apt-get install libfaketime)"
    );
    let bin_dir = tempfile::tempdir().unwrap();
    let options = LocalOptions {
        nodes: 3,
        pkgnode_bin: pkgnode_wrapper(bin_dir.path()),
        node_config_extra: check_command::CHECK_NODE_CONFIG.into(),
        // Restarting a refused node waits this long for a `/__ping__` that never comes.
        ready_timeout: Duration::from_secs(40),
        reason: "integration test".into(),
        ..LocalOptions::default()
    };
    let mut cluster = local::start(options).expect("local cluster starts");
    let env_file = |index: usize, text: &str| {
        let path = cluster
            .work_dir()
            .join(format!("node-{}.toml.env", index + 1));
        std::fs::write(path, text).unwrap();
    };
    env_file(1, "export PKGNODE_VERSION_OVERRIDE=0.0.0-other\n");
    env_file(
        2,
        &format!("export LD_PRELOAD={FAKETIME} FAKETIME=+30s FAKETIME_DONT_FAKE_MONOTONIC=1\n"),
    );
    let http = client();
    let endpoints = cluster.endpoints().nodes.clone();
    let (record, _) = std::thread::scope(|scope| {
        let cluster = &cluster;
        let restarts: Vec<_> = [1, 2]
            .into_iter()
            .map(|node| {
                cluster
                    .control(&Member::Node(node), Control::Stop)
                    .expect("stop");
                scope.spawn(move || cluster.control(&Member::Node(node), Control::Start))
            })
            .collect();
        for (index, word) in [(1, "Version mismatch"), (2, "Clock skew")] {
            let (name, url) = &endpoints[index];
            eventually(
                &format!("{name} refused as {word}"),
                Duration::from_secs(30),
                || {
                    let (_, body) = get(&http, &format!("{url}/__api__/status"));
                    if body.contains(word) {
                        Ok(())
                    } else {
                        Err(body)
                    }
                },
            );
        }
        let checked = check(cluster, 3);
        for restart in restarts {
            let result = restart.join().expect("restart thread");
            assert!(
                result.is_err(),
                "a refused node never answers /__ping__ 200"
            );
        }
        checked
    });
    let table = check_command::table(&record.checkers);
    eprintln!("{table}");
    assert_eq!(record.verdict, reports::Verdict::Fail, "{table}");

    let version = rule(&record, checklist::identity::SAME_VERSION);
    assert_eq!(version.validity, Validity::Invalid, "{table}");
    assert!(
        version.summary.contains("0.0.0-other on node-2;"),
        "{table}"
    );
    let by_node = &version.evidence["by_node"];
    assert_eq!(by_node["node-1"], by_node["node-3"], "{by_node}");

    // node-3 runs 30 s ahead: the database's clock is 30 s behind it.
    let clocks = rule(&record, checklist::clocks::SYNCHRONIZED_CLOCKS);
    assert_eq!(clocks.validity, Validity::Invalid, "{table}");
    assert!(clocks.summary.contains("node-3 is -"), "{table}");
    assert!(!clocks.summary.contains("node-2"), "{table}");
    let offsets = &clocks.evidence["offset_ms_from_database"];
    let node_3 = offsets["node-3"].as_i64().expect("node-3's offset");
    assert!((-31_000..=-29_000).contains(&node_3), "{offsets}");

    for name in [
        checklist::identity::SAME_SECURE_KEY,
        checklist::identity::IDENTICAL_CONFIG,
        checklist::backend::POSTGRESQL,
    ] {
        assert_eq!(
            rule(&record, name).validity,
            Validity::Valid,
            "{name}\n{table}"
        );
    }
    cluster.teardown().expect("teardown");
}

/// The same checklist on the docker provider: every rule valid, the balancer's view read from
/// HAProxy's stats page through `Infra::balancer_states`.
#[test]
fn a_healthy_docker_cluster_passes_every_rule() {
    let _serial = crate::infra_docker::serial();
    let mut cluster = harness::infra::docker::start(harness::infra::docker::DockerOptions {
        nodes: 2,
        pkgnode_bin: crate::support::pkgnode_release(),
        node_config_extra: check_command::CHECK_NODE_CONFIG.into(),
        reason: "integration test".into(),
        ..harness::infra::docker::DockerOptions::default()
    })
    .expect("docker cluster starts");
    let (record, _) = check(&cluster, 2);
    let table = check_command::table(&record.checkers);
    eprintln!("{table}");
    for result in &record.checkers {
        let expected = if result.name == checklist::locks::LOCK_CORRECTNESS {
            Validity::NotApplicable
        } else {
            Validity::Valid
        };
        assert_eq!(result.validity, expected, "{}\n{table}", result.name);
    }
    cluster.teardown().expect("teardown");
}

/// `--target` checks an existing deployment from its URLs alone: every rule it can decide
/// passes, and the balancer's view, which it cannot read, leaves the verdict unknown (exit 5).
#[test]
fn the_cli_on_a_target_decides_what_it_can_and_exits_5_for_the_balancer() {
    let mut cluster = start(2, Duration::from_secs(60));
    let endpoints = cluster.endpoints().clone();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("check-target");
    let mut command = Command::new(env!("CARGO_BIN_EXE_harness"));
    command
        .args(["check", "--target", &endpoints.base_url])
        .args(["--token", &endpoints.pypi_token])
        .arg("--out")
        .arg(&out);
    for (_, url) in &endpoints.nodes {
        command.args(["--node", url]);
    }
    let result = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(
        result.status.code(),
        Some(5),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for name in checklist::RULES {
        let word = match name {
            checklist::membership::BALANCER_HEALTH_CHECK => " unknown ",
            checklist::locks::LOCK_CORRECTNESS => " n/a ",
            _ => " pass ",
        };
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(name) && l.contains(word)),
            "{name} is not{word}:\n{stdout}"
        );
    }
    assert!(stdout.contains("verdict: UNKNOWN"), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["infra"]["provider"], "target");
    // Nothing of the deployment was touched.
    assert!(
        cluster
            .balancer_states()
            .unwrap()
            .iter()
            .all(|(_, s)| s == "UP")
    );
    cluster.teardown().expect("teardown");

    // A deployment no node of which answers is an infrastructure failure, not an unknown.
    let gone = command.output().unwrap();
    assert_eq!(
        gone.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );
}

/// A duplicated node: node-2 restarted without its identity (its data directory's `node-id`
/// lost, as a container without a volume loses it) joins again under a new id at the same
/// address, and its old row stays behind. It serves, so only `cluster-membership` fails, naming
/// the address listed twice.
#[test]
fn a_node_restarted_without_its_identity_fails_membership_only() {
    let mut cluster = start(2, Duration::from_secs(60));
    cluster
        .control(&Member::Node(1), Control::Stop)
        .expect("stop");
    std::fs::remove_file(cluster.work_dir().join("node-2").join("node-id")).expect("node-id");
    cluster
        .control(&Member::Node(1), Control::Start)
        .expect("node-2 comes back under a new id");
    // `Start` returns at node-2's first `/__ping__` 200; the node serves a moment before its
    // row says Online (the check-in writes the status after it starts serving) and HAProxy
    // rises it at its next health check. Wait for both, as the provider's start does for the
    // balancer, so that what is left is the duplicate.
    let http = client();
    let node_1 = cluster.endpoints().nodes[0].1.clone();
    eventually(
        "node-2 UP at the balancer and Online in node-1's listing",
        Duration::from_secs(10),
        || {
            let states = cluster.balancer_states().map_err(|e| e.to_string())?;
            let (_, body) = get(&http, &format!("{node_1}/__api__/status"));
            let status: serde_json::Value =
                serde_json::from_str(&body).map_err(|e| e.to_string())?;
            let listed_online = status["members"]
                .as_array()
                .is_some_and(|m| m.iter().filter(|m| m["status"] == "Online").count() == 2);
            if states.iter().all(|(_, s)| s == "UP") && listed_online {
                Ok(())
            } else {
                Err(format!("{states:?} {body}"))
            }
        },
    );
    let address = cluster.info().nodes[1].address.clone();
    let (record, _) = check(&cluster, 2);
    let table = check_command::table(&record.checkers);
    eprintln!("{table}");
    for result in &record.checkers {
        let expected = match result.name.as_str() {
            checklist::membership::CLUSTER_MEMBERSHIP => Validity::Invalid,
            // Package files in S3 need no cross-node file locks.
            checklist::locks::LOCK_CORRECTNESS => Validity::NotApplicable,
            _ => Validity::Valid,
        };
        assert_eq!(result.validity, expected, "{}\n{table}", result.name);
    }
    let membership = rule(&record, checklist::membership::CLUSTER_MEMBERSHIP);
    assert!(
        membership
            .summary
            .contains(&format!("lists {address} under 2 ids")),
        "{table}"
    );
    cluster.teardown().expect("teardown");
}

/// A key file readable by others (mode 0644): node-2, restarted on it, refuses the key itself
/// ("Invalid permissions on secure key"), and `same-secure-key` fails naming it; version and
/// configuration still match.
#[test]
fn a_node_on_a_0644_key_file_fails_the_key_rule_by_name() {
    use std::os::unix::fs::PermissionsExt;
    let mut cluster = start(2, Duration::from_secs(30));
    let key_file = cluster.work_dir().join("pkgnode.key");
    let mode = |bits| std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(bits));
    cluster
        .control(&Member::Node(1), Control::Stop)
        .expect("stop");
    let http = client();
    let node_2 = cluster.endpoints().nodes[1].1.clone();
    let record = std::thread::scope(|scope| {
        let cluster = &cluster;
        mode(0o644).unwrap();
        let restart = scope.spawn(move || cluster.control(&Member::Node(1), Control::Start));
        eventually(
            "node-2 refused for its key file",
            Duration::from_secs(30),
            || {
                let (_, body) = get(&http, &format!("{node_2}/__api__/status"));
                if body.contains("Invalid permissions on secure key") {
                    Ok(())
                } else {
                    Err(body)
                }
            },
        );
        // node-2 has read the file; node-1 keeps the key it loaded at start.
        mode(0o600).unwrap();
        let (record, _) = check(cluster, 2);
        assert!(restart.join().expect("restart thread").is_err());
        record
    });
    let table = check_command::table(&record.checkers);
    eprintln!("{table}");
    let key = rule(&record, checklist::identity::SAME_SECURE_KEY);
    assert_eq!(key.validity, Validity::Invalid, "{table}");
    assert!(
        key.summary
            .starts_with("node-2 is Invalid permissions on secure key"),
        "{table}"
    );
    for name in [
        checklist::identity::SAME_VERSION,
        checklist::identity::IDENTICAL_CONFIG,
        checklist::backend::POSTGRESQL,
    ] {
        assert_eq!(
            rule(&record, name).validity,
            Validity::Valid,
            "{name}\n{table}"
        );
    }
    cluster.teardown().expect("teardown");
}
