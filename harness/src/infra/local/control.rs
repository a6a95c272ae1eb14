//! What a drill does to a running member ([`crate::infra::Infra::control`]): the signals (kill,
//! stop, pause) and restarts of every single-process member, network cuts, the standby's
//! promotion and rejoin; and the database's health probe.

use std::sync::Mutex;

use nix::sys::signal::Signal;

use super::postgres::{self, Postgres};
use super::process::STOP_GRACE;
use super::supervised::Supervised;
use super::{LocalCluster, PROVIDER, lock, no_such_member, poisoned};
use crate::infra::{Control, InfraError, Member};

impl LocalCluster {
    /// Blocking: Stop waits up to 5 s, Start waits until the member is ready again.
    pub(super) fn control_member(
        &self,
        member: &Member,
        action: Control,
    ) -> Result<(), InfraError> {
        if self.torn_down {
            return Err(InfraError::Failed {
                what: "local cluster".into(),
                detail: "already torn down".into(),
            });
        }
        match (member, action) {
            (_, Control::Disconnect | Control::Reconnect | Control::DisconnectFromDatabase) => {
                self.cut(member, action)
            }
            (Member::DatabaseStandby, Control::Promote) => self.promote(),
            (Member::DatabaseStandby, Control::Rejoin) => self.rejoin(),
            (_, Control::Promote | Control::Rejoin) => Err(unsupported(member, action)),
            (Member::Node(index), _) => self.control_node(*index, action),
            (Member::DatabasePrimary, _) => {
                self.control_database(&self.parts.postgres, member, action)
            }
            (Member::DatabaseStandby, _) => {
                self.control_database(&self.parts.standby, member, action)
            }
            (Member::ObjectStore, _) => {
                let context = self.context()?;
                let mut garage = lock(&self.parts.garage);
                let garage = garage.as_mut().ok_or_else(poisoned)?;
                match action {
                    Control::Start => {
                        garage.process.start(context.spawner)?;
                        garage.wait_ready(&context)
                    }
                    _ => signal_action(&mut garage.process, member, action, Signal::SIGTERM),
                }
            }
            (Member::LoadBalancer, _) => {
                let context = self.context()?;
                let mut haproxy = lock(&self.parts.haproxy);
                let haproxy = haproxy.as_mut().ok_or_else(poisoned)?;
                match action {
                    Control::Start => {
                        haproxy.process.start(context.spawner)?;
                        haproxy.wait_started(self.ready_timeout)
                    }
                    _ => signal_action(&mut haproxy.process, member, action, Signal::SIGTERM),
                }
            }
        }
    }

    /// Whether a database member answers ([`crate::infra::Infra::probe`]).
    pub(super) fn database_answers(&self, member: &Member) -> Result<bool, InfraError> {
        let context = self.context()?;
        let slot = match member {
            Member::DatabasePrimary => &self.parts.postgres,
            Member::DatabaseStandby => &self.parts.standby,
            _ => return Err(unsupported(member, Control::Start)),
        };
        // Only the port is needed: a paused server must not block the controls behind the lock.
        let (port, bin) = {
            let postgres = lock(slot);
            let postgres = postgres.as_ref().ok_or_else(poisoned)?;
            (postgres.port, postgres.bin_dir().to_path_buf())
        };
        Ok(postgres::answers(&context, &bin, port))
    }

    fn control_node(&self, index: usize, action: Control) -> Result<(), InfraError> {
        let member = Member::Node(index);
        let node = self
            .parts
            .nodes
            .get(index)
            .ok_or_else(|| no_such_member(&member, self.parts.nodes.len()))?;
        let mut node = lock(node);
        let context = self.context()?;
        match action {
            Control::Start => {
                node.process.start(context.spawner)?;
                node.wait_ready(context.timeout)
            }
            _ => signal_action(&mut node.process, &member, action, Signal::SIGTERM),
        }
    }

    fn control_database(
        &self,
        slot: &Mutex<Option<Postgres>>,
        member: &Member,
        action: Control,
    ) -> Result<(), InfraError> {
        let context = self.context()?;
        let mut postgres = lock(slot);
        let postgres = postgres.as_mut().ok_or_else(poisoned)?;
        match action {
            Control::Start => {
                postgres.process.start(context.spawner)?;
                postgres.wait_ready(&context)
            }
            // SIGINT: PostgreSQL's fast shutdown.
            _ => signal_action(&mut postgres.process, member, action, Signal::SIGINT),
        }
    }

    /// Cuts a member off the network or lets it back on (see [`super::network`]).
    fn cut(&self, member: &Member, action: Control) -> Result<(), InfraError> {
        let network = self
            .network
            .as_ref()
            .map_err(|reason| InfraError::Unavailable {
                provider: PROVIDER.into(),
                action,
                member: member.clone(),
                reason: reason.clone(),
            })?;
        let process = self
            .process_name(member)
            .ok_or_else(|| no_such_member(member, self.parts.nodes.len()))?;
        match action {
            Control::Disconnect => network.cut(&process),
            Control::DisconnectFromDatabase => {
                let port = lock(&self.parts.db_endpoint)
                    .as_ref()
                    .ok_or_else(poisoned)?
                    .address
                    .port();
                network.cut_to_port(&process, port)
            }
            _ => network.reconnect(&process),
        }
    }

    /// Promotes the standby, repoints the database endpoint to it, and swaps the roles.
    fn promote(&self) -> Result<(), InfraError> {
        let context = self.context()?;
        let mut primary = lock(&self.parts.postgres);
        let mut standby = lock(&self.parts.standby);
        let candidate = standby.as_ref().ok_or_else(poisoned)?;
        candidate.promote(&context)?;
        lock(&self.parts.db_endpoint)
            .as_ref()
            .ok_or_else(poisoned)?
            .repoint(candidate.name)?;
        tracing::info!(
            primary = candidate.name,
            "standby promoted; database endpoint repointed"
        );
        std::mem::swap(&mut *primary, &mut *standby);
        // The promoted server may carry `synchronous_standby_names` from an earlier rejoin:
        // until a standby rejoins it, it waits for no one (as a managed database does).
        primary
            .as_ref()
            .ok_or_else(poisoned)?
            .require_no_standby(&context)?;
        Ok(())
    }

    /// The server in the standby role becomes a fresh synchronous standby of the primary.
    fn rejoin(&self) -> Result<(), InfraError> {
        let context = self.context()?;
        let primary = lock(&self.parts.postgres);
        let mut standby = lock(&self.parts.standby);
        let primary = primary.as_ref().ok_or_else(poisoned)?;
        let standby = standby.as_mut().ok_or_else(poisoned)?;
        standby.rejoin_as_standby(&context, primary)?;
        if self.synchronous {
            primary.require_standby(&context)?;
        }
        tracing::info!(
            standby = standby.name,
            "former primary rejoined as the standby"
        );
        Ok(())
    }
}

fn unsupported(member: &Member, action: Control) -> InfraError {
    InfraError::Unsupported {
        provider: PROVIDER.into(),
        action,
        member: member.clone(),
    }
}

/// Kill, Stop, Pause and Unpause, the same for every single-process member; the other actions
/// are not signals, and `member` does not support them.
fn signal_action(
    process: &mut Supervised,
    member: &Member,
    action: Control,
    stop_signal: Signal,
) -> Result<(), InfraError> {
    match action {
        Control::Kill => process.kill(),
        Control::Stop => process.stop(stop_signal, STOP_GRACE),
        // The whole tree, so PostgreSQL's backends and WAL receiver freeze with the postmaster.
        Control::Pause => process.pause(),
        Control::Unpause => process.unpause(),
        Control::Start
        | Control::Disconnect
        | Control::Reconnect
        | Control::DisconnectFromDatabase
        | Control::Promote
        | Control::Rejoin => Err(unsupported(member, action)),
    }
}
