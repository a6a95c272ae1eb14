//! PostgreSQL 15 from the Debian packages: `initdb` in the work dir, then `postgres` itself as a
//! direct child (not `pg_ctl`, which daemonizes) so it can be monitored and killed by pid. As
//! root, both run as the `postgres` user, which PostgreSQL insists on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Context;
use super::process::{self, Identity, Launch, Supervised};
use crate::infra::InfraError;

/// Where Debian installs PostgreSQL 15.
pub const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
/// The database the nodes use.
pub const DATABASE: &str = "pkgnode";

/// A running PostgreSQL server on 127.0.0.1.
pub struct Postgres {
    pub port: u16,
    /// e.g. `15.14`.
    pub version: String,
    pub process: Supervised,
    bin: PathBuf,
    run_as: Option<Identity>,
    /// Set when the work dir is out of the `postgres` user's reach and the data lives here.
    outside_dir: Option<tempfile::TempDir>,
}

impl Postgres {
    /// initdb, start, wait until it accepts connections, create the `pkgnode` database.
    pub fn start(context: &Context) -> Result<Self, InfraError> {
        let bin = PathBuf::from(BIN_DIR);
        if !bin.join("postgres").exists() {
            return Err(InfraError::Missing {
                what: "PostgreSQL 15".into(),
                detail: format!(
                    "{BIN_DIR}/postgres not found: install the Debian package postgresql-15"
                ),
            });
        }
        let run_as = if Identity::running_as_root() {
            Some(Identity::lookup("postgres")?)
        } else {
            None
        };
        let (dir, outside_dir) = match run_as {
            Some(identity) if !reachable_by(context.work_dir, identity) => {
                let outside = outside_dir(identity)?;
                (outside.path().join("postgresql"), Some(outside))
            }
            _ => (context.work_dir.join("postgresql"), None),
        };
        std::fs::create_dir_all(&dir)?;
        if let Some(identity) = run_as {
            chown(&dir, identity)?;
        }
        let data = dir.join("data");
        let version = version(context, &bin)?;
        let initdb = Launch::new("postgresql initdb", bin.join("initdb"), "")
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
            .cwd(&dir)
            .run_as(run_as);
        process::run(
            context.spawner,
            &initdb,
            &context.commands_dir,
            "postgresql-initdb",
            context.timeout,
        )
        .map_err(|error| match (error, run_as) {
            (InfraError::Failed { what, detail }, Some(_)) => InfraError::Failed {
                what,
                detail: format!(
                    "{detail}\n(running as root: the postgres user must be able to reach {})",
                    dir.display()
                ),
            },
            (error, _) => error,
        })?;

        let port = crate::infra::probe::free_port()?;
        // A Unix socket path is limited to 107 bytes; beyond that, TCP only.
        let socket_dir = if dir.as_os_str().len() < 80 {
            dir.display().to_string()
        } else {
            String::new()
        };
        let server = Launch::new(
            "postgresql",
            bin.join("postgres"),
            context.work_dir.join("postgresql.log"),
        )
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-k", &socket_dir])
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=300",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "shared_buffers=128MB",
        ])
        .cwd(&dir)
        .run_as(run_as);
        let mut postgres = Self {
            port,
            version,
            process: Supervised::new(server, &context.pids),
            bin,
            run_as,
            outside_dir,
        };
        postgres.process.start(context.spawner)?;
        postgres.wait_ready(context)?;
        let create = Launch::new("postgresql createdb", postgres.bin.join("psql"), "")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
            .args(["-v", "ON_ERROR_STOP=1", "-c"])
            .arg(format!("CREATE DATABASE {DATABASE}"));
        process::run(
            context.spawner,
            &create,
            &context.commands_dir,
            "postgresql-createdb",
            context.timeout,
        )?;
        Ok(postgres)
    }

    /// Waits until the server accepts connections (`pg_isready`).
    pub fn wait_ready(&mut self, context: &Context) -> Result<(), InfraError> {
        let check = Launch::new("pg_isready", self.bin.join("pg_isready"), "")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-t", "1"])
            .run_as(self.run_as);
        let (spawner, commands) = (context.spawner, &context.commands_dir);
        process::wait_ready(
            "postgresql",
            context.timeout,
            Some(&mut self.process),
            || {
                process::run(
                    spawner,
                    &check,
                    commands,
                    "postgresql-isready",
                    Duration::from_secs(5),
                )
                .map(|_| true)
                .map_err(|e| e.to_string())
            },
        )
    }

    /// Removes the data dir when it lives outside the work dir (only once the server is down).
    pub fn remove_outside_dir(&mut self) -> Result<(), InfraError> {
        match self.outside_dir.take() {
            Some(dir) => {
                let path = dir.path().to_path_buf();
                dir.close().map_err(|e| InfraError::Failed {
                    what: "postgresql".into(),
                    detail: format!("cannot remove {}: {e}", path.display()),
                })
            }
            None => Ok(()),
        }
    }

    /// The URL the nodes connect with.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{DATABASE}", self.port)
    }
}

/// `postgres --version` → `15.14` (the whole line when it has an unexpected shape).
fn version(context: &Context, bin: &Path) -> Result<String, InfraError> {
    let launch = Launch::new("postgres --version", bin.join("postgres"), "").arg("--version");
    let output = process::run(
        context.spawner,
        &launch,
        &context.commands_dir,
        "postgresql-version",
        context.timeout,
    )?;
    Ok(parse_version(&output))
}

fn parse_version(line: &str) -> String {
    let line = line.trim();
    line.split_once("(PostgreSQL)")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or(line)
        .to_string()
}

/// Whether `identity` may traverse every directory down to `path` (root ignores permissions, so
/// `access(2)` cannot tell).
fn reachable_by(path: &Path, identity: Identity) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(path) = path.canonicalize() else {
        return false;
    };
    path.ancestors().all(|dir| {
        let Ok(meta) = std::fs::metadata(dir) else {
            return false;
        };
        let mode = meta.mode();
        if meta.uid() == identity.uid {
            mode & 0o100 != 0
        } else if meta.gid() == identity.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        }
    })
}

/// A temp dir the `postgres` user can reach, for when the work dir is private (e.g. under a
/// mode-0700 `$TMPDIR`).
fn outside_dir(identity: Identity) -> Result<tempfile::TempDir, InfraError> {
    use std::os::unix::fs::PermissionsExt;
    let candidates = [
        std::env::temp_dir(),
        PathBuf::from("/tmp"),
        PathBuf::from("/var/tmp"),
    ];
    let base = candidates
        .iter()
        .find(|dir| reachable_by(dir, identity))
        .ok_or_else(|| InfraError::Failed {
            what: "postgresql".into(),
            detail: "no directory the postgres user can reach: neither the work dir, $TMPDIR, \
                     /tmp nor /var/tmp"
                .into(),
        })?;
    let dir = tempfile::Builder::new()
        .prefix("harness-pg-")
        .tempdir_in(base)?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))?;
    Ok(dir)
}

fn chown(path: &Path, identity: Identity) -> Result<(), InfraError> {
    std::os::unix::fs::chown(path, Some(identity.uid), Some(identity.gid)).map_err(|e| {
        InfraError::Failed {
            what: "postgresql".into(),
            detail: format!("cannot give {} to the postgres user: {e}", path.display()),
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_is_the_number_after_the_product_name() {
        assert_eq!(
            super::parse_version("postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)\n"),
            "15.14"
        );
        assert_eq!(super::parse_version("odd"), "odd");
    }
}
