//! Membership events between nodes over PostgreSQL `LISTEN/NOTIFY`: arrivals, status changes,
//! drain requests, deletions and resets. A node that may have missed notifications (first
//! connection, reconnection, a quiet period) is told to resynchronise from the tables instead.

use std::time::Duration;

use crate::store::Store;
use crate::store::cluster::CLUSTER_CHANNEL;

/// One notification on the cluster channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterEvent {
    /// A node joined (or rejoined) the cluster.
    Arrived(i64),
    Online(i64),
    Offline(i64),
    /// Any other status change.
    Status(i64),
    /// An operator asked the node to go offline.
    Drain(i64),
    /// An operator asked the node to come back online.
    Undrain(i64),
    /// An operator is deleting the node.
    Deleting(i64),
    Deleted(i64),
    /// The cluster definition and every member were removed.
    Reset,
}

impl ClusterEvent {
    pub fn parse(payload: &str) -> Option<Self> {
        if payload.trim() == "reset" {
            return Some(Self::Reset);
        }
        let (kind, id) = payload.trim().split_once(' ')?;
        let id: i64 = id.parse().ok()?;
        Some(match kind {
            "arrived" => Self::Arrived(id),
            "online" => Self::Online(id),
            "offline" => Self::Offline(id),
            "status" => Self::Status(id),
            "drain" => Self::Drain(id),
            "undrain" => Self::Undrain(id),
            "deleting" => Self::Deleting(id),
            "deleted" => Self::Deleted(id),
            _ => return None,
        })
    }

    /// The node the event is about.
    pub fn node(self) -> Option<i64> {
        match self {
            Self::Arrived(id)
            | Self::Online(id)
            | Self::Offline(id)
            | Self::Status(id)
            | Self::Drain(id)
            | Self::Undrain(id)
            | Self::Deleting(id)
            | Self::Deleted(id) => Some(id),
            Self::Reset => None,
        }
    }
}

/// Follows the cluster channel until the process ends. `on_event(Some(e))` for each event,
/// `on_event(None)` when the tables should be re-read.
pub fn spawn_listener(
    store: Store,
    quiet: Duration,
    on_event: impl Fn(Option<ClusterEvent>) + Send + Sync + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            if let Err(e) = follow(&store, quiet, &on_event).await {
                tracing::warn!(error = %e, "lost the cluster notification connection; resynchronising");
            }
            on_event(None);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    })
}

async fn follow(
    store: &Store,
    quiet: Duration,
    on_event: &(impl Fn(Option<ClusterEvent>) + Send + Sync),
) -> Result<(), sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect(store.url()).await?;
    listener.listen(CLUSTER_CHANNEL).await?;
    // Anything that happened while we were not listening.
    on_event(None);
    loop {
        match tokio::time::timeout(quiet, listener.try_recv()).await {
            Ok(Ok(Some(notification))) => match ClusterEvent::parse(notification.payload()) {
                Some(event) => on_event(Some(event)),
                None => tracing::debug!(payload = notification.payload(), "unknown cluster event"),
            },
            // Reconnected under the hood: notifications may be missing.
            Ok(Ok(None)) => on_event(None),
            Ok(Err(e)) => return Err(e),
            Err(_elapsed) => on_event(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse() {
        assert_eq!(ClusterEvent::parse("drain 3"), Some(ClusterEvent::Drain(3)));
        assert_eq!(ClusterEvent::parse("reset"), Some(ClusterEvent::Reset));
        assert_eq!(ClusterEvent::parse("deleted x"), None);
        assert_eq!(ClusterEvent::parse("bogus 1"), None);
        assert_eq!(ClusterEvent::Online(4).node(), Some(4));
    }
}
