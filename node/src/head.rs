//! The newest committed transaction, as this node knows it. Writes through this node move it at
//! once; writes through other nodes (or the admin CLI) arrive by PostgreSQL `LISTEN/NOTIFY`, and a
//! periodic re-read resynchronises after missed notifications (reconnects) and on SQLite.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::store::{Backend, Store};

/// Channel the nodes announce new transactions on; the payload is the transaction id.
pub const NOTIFY_CHANNEL: &str = "pkgnode_tx";

/// The newest transaction id, shared by every request of this node.
#[derive(Debug, Default)]
pub struct Head {
    current: AtomicI64,
}

impl Head {
    pub fn new(start: i64) -> Self {
        Self {
            current: AtomicI64::new(start),
        }
    }

    pub fn get(&self) -> i64 {
        self.current.load(Ordering::Acquire)
    }

    /// Moves forward only: a late or duplicated notification never moves it back.
    pub fn advance(&self, tx: i64) {
        self.current.fetch_max(tx, Ordering::AcqRel);
    }
}

/// Follows the database: notifications on PostgreSQL, and a re-read every `poll` everywhere.
pub fn spawn_tracker(store: Store, head: Arc<Head>, poll: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if store.backend() == Backend::Postgres {
            let mut backoff = Duration::from_millis(100);
            loop {
                match follow_notifications(&store, &head, poll).await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the notification connection; resynchronising");
                        resync(&store, &head).await;
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        } else {
            loop {
                resync(&store, &head).await;
                tokio::time::sleep(poll).await;
            }
        }
    })
}

async fn resync(store: &Store, head: &Head) {
    match store.head().await {
        Ok(tx) => head.advance(tx),
        Err(e) => tracing::warn!(error = %e, "could not read the newest transaction"),
    }
}

async fn follow_notifications(
    store: &Store,
    head: &Head,
    poll: Duration,
) -> Result<(), sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect(store.url()).await?;
    listener.listen(NOTIFY_CHANNEL).await?;
    // Anything committed while we were not listening.
    resync(store, head).await;
    loop {
        match tokio::time::timeout(poll, listener.try_recv()).await {
            Ok(Ok(Some(notification))) => {
                if let Ok(tx) = notification.payload().parse::<i64>() {
                    head.advance(tx);
                }
            }
            // The connection dropped and was re-established: notifications may be missing.
            Ok(Ok(None)) => resync(store, head).await,
            Ok(Err(e)) => return Err(e),
            Err(_elapsed) => resync(store, head).await,
        }
    }
}
