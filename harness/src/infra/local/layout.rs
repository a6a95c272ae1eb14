//! The work dir: where every part of a local cluster keeps its data, config, socket and log, and
//! the [`Context`] a part starts (or restarts) in.
//!
//! Layout: `postgresql/`, `postgresql-standby/` (+ their `.log`), `db-endpoint.cfg` + `.log` +
//! `.sock`, `garage/` (+ `garage.log`), `pkgnode.key`, `node-N/` + `node-N.toml` +
//! `node-N.log`, `haproxy.cfg` + `haproxy.log` + `haproxy.sock`, `packages/` (shared directory
//! storage), `git/` (the Git server's repositories), and `commands/` with the output of every
//! setup command. A part's name is its process name (see [`super::LocalCluster::process_name`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::network::Network;
use super::process::{Identity, PidBoard, Spawner};
use crate::infra::InfraError;

/// The key file every node reads.
const KEY_FILE: &str = "pkgnode.key";
/// Package files with `PackageStorage::SharedDirectory`.
const SHARED_PACKAGES: &str = "packages";
/// The Git server's bare repositories.
const GIT: &str = "git";
/// The output of every setup command.
const COMMANDS: &str = "commands";

/// The work dir itself: ours or the caller's.
pub(super) enum WorkDir {
    /// Ours: removed at teardown.
    Temporary(Option<tempfile::TempDir>),
    /// The caller's: kept, logs and all.
    Kept(PathBuf),
}

impl WorkDir {
    /// The caller's dir (created if missing), else a new temporary one.
    pub(super) fn create(given: Option<&Path>) -> Result<Self, InfraError> {
        if let Some(path) = given {
            std::fs::create_dir_all(path)?;
            return Ok(Self::Kept(path.to_path_buf()));
        }
        let dir = tempfile::Builder::new()
            .prefix("harness-local-")
            .tempdir()?;
        if Identity::running_as_root() {
            // PostgreSQL runs as `postgres` and must reach its dir inside ours.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))?;
        }
        Ok(Self::Temporary(Some(dir)))
    }

    pub(super) fn path(&self) -> &Path {
        match self {
            Self::Temporary(Some(dir)) => dir.path(),
            Self::Temporary(None) => Path::new(""),
            Self::Kept(path) => path,
        }
    }

    /// Removes the dir if it is ours; a kept dir stays.
    pub(super) fn remove(&mut self) -> Result<(), InfraError> {
        let Self::Temporary(dir) = self else {
            return Ok(());
        };
        let Some(dir) = dir.take() else {
            return Ok(());
        };
        let path = dir.path().to_path_buf();
        dir.close().map_err(|error| InfraError::Failed {
            what: "local cluster work dir".into(),
            detail: format!("cannot remove {}: {error}", path.display()),
        })
    }
}

/// The log file of the part named `name`.
pub(super) fn log_file(work_dir: &Path, name: &str) -> PathBuf {
    work_dir.join(format!("{name}.log"))
}

/// The admin (or proxy) socket of the part named `name`.
pub(super) fn socket(work_dir: &Path, name: &str) -> PathBuf {
    work_dir.join(format!("{name}.sock"))
}

/// What the parts need while starting or restarting something.
pub(crate) struct Context<'a> {
    pub(super) spawner: &'a Spawner,
    pub(super) work_dir: &'a Path,
    pub(super) commands_dir: PathBuf,
    pub(super) timeout: Duration,
    pub(super) pids: PidBoard,
    pub(super) network: Option<&'a Network>,
}

impl<'a> Context<'a> {
    /// A context over the cluster's spawner and work dir; an error once the cluster is torn
    /// down (the spawner is gone).
    pub(super) fn new(
        spawner: &'a Option<Spawner>,
        work_dir: &'a WorkDir,
        timeout: Duration,
        pids: &PidBoard,
        network: &'a Result<Network, String>,
    ) -> Result<Self, InfraError> {
        let spawner = spawner.as_ref().ok_or_else(|| InfraError::Failed {
            what: "local cluster".into(),
            detail: "already torn down".into(),
        })?;
        Ok(Self {
            spawner,
            work_dir: work_dir.path(),
            commands_dir: work_dir.path().join(COMMANDS),
            timeout,
            pids: pids.clone(),
            network: network.as_ref().ok(),
        })
    }

    /// The cgroup a process joins so that it can be cut off (none where cuts are unavailable).
    pub(super) fn cgroup(&self, process: &str) -> Result<Option<PathBuf>, InfraError> {
        self.network.map(|n| n.cgroup(process)).transpose()
    }

    /// The data dir of the part named `name`.
    pub(super) fn data_dir(&self, name: &str) -> PathBuf {
        self.work_dir.join(name)
    }

    /// The config file (`name.extension`) of the part named `name`.
    pub(super) fn config_file(&self, name: &str, extension: &str) -> PathBuf {
        self.work_dir.join(format!("{name}.{extension}"))
    }

    pub(super) fn log_file(&self, name: &str) -> PathBuf {
        log_file(self.work_dir, name)
    }

    pub(super) fn socket(&self, name: &str) -> PathBuf {
        socket(self.work_dir, name)
    }

    pub(super) fn key_file(&self) -> PathBuf {
        self.work_dir.join(KEY_FILE)
    }

    pub(super) fn shared_packages_dir(&self) -> PathBuf {
        self.work_dir.join(SHARED_PACKAGES)
    }

    pub(super) fn git_dir(&self) -> PathBuf {
        self.work_dir.join(GIT)
    }
}
