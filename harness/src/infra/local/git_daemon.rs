//! A real Git server on loopback for the git builders: `git daemon --listen=127.0.0.1
//! --export-all --base-path=DIR` over bare repositories, as a direct child of the harness (like
//! every local part: its own process group, `PR_SET_PDEATHSIG` from its own spawner thread).
//! The nodes clone and `ls-remote` `git://127.0.0.1:PORT/NAME.git`; the commit driver pushes
//! to the bare repositories on disk (`git daemon` also accepts pushes: receive-pack is on).

use std::path::{Path, PathBuf};
use std::time::Duration;

use scenarios::git_builders::GitRemote;

use super::process::{self, Launch, PidBoard, STOP_GRACE, Spawner};
use super::supervised::{self, Supervised};
use crate::infra::InfraError;

/// A running `git daemon` and the directory of its repositories.
pub struct GitServer {
    /// `--base-path`: every `NAME.git` under it is served as `/NAME.git`.
    repos_dir: PathBuf,
    commands_dir: PathBuf,
    port: u16,
    /// e.g. `2.47.3`.
    pub version: String,
    process: Supervised,
    timeout: Duration,
    _temporary: Option<tempfile::TempDir>,
    /// Declared last: dropped after the process it forked.
    spawner: Spawner,
}

impl GitServer {
    /// Starts `git daemon` on a free loopback port serving `dir/repos` (a temp dir, removed on
    /// drop, when `dir` is `None`), and waits until it accepts connections. Blocking.
    pub fn start(dir: Option<&Path>, timeout: Duration) -> Result<Self, InfraError> {
        let (root, temporary) = match dir {
            Some(dir) => (dir.to_path_buf(), None),
            None => {
                let temp = tempfile::Builder::new().prefix("harness-git-").tempdir()?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let repos_dir = root.join("repos");
        let commands_dir = root.join("commands");
        std::fs::create_dir_all(&repos_dir)?;
        std::fs::create_dir_all(&commands_dir)?;
        let spawner = Spawner::new()?;
        let version = {
            let launch = Launch::new("git --version", "git", "").arg("--version");
            let out = process::run(&spawner, &launch, &commands_dir, "git-version", timeout)?;
            out.trim()
                .rsplit(' ')
                .next()
                .unwrap_or_default()
                .to_string()
        };
        let port = crate::infra::probe::free_port()?;
        let launch = Launch::new("git-daemon", "git", root.join("git-daemon.log"))
            .arg("daemon")
            .arg("--reuseaddr")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg("--export-all")
            .arg("--enable=receive-pack")
            .arg("--informative-errors")
            // The default (32) refuses clones when a hundred builders poll at once.
            .arg("--max-connections=0")
            .arg("--init-timeout=10")
            .arg("--timeout=120")
            .arg(format!("--base-path={}", repos_dir.display()))
            .arg(&repos_dir);
        let mut process = Supervised::new(launch, &PidBoard::default());
        process.start(&spawner)?;
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        supervised::wait_ready("git daemon", timeout, Some(&mut process), || {
            std::net::TcpStream::connect_timeout(&address, Duration::from_secs(1))
                .map(|_| true)
                .map_err(|e| format!("connect {address}: {e}"))
        })?;
        Ok(Self {
            repos_dir,
            commands_dir,
            port,
            version,
            process,
            timeout,
            _temporary: temporary,
            spawner,
        })
    }

    /// `git://127.0.0.1:PORT`: what the nodes clone from.
    pub fn clone_base(&self) -> String {
        format!("git://127.0.0.1:{}", self.port)
    }

    /// Where the commit driver pushes (the bare repositories on disk) and where the nodes
    /// clone from (the daemon).
    pub fn remote(&self) -> GitRemote {
        GitRemote {
            push_base: self.repos_dir.display().to_string(),
            clone_base: self.clone_base(),
        }
    }

    pub fn repos_dir(&self) -> &Path {
        &self.repos_dir
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Creates the empty bare repository `NAME.git` (idempotent).
    pub fn create_repository(&self, name: &str) -> Result<(), InfraError> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            || name.starts_with('.')
        {
            return Err(InfraError::Failed {
                what: "git repository".into(),
                detail: format!("{name:?} is not a plain repository name"),
            });
        }
        let path = self.repos_dir.join(format!("{name}.git"));
        if path.join("HEAD").is_file() {
            return Ok(());
        }
        let launch = Launch::new(&format!("git init --bare {name}"), "git", "")
            .arg("init")
            .arg("--quiet")
            .arg("--bare")
            .arg("--initial-branch=main")
            .arg(&path);
        process::run(
            &self.spawner,
            &launch,
            &self.commands_dir,
            &format!("git-init-{name}"),
            self.timeout,
        )?;
        Ok(())
    }

    /// Stops the daemon (SIGTERM, then SIGKILL after the grace).
    pub fn stop(&mut self) -> Result<(), InfraError> {
        self.process
            .stop(nix::sys::signal::Signal::SIGTERM, STOP_GRACE)
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
