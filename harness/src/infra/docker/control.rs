//! The docker cluster's members by role and what the harness does to them: kill, stop, start
//! (waiting until the member serves again), pause, network cuts, the database probe, and the
//! promotion (the `db` alias moved to the promoted standby) and rejoin of the database.

use std::time::Duration;

use super::containers::Started;
use super::{DockerCluster, PROVIDER, STOP_GRACE, engine, lock, parts};
use crate::infra::{Control, InfraError, Member};

impl DockerCluster {
    pub(super) fn started(&self, member: &Member) -> Result<&Started, InfraError> {
        let found = match member {
            Member::Node(index) => self.nodes.get(*index),
            Member::DatabasePrimary => self.databases[self.primary_slot()].as_ref(),
            Member::DatabaseStandby => self.databases[1 - self.primary_slot()].as_ref(),
            Member::LoadBalancer => self.haproxy.as_ref(),
            Member::ObjectStore => self.garage.as_ref(),
        };
        found.ok_or_else(|| InfraError::Failed {
            what: format!("{member:?}"),
            detail: if self.torn_down {
                "the docker cluster is torn down".into()
            } else {
                format!(
                    "no such member (the cluster has {} nodes)",
                    self.nodes.len()
                )
            },
        })
    }

    /// Waits until a restarted member serves again.
    pub(super) fn wait_ready(&self, member: &Member, started: &Started) -> Result<(), InfraError> {
        let timeout = self.ready_timeout;
        match member {
            Member::Node(_) => parts::wait_node(started, timeout).map(|_| ()),
            Member::DatabasePrimary | Member::DatabaseStandby => {
                parts::wait_postgres(&started.name, timeout)
            }
            Member::LoadBalancer => {
                engine::wait_until("haproxy", Some(&started.name), timeout, || {
                    parts::balancer_states(started).map(|s| s.len() == self.nodes.len())
                })
            }
            Member::ObjectStore => {
                let address = std::net::SocketAddr::from(([127, 0, 0, 1], started.host_port(3900)));
                engine::wait_until("garage", Some(&started.name), timeout, || {
                    crate::infra::probe::get(address, "/", Duration::from_secs(2)).map(|_| true)
                })
            }
        }
    }

    fn primary_slot(&self) -> usize {
        self.primary_slot.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn promote(&self) -> Result<(), InfraError> {
        let standby = self.started(&Member::DatabaseStandby)?;
        // A former primary is not in recovery: `pg_ctl promote` refuses it.
        engine::exec(
            &standby.name,
            None,
            &["pg_ctl", "promote", "-w", "-D", parts::PGDATA],
        )?;
        let network = &self.names.network;
        let mut holder = lock(&self.db_holder);
        if *holder != standby.name {
            // Whatever state the old primary is in, it must not answer to `db` any more.
            engine::disconnect(network, &holder)?;
            engine::disconnect(network, &standby.name)?;
            engine::connect(network, &standby.name, Some(parts::DB_ALIAS))?;
            *holder = standby.name.clone();
        }
        self.primary_slot
            .store(1 - self.primary_slot(), std::sync::atomic::Ordering::SeqCst);
        // A server that once rejoined carries `synchronous_standby_names`: until a standby
        // rejoins it, the promoted primary waits for no one (as a managed database does).
        parts::psql(
            &standby.name,
            "ALTER SYSTEM SET synchronous_standby_names = ''",
        )?;
        parts::psql(&standby.name, "SELECT pg_reload_conf()")?;
        Ok(())
    }

    /// The former primary (now in the standby role) becomes a fresh synchronous standby of
    /// the primary: stopped, a rejoin marker copied in, started on the network again (the
    /// entrypoint empties PGDATA and takes a base backup), then required by the primary.
    fn rejoin(&self) -> Result<(), InfraError> {
        let primary = self.started(&Member::DatabasePrimary)?;
        let former = self.started(&Member::DatabaseStandby)?;
        // Killed already, or still running as a stale primary: either way, down.
        let _ = engine::docker(&["kill", "-s", "KILL", &former.name]);
        let marker = tempfile::NamedTempFile::new()?;
        std::fs::write(
            marker.path(),
            format!(
                "{} {}\n",
                primary.name,
                crate::infra::bootstrap::STANDBY_NAME
            ),
        )?;
        // The entrypoint runs as postgres: the copied file (owned by root) must be readable.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(marker.path(), std::fs::Permissions::from_mode(0o644))?;
        }
        let marker_path = marker.path().display().to_string();
        engine::docker(&[
            "cp",
            &marker_path,
            &format!("{}:/var/lib/postgresql/rejoin", former.name),
        ])?;
        engine::disconnect(&self.names.network, &former.name)?;
        engine::connect(&self.names.network, &former.name, None)?;
        former.start()?;
        parts::wait_postgres(&former.name, self.ready_timeout)?;
        parts::require_standby(&primary.name, &former.name, self.ready_timeout)
    }

    /// Blocking: Stop waits up to 5 s, Start waits until the member serves again.
    pub(super) fn apply(&self, member: &Member, action: Control) -> Result<(), InfraError> {
        let started = self.started(member)?;
        let name = started.name.as_str();
        let network = self.names.network.as_str();
        match action {
            Control::Kill => engine::docker(&["kill", "-s", "KILL", name]).map(|_| ()),
            Control::Stop => started.stop(STOP_GRACE),
            Control::Start => {
                started.start()?;
                self.wait_ready(member, started)
            }
            Control::Pause => engine::docker(&["pause", name]).map(|_| ()),
            Control::Unpause => engine::docker(&["unpause", name]).map(|_| ()),
            Control::Disconnect => engine::disconnect(network, name),
            Control::Reconnect => {
                if let Member::Node(_) = member {
                    engine::database_cut(name, false)?;
                }
                let alias = (*lock(&self.db_holder) == name).then_some(parts::DB_ALIAS);
                match engine::connect(network, name, alias) {
                    // Only its database traffic was cut (or nothing): it is on the network.
                    Err(InfraError::Failed { detail, .. }) if detail.contains("already exists") => {
                        Ok(())
                    }
                    other => other,
                }
            }
            Control::DisconnectFromDatabase if matches!(member, Member::Node(_)) => {
                engine::database_cut(name, true)
            }
            Control::Promote if *member == Member::DatabaseStandby => self.promote(),
            Control::Rejoin if *member == Member::DatabaseStandby => self.rejoin(),
            Control::Promote | Control::Rejoin | Control::DisconnectFromDatabase => {
                Err(InfraError::Unsupported {
                    provider: PROVIDER.into(),
                    action,
                    member: member.clone(),
                })
            }
        }
    }

    /// A database member answers when `psql SELECT 1` runs inside its container (a killed or
    /// paused container refuses `docker exec`).
    pub(super) fn probe_database(&self, member: &Member) -> Result<bool, InfraError> {
        match member {
            Member::DatabasePrimary | Member::DatabaseStandby => {
                Ok(parts::psql(&self.started(member)?.name, "SELECT 1").is_ok())
            }
            _ => Err(InfraError::Unsupported {
                provider: PROVIDER.into(),
                action: Control::Start,
                member: member.clone(),
            }),
        }
    }
}
