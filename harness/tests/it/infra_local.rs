//! The `local` provider against the real processes: PostgreSQL 15, Garage, `pkgnode` and
//! HAProxy. Traffic through the balancer spreads over the nodes and survives a killed node; an
//! upload through it is visible on every node; teardown and drop leave no process or file.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{
    assert_commits_wait_for_the_standby, assert_standby_holds_every_committed_row, client,
    eventually, get, pkgnode, upload, wheel,
};
use harness::infra::local::{self, LocalCluster, LocalOptions};
use harness::infra::{Control, Infra, InfraError, Member};
use harness::procs;
use nix::sys::signal::kill;
use nix::unistd::{Pid, Uid};

/// A dir for a caller-kept work dir, reachable by the `postgres` user when tests run as root.
fn kept_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn start(work_dir: Option<PathBuf>) -> LocalCluster {
    let options = LocalOptions {
        nodes: 2,
        pkgnode_bin: pkgnode(),
        work_dir,
        // Other nodes notice a new upload quickly.
        node_config_extra: "[cache]\nhead_poll_interval = \"200ms\"\n".into(),
        ready_timeout: Duration::from_secs(60),
        reason: "integration test".into(),
        synchronous: true,
        git_builders: false,
        corpus_cache: None,
        package_storage: local::PackageStorage::S3,
    };
    let began = Instant::now();
    let cluster = local::start(options).expect("local cluster starts");
    eprintln!("local cluster (2 nodes) started in {:?}", began.elapsed());
    cluster
}

/// The sum of a node's `pkgnode_http_requests_total` series.
fn requests_served(client: &reqwest::blocking::Client, node_url: &str) -> f64 {
    let (status, text) = get(client, &format!("{node_url}/metrics"));
    assert_eq!(status, 200, "{node_url}/metrics");
    harness::run::metrics_text::samples(&text)
        .expect("/metrics is OpenMetrics text")
        .iter()
        .filter(|sample| sample.name == "pkgnode_http_requests_total")
        .map(|sample| sample.value)
        .sum()
}

/// Processes that are `pids` or belong to their process groups (PostgreSQL's backends).
fn survivors(pids: &[u32]) -> Vec<String> {
    procs::Table::read()
        .entries()
        .iter()
        .filter(|entry| pids.contains(&entry.pid) || pids.contains(&entry.group))
        .map(|entry| format!("{entry:?} {}", procs::command_line(entry.pid)))
        .collect()
}

fn assert_all_gone(pids: &[u32]) {
    for pid in pids {
        assert!(
            matches!(
                kill(Pid::from_raw(*pid as i32), None),
                Err(nix::errno::Errno::ESRCH)
            ),
            "pid {pid} still exists"
        );
        assert!(!local::pid_exists(*pid));
    }
    let left = survivors(pids);
    assert!(left.is_empty(), "processes left behind: {left:#?}");
}

fn recorded_pids(cluster: &LocalCluster) -> Vec<u32> {
    let monitored = cluster.monitored();
    let names: Vec<&str> = monitored.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "node-1",
            "node-2",
            "postgresql",
            "postgresql-standby",
            "db-endpoint",
            "s3",
            "haproxy"
        ]
    );
    monitored.iter().map(|m| m.pid).collect()
}

#[test]
fn balancer_spreads_requests_and_an_upload_is_seen_on_every_node() {
    let cluster = start(None);
    let endpoints = cluster.endpoints().clone();
    let client = client();
    assert_eq!(endpoints.nodes.len(), 2);
    assert_eq!(endpoints.nodes[0].1.split(':').nth(1), Some("//127.0.0.11"));
    assert_eq!(endpoints.nodes[1].1.split(':').nth(1), Some("//127.0.0.12"));

    let info = cluster.info();
    assert_eq!(info.provider, "local");
    assert_eq!(info.reason, "integration test");
    assert_eq!(info.nodes.len(), 2);
    assert!(
        info.nodes
            .iter()
            .all(|n| !n.id.is_empty() && !n.version.is_empty())
    );
    assert_ne!(info.nodes[0].id, info.nodes[1].id);
    assert!(info.components["postgresql"].starts_with("15."), "{info:?}");
    assert!(info.components["haproxy"].starts_with("2."), "{info:?}");
    assert!(!info.components["garage"].is_empty());
    let states = cluster.balancer_states().expect("haproxy stats");
    assert_eq!(
        states,
        [
            ("node-1".into(), "UP".into()),
            ("node-2".into(), "UP".into())
        ]
    );

    let before: Vec<f64> = endpoints
        .nodes
        .iter()
        .map(|(_, url)| requests_served(&client, url))
        .collect();
    for _ in 0..20 {
        let (status, _) = get(&client, &format!("{}/__ping__", endpoints.base_url));
        assert_eq!(status, 200);
    }
    for ((name, url), before) in endpoints.nodes.iter().zip(before) {
        let grew = requests_served(&client, url) - before;
        // 20 requests round robin: about 10 each (plus the /metrics read itself).
        assert!(grew >= 5.0, "{name} served only {grew} of 20 requests");
    }

    let dir = tempfile::tempdir().unwrap();
    let wheel = wheel(dir.path(), "spreadpkg");
    let file_name = wheel.file_name().unwrap().to_str().unwrap().to_string();
    let (status, body) = upload(&client, &endpoints, &wheel, "spreadpkg");
    assert!((200..300).contains(&status), "upload: {status} {body}");

    for (name, url) in &endpoints.nodes {
        let page = format!("{url}/{}/latest/simple/spreadpkg/", endpoints.pypi_repo);
        eventually(
            &format!("{name} lists {file_name}"),
            Duration::from_secs(15),
            || match get(&client, &page) {
                (200, body) if body.contains(&file_name) => Ok(()),
                (status, body) => Err(format!("{status} {body}")),
            },
        );
    }
}

#[test]
fn a_killed_node_is_routed_around_restarts_and_no_upload_reached_two_nodes() {
    let kept = kept_dir();
    let work_dir = kept.path().join("cluster");
    let mut cluster = start(Some(work_dir.clone()));
    let endpoints = cluster.endpoints().clone();
    let client = client();
    let node_1 = cluster.monitored()[0].pid;

    // Uploads through the balancer, twenty a second, small enough for HAProxy to buffer (and
    // so to re-send, were it allowed to), with node-1 killed while they are in flight.
    let tag = format!("kn{}", std::process::id());
    let writer = {
        let (target, tag) = (endpoints.write_target(), tag.clone());
        std::thread::spawn(move || {
            let config = scenarios::writes::WriterConfig {
                writes_per_s: 20.0,
                duration: Duration::from_secs(4),
                tag,
                size_bytes: 2_048,
                ..scenarios::writes::WriterConfig::default()
            };
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("http client");
            tokio::runtime::Runtime::new()
                .expect("runtime")
                .block_on(scenarios::writes::run_writer(
                    &client,
                    &target,
                    &config,
                    Instant::now(),
                ))
                .expect("the writer runs")
        })
    };
    // Killed once uploads are arriving at it (its log says so), while the writer goes on.
    let node_1_log = cluster.log_file(&Member::Node(0)).expect("node-1's log");
    eventually(
        "uploads arriving at node-1",
        Duration::from_secs(20),
        || {
            let log = std::fs::read_to_string(&node_1_log).map_err(|e| e.to_string())?;
            let arrived = log.matches("upload arrived").count();
            if arrived >= 3 {
                Ok(())
            } else {
                Err(format!("{arrived} arrived"))
            }
        },
    );
    cluster
        .control(&Member::Node(0), Control::Kill)
        .expect("kill node 1");
    assert!(!local::pid_exists(node_1), "node 1 survived SIGKILL");
    assert!(cluster.monitored().iter().all(|m| m.name != "node-1"));
    for i in 0..50 {
        let path = if i % 2 == 0 {
            "/__ping__".to_string()
        } else {
            format!("/{}/latest/simple/", endpoints.pypi_repo)
        };
        let (status, body) = get(&client, &format!("{}{path}", endpoints.base_url));
        assert_eq!(status, 200, "request {i} ({path}) after the kill: {body}");
    }

    cluster
        .control(&Member::Node(0), Control::Start)
        .expect("start node 1 again");
    let (status, _) = get(&client, &format!("{}/__ping__", endpoints.nodes[0].1));
    assert_eq!(status, 200);
    let restarted = cluster.monitored()[0].clone();
    assert_eq!(restarted.name, "node-1");
    assert_ne!(restarted.pid, node_1);

    let error = cluster
        .control(&Member::Node(1), Control::Promote)
        .unwrap_err();
    assert!(matches!(error, InfraError::Unsupported { .. }), "{error}");
    let error = cluster
        .control(&Member::Node(7), Control::Kill)
        .unwrap_err();
    assert!(error.to_string().contains("2 nodes"), "{error}");

    // Every upload arrived at one node at most: the nodes log each arrival with its id
    // before handling it, so one the balancer re-sent would show in both logs.
    let ledger = writer.join().expect("the writer thread");
    let arrivals: Vec<Vec<String>> = (0..2)
        .map(|i| {
            let log =
                std::fs::read_to_string(cluster.log_file(&Member::Node(i)).expect("a node log"))
                    .expect("the node's log");
            log.lines()
                .filter(|l| l.contains("upload arrived"))
                .filter_map(|l| {
                    ledger
                        .iter()
                        .find(|e| l.contains(e.file_name.as_str()))
                        .map(|e| e.file_name.clone())
                })
                .collect()
        })
        .collect();
    let acknowledged = ledger
        .iter()
        .filter(|e| e.outcome == scenarios::writes::WriteOutcome::Ok)
        .count();
    assert!(
        acknowledged >= 30,
        "{acknowledged} of {} acknowledged",
        ledger.len()
    );
    assert!(
        !arrivals[0].is_empty(),
        "uploads reached node-1 before it was killed"
    );
    for entry in &ledger {
        let seen: usize = arrivals
            .iter()
            .map(|a| a.iter().filter(|f| **f == entry.file_name).count())
            .sum();
        assert!(
            seen <= 1,
            "{} arrived {seen} times (node-1 {:?}, node-2 {:?})",
            entry.file_name,
            arrivals[0]
                .iter()
                .filter(|f| **f == entry.file_name)
                .count(),
            arrivals[1]
                .iter()
                .filter(|f| **f == entry.file_name)
                .count()
        );
        if entry.outcome == scenarios::writes::WriteOutcome::Ok {
            assert_eq!(
                seen, 1,
                "{} acknowledged but never arrived",
                entry.file_name
            );
        }
    }

    // A caller's work dir keeps its logs; the processes still go.
    let pids = recorded_pids(&cluster);
    cluster.teardown().expect("teardown");
    assert_all_gone(&pids);
    assert!(work_dir.join("node-1.log").is_file());
    assert!(work_dir.join("postgresql.log").is_file());
}

#[test]
fn pausing_and_stopping_the_database_is_survived() {
    let cluster = start(None);
    let endpoints = cluster.endpoints().clone();
    let client = client();
    let simple = format!(
        "{}/{}/latest/simple/",
        endpoints.base_url, endpoints.pypi_repo
    );

    let postgres = cluster.monitored()[2].clone();
    assert_eq!(postgres.name, "postgresql");
    cluster
        .control(&Member::DatabasePrimary, Control::Pause)
        .expect("pause postgres");
    let state = procs::state(postgres.pid);
    assert_eq!(state, Some('T'), "paused postgres is not stopped");
    cluster
        .control(&Member::DatabasePrimary, Control::Unpause)
        .expect("unpause postgres");

    cluster
        .control(&Member::DatabasePrimary, Control::Stop)
        .expect("stop postgres");
    assert!(!local::pid_exists(postgres.pid));
    cluster
        .control(&Member::DatabasePrimary, Control::Start)
        .expect("start postgres");
    // The nodes' pools reconnect to the restarted server.
    eventually("recovery", Duration::from_secs(30), || {
        match get(&client, &simple) {
            (200, _) => Ok(()),
            (status, body) => Err(format!("{status} {body}")),
        }
    });
}

#[test]
fn teardown_leaves_no_process_and_no_files() {
    let mut cluster = start(None);
    let pids = recorded_pids(&cluster);
    let work_dir = cluster.work_dir().to_path_buf();
    assert!(work_dir.join("pkgnode.key").is_file());
    let began = Instant::now();
    cluster.teardown().expect("teardown");
    eprintln!("teardown took {:?}", began.elapsed());
    assert_all_gone(&pids);
    assert!(!work_dir.exists(), "{} is still there", work_dir.display());
    cluster.teardown().expect("a second teardown is a no-op");
    assert!(cluster.monitored().is_empty());
}

#[test]
fn dropping_the_cluster_without_teardown_cleans_up() {
    let cluster = start(None);
    let pids = recorded_pids(&cluster);
    let work_dir = cluster.work_dir().to_path_buf();
    // What a panic between start and teardown does.
    drop(cluster);
    assert_all_gone(&pids);
    assert!(!work_dir.exists(), "{} is still there", work_dir.display());
}

#[test]
fn a_failed_start_names_the_cause_and_stops_what_it_started() {
    let kept = kept_dir();
    let work_dir = kept.path().join("cluster");
    let options = LocalOptions {
        pkgnode_bin: pkgnode(),
        work_dir: Some(work_dir.clone()),
        node_config_extra: "[cluster".into(),
        ..LocalOptions::default()
    };
    // PostgreSQL and Garage are up by the time the node configs are written.
    let error = local::start(options).err().expect("bad extra TOML fails");
    assert!(error.to_string().contains("node_config_extra"), "{error}");
    assert!(work_dir.join("postgresql.log").is_file());
    let needle = work_dir.display().to_string();
    let left = procs::command_lines_containing(&needle);
    assert!(left.is_empty(), "left running: {left:#?}");

    let error = local::start(LocalOptions {
        pkgnode_bin: kept.path().join("no-such-pkgnode"),
        ..LocalOptions::default()
    })
    .err()
    .expect("a missing binary fails");
    assert!(error.to_string().contains("cargo build -p node"), "{error}");
}

#[test]
fn pkgnode_is_found_beside_the_test_binary() {
    let built = pkgnode();
    // The test binary lives in target/debug/deps; pkgnode one level up (or where PKGNODE_BIN
    // says).
    assert_eq!(local::find_pkgnode_bin().unwrap(), built);
}

#[test]
fn the_cluster_outlives_the_thread_that_started_it() {
    // `spawn_blocking` runs `start` on a worker thread that later retires; the death signal
    // must not fire then.
    let (cluster, thread) = std::thread::spawn(|| {
        // `PID/task/TID`: this thread's entry, gone once the kernel has finished its exit
        // (where a death signal tied to it is sent).
        let thread = std::fs::read_link("/proc/thread-self").unwrap();
        (start(None), PathBuf::from("/proc").join(thread))
    })
    .join()
    .unwrap();
    eventually(
        "the starting thread's exit",
        Duration::from_secs(10),
        || {
            (!thread.exists())
                .then_some(())
                .ok_or(format!("{} still exists", thread.display()))
        },
    );
    let client = client();
    let (status, _) = get(
        &client,
        &format!("{}/__ping__", cluster.endpoints().base_url),
    );
    assert_eq!(status, 200);
    assert_eq!(recorded_pids(&cluster).len(), 7);
    assert!(
        recorded_pids(&cluster)
            .iter()
            .all(|pid| local::pid_exists(*pid))
    );
}

const CHILD_ENV: &str = "HARNESS_LOCAL_INFRA_CHILD";

/// Half of the next test: run in a child process, starts a cluster, prints its pids and waits
/// to be killed. Does nothing in a normal test run.
#[test]
fn helper_cluster_in_a_child_process() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let cluster = start(None);
    // A cut in force when the harness dies: the next run must lift it.
    if cluster.network_cuts_unavailable().is_none() {
        cluster
            .control(&Member::Node(0), Control::Disconnect)
            .expect("cut node 1 off");
    }
    let pids: Vec<String> = recorded_pids(&cluster).iter().map(u32::to_string).collect();
    println!(
        "PIDS {} DIR {}",
        pids.join(","),
        cluster.work_dir().display()
    );
    // Until the parent kills this process, or drops its end of stdin (it gave up).
    std::io::copy(&mut std::io::stdin(), &mut std::io::sink()).ok();
}

#[test]
fn a_sigkilled_harness_leaves_no_process() {
    use std::io::BufRead;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "infra_local::helper_cluster_in_a_child_process",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .env("PKGNODE_BIN", pkgnode())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("re-run this test binary");
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let line = stdout
        .lines()
        .map_while(Result::ok)
        .find(|line| line.starts_with("PIDS "))
        .expect("the child prints its cluster's pids");
    let pids: Vec<u32> = line["PIDS ".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .split(',')
        .map(|pid| pid.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 7);
    let work_dir = PathBuf::from(line.split_once(" DIR ").expect("DIR").1.trim());
    let root = Uid::effective().is_root();
    let dead = child.id();
    assert_eq!(
        !network_cuts_of(dead).is_empty(),
        root,
        "as root, the child's cut is in force"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    // PR_SET_PDEATHSIG kills the direct children at once; PostgreSQL's backends follow their
    // postmaster within moments.
    eventually("no process left behind", Duration::from_secs(10), || {
        let left = survivors(&pids);
        left.is_empty()
            .then_some(())
            .ok_or(format!("processes left behind: {left:#?}"))
    });
    // Files are the one thing a SIGKILLed process cannot clean up.
    std::fs::remove_dir_all(&work_dir).unwrap();

    // Nor its network cut: the next run reaps it.
    // (Another test's cluster may start first and reap it; either way it must go.)
    if root {
        let next = start(None);
        assert_eq!(network_cuts_of(dead), Vec::<String>::new(), "not reaped");
        drop(next);
    }
}

/// The iptables rules and cgroup dirs of the local clusters a process started (run ids
/// `h{pid}-…`).
fn network_cuts_of(pid: u32) -> Vec<String> {
    let prefix = format!("h{pid}-");
    let mut found = Vec::new();
    if let Ok(output) = Command::new("iptables").args(["-S", "OUTPUT"]).output() {
        found.extend(
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .filter(|rule| rule.contains(&format!("pkgcluster:{prefix}")))
                .map(str::to_string),
        );
    }
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let cgroup2 = mounts.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(fields[1]))
    });
    if let Some(root) = cgroup2
        && let Ok(entries) = std::fs::read_dir(root.join("pkgcluster"))
    {
        found.extend(
            entries
                .flatten()
                .map(|e| e.path().display().to_string())
                .filter(|path| path.contains(&prefix)),
        );
    }
    found
}

#[test]
fn a_private_work_dir_still_runs_postgresql() {
    // Mode 0700, as under a private $TMPDIR: as root, PostgreSQL (run as `postgres`) cannot
    // reach it, so its data goes to a reachable temp dir that teardown removes.
    use std::os::unix::fs::PermissionsExt;
    let private = tempfile::tempdir().unwrap();
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut cluster = start(Some(private.path().join("cluster")));
    let postgres = cluster.monitored()[2].clone();
    let args: Vec<String> = procfs::process::Process::new(postgres.pid as i32)
        .and_then(|process| process.cmdline())
        .expect("postgres command line");
    let data = PathBuf::from(&args[args.iter().position(|a| a == "-D").unwrap() + 1]);
    assert!(data.join("PG_VERSION").is_file(), "{}", data.display());
    let (status, _) = get(
        &client(),
        &format!("{}/pypi/latest/simple/", cluster.endpoints().base_url),
    );
    assert_eq!(status, 200);
    cluster.teardown().unwrap();
    if Uid::effective().is_root() {
        assert!(!data.starts_with(private.path()), "{}", data.display());
        assert!(!data.exists(), "{} is still there", data.display());
    }
}

fn count(cluster: &LocalCluster, member: &Member, table: &str) -> u64 {
    let text = cluster
        .psql(member, &format!("SELECT count(*) FROM {table}"))
        .unwrap_or_else(|e| panic!("count {table} on {member:?}: {e}"));
    text.parse()
        .unwrap_or_else(|_| panic!("count {table}: {text:?}"))
}

#[test]
fn the_standby_holds_every_committed_row_and_after_promotion_the_nodes_write_again() {
    let cluster = start(None);
    let endpoints = cluster.endpoints().clone();
    let client = client();
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        cluster
            .psql(&Member::DatabaseStandby, "SELECT pg_is_in_recovery()")
            .unwrap(),
        "t"
    );
    let committed = assert_standby_holds_every_committed_row(&cluster, dir.path(), |m, t| {
        count(&cluster, m, t)
    });

    assert_eq!(cluster.database_endpoint_target().unwrap(), "postgresql");
    cluster
        .control(&Member::DatabaseStandby, Control::Promote)
        .expect("promote the standby");
    // Roles follow the promotion: the primary is the former standby's process now.
    assert_eq!(
        cluster.process_name(&Member::DatabasePrimary).as_deref(),
        Some("postgresql-standby")
    );
    assert_eq!(
        cluster.database_endpoint_target().unwrap(),
        "postgresql-standby"
    );
    assert_eq!(
        cluster
            .psql(&Member::DatabasePrimary, "SELECT pg_is_in_recovery()")
            .unwrap(),
        "f"
    );
    let after = wheel(dir.path(), "afterpromotion");
    eventually("an upload after promotion", Duration::from_secs(60), || {
        let (status, body) = upload(&client, &endpoints, &after, "afterpromotion");
        (200..300)
            .contains(&status)
            .then_some(())
            .ok_or(format!("{status} {body}"))
    });
    assert_eq!(
        count(&cluster, &Member::DatabasePrimary, "packages"),
        committed[0] + 1
    );
    let file_name = after.file_name().unwrap().to_str().unwrap().to_string();
    for (name, url) in &endpoints.nodes {
        let page = format!(
            "{url}/{}/latest/simple/afterpromotion/",
            endpoints.pypi_repo
        );
        eventually(
            &format!("{name} serves the new package"),
            Duration::from_secs(30),
            || {
                let (status, body) = get(&client, &page);
                (status == 200 && body.contains(&file_name))
                    .then_some(())
                    .ok_or(format!("{status} {body}"))
            },
        );
    }
    // A second promotion has no standby to promote.
    assert!(
        cluster
            .control(&Member::DatabaseStandby, Control::Promote)
            .is_err()
    );
}

#[test]
fn a_cut_off_member_is_unreachable_and_a_held_standby_holds_commits() {
    let cluster = start(None);
    if let Some(reason) = cluster.network_cuts_unavailable() {
        panic!("network cuts are unavailable here: {reason}");
    }
    let endpoints = cluster.endpoints().clone();
    let client = client();
    let quick = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let node_1 = &endpoints.nodes[0].1;
    let state = |server: &str| {
        cluster
            .balancer_states()
            .unwrap()
            .into_iter()
            .find(|(name, _)| name == server)
            .map(|(_, state)| state)
            .unwrap_or_default()
    };

    // A node: the balancer's checks go unanswered, so it routes around it.
    cluster
        .control(&Member::Node(0), Control::Disconnect)
        .expect("cut node 1 off");
    let (status, body) = get(&quick, &format!("{node_1}/__ping__"));
    assert_eq!(status, 0, "a cut-off node answered: {body}");
    eventually(
        "node-1 DOWN in the balancer",
        Duration::from_secs(20),
        || {
            let now = state("node-1");
            (now == "DOWN").then_some(()).ok_or(now)
        },
    );
    for _ in 0..10 {
        let (status, body) = get(&client, &format!("{}/__ping__", endpoints.base_url));
        assert_eq!(
            status, 200,
            "through the balancer with node 1 cut off: {body}"
        );
    }
    cluster
        .control(&Member::Node(0), Control::Reconnect)
        .expect("reconnect node 1");
    eventually("node-1 UP again", Duration::from_secs(20), || {
        let now = state("node-1");
        (now == "UP").then_some(()).ok_or(now)
    });
    let (status, _) = get(&client, &format!("{node_1}/__ping__"));
    assert_eq!(status, 200);

    // The synchronous standby: commits on the primary wait for it while it is held, and
    // complete once it is back.
    let dir = tempfile::tempdir().unwrap();
    assert_commits_wait_for_the_standby(&cluster, dir.path());
    assert_eq!(
        count(&cluster, &Member::DatabaseStandby, "packages"),
        count(&cluster, &Member::DatabasePrimary, "packages")
    );

    // The primary: no node reaches it while it is cut off, and all do again afterwards.
    cluster
        .control(&Member::DatabasePrimary, Control::Disconnect)
        .expect("cut the primary off");
    let started = Instant::now();
    let cut_off = cluster.psql(&Member::DatabasePrimary, "SELECT 1");
    assert!(cut_off.is_err(), "psql reached a cut-off primary");
    eprintln!(
        "psql gave up on the cut-off primary after {:?}",
        started.elapsed()
    );
    cluster
        .control(&Member::DatabasePrimary, Control::Reconnect)
        .expect("reconnect the primary");
    let after = wheel(dir.path(), "afterreconnect");
    eventually(
        "an upload after reconnecting",
        Duration::from_secs(60),
        || {
            let (status, body) = upload(&client, &endpoints, &after, "afterreconnect");
            (200..300)
                .contains(&status)
                .then_some(())
                .ok_or(format!("{status} {body}"))
        },
    );

    // A cut still in force at teardown goes with the cluster.
    cluster
        .control(&Member::LoadBalancer, Control::Disconnect)
        .expect("cut the balancer off");
    let mine = std::process::id();
    assert_eq!(network_cuts_of(mine).len(), 2, "one rule, one run dir");
    let mut cluster = cluster;
    cluster.teardown().expect("teardown");
    assert_eq!(network_cuts_of(mine), Vec::<String>::new());
}
