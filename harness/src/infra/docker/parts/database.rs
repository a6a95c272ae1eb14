//! The docker cluster's databases: the PostgreSQL primary (with the `db` alias) and its
//! synchronous streaming standby, waited for with `pg_isready` and queried with `psql` inside
//! their containers.

use std::time::Duration;

use super::super::containers::{self, Started};
use super::super::engine;
use super::{DB_ALIAS, Names};
use crate::infra::{InfraError, bootstrap};

/// Arguments of both database servers. Replication notices a dead peer within 10 s (default
/// 60 s): a standby cut off and reconnected, maybe under a new address, streams again soon.
const SERVER_ARGS: &[&str] = &[
    "-c",
    "max_connections=200",
    "-c",
    "wal_sender_timeout=10s",
    "-c",
    "wal_receiver_timeout=10s",
];

/// Waits until `pg_isready` answers inside the container.
pub fn wait_postgres(name: &str, timeout: Duration) -> Result<(), InfraError> {
    engine::wait_until(name, Some(name), timeout, || {
        engine::exec(
            name,
            None,
            &["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"],
        )
        .map(|_| true)
        .map_err(|e| e.to_string())
    })
}

/// `psql -tA -c SQL` inside a database container, on database `pkgnode`.
pub fn psql(name: &str, sql: &str) -> Result<String, InfraError> {
    engine::exec(
        name,
        None,
        &[
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            bootstrap::DATABASE,
            "-tAc",
            sql,
        ],
    )
    .map(|out| out.trim().to_string())
}

/// The primary (synchronous standby `standby1`, database `pkgnode`), then the `db` alias on it,
/// then the standby streaming from it; returns (primary, standby, PostgreSQL version).
pub fn start_postgres(
    names: &Names,
    timeout: Duration,
) -> Result<(Started, Started, String), InfraError> {
    let spec = names
        .spec("pg-primary", "postgres")
        .env("SYNC_STANDBY_NAMES", bootstrap::STANDBY_NAME)
        .env("POSTGRES_DB", bootstrap::DATABASE)
        .publish(5432)?
        // A standby needs at least the primary's max_connections.
        .cmd(SERVER_ARGS);
    let primary = containers::start(spec)?;
    wait_postgres(&primary.name, timeout)?;
    // Give the primary the alias the nodes use: testcontainers attaches a container to one
    // network without aliases, so detach and attach it again with the alias (CLI).
    engine::disconnect(&names.network, &primary.name)?;
    engine::connect(&names.network, &primary.name, Some(DB_ALIAS))?;
    let version = engine::exec(&primary.name, None, &["postgres", "--version"])?;
    // `postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)` → `15.14`.
    let version = version
        .split_whitespace()
        .nth(2)
        .unwrap_or(version.trim())
        .to_string();

    let standby = containers::start(
        names
            .spec("pg-standby", "postgres")
            .env("PRIMARY_HOST", &primary.name)
            .env("STANDBY_NAME", bootstrap::STANDBY_NAME)
            .publish(5432)?
            .cmd(SERVER_ARGS),
    )?;
    wait_postgres(&standby.name, timeout)?;
    // Commits on the primary wait for the standby from now on (set at initdb).
    wait_sync(&primary.name, &standby.name, timeout)?;
    Ok((primary, standby, version))
}

/// Makes `primary` wait for the standby named [`bootstrap::STANDBY_NAME`] on every commit and
/// returns once `standby` streams as the synchronous one.
pub fn require_standby(primary: &str, standby: &str, timeout: Duration) -> Result<(), InfraError> {
    psql(
        primary,
        &format!(
            "ALTER SYSTEM SET synchronous_standby_names = '{}'",
            bootstrap::STANDBY_NAME
        ),
    )?;
    psql(primary, "SELECT pg_reload_conf()")?;
    wait_sync(primary, standby, timeout)
}

fn wait_sync(primary: &str, standby: &str, timeout: Duration) -> Result<(), InfraError> {
    engine::wait_until("synchronous replication", Some(standby), timeout, || {
        let state = psql(
            primary,
            &format!(
                "SELECT sync_state FROM pg_stat_replication WHERE application_name = '{}'",
                bootstrap::STANDBY_NAME
            ),
        )
        .map_err(|e| e.to_string())?;
        Ok(state == "sync")
    })
}
