//! What several test areas share: the `pkgnode` binary, built once per test process, real
//! package files from `node/tests/support/mkpkg.py`, and an HTTP client that uploads and reads
//! through a cluster's endpoints.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use harness::infra::{Control, Endpoints, Infra, Member};

/// `$PKGNODE_BIN`, or `pkgnode` built once per test process (same profile and target dir as
/// this test binary): `cargo nextest run` builds only the harness's own targets.
pub fn pkgnode() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("test binary path");
            // target/{profile}/deps/it-HASH
            let profile = exe
                .ancestors()
                .nth(2)
                .and_then(Path::file_name)
                .and_then(|n| n.to_str())
                .unwrap_or("debug");
            build_pkgnode(if profile == "debug" { "dev" } else { profile })
        })
        .clone()
}

/// The release `pkgnode` (what the image holds, as for `harness scenario`), built once per test
/// process; `$PKGNODE_BIN` when set.
pub fn pkgnode_release() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| build_pkgnode("release")).clone()
}

/// `$PKGNODE_BIN`, or `cargo build -p node --bin pkgnode --profile PROFILE` into this test
/// binary's target dir; the binary's path.
fn build_pkgnode(profile: &str) -> PathBuf {
    if let Some(path) = std::env::var_os("PKGNODE_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test binary path");
    // target/{profile}/deps/it-HASH
    let target_dir = exe.ancestors().nth(3).expect("target dir");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", "node", "--bin", "pkgnode"])
        .args(["--profile", profile])
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .expect("run cargo");
    assert!(
        status.success(),
        "cargo build -p node --bin pkgnode --profile {profile} failed"
    );
    let dir = if profile == "dev" { "debug" } else { profile };
    target_dir.join(dir).join("pkgnode")
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

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("http client")
}

/// GET: the status and body, or status 0 and the error when no answer came.
pub fn get(client: &reqwest::blocking::Client, url: &str) -> (u16, String) {
    match client.get(url).send() {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.text().unwrap_or_default())
        }
        Err(error) => (0, error.to_string()),
    }
}

/// Polls `check` every 200 ms until it holds; panics with the last observation after `timeout`.
pub fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(()) => return,
            Err(last) if Instant::now() >= deadline => panic!("{what} within {timeout:?}: {last}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Uploads a wheel of version 1.0 through the balancer, as twine does; the status and body
/// (status 0 when no answer came).
pub fn upload(
    client: &reqwest::blocking::Client,
    endpoints: &Endpoints,
    wheel: &Path,
    name: &str,
) -> (u16, String) {
    let file_name = wheel.file_name().unwrap().to_str().unwrap().to_string();
    let form = reqwest::blocking::multipart::Form::new()
        .text(":action", "file_upload")
        .text("name", name.to_string())
        .text("version", "1.0")
        .part(
            "content",
            reqwest::blocking::multipart::Part::bytes(std::fs::read(wheel).unwrap())
                .file_name(file_name),
        );
    match client
        .post(format!(
            "{}/upload/pypi/{}",
            endpoints.base_url, endpoints.pypi_source
        ))
        .basic_auth("__token__", Some(&endpoints.pypi_token))
        .multipart(form)
        .send()
    {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.text().unwrap_or_default())
        }
        Err(error) => (0, error.to_string()),
    }
}

/// Holds `member` with `hold` (pause, cut off, stop), checks that an upload through the balancer
/// does not finish for 4 s, releases the member with `release`, and checks that the upload then
/// finishes with success: what a synchronous standby does to commits on the primary.
pub fn assert_upload_waits_for(
    cluster: &dyn Infra,
    member: &Member,
    (hold, release): (Control, Control),
    wheel: &Path,
    name: &str,
) {
    cluster
        .control(member, hold)
        .unwrap_or_else(|e| panic!("{hold:?} {member:?}: {e}"));
    let (finished, result) = std::sync::mpsc::channel();
    let (endpoints, wheel, name) = (
        cluster.endpoints().clone(),
        wheel.to_path_buf(),
        name.to_string(),
    );
    let uploader = std::thread::spawn(move || {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(55))
            .build()
            .expect("http client");
        let _ = finished.send(upload(&client, &endpoints, &wheel, &name));
    });
    let early = result.recv_timeout(Duration::from_secs(4));
    assert!(
        early.is_err(),
        "an upload finished while {member:?} was held by {hold:?}: {early:?}"
    );
    cluster
        .control(member, release)
        .unwrap_or_else(|e| panic!("{release:?} {member:?}: {e}"));
    let (status, body) = result
        .recv_timeout(Duration::from_secs(50))
        .unwrap_or_else(|_| panic!("the upload held by {hold:?} never finished"));
    uploader.join().expect("uploader thread");
    assert!(
        (200..300).contains(&status),
        "upload held by {hold:?}: {status} {body}"
    );
}

/// [`assert_upload_waits_for`] the standby held in each way a drill holds it: cut off, paused,
/// stopped.
pub fn assert_commits_wait_for_the_standby(cluster: &dyn Infra, dir: &Path) {
    let holds = [
        (Control::Disconnect, Control::Reconnect),
        (Control::Pause, Control::Unpause),
        (Control::Stop, Control::Start),
    ];
    for (i, hold) in holds.into_iter().enumerate() {
        let name = format!("held{i}");
        let held = wheel(dir, &name);
        assert_upload_waits_for(cluster, &Member::DatabaseStandby, hold, &held, &name);
    }
}

/// Uploads `before0`…`before4` through the balancer, kills the primary, and checks that the
/// standby holds every row the primary had committed (synchronous replication loses none).
/// `count(member, table)` counts a table's rows on a database member. Returns the committed
/// counts of `packages`, `transactions`, `sources`, `repos`.
pub fn assert_standby_holds_every_committed_row(
    cluster: &dyn Infra,
    dir: &Path,
    count: impl Fn(&Member, &str) -> u64,
) -> Vec<u64> {
    let client = client();
    for i in 0..5 {
        let name = format!("before{i}");
        let (status, body) = upload(&client, cluster.endpoints(), &wheel(dir, &name), &name);
        assert!(
            (200..300).contains(&status),
            "upload {name}: {status} {body}"
        );
    }
    let tables = ["packages", "transactions", "sources", "repos"];
    let committed: Vec<u64> = tables
        .iter()
        .map(|t| count(&Member::DatabasePrimary, t))
        .collect();
    assert!(committed[0] >= 5, "{committed:?}");
    cluster
        .control(&Member::DatabasePrimary, Control::Kill)
        .expect("kill the primary");
    let on_standby: Vec<u64> = tables
        .iter()
        .map(|t| count(&Member::DatabaseStandby, t))
        .collect();
    assert_eq!(on_standby, committed, "rows of {tables:?} on the standby");
    committed
}

/// Processes whose command line mentions `dir` (everything the run started lives under it).
pub fn processes_under(dir: &Path) -> Vec<String> {
    harness::procs::command_lines_containing(&dir.display().to_string())
}

/// No file left in `tmp` and no process whose command line mentions it.
pub fn assert_nothing_left(tmp: &Path) {
    let left: Vec<_> = std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "temp files left behind: {left:?}");
    let running = processes_under(tmp);
    assert!(running.is_empty(), "processes left behind: {running:?}");
}

/// The `harness` binary as a user runs it, writing to `out`: this test's `pkgnode`, temp
/// files under `tmp` (so leftovers are visible), and no cargo (so it builds nothing).
pub fn harness_command(tmp: &Path, out: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_harness"));
    command
        .args(args)
        .arg("--out")
        .arg(out)
        .env("PKGNODE_BIN", pkgnode())
        .env("TMPDIR", tmp)
        .env_remove("CARGO");
    command
}
