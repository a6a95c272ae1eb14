//! PostgreSQL 15 from the Debian packages: a primary (`initdb` in the work dir) and a streaming
//! standby (`pg_basebackup` from it) that the primary waits for on every commit
//! (`synchronous_standby_names`), each `postgres` itself as a direct child (not `pg_ctl`, which
//! daemonizes) so it can be monitored and killed by pid. As root, they run as the `postgres`
//! user, which PostgreSQL insists on. `replication.rs` is the standby's side (base backups,
//! synchronous replication, promotion, rejoin), `reach.rs` a data dir the `postgres` user can
//! reach.

use std::path::{Path, PathBuf};
use std::time::Duration;

mod reach;
mod replication;

use super::layout::Context;
use super::process::{self, Identity, Launch};
use super::supervised::{self, Supervised};
use crate::infra::InfraError;
use reach::{chown, outside_dir, reachable_by};

/// Where Debian installs PostgreSQL 15.
pub const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
/// The database the nodes use.
pub const DATABASE: &str = "pkgnode";
/// The primary's process name (and log, and data dir).
pub const PRIMARY: &str = "postgresql";
/// The standby's.
pub const STANDBY: &str = "postgresql-standby";

/// A running PostgreSQL server on 127.0.0.1.
pub struct Postgres {
    /// [`PRIMARY`] or [`STANDBY`]: which process this is, whatever role it holds now.
    pub name: &'static str,
    pub port: u16,
    /// e.g. `15.14`.
    pub version: String,
    pub process: Supervised,
    bin: PathBuf,
    run_as: Option<Identity>,
    /// The server's dir and its data dir inside.
    dir: PathBuf,
    data: PathBuf,
    /// Set when the work dir is out of the `postgres` user's reach and the data lives here.
    outside_dir: Option<tempfile::TempDir>,
}

/// A server's dir before it runs: where its data goes and who it runs as.
struct Place {
    bin: PathBuf,
    run_as: Option<Identity>,
    dir: PathBuf,
    data: PathBuf,
    outside_dir: Option<tempfile::TempDir>,
}

impl Place {
    fn new(context: &Context, name: &str) -> Result<Self, InfraError> {
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
                (outside.path().join(name), Some(outside))
            }
            _ => (context.data_dir(name), None),
        };
        std::fs::create_dir_all(&dir)?;
        if let Some(identity) = run_as {
            chown(&dir, identity)?;
        }
        Ok(Self {
            data: dir.join("data"),
            bin,
            run_as,
            dir,
            outside_dir,
        })
    }

    /// Runs a setup command as the server's user; a root-specific hint on failure.
    fn run(&self, context: &Context, launch: Launch, step: &str) -> Result<String, InfraError> {
        let launch = launch.cwd(&self.dir).run_as(self.run_as);
        process::run(
            context.spawner,
            &launch,
            &context.commands_dir,
            step,
            context.timeout,
        )
        .map_err(|error| match (error, self.run_as) {
            (InfraError::Failed { what, detail }, Some(_)) => InfraError::Failed {
                what,
                detail: format!(
                    "{detail}\n(running as root: the postgres user must be able to reach {})",
                    self.dir.display()
                ),
            },
            (error, _) => error,
        })
    }

    /// The server on a free port of 127.0.0.1, in `name`'s cgroup; not started yet.
    fn server(
        self,
        context: &Context,
        name: &'static str,
        version: String,
    ) -> Result<Postgres, InfraError> {
        let port = crate::infra::probe::free_port()?;
        // A Unix socket path is limited to 107 bytes; beyond that, TCP only.
        let socket_dir = if self.dir.as_os_str().len() < 80 {
            self.dir.display().to_string()
        } else {
            String::new()
        };
        let server = Launch::new(name, self.bin.join("postgres"), context.log_file(name))
            .arg("-D")
            .arg(&self.data)
            .args(["-p", &port.to_string(), "-k", &socket_dir])
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=300",
                "-c",
                "fsync=off",
                "-c",
                "shared_buffers=128MB",
                // Replication: the standby streams, and a promoted standby can serve one in turn.
                "-c",
                "wal_level=replica",
                "-c",
                "max_wal_senders=10",
                "-c",
                "hot_standby=on",
                // A dead peer is noticed within 10 s (default 60 s).
                "-c",
                "wal_sender_timeout=10s",
                "-c",
                "wal_receiver_timeout=10s",
            ])
            .cwd(&self.dir)
            .run_as(self.run_as)
            .cgroup(context.cgroup(name)?);
        Ok(Postgres {
            name,
            port,
            version,
            process: Supervised::new(server, &context.pids),
            bin: self.bin,
            run_as: self.run_as,
            dir: self.dir,
            data: self.data,
            outside_dir: self.outside_dir,
        })
    }
}

impl Postgres {
    /// The primary: initdb, start, wait until it accepts connections, create the `pkgnode`
    /// database. Commits do not wait for a standby until [`Self::require_standby`].
    pub fn start(context: &Context) -> Result<Self, InfraError> {
        let place = Place::new(context, PRIMARY)?;
        let version = version(context, &place.bin)?;
        let initdb = Launch::new("postgresql initdb", place.bin.join("initdb"), "")
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
            .arg(&place.data);
        place.run(context, initdb, "postgresql-initdb")?;
        let mut postgres = place.server(context, PRIMARY, version)?;
        postgres.process.start(context.spawner)?;
        postgres.wait_ready(context)?;
        postgres.psql(
            context,
            "postgresql-createdb",
            &format!("CREATE DATABASE {DATABASE}"),
        )?;
        Ok(postgres)
    }

    /// Where this server's binaries are.
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// `psql -tA -c SQL` as the superuser on database `postgres`; what it printed.
    pub fn psql(&self, context: &Context, step: &str, sql: &str) -> Result<String, InfraError> {
        self.psql_on(context, "postgres", step, sql)
    }

    /// `psql -tA -c SQL` as the superuser on `database`; what it printed.
    pub fn psql_on(
        &self,
        context: &Context,
        database: &str,
        step: &str,
        sql: &str,
    ) -> Result<String, InfraError> {
        let launch = Launch::new(&format!("{} psql", self.name), self.bin.join("psql"), "")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg("-d")
            // A server that is cut off never answers: give up after a few seconds.
            .arg(format!("dbname={database} connect_timeout=5"))
            .args(["-v", "ON_ERROR_STOP=1", "-tA"])
            .args(["-c", sql]);
        process::run(
            context.spawner,
            &launch,
            &context.commands_dir,
            step,
            context.timeout,
        )
    }

    /// Waits until the server accepts connections (`pg_isready`).
    pub fn wait_ready(&mut self, context: &Context) -> Result<(), InfraError> {
        let check = Launch::new("pg_isready", self.bin.join("pg_isready"), "")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-t", "1"])
            .run_as(self.run_as);
        let (spawner, commands) = (context.spawner, &context.commands_dir);
        supervised::wait_ready(self.name, context.timeout, Some(&mut self.process), || {
            process::run(
                spawner,
                &check,
                commands,
                &format!("{}-isready", self.name),
                Duration::from_secs(5),
            )
            .map(|_| true)
            .map_err(|e| e.to_string())
        })
    }

    /// Removes the data dir when it lives outside the work dir (only once the server is down).
    pub fn remove_outside_dir(&mut self) -> Result<(), InfraError> {
        match self.outside_dir.take() {
            Some(dir) => {
                let path = dir.path().to_path_buf();
                dir.close().map_err(|e| InfraError::Failed {
                    what: self.name.into(),
                    detail: format!("cannot remove {}: {e}", path.display()),
                })
            }
            None => Ok(()),
        }
    }
}

/// Whether the server on `port` accepts a connection within a second (`pg_isready -t 1`):
/// a killed, paused or cut-off server does not.
pub fn answers(context: &Context, bin: &Path, port: u16) -> bool {
    let check = Launch::new("pg_isready", bin.join("pg_isready"), "").args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-t",
        "1",
    ]);
    process::run(
        context.spawner,
        &check,
        &context.commands_dir,
        "postgresql-probe",
        Duration::from_secs(3),
    )
    .is_ok()
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
