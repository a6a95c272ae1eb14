//! The newest committed transaction, as this node knows it. Writes through this node move it at
//! once; writes through other nodes (or the admin CLI) arrive by PostgreSQL `LISTEN/NOTIFY`, and a
//! periodic re-read resynchronises after missed notifications (reconnects) and on SQLite.
//!
//! A request for `latest` reads the database's head first (`Head::fresh`), so that a write that
//! returned before the request was sent — through any node or the admin CLI — is always seen.
//! Concurrent requests share one read; while the database is known to be unavailable they skip it
//! and serve the newest transaction this node holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use crate::store::{Backend, NOTIFY_CHANNEL, Store};

/// The newest transaction id, shared by every request of this node.
#[derive(Debug)]
pub struct Head {
    current: AtomicI64,
    /// Each new head, for whoever prepares for it (the views warmer).
    heads: tokio::sync::watch::Sender<i64>,
    /// When the last read of the database's head started, whatever its outcome; held while a
    /// read runs so that concurrent requests wait for one read instead of each sending their own
    /// (and, when the database is gone, instead of each waiting out its own timeout in turn).
    last_read_started: tokio::sync::Mutex<Option<Instant>>,
}

impl Head {
    pub fn new(start: i64) -> Self {
        Self {
            current: AtomicI64::new(start),
            heads: tokio::sync::watch::Sender::new(start),
            last_read_started: tokio::sync::Mutex::new(None),
        }
    }

    /// The newest transaction, including every commit that finished before this call: a read of
    /// the database that started after the call began, shared with concurrent callers. When the
    /// database is unavailable (known already, or found so within `wait`) the newest transaction
    /// this node knows is returned instead: reads keep working from what the node holds.
    pub async fn fresh(&self, store: &Store, wait: Duration) -> i64 {
        let arrived = Instant::now();
        if !store.health().is_available() {
            return self.get();
        }
        let mut last = self.last_read_started.lock().await;
        if last.is_some_and(|started| started > arrived) || !store.health().is_available() {
            return self.get();
        }
        let started = Instant::now();
        *last = Some(started);
        match tokio::time::timeout(wait, store.head()).await {
            Ok(Ok(tx)) => self.advance(tx),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not read the newest transaction; serving the newest known")
            }
            Err(_) => {
                store.health().mark_unavailable(&sqlx::Error::PoolTimedOut);
                tracing::warn!(
                    ?wait,
                    "reading the newest transaction timed out; serving the newest known"
                );
            }
        }
        self.get()
    }

    pub fn get(&self) -> i64 {
        self.current.load(Ordering::Acquire)
    }

    /// Moves forward only: a late or duplicated notification never moves it back.
    pub fn advance(&self, tx: i64) {
        if self.current.fetch_max(tx, Ordering::AcqRel) < tx {
            self.heads.send_if_modified(|head| {
                let newer = tx > *head;
                if newer {
                    *head = tx;
                }
                newer
            });
        }
    }

    /// Learns of each new head (intermediate ones may be skipped).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<i64> {
        self.heads.subscribe()
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
                        // Capped by the poll interval too, so a database that comes back (or a
                        // promoted standby) is noticed within about one poll.
                        backoff = (backoff * 2).min(poll.min(Duration::from_secs(5)));
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
