//! The newest committed transaction, as this node knows it, and the history it belongs to.
//! Writes through this node, `LISTEN/NOTIFY` from other nodes and a periodic re-read all move it
//! the same way: by a read of the database's head that also checks the node's current head is
//! still in the database's history.
//!
//! A request for `latest` reads the database's head first (`Head::fresh`), so that a write that
//! returned before the request was sent — through any node or the admin CLI — is always seen.
//! Concurrent requests share one read, sent on a connection kept for these reads
//! (`store::head_read`: one round trip, where the pool's test before use made it two); while the
//! database is known to be unavailable they skip it and serve the newest transaction this node
//! holds.
//!
//! **Invariant:** the head names a transaction by (id, uid). When a read finds the held head gone
//! from the database (a failover to a standby that lacked the newest commits), the head moves
//! *back* to the database's, every rollback hook runs before the new head is visible (the views
//! drop everything they built), and from then on only what the database holds is served.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::store::{Backend, HeadConnection, HeadRead, NOTIFY_CHANNEL, Store, StoreError, TxMark};

/// What a rollback hook is told: the head the node held and the database's head that replaced it.
#[derive(Debug, Clone)]
pub struct Rollback {
    pub held: TxMark,
    pub database: TxMark,
}

type RollbackHook = Box<dyn Fn(&Rollback) + Send + Sync>;

/// What the shared reads keep between them.
#[derive(Debug, Default)]
struct SharedRead {
    /// When the last one started, whatever its outcome.
    started: Option<Instant>,
    /// The connection they are sent on (`store::head_read`).
    connection: HeadConnection,
}

/// The newest transaction, shared by every request of this node.
pub struct Head {
    /// The id of `held`, for lock-free reads.
    current: AtomicI64,
    held: std::sync::Mutex<TxMark>,
    /// Each new head, for whoever prepares for it (the views warmer).
    heads: tokio::sync::watch::Sender<i64>,
    /// The shared reads of the database's head: held while a read runs so that concurrent
    /// requests wait for one read instead of each sending their own (and, when the database is
    /// gone, instead of each waiting out its own timeout in turn).
    shared_read: tokio::sync::Mutex<SharedRead>,
    /// Serialises applying reads: a read is judged against the head it was sent with.
    applying: tokio::sync::Mutex<()>,
    rollbacks: AtomicU64,
    on_rollback: std::sync::Mutex<Vec<RollbackHook>>,
}

impl std::fmt::Debug for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Head")
            .field("held", &self.held())
            .field("rollbacks", &self.rollbacks())
            .finish_non_exhaustive()
    }
}

impl Head {
    pub fn new(start: TxMark) -> Self {
        Self {
            current: AtomicI64::new(start.id),
            heads: tokio::sync::watch::Sender::new(start.id),
            held: std::sync::Mutex::new(start),
            shared_read: tokio::sync::Mutex::default(),
            applying: tokio::sync::Mutex::new(()),
            rollbacks: AtomicU64::new(0),
            on_rollback: std::sync::Mutex::default(),
        }
    }

    /// The database's head now, as the node starts from it.
    pub async fn read(store: &Store) -> Result<Self, StoreError> {
        let read = store.head_holding(&TxMark::default()).await?;
        Ok(Self::new(read.head))
    }

    /// Runs `hook` on every rollback, before the rolled-back head is replaced.
    pub fn on_rollback(&self, hook: impl Fn(&Rollback) + Send + Sync + 'static) {
        let mut hooks = self.on_rollback.lock().unwrap_or_else(|e| e.into_inner());
        hooks.push(Box::new(hook));
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
        let mut shared = self.shared_read.lock().await;
        if shared.started.is_some_and(|started| started > arrived) || !store.health().is_available()
        {
            return self.get();
        }
        shared.started = Some(Instant::now());
        let read = self.sync_on(store, &mut shared.connection);
        match tokio::time::timeout(wait, read).await {
            Ok(Ok(_)) => {}
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

    /// Reads the database's head and follows it: forward when the held head is still in the
    /// database's history, back (with the rollback hooks) when it is not. Returns the head.
    pub async fn sync(&self, store: &Store) -> Result<i64, StoreError> {
        let _applying = self.applying.lock().await;
        let held = self.held();
        let read = store.head_holding(&held).await?;
        self.apply(held, read);
        Ok(self.get())
    }

    /// [`Head::sync`] with the read sent on the shared reads' own connection.
    async fn sync_on(
        &self,
        store: &Store,
        connection: &mut HeadConnection,
    ) -> Result<i64, StoreError> {
        let _applying = self.applying.lock().await;
        let held = self.held();
        let read = store.head_holding_on(connection, &held).await?;
        self.apply(held, read);
        Ok(self.get())
    }

    fn apply(&self, held: TxMark, read: HeadRead) {
        if read.holds_held {
            if read.head.id > held.id {
                self.set(read.head);
            }
            return;
        }
        let rollback = Rollback {
            held,
            database: read.head.clone(),
        };
        tracing::error!(
            held = rollback.held.id,
            held_uid = %rollback.held.uid,
            database = rollback.database.id,
            "the database no longer holds this node's head (a failover lost commits): \
             dropping every view and serving only what the database holds"
        );
        self.rollbacks.fetch_add(1, Ordering::AcqRel);
        {
            let hooks = self.on_rollback.lock().unwrap_or_else(|e| e.into_inner());
            for hook in hooks.iter() {
                hook(&rollback);
            }
        }
        self.set(read.head);
    }

    fn set(&self, head: TxMark) {
        let id = head.id;
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = head;
        self.current.store(id, Ordering::Release);
        self.heads.send_if_modified(|sent| {
            let changed = *sent != id;
            *sent = id;
            changed
        });
    }

    pub fn get(&self) -> i64 {
        self.current.load(Ordering::Acquire)
    }

    /// The head with its identity.
    pub fn held(&self) -> TxMark {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many times this node found its head rolled back.
    pub fn rollbacks(&self) -> u64 {
        self.rollbacks.load(Ordering::Acquire)
    }

    /// Learns of each new head (intermediate ones may be skipped; after a rollback, a lower one).
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
    if let Err(e) = head.sync(store).await {
        tracing::warn!(error = %e, "could not read the newest transaction");
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
            // A notification's id alone cannot say which history it belongs to (after a
            // failover the promoted server hands the same ids out again): it only says when to
            // read the head.
            Ok(Ok(Some(_notification))) => resync(store, head).await,
            // The connection dropped and was re-established: notifications may be missing.
            Ok(Ok(None)) => resync(store, head).await,
            Ok(Err(e)) => return Err(e),
            Err(_elapsed) => resync(store, head).await,
        }
    }
}
