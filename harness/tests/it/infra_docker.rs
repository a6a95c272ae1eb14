//! The `docker` provider on the real Docker engine: PostgreSQL primary + synchronous standby,
//! Garage, `pkgnode` containers and HAProxy on a private network. A killed node drops out of the
//! balancer and rejoins Online; a paused node shows "Missed check-in"; the standby holds every
//! committed row when the primary dies, and after promotion the nodes write again; nothing of a
//! run is left behind. Images are built when missing (docker/build-images.sh).

use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::support::{
    self, assert_commits_wait_for_the_standby, assert_standby_holds_every_committed_row, client,
    eventually, get, pkgnode_release as pkgnode, wheel,
};
use harness::infra::docker::{self, DockerCluster, DockerOptions};
use harness::infra::{Control, Infra, InfraError, Member};

/// Fast heartbeats so that statuses change within seconds.
const CLUSTER_EXTRA: &str = "[cluster]\nheartbeat = \"500ms\"\nmissed_check_in_after = \"2s\"\n\
                             [cache]\nhead_poll_interval = \"200ms\"\n";

/// One docker cluster at a time, across threads and processes (nextest runs each test in its
/// own): 2 cores run all of them.
pub(crate) struct Serial {
    _thread: MutexGuard<'static, ()>,
    _file: nix::fcntl::Flock<std::fs::File>,
}

pub(crate) fn serial() -> Serial {
    static SERIAL: Mutex<()> = Mutex::new(());
    let thread = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::env::temp_dir().join("pkgcluster-docker-tests.lock"))
        .expect("lock file");
    // Released when the guard (and the file) drops.
    let file = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| errno)
        .expect("flock");
    Serial {
        _thread: thread,
        _file: file,
    }
}

fn start(extra: &str) -> DockerCluster {
    let began = Instant::now();
    let cluster = docker::start(DockerOptions {
        nodes: 2,
        pkgnode_bin: pkgnode(),
        node_config_extra: extra.into(),
        ready_timeout: Duration::from_secs(90),
        reason: "integration test".into(),
        run_id: None,
        corpus_cache: None,
        git_builders: false,
    })
    .expect("docker cluster starts");
    eprintln!("docker cluster (2 nodes) started in {:?}", began.elapsed());
    cluster
}

/// The `list-nodes` line of `host`, as node `via` sees it (the last line: a restarted node may
/// have a new row below an old one; the table lists online rows first).
fn node_line(cluster: &DockerCluster, via: usize, host: &str) -> Result<String, String> {
    let text = cluster
        .node_admin(via, &["list-nodes"])
        .map_err(|e| e.to_string())?;
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(host)).collect();
    let online = lines.iter().find(|l| l.contains("Online"));
    online
        .or(lines.first())
        .map(|l| l.to_string())
        .ok_or_else(|| format!("{host} not listed:\n{text}"))
}

fn balancer_state(cluster: &DockerCluster, server: &str) -> Result<String, String> {
    let states = cluster.balancer_states().map_err(|e| e.to_string())?;
    states
        .into_iter()
        .find(|(name, _)| name == server)
        .map(|(_, state)| state)
        .ok_or_else(|| format!("{server} not in the balancer"))
}

/// Containers, networks and volumes still labelled with the run id.
pub(crate) fn leftovers(run_id: &str) -> String {
    let filter = format!("label=pkgcluster.run={run_id}");
    let list = |args: &[&str]| {
        let output = Command::new("docker").args(args).output().expect("docker");
        assert!(output.status.success(), "docker {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    [
        list(&["ps", "-a", "-q", "--filter", &filter]),
        list(&["network", "ls", "-q", "--filter", &filter]),
        list(&["network", "ls", "-q", "--filter", &format!("name={run_id}")]),
        list(&["volume", "ls", "-q", "--filter", &filter]),
    ]
    .join(" ")
    .trim()
    .to_string()
}

/// Uploads a wheel through the balancer; the status and body.
fn upload(cluster: &DockerCluster, wheel: &Path, name: &str) -> (u16, String) {
    support::upload(&client(), cluster.endpoints(), wheel, name)
}

fn count(cluster: &DockerCluster, member: &Member, table: &str) -> u64 {
    let text = cluster
        .psql(member, &format!("SELECT count(*) FROM {table}"))
        .unwrap_or_else(|e| panic!("count {table} on {member:?}: {e}"));
    text.parse()
        .unwrap_or_else(|_| panic!("count {table}: {text:?}"))
}

#[test]
fn a_killed_node_leaves_the_balancer_and_rejoins_online_after_a_restart() {
    let _serial = serial();
    let mut cluster = start(CLUSTER_EXTRA);
    let endpoints = cluster.endpoints().clone();
    let client = client();
    let info = cluster.info();
    assert_eq!(info.provider, "docker");
    assert_eq!(info.nodes.len(), 2);
    assert!(info.components["postgresql"].starts_with("15."), "{info:?}");
    assert!(info.components["haproxy"].starts_with("2."), "{info:?}");
    assert!(endpoints.base_url.starts_with("http://127.0.0.1:"));
    assert!(
        endpoints
            .nodes
            .iter()
            .all(|(_, url)| url.starts_with("http://127.0.0.1:"))
    );
    let monitored: Vec<String> = cluster.monitored().into_iter().map(|m| m.name).collect();
    for name in [
        "node-1",
        "node-2",
        "postgresql",
        "postgresql-standby",
        "s3",
        "haproxy",
    ] {
        assert!(monitored.iter().any(|m| m == name), "{monitored:?}");
    }
    // The engine's userland proxy (docker's default) copies the balancer's traffic: sampled too.
    let balancer_port: u16 = endpoints
        .base_url
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        monitored.iter().any(|m| m == "docker-proxy"),
        !harness::procs::command_lines_containing(&format!("-host-port {balancer_port} "))
            .is_empty(),
        "{monitored:?}"
    );
    assert_eq!(
        monitored.len(),
        6 + usize::from(monitored.iter().any(|m| m == "docker-proxy"))
    );
    let host_1 = cluster.container_name(&Member::Node(0)).unwrap();
    eventually("node-1 Online", Duration::from_secs(15), || {
        node_line(&cluster, 1, &host_1)
            .and_then(|line| line.contains("Online").then_some(()).ok_or(line))
    });

    cluster
        .control(&Member::Node(0), Control::Kill)
        .expect("kill node 1");
    for i in 0..40 {
        let path = if i % 2 == 0 {
            "/__ping__".to_string()
        } else {
            format!("/{}/latest/simple/", endpoints.pypi_repo)
        };
        let (status, body) = get(&client, &format!("{}{path}", endpoints.base_url));
        assert_eq!(status, 200, "request {i} ({path}) after the kill: {body}");
    }
    // DOWN (failed checks) or MAINT (its name no longer resolves): out of rotation either way.
    eventually("node-1 out of HAProxy", Duration::from_secs(10), || {
        let state = balancer_state(&cluster, "node-1")?;
        (state != "UP").then_some(()).ok_or(state)
    });
    eventually("node-1 no longer Online", Duration::from_secs(15), || {
        let line = node_line(&cluster, 1, &host_1)?;
        (!line.contains("Online")).then_some(()).ok_or(line)
    });

    cluster
        .control(&Member::Node(0), Control::Start)
        .expect("start node 1");
    eventually("node-1 UP in HAProxy", Duration::from_secs(20), || {
        let state = balancer_state(&cluster, "node-1")?;
        (state == "UP").then_some(()).ok_or(state)
    });
    eventually("node-1 Online again", Duration::from_secs(20), || {
        let line = node_line(&cluster, 1, &host_1)?;
        line.contains("Online").then_some(()).ok_or(line)
    });
    let status = cluster
        .node_admin(1, &["node-status"])
        .expect("node-status");
    assert!(
        status.contains(&host_1),
        "node-status does not list {host_1}: {status}"
    );
    let (code, _) = get(&client, &format!("{}/__ping__", endpoints.nodes[0].1));
    assert_eq!(code, 200, "node 1's published port after the restart");

    // Stop/start and network cut on the other node, through the same controls.
    cluster
        .control(&Member::Node(1), Control::Disconnect)
        .expect("disconnect");
    eventually(
        "node-2 out of HAProxy when cut off",
        Duration::from_secs(15),
        || {
            let state = balancer_state(&cluster, "node-2")?;
            (state != "UP").then_some(()).ok_or(state)
        },
    );
    cluster
        .control(&Member::Node(1), Control::Reconnect)
        .expect("reconnect");
    eventually(
        "node-2 UP when reconnected",
        Duration::from_secs(20),
        || {
            let state = balancer_state(&cluster, "node-2")?;
            (state == "UP").then_some(()).ok_or(state)
        },
    );
    let error = cluster
        .control(&Member::Node(1), Control::Promote)
        .unwrap_err();
    assert!(matches!(error, InfraError::Unsupported { .. }), "{error}");

    let run_id = cluster.run_id().to_string();
    cluster.teardown().expect("teardown");
    assert_eq!(leftovers(&run_id), "", "left behind after teardown");
    cluster.teardown().expect("a second teardown is a no-op");
}

#[test]
fn a_paused_node_shows_missed_check_in_and_a_dropped_cluster_leaves_nothing() {
    let _serial = serial();
    let cluster = start(CLUSTER_EXTRA);
    let host_1 = cluster.container_name(&Member::Node(0)).unwrap();
    eventually("node-1 Online", Duration::from_secs(15), || {
        let line = node_line(&cluster, 1, &host_1)?;
        line.contains("Online").then_some(()).ok_or(line)
    });
    cluster
        .control(&Member::Node(0), Control::Pause)
        .expect("pause node 1");
    eventually("node-1 Missed check-in", Duration::from_secs(15), || {
        let line = node_line(&cluster, 1, &host_1)?;
        line.contains("Missed check-in").then_some(()).ok_or(line)
    });
    cluster
        .control(&Member::Node(0), Control::Unpause)
        .expect("unpause node 1");
    eventually(
        "node-1 Online after unpause",
        Duration::from_secs(15),
        || {
            let line = node_line(&cluster, 1, &host_1)?;
            line.contains("Online").then_some(()).ok_or(line)
        },
    );

    // What a panic between start and teardown does.
    let run_id = cluster.run_id().to_string();
    drop(cluster);
    assert_eq!(leftovers(&run_id), "", "left behind after drop");
}

/// A panic on an async runtime's thread while the cluster is held: the drop runs there, as the
/// panic unwinds. The containers' handles remove them with blocking calls that panic on such
/// a thread, which during an unwind aborts the process and leaks every container; the
/// teardown runs on a thread of its own instead.
#[test]
fn a_panic_on_an_async_runtime_still_removes_every_container() {
    let _serial = serial();
    let cluster = start("");
    let run_id = cluster.run_id().to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let outcome = runtime.block_on(async move {
        tokio::spawn(async move {
            let _held = cluster;
            panic!("a planted panic while the docker cluster is held");
        })
        .await
    });
    assert!(outcome.expect_err("the task panicked").is_panic());
    assert_eq!(leftovers(&run_id), "", "left behind after the panic");
}

#[test]
fn the_standby_holds_every_committed_row_and_after_promotion_the_nodes_write_again() {
    let _serial = serial();
    let mut cluster = start(CLUSTER_EXTRA);
    let dir = tempfile::tempdir().unwrap();
    // Commits wait for the synchronous standby while it is held in any way.
    assert_commits_wait_for_the_standby(&cluster, dir.path());
    let committed = assert_standby_holds_every_committed_row(&cluster, dir.path(), |m, t| {
        count(&cluster, m, t)
    });
    assert!(committed[0] >= 8, "{committed:?}");

    let standby = cluster.container_name(&Member::DatabaseStandby).unwrap();
    cluster.promote_standby().expect("promote the standby");
    // Roles follow the promotion.
    assert_eq!(
        cluster.container_name(&Member::DatabasePrimary).unwrap(),
        standby
    );
    let recovery = cluster
        .psql(&Member::DatabasePrimary, "SELECT pg_is_in_recovery()")
        .unwrap();
    assert_eq!(recovery, "f", "the promoted standby is still in recovery");
    let wheel = wheel(dir.path(), "afterpromotion");
    eventually("an upload after promotion", Duration::from_secs(90), || {
        let (status, body) = upload(&cluster, &wheel, "afterpromotion");
        (200..300)
            .contains(&status)
            .then_some(())
            .ok_or(format!("{status} {body}"))
    });
    let page = format!(
        "{}/{}/latest/simple/afterpromotion/",
        cluster.endpoints().base_url,
        cluster.endpoints().pypi_repo
    );
    let file_name = wheel.file_name().unwrap().to_str().unwrap().to_string();
    let client = client();
    eventually("the new package served", Duration::from_secs(30), || {
        let (status, body) = get(&client, &page);
        (status == 200 && body.contains(&file_name))
            .then_some(())
            .ok_or(format!("{status} {body}"))
    });
    assert_eq!(
        count(&cluster, &Member::DatabasePrimary, "packages"),
        committed[0] + 1
    );

    let run_id = cluster.run_id().to_string();
    cluster.teardown().expect("teardown");
    assert_eq!(leftovers(&run_id), "", "left behind after teardown");
}

#[test]
fn a_failed_start_removes_what_it_started() {
    let _serial = serial();
    let run_id = format!("pkgc-test-{}", std::process::id());
    // PostgreSQL and Garage are up by the time the node configs are written.
    let error = docker::start(DockerOptions {
        nodes: 1,
        pkgnode_bin: pkgnode(),
        node_config_extra: "[cluster".into(),
        ready_timeout: Duration::from_secs(90),
        reason: "integration test".into(),
        run_id: Some(run_id.clone()),
        corpus_cache: None,
        git_builders: false,
    })
    .err()
    .expect("bad extra TOML fails");
    assert!(error.to_string().contains("node_config_extra"), "{error}");
    assert_eq!(leftovers(&run_id), "", "left behind by a failed start");
}

/// A harness killed outright (SIGKILL, or goose's second Ctrl-C) cannot tear down; the next
/// docker run removes what it left.
#[test]
fn a_dead_harness_runs_containers_are_reaped_by_the_next_run() {
    let _serial = serial();
    docker::engine::ensure_images(&pkgnode(), docker::engine::NodeImage::Scratch).expect("images");
    // A pid that existed and is gone now.
    let mut gone = Command::new("true").spawn().expect("spawn");
    let dead_pid = gone.id();
    gone.wait().expect("wait");
    let run_id = format!("pkgc-orphan-{dead_pid}");
    let docker_ok = |args: &[&str]| {
        let output = Command::new("docker").args(args).output().expect("docker");
        assert!(output.status.success(), "docker {args:?}: {output:?}");
    };
    docker_ok(&[
        "network",
        "create",
        "--label",
        &format!("pkgcluster.run={run_id}"),
        "--label",
        &format!("pkgcluster.owner={dead_pid}"),
        &run_id,
    ]);
    let image = docker::engine::image("garage");
    docker_ok(&[
        "create",
        "--name",
        &format!("{run_id}-s3"),
        "--network",
        &run_id,
        "--label",
        &format!("pkgcluster.run={run_id}"),
        &image,
    ]);
    assert!(!leftovers(&run_id).is_empty());
    let reaped = docker::engine::reap_orphans().expect("reap");
    assert!(reaped.contains(&run_id), "{reaped:?}");
    assert_eq!(leftovers(&run_id), "", "the orphan run was not removed");
}
