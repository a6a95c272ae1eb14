//! PostgreSQL 15 from the Debian packages: a primary (`initdb` in the work dir) and a streaming
//! standby (`pg_basebackup` from it) that the primary waits for on every commit
//! (`synchronous_standby_names`), each `postgres` itself as a direct child (not `pg_ctl`, which
//! daemonizes) so it can be monitored and killed by pid. As root, they run as the `postgres`
//! user, which PostgreSQL insists on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::layout::Context;
use super::process::{self, Identity, Launch};
use super::supervised::{self, Supervised};
use crate::infra::InfraError;
use crate::infra::bootstrap::STANDBY_NAME;

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

    /// `pg_basebackup` of `primary` into this place's data dir, written to stream from it as
    /// the synchronous standby's name.
    fn base_backup(
        &self,
        context: &Context,
        primary: &Postgres,
        step: &str,
    ) -> Result<(), InfraError> {
        let basebackup = Launch::new("pg_basebackup", self.bin.join("pg_basebackup"), "")
            .args(["-h", "127.0.0.1", "-p", &primary.port.to_string()])
            .args(["-U", "postgres", "-X", "stream", "-c", "fast", "-R", "-D"])
            .arg(&self.data);
        self.run(context, basebackup, step)?;
        // -R wrote standby.signal and a primary_conninfo; the later line wins, naming this
        // standby for synchronous replication.
        let auto_conf = self.data.join("postgresql.auto.conf");
        let mut text = std::fs::read_to_string(&auto_conf)?;
        text.push_str(&format!(
            "primary_conninfo = 'host=127.0.0.1 port={} user=postgres \
             application_name={STANDBY_NAME}'\n",
            primary.port
        ));
        std::fs::write(&auto_conf, text)?;
        Ok(())
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

    /// A standby of `primary`: `pg_basebackup` over the replication protocol, then a server
    /// streaming from it under the name the primary's `synchronous_standby_names` will list.
    pub fn start_standby(context: &Context, primary: &Postgres) -> Result<Self, InfraError> {
        let place = Place::new(context, STANDBY)?;
        place.base_backup(context, primary, "postgresql-standby-basebackup")?;
        let mut standby = place.server(context, STANDBY, primary.version.clone())?;
        standby.process.start(context.spawner)?;
        standby.wait_ready(context)?;
        Ok(standby)
    }

    /// From now on every commit on this primary waits until the standby has flushed it; returns
    /// once the standby streams as the synchronous one.
    pub fn require_standby(&self, context: &Context) -> Result<(), InfraError> {
        self.psql(
            context,
            "postgresql-synchronous-standby",
            // (synchronous_commit is `on` by default: wait for the standby's flush.)
            &format!("ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'"),
        )?;
        self.psql(context, "postgresql-reload", "SELECT pg_reload_conf()")?;
        let query = format!(
            "SELECT sync_state FROM pg_stat_replication WHERE application_name = \
             '{STANDBY_NAME}'"
        );
        supervised::wait_ready("synchronous replication", context.timeout, None, || {
            let state = self
                .psql(context, "postgresql-replication-state", &query)
                .map_err(|e| e.to_string())?;
            Ok(state.trim() == "sync")
        })
    }

    /// Replaces this server's data with a base backup of `primary` and starts it as the
    /// standby (a former primary rejoining after a failover). It must not be running.
    pub fn rejoin_as_standby(
        &mut self,
        context: &Context,
        primary: &Postgres,
    ) -> Result<(), InfraError> {
        // A killed server may still be running if it was only paused or stopped by a drill.
        self.process.kill()?;
        if self.data.exists() {
            std::fs::remove_dir_all(&self.data)?;
        }
        let place = Place {
            bin: self.bin.clone(),
            run_as: self.run_as,
            dir: self.dir.clone(),
            data: self.data.clone(),
            outside_dir: None,
        };
        place.base_backup(
            context,
            primary,
            &format!("{}-rejoin-basebackup", self.name),
        )?;
        self.process.start(context.spawner)?;
        self.wait_ready(context)
    }

    /// From now on commits on this primary wait for no standby.
    pub fn require_no_standby(&self, context: &Context) -> Result<(), InfraError> {
        self.psql(
            context,
            "postgresql-asynchronous",
            "ALTER SYSTEM RESET synchronous_standby_names",
        )?;
        self.psql(context, "postgresql-reload", "SELECT pg_reload_conf()")?;
        Ok(())
    }

    /// Where this server's binaries are.
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// Ends recovery on a standby: it becomes a primary that waits for no one.
    pub fn promote(&self, context: &Context) -> Result<(), InfraError> {
        let answer = self.psql(context, "postgresql-promote", "SELECT pg_promote(true, 60)")?;
        if answer.trim() == "t" {
            Ok(())
        } else {
            Err(InfraError::Failed {
                what: format!("promoting {}", self.name),
                detail: format!("pg_promote answered {answer:?}"),
            })
        }
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
        if meta.uid() == identity.uid.as_raw() {
            mode & 0o100 != 0
        } else if meta.gid() == identity.gid.as_raw() {
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
    std::os::unix::fs::chown(
        path,
        Some(identity.uid.as_raw()),
        Some(identity.gid.as_raw()),
    )
    .map_err(|e| InfraError::Failed {
        what: "postgresql".into(),
        detail: format!("cannot give {} to the postgres user: {e}", path.display()),
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
