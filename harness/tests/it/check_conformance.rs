//! `harness check`'s conformance cases on directory storage, the database and the balancer,
//! each on a real local cluster broken on purpose: nodes on unshared directories, a lock
//! directory that is not shared though the package files are, a node on SQLite, a balancer
//! that does not health-check `/__ping__`. Each asserts that its rule fails with a message
//! naming what broke it, and what every other rule says. One cluster serves several cases,
//! broken and repaired in turn.

use std::path::Path;
use std::time::{Duration, Instant};

use harness::checklist::{self, identity, locks, membership};
use harness::infra::local::{self, LocalCluster, LocalOptions, PackageStorage};
use harness::infra::{Control, Infra, Member};
use reports::RunRecord;
use reports::record::Validity;

use crate::check::{check, edit_node_config, rule};
use crate::support::pkgnode;

fn start(storage: PackageStorage) -> LocalCluster {
    let options = LocalOptions {
        nodes: 2,
        pkgnode_bin: pkgnode(),
        node_config_extra: harness::commands::check::CHECK_NODE_CONFIG.into(),
        ready_timeout: Duration::from_secs(60),
        reason: "integration test".into(),
        package_storage: storage,
        ..LocalOptions::default()
    };
    let began = Instant::now();
    let cluster = local::start(options).expect("local cluster starts");
    eprintln!(
        "local cluster ({storage:?}) started in {:?}",
        began.elapsed()
    );
    cluster
}

/// Checks, prints the table and asserts that exactly `broken` are invalid, `unknown` unknown
/// and every other rule valid.
fn check_expecting(cluster: &LocalCluster, broken: &[&str], unknown: &[&str]) -> RunRecord {
    let began = Instant::now();
    let (record, _) = check(cluster, 2);
    let table = harness::commands::check::table(&record.checkers);
    eprintln!("checked in {:?}\n{table}", began.elapsed());
    for result in &record.checkers {
        let expected = if broken.contains(&result.name.as_str()) {
            Validity::Invalid
        } else if unknown.contains(&result.name.as_str()) {
            Validity::Unknown
        } else {
            Validity::Valid
        };
        assert_eq!(
            result.validity, expected,
            "{}: {}\n{table}",
            result.name, result.summary
        );
    }
    record
}

/// Runs `change` on node `index` while it is stopped, then starts it again.
fn while_stopped(cluster: &LocalCluster, index: usize, change: impl FnOnce()) {
    cluster
        .control(&Member::Node(index), Control::Stop)
        .expect("stop");
    change();
    cluster
        .control(&Member::Node(index), Control::Start)
        .expect("start");
    // `Start` returns at the node's first `/__ping__` 200; HAProxy rises it at its next health
    // check (500 ms apart).
    crate::support::eventually(
        "every server UP at the balancer",
        Duration::from_secs(10),
        || {
            let states = cluster.balancer_states().map_err(|e| e.to_string())?;
            if states.iter().all(|(_, s)| s == "UP") {
                Ok(())
            } else {
                Err(format!("{states:?}"))
            }
        },
    );
}

fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link)
        .unwrap_or_else(|e| panic!("symlink {} -> {}: {e}", link.display(), target.display()));
}

/// Nodes with `storage.dir` unset keep package files in their own `{data_dir}/packages`: every
/// configuration is identical, nothing is shared. `shared-storage` fails naming the node that
/// does not serve the probe upload, and `lock-correctness` fails too — necessarily, as the
/// store's lock directory is `{storage dir}/.locks`: node-2's locktester finds no holder.
/// Then node-2's package files (`blobs/`, `tmp/`) are made node-1's while its `.locks/` stays
/// its own (files on a shared mount, locks on local disk): `shared-storage` passes and
/// `lock-correctness` alone fails, naming node-2. Then node-2's whole storage directory is
/// node-1's: every rule passes, lock correctness by exclusion seen.
#[test]
fn nodes_on_unshared_directories_and_an_unshared_lock_directory_fail_those_rules_by_name() {
    let mut cluster = start(PackageStorage::NodeDirectories);
    let node_dir = |index: usize| cluster.work_dir().join(format!("node-{}", index + 1));
    let packages = |index: usize| node_dir(index).join("packages");

    // 1. Unshared directories.
    let record = check_expecting(
        &cluster,
        &[checklist::storage::SHARED_STORAGE, locks::LOCK_CORRECTNESS],
        &[],
    );
    let storage = rule(&record, checklist::storage::SHARED_STORAGE);
    assert!(
        storage
            .summary
            .contains("is not served by every node within 10 s: node-"),
        "{}",
        storage.summary
    );
    // The node without the file lists it (the database is shared) and cannot serve it.
    let served = storage.evidence["reads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "present")
        .count();
    assert_eq!(served, 1, "{}", storage.evidence);
    let lock = rule(&record, locks::LOCK_CORRECTNESS);
    assert!(
        lock.summary.starts_with(&format!(
            "node-2's locktester in {}/.locks did not see node-1's in {}/.locks",
            packages(1).display(),
            packages(0).display()
        )),
        "{}",
        lock.summary
    );
    let identical = rule(&record, identity::IDENTICAL_CONFIG);
    assert!(
        identical.summary.contains("2 node(s), one config digest"),
        "{}",
        identical.summary
    );

    // 2. Package files shared, the lock directory not.
    while_stopped(&cluster, 1, || {
        for sub in ["blobs", "tmp"] {
            std::fs::create_dir_all(packages(0).join(sub)).unwrap();
            let own = packages(1).join(sub);
            if own.exists() {
                std::fs::remove_dir_all(&own).unwrap();
            }
            symlink(&packages(0).join(sub), &own);
        }
        std::fs::create_dir_all(packages(1).join(".locks")).unwrap();
    });
    let record = check_expecting(&cluster, &[locks::LOCK_CORRECTNESS], &[]);
    let lock = rule(&record, locks::LOCK_CORRECTNESS);
    assert!(
        lock.summary.starts_with("node-2's locktester in ")
            && lock
                .summary
                .ends_with("the nodes do not lock in one shared directory"),
        "{}",
        lock.summary
    );
    // The holder held every lock type; node-2's tester became a holder itself, and both
    // released their locks.
    let runs = lock.evidence["locktester"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0]["role"], "First");
    assert_eq!(runs[1]["role"], "First");
    for dir in [packages(0), packages(1)] {
        assert!(
            !dir.join(".locks/locktester.marker").exists(),
            "a locktester marker left in {}",
            dir.display()
        );
    }

    // 3. One directory for both: every rule passes, exclusion seen.
    while_stopped(&cluster, 1, || {
        std::fs::remove_dir_all(packages(1)).unwrap_or_else(|_| {
            for sub in ["blobs", "tmp"] {
                std::fs::remove_file(packages(1).join(sub)).unwrap();
            }
            std::fs::remove_dir_all(packages(1)).unwrap();
        });
        symlink(&packages(0), &packages(1));
    });
    let record = check_expecting(&cluster, &[], &[]);
    let lock = rule(&record, locks::LOCK_CORRECTNESS);
    assert!(
        lock.summary
            .starts_with("exclusion held: while node-1 held its locks in ")
            && lock.summary.contains(
                "node-2 (linkbased (hard links), linkbased (symlinks), advisory (fcntl))"
            ),
        "{}",
        lock.summary
    );
    cluster.teardown().expect("teardown");
}

/// Removes HAProxy's HTTP health check (`option httpchk` and its `http-check` rules) from the
/// local cluster's config and restarts it: the servers keep a TCP check (`check`), which a node
/// with a failing `/__ping__` passes. `restore` puts the config back.
fn without_http_health_check(cluster: &LocalCluster, restore: Option<&str>) -> String {
    let path = cluster.work_dir().join("haproxy.cfg");
    let original = std::fs::read_to_string(&path).unwrap();
    let text = match restore {
        Some(text) => text.to_string(),
        None => {
            let kept: Vec<&str> = original
                .lines()
                .filter(|l| {
                    let l = l.trim_start();
                    !l.starts_with("option httpchk") && !l.starts_with("http-check")
                })
                .collect();
            assert!(kept.len() < original.lines().count(), "{original}");
            format!("{}\n", kept.join("\n"))
        }
    };
    std::fs::write(&path, text).unwrap();
    let balancer = Member::LoadBalancer;
    cluster.control(&balancer, Control::Stop).expect("stop");
    cluster.control(&balancer, Control::Start).expect("start");
    crate::support::eventually(
        "every server UP at the restarted balancer",
        Duration::from_secs(10),
        || {
            let states = cluster.balancer_states().map_err(|e| e.to_string())?;
            if states.len() == 2 && states.iter().all(|(_, s)| s == "UP") {
                Ok(())
            } else {
                Err(format!("{states:?}"))
            }
        },
    );
    original
}

/// On one shared directory every rule passes (lock correctness by exclusion seen, the balancer
/// by a drained node seen leaving rotation). Then HAProxy without its HTTP health check keeps
/// the drained node in rotation: `balancer-health-check` alone fails, naming it. Then node-2
/// restarted on SQLite: `postgresql-not-sqlite` fails naming node-2. A node refuses SQLite with
/// clustering on, so node-2 runs with clustering off and cannot be a member: its configuration
/// differs (`identical-config`), it is no member (`cluster-membership`), it answers 404 to
/// `/load-balancer/status` (`status-endpoint-closed` unknown); its metadata is its own, so the
/// probe upload is not served by both nodes (`shared-storage` fails when the upload went to
/// node-1, is unknown when the balancer sent it to node-2, which knows no such token). The
/// cluster still holds its row from before the restart (the same node id), but nothing refreshes
/// that row's clock offset any more, so `synchronized-clocks` is unknown, naming node-2.
#[test]
fn a_balancer_without_health_checks_and_a_node_on_sqlite_fail_those_rules_by_name() {
    let mut cluster = start(PackageStorage::SharedDirectory);
    let shared = cluster.work_dir().join("packages");

    // 0. Healthy on one directory.
    let record = check_expecting(&cluster, &[], &[]);
    let lock = rule(&record, locks::LOCK_CORRECTNESS);
    assert!(
        lock.summary.starts_with(&format!(
            "exclusion held: while node-1 held its locks in {}/.locks, node-2",
            shared.display()
        )),
        "{}",
        lock.summary
    );
    let balancer = rule(&record, membership::BALANCER_HEALTH_CHECK);
    assert!(
        balancer
            .summary
            .contains("node-1, drained (/__ping__ 503), left rotation after"),
        "{}",
        balancer.summary
    );
    assert_eq!(balancer.evidence["drain"]["state_while_drained"], "DOWN");

    // 1. No HTTP health check.
    let original = without_http_health_check(&cluster, None);
    let record = check_expecting(&cluster, &[membership::BALANCER_HEALTH_CHECK], &[]);
    let balancer = rule(&record, membership::BALANCER_HEALTH_CHECK);
    assert!(
        balancer.summary.contains(
            "node-1's /__ping__ answered 503, yet the balancer kept it UP for 10 s: it does not \
             take a node with a failing /__ping__ out of rotation"
        ),
        "{}",
        balancer.summary
    );
    // The check put node-1 online again.
    let node_1 = cluster.endpoints().nodes[0].1.clone();
    let (status, body) =
        crate::support::get(&crate::support::client(), &format!("{node_1}/__ping__"));
    assert_eq!(status, 200, "{body}");
    without_http_health_check(&cluster, Some(&original));

    // 2. node-2 on SQLite (clustering off: the node refuses SQLite in a cluster).
    while_stopped(&cluster, 1, || {
        edit_node_config(&cluster, 1, |config| {
            let sqlite = format!(
                "sqlite://{}?mode=rwc",
                cluster.work_dir().join("node-2/pkgnode.db").display()
            );
            crate::check::table(config, "database")
                .insert("url".into(), toml::Value::String(sqlite));
            crate::check::table(config, "cluster")
                .insert("enabled".into(), toml::Value::Boolean(false));
        });
    });
    let (record, _) = check(&cluster, 2);
    let table = harness::commands::check::table(&record.checkers);
    eprintln!("{table}");
    let sqlite = rule(&record, checklist::backend::POSTGRESQL);
    assert_eq!(sqlite.validity, Validity::Invalid, "{table}");
    assert!(
        sqlite
            .summary
            .starts_with("node-2 keep(s) metadata in SQLite"),
        "{table}"
    );
    let expected = [
        (identity::SAME_VERSION, Validity::Valid),
        (identity::SAME_SECURE_KEY, Validity::Valid),
        (identity::IDENTICAL_CONFIG, Validity::Invalid),
        // The cluster's row of node-2 is left from before its restart: it vouches for nothing.
        (checklist::clocks::SYNCHRONIZED_CLOCKS, Validity::Unknown),
        (locks::LOCK_CORRECTNESS, Validity::Valid),
        (membership::CLUSTER_MEMBERSHIP, Validity::Invalid),
        (membership::STATUS_ENDPOINT_CLOSED, Validity::Unknown),
        (membership::BALANCER_HEALTH_CHECK, Validity::Valid),
    ];
    for (name, validity) in expected {
        assert_eq!(rule(&record, name).validity, validity, "{name}\n{table}");
    }
    assert!(
        rule(&record, identity::IDENTICAL_CONFIG)
            .summary
            .contains("on node-2"),
        "{table}"
    );
    assert!(
        rule(&record, membership::CLUSTER_MEMBERSHIP)
            .summary
            .contains("node-2 has clustering off"),
        "{table}"
    );
    assert!(
        rule(&record, membership::STATUS_ENDPOINT_CLOSED)
            .summary
            .contains("node-2 answered 404"),
        "{table}"
    );
    assert!(
        rule(&record, checklist::clocks::SYNCHRONIZED_CLOCKS)
            .summary
            .contains("node-2 has clustering off"),
        "{table}"
    );
    assert_ne!(
        rule(&record, checklist::storage::SHARED_STORAGE).validity,
        Validity::Valid,
        "{table}"
    );
    cluster.teardown().expect("teardown");
}
