//! The faults a drill can inject, and how each is healed.

use std::time::{Duration, Instant};

use reports::record::EventKind;
use serde::Serialize;

use super::{FailoverPolicy, Session};
use crate::infra::{Control, InfraError, Member};

/// One fault. Nodes are 0-based here and 1-based in names shown to people (`node-1`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "fault", rename_all = "kebab-case")]
pub enum Fault {
    /// SIGKILL a node; heal: start it again.
    KillNode { node: usize },
    /// Stop a node politely (it drains: in-flight requests finish); heal: start it.
    StopNode { node: usize },
    /// SIGSTOP a node's process tree; heal: SIGCONT.
    PauseNode { node: usize },
    /// Cut a node off the network (nothing it sends arrives); heal: reconnect it.
    PartitionNode { node: usize },
    /// Cut a node off the database only: it still answers clients; heal: reconnect it.
    PartitionNodeDb { node: usize },
    /// SIGKILL the primary database; the failover controller promotes the standby; heal: the
    /// former primary rejoins as the new standby. With `hold_standby`, the standby is stopped
    /// that long first while writes go on (the negative control: with asynchronous replication
    /// the promoted standby misses acknowledged commits).
    KillPrimaryDb {
        #[serde(skip_serializing_if = "Option::is_none")]
        hold_standby_s: Option<u64>,
    },
    /// SIGKILL the synchronous standby (commits on the primary wait); heal: start it again.
    KillStandby,
}

impl Fault {
    /// The drill name of this fault, e.g. `kill-node`.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::KillNode { .. } => "kill-node",
            Fault::StopNode { .. } => "stop-node",
            Fault::PauseNode { .. } => "pause-node",
            Fault::PartitionNode { .. } => "partition-node",
            Fault::PartitionNodeDb { .. } => "partition-node-db",
            Fault::KillPrimaryDb { .. } => "kill-primary-db",
            Fault::KillStandby => "kill-standby",
        }
    }

    /// The node it targets, if any.
    pub fn node(&self) -> Option<usize> {
        match self {
            Fault::KillNode { node }
            | Fault::StopNode { node }
            | Fault::PauseNode { node }
            | Fault::PartitionNode { node }
            | Fault::PartitionNodeDb { node } => Some(*node),
            Fault::KillPrimaryDb { .. } | Fault::KillStandby => None,
        }
    }

    /// One line for the timeline.
    pub fn describe(&self) -> String {
        match self {
            Fault::KillNode { node } => format!("node-{} killed (SIGKILL), then started again", node + 1),
            Fault::StopNode { node } => format!("node-{} stopped (drained), then started again", node + 1),
            Fault::PauseNode { node } => format!("node-{} paused (SIGSTOP), then resumed", node + 1),
            Fault::PartitionNode { node } => format!("node-{} cut off the network, then reconnected", node + 1),
            Fault::PartitionNodeDb { node } => format!("node-{} cut off the database (still answering clients), then reconnected", node + 1),
            Fault::KillPrimaryDb { hold_standby_s: None } => {
                "primary database killed (SIGKILL); standby promoted; former primary rejoined as standby".into()
            }
            Fault::KillPrimaryDb { hold_standby_s: Some(s) } => format!(
                "standby stopped {s} s, then the primary killed (SIGKILL); standby promoted; former primary rejoined"
            ),
            Fault::KillStandby => "synchronous standby killed (SIGKILL), then started again".into(),
        }
    }

    pub(super) async fn inject(
        &self,
        session: &mut Session<'_>,
        failover: FailoverPolicy,
        heal_at: Instant,
    ) -> Result<(), InfraError> {
        match self {
            Fault::KillNode { node } => session.control(&Member::Node(*node), Control::Kill),
            Fault::StopNode { node } => session.control(&Member::Node(*node), Control::Stop),
            Fault::PauseNode { node } => session.control(&Member::Node(*node), Control::Pause),
            Fault::PartitionNode { node } => {
                session.control(&Member::Node(*node), Control::Disconnect)
            }
            Fault::PartitionNodeDb { node } => {
                session.control(&Member::Node(*node), Control::DisconnectFromDatabase)
            }
            Fault::KillStandby => session.control(&Member::DatabaseStandby, Control::Kill),
            Fault::KillPrimaryDb { hold_standby_s } => {
                if let Some(seconds) = hold_standby_s {
                    // Stopped, not paused: a paused standby's socket still takes in the WAL the
                    // primary sends, and it would replay all of it once resumed.
                    session.control(&Member::DatabaseStandby, Control::Stop)?;
                    session.note(
                        EventKind::Note,
                        format!("standby stopped for {seconds} s before the kill"),
                    );
                    tokio::time::sleep(Duration::from_secs(*seconds)).await;
                }
                session.control(&Member::DatabasePrimary, Control::Kill)?;
                session.note(EventKind::Note, "primary database killed".into());
                if hold_standby_s.is_some() {
                    session.control(&Member::DatabaseStandby, Control::Start)?;
                }
                failover_controller(session, failover, heal_at).await
            }
        }
    }

    pub(super) async fn heal(&self, session: &mut Session<'_>) -> Result<(), InfraError> {
        match self {
            Fault::KillNode { node } | Fault::StopNode { node } => {
                session.control(&Member::Node(*node), Control::Start)?;
                wait_online(session, *node).await;
                Ok(())
            }
            Fault::PauseNode { node } => {
                session.control(&Member::Node(*node), Control::Unpause)?;
                wait_online(session, *node).await;
                Ok(())
            }
            Fault::PartitionNode { node } | Fault::PartitionNodeDb { node } => {
                session.control(&Member::Node(*node), Control::Reconnect)?;
                wait_online(session, *node).await;
                Ok(())
            }
            Fault::KillStandby => session.control(&Member::DatabaseStandby, Control::Start),
            Fault::KillPrimaryDb { .. } => {
                session.control(&Member::DatabaseStandby, Control::Rejoin)?;
                session.note(
                    EventKind::Rejoined,
                    "the former primary streams again as the synchronous standby".into(),
                );
                Ok(())
            }
        }
    }
}

/// Checks the primary every `check_interval`; after `misses` misses in a row promotes the
/// standby. Gives up (an error) if the primary keeps answering until the fault's heal time
/// plus a minute: then nothing was killed.
async fn failover_controller(
    session: &mut Session<'_>,
    policy: FailoverPolicy,
    heal_at: Instant,
) -> Result<(), InfraError> {
    let give_up = heal_at.max(Instant::now()) + Duration::from_secs(60);
    let mut missed = 0;
    loop {
        let checked = Instant::now();
        let answers = session.probe(&Member::DatabasePrimary)?;
        missed = if answers { 0 } else { missed + 1 };
        if missed >= policy.misses {
            session.note(
                EventKind::Detected,
                format!(
                    "failover controller: the primary missed {missed} checks {:?} apart",
                    policy.check_interval
                ),
            );
            session.control(&Member::DatabaseStandby, Control::Promote)?;
            session.note(
                EventKind::Promoted,
                "standby promoted; the nodes' database endpoint now points at it".into(),
            );
            return Ok(());
        }
        if checked >= give_up {
            return Err(InfraError::Failed {
                what: "failover controller".into(),
                detail: "the primary kept answering after it was killed".into(),
            });
        }
        tokio::time::sleep_until((checked + policy.check_interval).into()).await;
    }
}

/// Notes when `node` reports itself Online again (at most 30 s of polling).
async fn wait_online(session: &mut Session<'_>, node: usize) {
    let Some(url) = session.node_url(node) else {
        return;
    };
    let Ok(client) = crate::http::http_client(Duration::from_secs(2)) else {
        return;
    };
    let name = format!("node-{}", node + 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let read = crate::http::status(&client, &name, &url).await;
        if read.status.as_deref() == Some("Online") && read.serving {
            session.note(
                EventKind::NodeOnline,
                format!("{name} reports Online again"),
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
