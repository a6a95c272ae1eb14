//! Real components for the node's integration tests: a PostgreSQL 15 cluster in a temp dir, a
//! one-node Garage S3 server, `pkgnode` processes, and the package files they serve. Every
//! process is stopped when its guard drops.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn pkgnode_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pkgnode"))
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn must(output: std::io::Result<Output>, what: &str) -> Output {
    let output = output.unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Polls `ready` every 50 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, ready: impl FnMut() -> bool) {
    if !eventually(timeout, ready) {
        panic!("{what} not ready after {timeout:?}");
    }
}

/// Polls `ready` every 50 ms for up to `timeout`, like [`wait_until`], but returns whether it
/// held.
pub fn eventually(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// [`wait_until`] for a condition only async code can read: polls without blocking the runtime.
pub async fn wait_until_async<F: std::future::Future<Output = bool>>(
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> F,
) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ready().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what} not ready after {timeout:?}");
}

/// PostgreSQL 15 from Debian's packages, in a temp dir, on a loopback port.
pub struct Postgres {
    pub dir: tempfile::TempDir,
    pub port: u16,
    bin: PathBuf,
}

impl Postgres {
    /// A fresh directory and port, nothing started.
    fn prepare() -> Self {
        let bin = PathBuf::from("/usr/lib/postgresql/15/bin");
        assert!(
            bin.join("postgres").exists(),
            "PostgreSQL 15 is not installed: run .ci/install.sh"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let pg = Self { dir, port, bin };
        if is_root() {
            must(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(pg.dir.path())
                    .output(),
                "chown",
            );
        }
        pg
    }

    /// A streaming standby of this server (a base backup, `-R`), started and replicating.
    pub fn standby(&self) -> Self {
        let standby = Self::prepare();
        must(
            standby
                .as_postgres(&standby.bin.join("pg_basebackup"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(["-U", "postgres", "-R", "-X", "stream", "-c", "fast", "-D"])
                .arg(standby.dir.path().join("data"))
                .output(),
            "pg_basebackup",
        );
        standby.start_again();
        standby
    }

    /// Promotes a standby; returns once it takes writes.
    pub fn promote(&self) {
        must(
            self.as_postgres(&self.bin.join("pg_ctl"))
                .args(["-w", "-s", "-D"])
                .arg(self.dir.path().join("data"))
                .arg("promote")
                .output(),
            "pg_ctl promote",
        );
    }

    pub fn start() -> Self {
        let pg = Self::prepare();
        let data = pg.dir.path().join("data");
        must(
            pg.as_postgres(&pg.bin.join("initdb"))
                .args([
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "-D",
                ])
                .arg(&data)
                .output(),
            "initdb",
        );
        pg.start_again();
        pg
    }

    /// Starts the server (again, after `stop`) on the same port and data; returns once it
    /// accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        must(
            self.as_postgres(&self.bin.join("pg_ctl"))
                .args(["-w", "-s", "-D"])
                .arg(self.dir.path().join("data"))
                .args(["-o", &options, "-l"])
                .arg(self.dir.path().join("log"))
                .arg("start")
                .output(),
            "pg_ctl start",
        );
    }

    /// Stops the server (fast shutdown: sessions are terminated) and waits until it is gone.
    pub fn stop(&self) {
        self.stop_with("fast");
    }

    /// Freezes the server and all its sessions (SIGSTOP): connections stay open and nothing
    /// answers, as when the network to the database drops packets.
    pub fn pause(&self) {
        let processes = self.processes();
        assert!(!processes.is_empty(), "PostgreSQL is not running");
        for pid in processes {
            signal(pid, "STOP");
        }
    }

    /// Thaws what `pause` froze.
    pub fn resume(&self) {
        for pid in self.processes() {
            signal(pid, "CONT");
        }
    }

    /// The postmaster and its children (none when the server is not running).
    fn processes(&self) -> Vec<u32> {
        let pid_file = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid"))
            .unwrap_or_default();
        let Some(postmaster) = pid_file
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<u32>().ok())
        else {
            return Vec::new();
        };
        let children = Command::new("pgrep")
            .args(["-P", &postmaster.to_string()])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        std::iter::once(postmaster)
            .chain(children.lines().filter_map(|l| l.trim().parse().ok()))
            .collect()
    }

    /// Stops the server as a crash would: no clean shutdown, connections cut mid-request.
    pub fn stop_immediately(&self) {
        self.stop_with("immediate");
    }

    fn stop_with(&self, mode: &str) {
        must(
            self.as_postgres(&self.bin.join("pg_ctl"))
                .args(["-w", "-s", "-m", mode, "-D"])
                .arg(self.dir.path().join("data"))
                .arg("stop")
                .output(),
            "pg_ctl stop",
        );
    }

    fn as_postgres(&self, program: &Path) -> Command {
        if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    /// Creates a database and returns its URL.
    pub fn database(&self, name: &str) -> String {
        must(
            Command::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                    "-c",
                ])
                .arg(format!("CREATE DATABASE {name}"))
                .output(),
            "create database",
        );
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    pub fn psql(&self, database: &str, sql: &str) -> String {
        self.psql_with_options(database, sql, "")
    }

    /// A trigger function `function()` in `database` that raises `message`: the planted fault
    /// behind triggers that refuse a row at insert or at commit.
    pub fn raising_trigger_function(&self, database: &str, function: &str, message: &str) {
        self.psql(
            database,
            &format!(
                "CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION '{message}'; END $$"
            ),
        );
    }

    /// As `psql`, in a session that may write even when the server defaults to read-only.
    pub fn psql_as_writer(&self, database: &str, sql: &str) -> String {
        self.psql_with_options(database, sql, "-c default_transaction_read_only=off")
    }

    fn psql_with_options(&self, database: &str, sql: &str, options: &str) -> String {
        let out = must(
            Command::new("psql")
                .env("PGOPTIONS", options)
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                    "-At",
                    "-d",
                    database,
                    "-c",
                    sql,
                ])
                .output(),
            "psql",
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // A test that failed while the server was paused must not leave it frozen.
        for pid in self.processes() {
            let _ = Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .output();
        }
        let _ = self
            .as_postgres(&self.bin.join("pg_ctl"))
            .args(["-w", "-s", "-m", "immediate", "-D"])
            .arg(self.dir.path().join("data"))
            .arg("stop")
            .output();
    }
}

/// A one-node Garage S3 server with one bucket and one key.
pub struct Garage {
    pub dir: tempfile::TempDir,
    pub endpoint: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    child: Child,
}

pub fn garage_bin() -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let cached = PathBuf::from(home).join(".cargo/bin/garage");
    if cached.exists() {
        cached
    } else {
        PathBuf::from("garage")
    }
}

impl Garage {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (s3_port, rpc_port) = (free_port(), free_port());
        let secret: [u8; 32] = rand::random();
        let config = dir.path().join("garage.toml");
        std::fs::write(
            &config,
            format!(
                "metadata_dir = \"{0}/meta\"\ndata_dir = \"{0}/data\"\ndb_engine = \"sqlite\"\n\
                 replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc_port}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc_port}\"\nrpc_secret = \"{1}\"\n\
                 [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3_port}\"\n\
                 root_domain = \".s3.garage.localhost\"\n",
                dir.path().display(),
                hex::encode(secret)
            ),
        )
        .expect("garage config");
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log");
        let child = Command::new(garage_bin())
            .arg("-c")
            .arg(&config)
            .arg("server")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("garage is not installed: run .ci/install.sh");
        let cli = |args: &[&str]| -> String {
            let out = Command::new(garage_bin())
                .arg("-c")
                .arg(&config)
                .args(args)
                .output();
            String::from_utf8_lossy(&must(out, &format!("garage {}", args.join(" "))).stdout)
                .into_owned()
        };
        let mut node_id = String::new();
        // `node id` reads the key on disk and answers before the server listens; `status` goes
        // through the RPC port the layout commands need.
        wait_until("garage", Duration::from_secs(20), || {
            let succeeds = |args: &[&str]| {
                Command::new(garage_bin())
                    .arg("-c")
                    .arg(&config)
                    .args(args)
                    .output()
                    .ok()
                    .filter(|o| o.status.success())
            };
            let Some(id) = succeeds(&["node", "id", "-q"]) else {
                return false;
            };
            node_id = String::from_utf8_lossy(&id.stdout).trim().to_string();
            !node_id.is_empty() && succeeds(&["status"]).is_some()
        });
        let id = node_id.split('@').next().unwrap_or_default().to_string();
        cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &id]);
        cli(&["layout", "apply", "--version", "1"]);
        let key = cli(&["key", "create", "pkgnode"]);
        let field = |name: &str| {
            key.lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
                .unwrap_or_else(|| panic!("garage key create printed no {name}: {key}"))
        };
        let (access_key, secret_key) = (field("Key ID:"), field("Secret key:"));
        cli(&["bucket", "create", "pkgs"]);
        cli(&[
            "bucket", "allow", "--read", "--write", "--owner", "pkgs", "--key", "pkgnode",
        ]);
        Self {
            dir,
            endpoint: format!("http://127.0.0.1:{s3_port}"),
            bucket: "pkgs".into(),
            access_key,
            secret_key,
            child,
        }
    }

    pub fn storage_toml(&self) -> String {
        format!(
            "[storage.s3]\nendpoint = \"{}\"\nbucket = \"{}\"\nregion = \"garage\"\naccess_key = \"{}\"\nsecret_key = \"{}\"\n",
            self.endpoint, self.bucket, self.access_key, self.secret_key
        )
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One node's configuration directory and file.
pub struct NodeDir {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub port: u16,
    /// The loopback address the node listens on.
    pub ip: String,
}

impl NodeDir {
    /// Writes a config with `extra` TOML appended; the key file is shared when `key_file` is set.
    pub fn new(extra: &str) -> Self {
        Self::with_head_poll(extra, "200ms")
    }

    /// As `new`, with the head re-read interval set (slow polling isolates notifications).
    pub fn with_head_poll(extra: &str, head_poll: &str) -> Self {
        Self::build(
            "127.0.0.1",
            extra,
            &format!("head_poll_interval = \"{head_poll}\""),
        )
    }

    /// As `new`, with these lines in `[cache]` (which sets the head re-read interval itself).
    pub fn with_cache(extra: &str, cache: &str) -> Self {
        Self::build("127.0.0.1", extra, cache)
    }

    /// As `new`, listening on another loopback address (Linux routes all of 127/8 to `lo`).
    pub fn at(ip: &str, extra: &str) -> Self {
        Self::build(ip, extra, "head_poll_interval = \"200ms\"")
    }

    fn build(ip: &str, extra: &str, cache: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let config = dir.path().join("node.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"{ip}:{port}\"\ndata_dir = \"{}\"\n[cache]\n{cache}\n\
                 [downloads]\nflush_interval = \"200ms\"\n{extra}",
                dir.path().join("data").display()
            ),
        )
        .expect("node config");
        Self {
            dir,
            config,
            port,
            ip: ip.to_string(),
        }
    }

    pub fn base(&self) -> String {
        format!("http://{}:{}", self.ip, self.port)
    }

    /// The data directory (where the node keeps its id and, by default, its key).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs an admin command with its exit status, stdout and stderr, whatever the outcome.
    pub fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(pkgnode_bin())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run pkgnode");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Starts `pkgnode serve` with extra environment variables, without waiting for it.
    pub fn spawn(&self, env: &[(&str, &str)]) -> Served {
        let log = std::fs::File::create(self.dir.path().join("serve.log")).expect("log");
        let child = Command::new(pkgnode_bin())
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start pkgnode");
        Served {
            child,
            base: self.base(),
        }
    }

    /// The node's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// Runs an admin command and returns its standard output; panics on failure.
    pub fn admin(&self, args: &[&str]) -> String {
        let out = Command::new(pkgnode_bin())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output();
        String::from_utf8_lossy(&must(out, &format!("pkgnode {}", args.join(" "))).stdout)
            .into_owned()
    }

    /// Runs an admin command expected to fail; returns its standard error.
    pub fn admin_fails(&self, args: &[&str]) -> String {
        let out = Command::new(pkgnode_bin())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run pkgnode");
        assert!(
            !out.status.success(),
            "pkgnode {} should have failed",
            args.join(" ")
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn token(&self, source: &str) -> String {
        let out = self.admin(&[
            "create",
            "token",
            "--scope",
            "sources:write",
            "--source",
            source,
        ]);
        out.lines().last().expect("token line").trim().to_string()
    }

    /// Starts `pkgnode serve` and waits for `/__ping__`.
    pub fn serve(&self) -> Served {
        let served = self.spawn(&[]);
        wait_until("pkgnode", Duration::from_secs(20), || {
            served.ping() == Some(200)
        });
        served
    }

    /// Creates the standard layout: python source `py` + repo `pypi`, R source `rsrc` + repo `cran`.
    /// A second local Python source `py2` with its own repository `pypi2`, beside
    /// [`NodeDir::standard_layout`]'s `py`: for two sources that hold the same bytes.
    pub fn second_python_source(&self) {
        self.admin(&[
            "create",
            "source",
            "--name",
            "py2",
            "--type",
            "local-python",
        ]);
        self.admin(&["create", "repo", "--name", "pypi2", "--type", "python"]);
        self.admin(&["subscribe", "--repo", "pypi2", "--source", "py2"]);
    }

    pub fn standard_layout(&self) {
        self.admin(&["create", "source", "--name", "py", "--type", "local-python"]);
        self.admin(&["create", "repo", "--name", "pypi", "--type", "python"]);
        self.admin(&["subscribe", "--repo", "pypi", "--source", "py"]);
        self.admin(&["create", "source", "--name", "rsrc", "--type", "local"]);
        self.admin(&["create", "repo", "--name", "cran", "--type", "r"]);
        self.admin(&["subscribe", "--repo", "cran", "--source", "rsrc"]);
    }
}

/// A running `pkgnode serve`.
pub struct Served {
    child: Child,
    pub base: String,
}

impl Served {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (a clean shutdown) and waits for the process to end.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        signal(self.child.id(), "TERM");
        self.child.wait().expect("wait for pkgnode")
    }

    /// SIGKILL: the process dies without a word.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process has ended on its own, with its status.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// `/__ping__`'s status code, or `None` when nothing answers.
    pub fn ping(&self) -> Option<u16> {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .ok()?
            .get(format!("{}/__ping__", self.base))
            .send()
            .ok()
            .map(|r| r.status().as_u16())
    }
}

/// Sends a signal by name to a process.
pub fn signal(pid: u32, name: &str) {
    must(
        Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .output(),
        "kill",
    );
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a package with `tests/support/mkpkg.py` and returns its path.
pub fn mkpkg(out: &Path, args: &[&str]) -> PathBuf {
    mkpkg_padded(out, args, 0)
}

pub fn mkpkg_padded(out: &Path, args: &[&str], pad_bytes: usize) -> PathBuf {
    mkpkg_with(out, args, &[("MKPKG_PAD", pad_bytes)])
}

/// A package with a member of `zero_bytes` zeros: it inflates far beyond its size.
pub fn mkpkg_bomb(out: &Path, args: &[&str], zero_bytes: usize) -> PathBuf {
    mkpkg_with(out, args, &[("MKPKG_ZEROS", zero_bytes)])
}

fn mkpkg_with(out: &Path, args: &[&str], env: &[(&str, usize)]) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/mkpkg.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(args[0])
        .arg(out)
        .args(&args[1..])
        .envs(env.iter().map(|(k, v)| (*k, v.to_string())))
        .output();
    let output = must(output, "mkpkg.py");
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

/// Runs a client program; returns (success, stdout + stderr).
pub fn client(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PIP_NO_CACHE_DIR", "1")
        .env("UV_NO_CACHE", "1")
        .output()
        .unwrap_or_else(|e| panic!("{program} is not installed ({e}): run .ci/install.sh"));
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub fn twine_upload(base: &str, source: &str, token: &str, files: &[&Path]) -> (bool, String) {
    let url = format!("{base}/upload/pypi/{source}");
    let mut args = vec![
        "-m",
        "twine",
        "upload",
        "--non-interactive",
        "--disable-progress-bar",
        "--repository-url",
        &url,
        "-u",
        "__token__",
        "-p",
        token,
    ];
    let paths: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    args.extend(paths.iter().map(String::as_str));
    client("python3", &args)
}

pub fn pip_install(index: &str, target: &Path, requirement: &str) -> (bool, String) {
    client(
        "python3",
        &[
            "-m",
            "pip",
            "install",
            "--quiet",
            "--target",
            &target.display().to_string(),
            "--index-url",
            index,
            requirement,
        ],
    )
}

/// A TCP endpoint in front of a database server that can be moved to another server, cutting the
/// connections it carried: what a managed database's DNS name or the harness's endpoint proxy does
/// on failover.
pub struct Endpoint {
    pub port: u16,
    target: std::sync::Arc<std::sync::atomic::AtomicU16>,
    carried: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Endpoint {
    pub fn to(target_port: u16) -> Self {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").expect("endpoint listener");
        let port = listener.local_addr().expect("endpoint address").port();
        let endpoint = Self {
            port,
            target: std::sync::Arc::new(target_port.into()),
            carried: std::sync::Arc::default(),
            stop: std::sync::Arc::default(),
        };
        let (target, carried, stop) = (
            endpoint.target.clone(),
            endpoint.carried.clone(),
            endpoint.stop.clone(),
        );
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::Acquire) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) =
                    std::net::TcpStream::connect(("127.0.0.1", target.load(Ordering::Acquire)))
                else {
                    continue;
                };
                let pipes = (
                    client.try_clone(),
                    server.try_clone(),
                    client.try_clone(),
                    server.try_clone(),
                );
                let (Ok(mut c_in), Ok(mut s_out), Ok(c_keep), Ok(s_keep)) = pipes else {
                    continue;
                };
                if let Ok(mut list) = carried.lock() {
                    list.extend([c_keep, s_keep]);
                }
                let (mut s_in, mut c_out) = (server, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_in, &mut s_out);
                    let _ = s_out.shutdown(std::net::Shutdown::Both);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_in, &mut c_out);
                    let _ = c_out.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        endpoint
    }

    /// New connections go to `port`; the ones carried so far are cut.
    pub fn point_at(&self, port: u16) {
        self.target
            .store(port, std::sync::atomic::Ordering::Release);
        if let Ok(mut list) = self.carried.lock() {
            for stream in list.drain(..) {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        self.point_at(0);
    }
}

/// An HTTP client whose requests give up after 30 s.
pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Uploads `wheel` to the `py` source of the node at `base`, as twine does.
pub fn upload(base: &str, token: &str, wheel: &Path) -> reqwest::blocking::Response {
    use reqwest::blocking::multipart::{Form, Part};
    let filename = wheel.file_name().unwrap().to_string_lossy().into_owned();
    let form = Form::new().text(":action", "file_upload").part(
        "content",
        Part::bytes(std::fs::read(wheel).unwrap()).file_name(filename),
    );
    http()
        .post(format!("{base}/upload/pypi/py"))
        .basic_auth("__token__", Some(token))
        .multipart(form)
        .send()
        .expect("upload request")
}

/// GET `url`.
pub fn get(url: &str) -> reqwest::blocking::Response {
    http().get(url).send().expect("GET")
}

/// One sample of a node's `/metrics`: name, (label, value) pairs, value.
pub type MetricSample = (String, Vec<(String, String)>, f64);

/// Every sample of a node's `/metrics` (OpenMetrics text, read by `nom-openmetrics`). Panics
/// when the text does not parse: the node wrote it. HELP and TYPE lines are left out:
/// nom-openmetrics 0.3 wants a sample in every family, and the node describes a labelled
/// family before its first sample.
pub fn metric_samples(text: &str) -> Vec<MetricSample> {
    let sample_lines = text
        .lines()
        .filter(|l| !l.starts_with("# ") || *l == "# EOF");
    let sample_text: String = sample_lines.flat_map(|line| [line, "\n"]).collect();
    let (_, families) = nom_openmetrics::parser::openmetrics(&sample_text)
        .unwrap_or_else(|e| panic!("/metrics is not OpenMetrics text: {e}\n{text}"));
    families
        .iter()
        .flat_map(|family| &family.samples)
        .map(|sample| {
            let labels = sample.labels().iter();
            let labels = labels.map(|l| (l.name.to_string(), l.value.clone()));
            (sample.name().to_string(), labels.collect(), sample.number())
        })
        .collect()
}
