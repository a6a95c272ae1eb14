//! Replication on the local provider: a standby from a base backup of the primary, streaming
//! under the name the primary's `synchronous_standby_names` lists; requiring it or no standby;
//! promotion; a former primary rejoining as the standby.

use super::super::layout::Context;
use super::super::process::Launch;
use super::super::supervised;
use super::{Place, Postgres, STANDBY};
use crate::infra::InfraError;
use crate::infra::bootstrap::STANDBY_NAME;

impl Place {
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
}

impl Postgres {
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
}
